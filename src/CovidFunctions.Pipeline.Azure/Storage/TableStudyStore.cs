using System.Runtime.CompilerServices;
using Azure;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Azure.Storage;

/// <summary>
/// <see cref="IStudyStore"/> on the <c>Studies</c> table: PartitionKey tenant, RowKey study id, one flat property per
/// <see cref="StudyRecord"/> member (nulls are not stored). Updates are optimistic: a stale ETag (412) or a racing
/// insert (409) re-reads the row and re-applies the caller's update.
/// <para>
/// Finding a study by its id alone (<see cref="IStudyIdIndex"/>: an all-tenant API key, <c>covidfn status ID</c>) reads
/// an index row: PartitionKey <see cref="TenantIndexPartition"/>, RowKey the study id, property <c>Tenant</c>. It is
/// written insert-only before the study's row is first inserted (an index row whose study row never landed names the
/// one tenant that id can belong to: study ids are keyed hashes of tenant and upload), and never changed. Studies
/// created before the index existed have none: their lookup falls back to the scan of the whole table, once; the scan
/// writes the index row it lacked. Queries of all tenants leave the index partition out.
/// </para>
/// </summary>
public sealed class TableStudyStore(TableClient table) : IStudyStore, IStudyIdIndex
{
    /// <summary>The partition of the study id → tenant index rows; no tenant can have it (tenants are <c>[a-z0-9][a-z0-9-]*</c>).</summary>
    public const string TenantIndexPartition = "~tenant-of";

    private const string TenantIndexProperty = "Tenant";

    /// <summary>Re-reads after conflicts before giving up (each conflict means another writer succeeded).</summary>
    private const int MaxUpdateAttempts = 100;

    public TableClient Table { get; } = table;

    public async Task<StudyRecord?> GetAsync(string tenant, string studyId, CancellationToken cancellationToken)
    {
        if (!IsTableKey(tenant) || !IsTableKey(studyId))
        {
            // No row can have such a key (its insert fails), so there is none; the point read would fail instead.
            return null;
        }

        var response = await Table.GetEntityIfExistsAsync<TableEntity>(tenant, studyId, cancellationToken: cancellationToken).ConfigureAwait(false);
        return response.HasValue && response.Value is { } entity ? FromEntity(entity) : null;
    }

    public async Task<bool> TryCreateAsync(StudyRecord record, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        try
        {
            await AddTenantIndexAsync(record.Tenant, record.StudyId, cancellationToken).ConfigureAwait(false);
            await Table.AddEntityAsync(ToEntity(record), cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (RequestFailedException ex) when (ex.Status == 409)
        {
            return false;
        }
    }

    public async Task<StudyRecord> UpdateAsync(string tenant, string studyId, Func<StudyRecord?, StudyRecord> update, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(update);
        for (var attempt = 1; ; attempt++)
        {
            var current = await GetAsync(tenant, studyId, cancellationToken).ConfigureAwait(false);
            var updated = update(current) ?? throw new InvalidOperationException("The study update returned null.");
            if (updated.Tenant != tenant || updated.StudyId != studyId)
            {
                throw new InvalidOperationException($"The study update changed the key ({tenant}/{studyId} -> {updated.Tenant}/{updated.StudyId}).");
            }

            var entity = ToEntity(updated);
            try
            {
                if (current is null)
                {
                    await AddTenantIndexAsync(tenant, studyId, cancellationToken).ConfigureAwait(false);
                }

                Response response = current is null
                    ? await Table.AddEntityAsync(entity, cancellationToken).ConfigureAwait(false)
                    : await Table.UpdateEntityAsync(entity, new ETag(current.ETag!), TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false);
                return updated with { ETag = response.Headers.ETag?.ToString() };
            }
            catch (RequestFailedException ex) when ((ex.Status is 409 or 412) && attempt < MaxUpdateAttempts)
            {
                // Another writer got there first: back off a little (jittered) and re-apply on the fresh row.
                await Task.Delay(Random.Shared.Next(5, 20 + (10 * Math.Min(attempt, 10))), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// The study of <paramref name="studyId"/> in any tenant: the index row, then the study's row (two point reads);
    /// without an index row (a study created before the index existed), <see cref="StudyRecordLookup.ScanAsync"/>,
    /// which then writes the index row so the next lookup is point reads.
    /// </summary>
    public async Task<StudyRecord?> FindInAnyTenantAsync(string studyId, CancellationToken cancellationToken)
    {
        if (!IsTableKey(studyId))
        {
            return null;
        }

        var index = await Table.GetEntityIfExistsAsync<TableEntity>(TenantIndexPartition, studyId, [TenantIndexProperty], cancellationToken).ConfigureAwait(false);
        if (index.HasValue && index.Value?.GetString(TenantIndexProperty) is { } tenant
            && await GetAsync(tenant, studyId, cancellationToken).ConfigureAwait(false) is { } indexed)
        {
            return indexed;
        }

        var found = await StudyRecordLookup.ScanAsync(this, studyId, cancellationToken).ConfigureAwait(false);
        if (found is not null && !index.HasValue)
        {
            try
            {
                await AddTenantIndexAsync(found.Tenant, studyId, cancellationToken).ConfigureAwait(false);
            }
            catch (RequestFailedException)
            {
                // Only a shortcut for the next lookup, which scans again (and retries this write) without it.
            }
        }

        return found;
    }

    public async IAsyncEnumerable<StudyRecord> QueryAsync(string? tenant, string? status, DateTimeOffset? from, DateTimeOffset? to, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var filter = BuildFilter(tenant, status, from, to);
        var records = new List<StudyRecord>();
        await foreach (var entity in Table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            records.Add(FromEntity(entity));
        }

        // Table Storage returns rows in key order; the contract is newest first.
        foreach (var record in records.OrderByDescending(r => r.CreatedAt).ThenBy(r => r.StudyId, StringComparer.Ordinal))
        {
            yield return record;
        }
    }

    /// <summary>
    /// Whether Table Storage accepts <paramref name="key"/> as a PartitionKey or RowKey: not '/', '\', '#', '?' nor a
    /// control character (U+0000-U+001F, U+007F-U+009F).
    /// </summary>
    public static bool IsTableKey(string? key) =>
        key is not null && !key.Any(c => c is '/' or '\\' or '#' or '?' || char.IsControl(c));

    /// <summary>The OData filter of a query (all tenants: every partition but the index's); values are escaped by the SDK's formatter.</summary>
    internal static string BuildFilter(string? tenant, string? status, DateTimeOffset? from, DateTimeOffset? to)
    {
        var clauses = new List<string>();
        if (tenant is not null)
        {
            clauses.Add(TableClient.CreateQueryFilter($"PartitionKey eq {tenant}"));
        }
        else
        {
            clauses.Add(TableClient.CreateQueryFilter($"PartitionKey ne {TenantIndexPartition}"));
        }

        if (status is not null)
        {
            clauses.Add(TableClient.CreateQueryFilter($"Status eq {status}"));
        }

        if (from is { } f)
        {
            clauses.Add(TableClient.CreateQueryFilter($"CreatedAt ge {f.ToUniversalTime()}"));
        }

        if (to is { } t)
        {
            clauses.Add(TableClient.CreateQueryFilter($"CreatedAt le {t.ToUniversalTime()}"));
        }

        return string.Join(" and ", clauses);
    }

    internal static TableEntity ToEntity(StudyRecord record)
    {
        var entity = new TableEntity(record.Tenant, record.StudyId)
        {
            [nameof(StudyRecord.Status)] = record.Status,
            [nameof(StudyRecord.SliceCount)] = record.SliceCount,
        };
        Put(entity, nameof(StudyRecord.Reason), record.Reason);
        Put(entity, nameof(StudyRecord.UploadPath), record.UploadPath);
        Put(entity, nameof(StudyRecord.UploadKind), record.UploadKind);
        Put(entity, nameof(StudyRecord.StudyPseudonym), record.StudyPseudonym);
        Put(entity, nameof(StudyRecord.OrchestrationId), record.OrchestrationId);
        Put(entity, nameof(StudyRecord.TilesPrefix), record.TilesPrefix);
        Put(entity, nameof(StudyRecord.Label), record.Label);
        Put(entity, nameof(StudyRecord.ProbabilityCovid), record.ProbabilityCovid);
        Put(entity, nameof(StudyRecord.ProbabilityCap), record.ProbabilityCap);
        Put(entity, nameof(StudyRecord.ProbabilityNormal), record.ProbabilityNormal);
        Put(entity, nameof(StudyRecord.LesionBurden), record.LesionBurden);
        Put(entity, nameof(StudyRecord.ModelVersion), record.ModelVersion);
        Put(entity, nameof(StudyRecord.SeriesJson), record.SeriesJson);
        Put(entity, nameof(StudyRecord.TimingsJson), record.TimingsJson);
        Put(entity, nameof(StudyRecord.TopSlicesJson), record.TopSlicesJson);
        Put(entity, nameof(StudyRecord.MontagePath), record.MontagePath);
        Put(entity, nameof(StudyRecord.IngestAttempts), record.IngestAttempts == 0 ? null : record.IngestAttempts);
        Put(entity, nameof(StudyRecord.IngestError), record.IngestError);

        // Table Storage dates start in 1601: an unset CreatedAt (default) is simply not stored.
        Put(entity, nameof(StudyRecord.CreatedAt), record.CreatedAt == default ? null : record.CreatedAt.ToUniversalTime());
        Put(entity, nameof(StudyRecord.IngestedAt), record.IngestedAt?.ToUniversalTime());
        Put(entity, nameof(StudyRecord.ScoringStartedAt), record.ScoringStartedAt?.ToUniversalTime());
        Put(entity, nameof(StudyRecord.ScoringFinishedAt), record.ScoringFinishedAt?.ToUniversalTime());
        Put(entity, nameof(StudyRecord.CompletedAt), record.CompletedAt?.ToUniversalTime());
        return entity;
    }

    internal static StudyRecord FromEntity(TableEntity entity) => new()
    {
        Tenant = entity.PartitionKey,
        StudyId = entity.RowKey,
        Status = entity.GetString(nameof(StudyRecord.Status)) ?? StudyStatus.Queued,
        Reason = entity.GetString(nameof(StudyRecord.Reason)),
        UploadPath = entity.GetString(nameof(StudyRecord.UploadPath)),
        UploadKind = entity.GetString(nameof(StudyRecord.UploadKind)),
        StudyPseudonym = entity.GetString(nameof(StudyRecord.StudyPseudonym)),
        OrchestrationId = entity.GetString(nameof(StudyRecord.OrchestrationId)),
        TilesPrefix = entity.GetString(nameof(StudyRecord.TilesPrefix)),
        SliceCount = entity.GetInt32(nameof(StudyRecord.SliceCount)) ?? 0,
        Label = entity.GetString(nameof(StudyRecord.Label)),
        ProbabilityCovid = entity.GetDouble(nameof(StudyRecord.ProbabilityCovid)),
        ProbabilityCap = entity.GetDouble(nameof(StudyRecord.ProbabilityCap)),
        ProbabilityNormal = entity.GetDouble(nameof(StudyRecord.ProbabilityNormal)),
        LesionBurden = entity.GetDouble(nameof(StudyRecord.LesionBurden)),
        ModelVersion = entity.GetString(nameof(StudyRecord.ModelVersion)),
        SeriesJson = entity.GetString(nameof(StudyRecord.SeriesJson)),
        TimingsJson = entity.GetString(nameof(StudyRecord.TimingsJson)),
        TopSlicesJson = entity.GetString(nameof(StudyRecord.TopSlicesJson)),
        MontagePath = entity.GetString(nameof(StudyRecord.MontagePath)),
        IngestAttempts = entity.GetInt32(nameof(StudyRecord.IngestAttempts)) ?? 0,
        IngestError = entity.GetString(nameof(StudyRecord.IngestError)),
        CreatedAt = entity.GetDateTimeOffset(nameof(StudyRecord.CreatedAt)) ?? default,
        IngestedAt = entity.GetDateTimeOffset(nameof(StudyRecord.IngestedAt)),
        ScoringStartedAt = entity.GetDateTimeOffset(nameof(StudyRecord.ScoringStartedAt)),
        ScoringFinishedAt = entity.GetDateTimeOffset(nameof(StudyRecord.ScoringFinishedAt)),
        CompletedAt = entity.GetDateTimeOffset(nameof(StudyRecord.CompletedAt)),
        ETag = entity.ETag.ToString(),
    };

    /// <summary>Inserts the index row of <paramref name="studyId"/> unless it exists (insert-only: the first tenant stays).</summary>
    private async Task AddTenantIndexAsync(string tenant, string studyId, CancellationToken cancellationToken)
    {
        try
        {
            await Table.AddEntityAsync(new TableEntity(TenantIndexPartition, studyId) { [TenantIndexProperty] = tenant }, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.Status == 409)
        {
            // Written by an earlier attempt or another writer of this study.
        }
    }

    private static void Put(TableEntity entity, string name, object? value)
    {
        if (value is not null)
        {
            entity[name] = value;
        }
    }
}
