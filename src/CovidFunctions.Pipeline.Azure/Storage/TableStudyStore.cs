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
/// created before the index existed have none. <see cref="CompleteTenantIndexAsync"/> (one scan of the table, run in
/// the background at start-up by <see cref="StudyIdIndexCompletion"/>, never inside a lookup) writes the index rows
/// they lack and then the insert-only marker row <see cref="IndexCompleteRowKey"/>; from then on a missing index row
/// means that no study has the id, answered with point reads and no scan. Until then a lookup without an index row
/// reads the id in each tenant (requests bounded by the number of tenants). Sound because every writer writes a study's
/// index row before its row: a study created while the backfill runs has its index row before the marker is read as
/// complete, or does not exist yet. Queries of all tenants leave the index partition (and so the marker) out.
/// </para>
/// </summary>
public sealed class TableStudyStore(TableClient table) : IStudyStore, IStudyIdIndex
{
    /// <summary>The partition of the study id → tenant index rows; no tenant can have it (tenants are <c>[a-z0-9][a-z0-9-]*</c>).</summary>
    public const string TenantIndexPartition = "~tenant-of";

    private const string TenantIndexProperty = "Tenant";

    /// <summary>
    /// RowKey of the marker row in <see cref="TenantIndexPartition"/> written once every study row has its index row
    /// (no study id can have a '~': <c>ResultsApi.IsPlausibleStudyId</c>). Insert-only and never removed.
    /// </summary>
    public const string IndexCompleteRowKey = "~complete";

    /// <summary>Index rows per backfill transaction (the Table service's limit for one entity group transaction).</summary>
    private const int BackfillBatchSize = 100;

    private readonly Lock _backfillLock = new();

    /// <summary>
    /// This process's backfill: lookups that miss at once share it (another process's backfill is harmless: every
    /// write is insert-only). A failed one is started again by the next lookup.
    /// </summary>
    private Task<int>? _backfill;

    /// <summary>Set once the marker has been read or written: it is never removed, so it need not be read again.</summary>
    private volatile bool _indexComplete;

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
    /// The study of <paramref name="studyId"/> in any tenant: the index row, then the study's row (two point reads; an
    /// index row whose study row never landed, an interrupted create, names the only tenant the id can belong to, so
    /// the answer is null then). Without an index row there is no such study once the index is complete (the marker:
    /// one more point read, then remembered). Before that (studies created before the index may lack their index row,
    /// and completing it is a scan of the whole table, which <see cref="StudyIdIndexCompletion"/> runs off the request
    /// path), the id is looked for in each tenant (<see cref="FindByTenantProbeAsync"/>: about two requests per tenant,
    /// whatever the number of studies), so an existing study is never answered null. Nothing here writes but the index
    /// row of a study found so, which a read-only credential may refuse without failing the lookup.
    /// </summary>
    public async Task<StudyRecord?> FindInAnyTenantAsync(string studyId, CancellationToken cancellationToken)
    {
        if (!IsTableKey(studyId))
        {
            return null;
        }

        var index = await Table.GetEntityIfExistsAsync<TableEntity>(TenantIndexPartition, studyId, [TenantIndexProperty], cancellationToken).ConfigureAwait(false);
        if (index.HasValue && index.Value?.GetString(TenantIndexProperty) is { } tenant)
        {
            return await GetAsync(tenant, studyId, cancellationToken).ConfigureAwait(false);
        }

        return await IsTenantIndexCompleteAsync(cancellationToken).ConfigureAwait(false)
            ? null
            : await FindByTenantProbeAsync(studyId, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The lookup while the index may be incomplete: a point read of the id in each tenant (<see cref="ListTenantsAsync"/>),
    /// stopping at the first hit, whose index row is then written (insert-only) so that its next lookup is two point reads.
    /// Bounded by the number of tenants (a query of one row and a point read each), never by the number of studies.
    /// </summary>
    private async Task<StudyRecord?> FindByTenantProbeAsync(string studyId, CancellationToken cancellationToken)
    {
        await foreach (var tenant in ListTenantsAsync(cancellationToken).ConfigureAwait(false))
        {
            if (await GetAsync(tenant, studyId, cancellationToken).ConfigureAwait(false) is not { } found)
            {
                continue;
            }

            try
            {
                await AddTenantIndexAsync(found.Tenant, studyId, cancellationToken).ConfigureAwait(false);
            }
            catch (RequestFailedException)
            {
                // A read-only credential or a storage fault: the study was found; the completion writes the row later.
            }

            return found;
        }

        return null;
    }

    /// <summary>
    /// The tenants with study rows, in key order, one query of a single row per tenant: each asks for the first row
    /// after the previous tenant's partition (<c>PartitionKey gt</c>, <c>$top=1</c>), which the service answers from its
    /// key order without reading the rows between. The index partition is stepped over as a range (its rows are as many
    /// as the studies), never read.
    /// </summary>
    public async IAsyncEnumerable<string> ListTenantsAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // Two key ranges: below the index partition (every valid tenant: [a-z0-9] sort before '~') and above it.
        foreach (var (lowerExclusive, upperExclusive) in new (string? Lower, string? Upper)[] { (null, TenantIndexPartition), (TenantIndexPartition, null) })
        {
            var after = lowerExclusive;
            while (true)
            {
                var clauses = new List<string>();
                if (after is not null)
                {
                    clauses.Add(TableClient.CreateQueryFilter($"PartitionKey gt {after}"));
                }

                if (upperExclusive is not null)
                {
                    clauses.Add(TableClient.CreateQueryFilter($"PartitionKey lt {upperExclusive}"));
                }

                string? next = null;
                await foreach (var row in Table.QueryAsync<TableEntity>(string.Join(" and ", clauses), maxPerPage: 1, select: ["PartitionKey"], cancellationToken: cancellationToken).ConfigureAwait(false))
                {
                    next = row.PartitionKey;
                    break;
                }

                if (next is null)
                {
                    break;
                }

                yield return next;
                after = next;
            }
        }
    }

    /// <summary>Whether the index holds every study (its marker row exists).</summary>
    public async Task<bool> IsTenantIndexCompleteAsync(CancellationToken cancellationToken)
    {
        if (!_indexComplete)
        {
            var marker = await Table.GetEntityIfExistsAsync<TableEntity>(TenantIndexPartition, IndexCompleteRowKey, ["RowKey"], cancellationToken).ConfigureAwait(false);
            _indexComplete = marker.HasValue;
        }

        return _indexComplete;
    }

    /// <summary>
    /// Writes the index row of every study that lacks one (studies created before the index existed), then the marker
    /// that says the index is complete; returns how many index rows it wrote. One scan of the study rows (keys only) and
    /// one of the index partition; the missing rows are inserted up to 100 per transaction. Safe to run at any time
    /// and more than once, here or in another process: every write is insert-only, and an index row written meanwhile
    /// by a study's create (which writes it before the study row) only turns a batch into single inserts. A study row
    /// inserted after the scan was read came from a writer that wrote its index row first, so the marker never claims
    /// a study without one, provided no writer older than the index (before 0be263b) still creates studies.
    /// </summary>
    /// <remarks>
    /// The backfill itself is not cancelled with <paramref name="cancellationToken"/> (that only stops the wait): the
    /// scan it has done is worth finishing. Calls at once in one process share one backfill. Resumable in effect: a run
    /// that dies part way leaves only insert-only index rows, and the next run reads them and writes only the rest.
    /// </remarks>
    public Task<int> CompleteTenantIndexAsync(CancellationToken cancellationToken)
    {
        Task<int> running;
        lock (_backfillLock)
        {
            if (_backfill is null || _backfill.IsFaulted || _backfill.IsCanceled)
            {
                _backfill = BackfillAsync(CancellationToken.None);
            }

            running = _backfill;
        }

        return running.WaitAsync(cancellationToken);
    }

    private async Task<int> BackfillAsync(CancellationToken cancellationToken)
    {
        if (await IsTenantIndexCompleteAsync(cancellationToken).ConfigureAwait(false))
        {
            return 0;
        }

        var indexed = new HashSet<string>(StringComparer.Ordinal);
        var indexFilter = TableClient.CreateQueryFilter($"PartitionKey eq {TenantIndexPartition}");
        await foreach (var row in Table.QueryAsync<TableEntity>(indexFilter, select: ["RowKey"], cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            indexed.Add(row.RowKey);
        }

        var missing = new List<TableEntity>();
        await foreach (var row in Table.QueryAsync<TableEntity>(BuildFilter(null, null, null, null), select: ["PartitionKey", "RowKey"], cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            // Keyed study ids are unique across tenants; should two rows share one, the first tenant's index row stays.
            if (indexed.Add(row.RowKey))
            {
                missing.Add(new TableEntity(TenantIndexPartition, row.RowKey) { [TenantIndexProperty] = row.PartitionKey });
            }
        }

        foreach (var batch in missing.Chunk(BackfillBatchSize))
        {
            try
            {
                await Table.SubmitTransactionAsync(batch.Select(e => new TableTransactionAction(TableTransactionActionType.Add, e)), cancellationToken).ConfigureAwait(false);
            }
            catch (RequestFailedException ex) when (ex.Status == 409)
            {
                // An index row of the batch was written meanwhile (a create, another backfill): insert one by one.
                foreach (var entity in batch)
                {
                    await AddTenantIndexAsync(entity.GetString(TenantIndexProperty)!, entity.RowKey, cancellationToken).ConfigureAwait(false);
                }
            }
        }

        try
        {
            await Table.AddEntityAsync(new TableEntity(TenantIndexPartition, IndexCompleteRowKey) { ["CompletedAt"] = DateTimeOffset.UtcNow, ["Backfilled"] = missing.Count }, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.Status == 409)
        {
            // Another backfill finished first.
        }

        _indexComplete = true;
        return missing.Count;
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
