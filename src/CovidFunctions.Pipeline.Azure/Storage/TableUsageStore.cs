using System.Globalization;
using Azure;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Azure.Storage;

/// <summary>
/// <see cref="IUsageStore"/> on the <c>Usage</c> table: PartitionKey <c>{tenant}|{yyyy-MM}</c> (UTC month of
/// <see cref="UsageRecord.At"/>), RowKey <c>{studyId}|{stage}</c>. Insert-only: a second record for the same study and
/// stage gets 409 from the service and is reported as already recorded, so duplicates count once.
/// </summary>
public sealed class TableUsageStore(TableClient table) : IUsageStore
{
    public TableClient Table { get; } = table;

    public static string MonthOf(DateTimeOffset at) => at.ToUniversalTime().ToString("yyyy-MM", CultureInfo.InvariantCulture);

    public static string PartitionKeyOf(string tenant, string month) => $"{tenant}|{month}";

    public static string RowKeyOf(string studyId, string stage) => $"{studyId}|{stage}";

    public async Task<bool> TryRecordAsync(UsageRecord record, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        var entity = new TableEntity(PartitionKeyOf(record.Tenant, MonthOf(record.At)), RowKeyOf(record.StudyId, record.Stage))
        {
            ["Tenant"] = record.Tenant,
            ["StudyId"] = record.StudyId,
            ["Stage"] = record.Stage,
            ["At"] = record.At.ToUniversalTime(),
            ["Slices"] = record.Slices,
            ["CpuSeconds"] = record.CpuSeconds,
            ["GpuSeconds"] = record.GpuSeconds,
            ["BytesStored"] = record.BytesStored,
        };
        try
        {
            await Table.AddEntityAsync(entity, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (RequestFailedException ex) when (ex.Status == 409)
        {
            return false;
        }
    }

    public async Task<IReadOnlyList<UsageRecord>> GetMonthAsync(string tenant, string month, CancellationToken cancellationToken)
    {
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {PartitionKeyOf(tenant, month)}");
        var records = new List<UsageRecord>();
        await foreach (var entity in Table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            records.Add(new UsageRecord(
                entity.GetString("Tenant") ?? tenant,
                entity.GetString("StudyId") ?? "",
                entity.GetString("Stage") ?? "",
                entity.GetDateTimeOffset("At") ?? default,
                entity.GetInt32("Slices") ?? 0,
                entity.GetDouble("CpuSeconds") ?? 0,
                entity.GetDouble("GpuSeconds") ?? 0,
                entity.GetInt64("BytesStored") ?? 0));
        }

        return records.OrderBy(r => r.At).ThenBy(r => r.StudyId, StringComparer.Ordinal).ToList();
    }
}
