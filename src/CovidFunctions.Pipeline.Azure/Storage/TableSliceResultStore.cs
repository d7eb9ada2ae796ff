using System.Globalization;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Azure.Storage;

/// <summary>
/// <see cref="ISliceResultStore"/> on the <c>SliceResults</c> table: PartitionKey <c>{tenant}|{studyId}</c>, RowKey the
/// slice index (D5). Upserts go in entity-group transactions of at most 100 rows of one partition (the service limit),
/// so a chunk's rows land together and a re-delivered chunk overwrites the same rows.
/// </summary>
public sealed class TableSliceResultStore(TableClient table) : ISliceResultStore
{
    /// <summary>The Table service's limit on one transaction.</summary>
    public const int MaxBatchSize = 100;

    public TableClient Table { get; } = table;

    public static string PartitionKeyOf(string tenant, string studyId) => $"{tenant}|{studyId}";

    public async Task UpsertAsync(IReadOnlyList<SliceResultRecord> records, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(records);
        foreach (var partition in records.GroupBy(r => PartitionKeyOf(r.Tenant, r.StudyId), StringComparer.Ordinal))
        {
            // The last record for a slice index wins (a transaction may not touch one row twice).
            var rows = partition.GroupBy(r => r.SliceIndex).Select(g => g.Last()).OrderBy(r => r.SliceIndex).ToList();
            foreach (var batch in rows.Chunk(MaxBatchSize))
            {
                var actions = batch.Select(r => new TableTransactionAction(TableTransactionActionType.UpsertReplace, ToEntity(r)));
                await Table.SubmitTransactionAsync(actions, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    public async Task<IReadOnlyList<SliceResultRecord>> GetAsync(string tenant, string studyId, CancellationToken cancellationToken)
    {
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {PartitionKeyOf(tenant, studyId)}");
        var records = new List<SliceResultRecord>();
        await foreach (var entity in Table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            records.Add(FromEntity(entity, tenant, studyId));
        }

        return records.OrderBy(r => r.SliceIndex).ToList();
    }

    internal static TableEntity ToEntity(SliceResultRecord record)
    {
        var entity = new TableEntity(PartitionKeyOf(record.Tenant, record.StudyId), record.SliceIndex.ToString("D5", CultureInfo.InvariantCulture))
        {
            ["Tenant"] = record.Tenant,
            ["StudyId"] = record.StudyId,
            ["SliceIndex"] = record.SliceIndex,
            ["ChunkIndex"] = record.ChunkIndex,
            ["LesionMeanProbability"] = (double)record.LesionMeanProbability,
            ["LesionFraction"] = (double)record.LesionFraction,
            ["LesionPixels"] = record.LesionPixels,
            ["LungPixels"] = record.LungPixels,
            ["ClassProbabilitiesJson"] = PipelineJson.Serialize(record.ClassProbabilities),
        };
        if (record.OverlayPath is not null)
        {
            entity["OverlayPath"] = record.OverlayPath;
        }

        return entity;
    }

    internal static SliceResultRecord FromEntity(TableEntity entity, string tenant, string studyId) => new(
        entity.GetString("Tenant") ?? tenant,
        entity.GetString("StudyId") ?? studyId,
        entity.GetInt32("SliceIndex") ?? int.Parse(entity.RowKey, CultureInfo.InvariantCulture),
        entity.GetInt32("ChunkIndex") ?? 0,
        (float)(entity.GetDouble("LesionMeanProbability") ?? 0),
        (float)(entity.GetDouble("LesionFraction") ?? 0),
        entity.GetInt64("LesionPixels") ?? 0,
        entity.GetInt64("LungPixels") ?? 0,
        entity.GetString("ClassProbabilitiesJson") is { } json ? PipelineJson.Deserialize<float[]>(json) : [],
        entity.GetString("OverlayPath"));
}
