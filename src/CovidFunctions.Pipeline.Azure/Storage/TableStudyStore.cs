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
/// <para>
/// The studies list (<see cref="ListAsync"/>, <c>GET /api/studies</c>) reads a time-ordered list index: one row per
/// study in the tenant's partition <see cref="ListIndexPartition"/> (<c>~list|{tenant}</c>), RowKey
/// <see cref="ListIndexRowKey"/> (the creation time inverted, 19 digits, then <c>|</c> and the study id), no
/// properties. The Table service returns a partition in RowKey order, which is the list order (newest first, then
/// study id), so a page is one query of about a page of keys from the continuation's place on, then a point read of
/// each listed study (the study row is the one source of its values; an index row is only its place). The row is
/// written (an upsert of the same key: idempotent) before the study row is first inserted and before a write that
/// changes the study's creation time (none of the pipeline's writers does); the row of a place the study does not hold
/// (a create that lost to another with another time, the old place of a moved study) is deleted after the write, and
/// should that delete not happen, the read skips it: a listed study is shown only when its row holds the index row's
/// place. Studies created before the list index existed have no row: <see cref="CompleteListIndexAsync"/> (one scan,
/// streamed, run in the background by <see cref="StudyIdIndexCompletion"/>) writes every study's row, then the marker
/// <see cref="ListIndexMarkerPartition"/>/<see cref="IndexCompleteRowKey"/>; until the marker exists, a list is read
/// the slow way (<see cref="StudyListing.ScanAsync"/>: every matching study, sorted).
/// </para>
/// <para>
/// A list filtered by status reads the status index: the same keys in one partition per tenant and status,
/// <see cref="StatusIndexPartition"/> (<c>~list|{tenant}|{status}</c>, inside the list index's key range, so every
/// all-tenant query and <see cref="ListTenantsAsync"/> step over it as they step over the list index). A study's row
/// there moves when its status changes: the new status's row is written (an upsert) before the study row, and the old
/// status's row deleted after it, conditionally on the version this writer saw (its ETag, read before the study row
/// was written), so that a row another writer put back meanwhile (the study changed back to that status) stays. So a
/// study always has the row of the status it holds; a row of a status it left (a writer that died between the two, a
/// delete that lost its condition) is skipped by the read, which lists a study only when its row holds that status
/// and place. A status change costs three more requests (the upsert, the read of the old row's version, the delete);
/// writes that leave the status alone (most of the pipeline's) none. Studies older than the status index get their
/// rows from <see cref="CompleteStatusIndexAsync"/> (a third scan, streamed, run after the list index's completion),
/// then the marker <see cref="ListIndexMarkerPartition"/>/<see cref="StatusIndexCompleteRowKey"/>; until then a list
/// filtered by status is read the slow way.
/// </para>
/// </summary>
public sealed class TableStudyStore(TableClient table) : IStudyStore, IStudyIdIndex, IStudyListIndex
{
    /// <summary>The start of every list index partition's key (<c>~list|{tenant}</c>); no tenant can start so.</summary>
    public const string ListIndexPartitionPrefix = "~list|";

    /// <summary>The first key after every partition that starts with <see cref="ListIndexPartitionPrefix"/> ('}' follows '|').</summary>
    private const string ListIndexPartitionsEnd = "~list}";

    /// <summary>The partition of the list index's marker row (<see cref="IndexCompleteRowKey"/>): the prefix alone, no tenant's.</summary>
    public const string ListIndexMarkerPartition = ListIndexPartitionPrefix;

    /// <summary>RowKey of the status index's marker row in <see cref="ListIndexMarkerPartition"/> (insert-only, never removed).</summary>
    public const string StatusIndexCompleteRowKey = "~status-complete";

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

    /// <summary>The id index's marker and this process's backfill of it.</summary>
    private readonly IndexCompletion _tenantIndex = new(table, TenantIndexPartition);

    /// <summary>The list index's marker and this process's backfill of it.</summary>
    private readonly IndexCompletion _listIndex = new(table, ListIndexMarkerPartition);

    /// <summary>The status index's marker and this process's backfill of it.</summary>
    private readonly IndexCompletion _statusIndex = new(table, ListIndexMarkerPartition, StatusIndexCompleteRowKey);

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
        var place = StudyListPosition.Of(record);
        ETag? statusRow = null;
        try
        {
            await AddTenantIndexAsync(record.Tenant, record.StudyId, cancellationToken).ConfigureAwait(false);
            await PutListIndexAsync(record.Tenant, place, cancellationToken).ConfigureAwait(false);
            statusRow = await PutStatusIndexAsync(record.Tenant, record.Status, place, cancellationToken).ConfigureAwait(false);
            await Table.AddEntityAsync(ToEntity(record), cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (RequestFailedException ex) when (ex.Status == 409)
        {
            // The study exists: created by another writer (or an earlier delivery of this one). When its place is not
            // the one just indexed (created at another time), that index row names a place no study holds; when its
            // status or place is not the one just indexed, so does that status row (deleted only in the version
            // written here: another writer may have put it back for the study since).
            var existing = await GetAsync(record.Tenant, record.StudyId, cancellationToken).ConfigureAwait(false);
            if (existing is null || !StudyListPosition.Of(existing).IsSamePlace(place))
            {
                await DropListIndexAsync(record.Tenant, place, cancellationToken).ConfigureAwait(false);
            }

            if (statusRow is { } written && (existing is null || !StudyListPosition.Of(existing).IsSamePlace(place) || !string.Equals(existing.Status, record.Status, StringComparison.Ordinal)))
            {
                await DropStatusIndexAsync(record.Tenant, record.Status, ListIndexRowKey(place), written, cancellationToken).ConfigureAwait(false);
            }

            return false;
        }
    }

    public async Task<StudyRecord> UpdateAsync(string tenant, string studyId, Func<StudyRecord?, StudyRecord> update, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(update);
        // The list index rows this call wrote: those of places the study does not hold in the end are deleted.
        var indexed = new List<StudyListPosition>();
        // The status index rows this call wrote or saw as the study's, with the version seen last: those of a status
        // or place the study does not hold in the end are deleted in that version only.
        var statusRows = new Dictionary<(string Status, string RowKey), ETag>();
        for (var attempt = 1; ; attempt++)
        {
            var current = await GetAsync(tenant, studyId, cancellationToken).ConfigureAwait(false);
            var updated = update(current) ?? throw new InvalidOperationException("The study update returned null.");
            if (updated.Tenant != tenant || updated.StudyId != studyId)
            {
                throw new InvalidOperationException($"The study update changed the key ({tenant}/{studyId} -> {updated.Tenant}/{updated.StudyId}).");
            }

            var entity = ToEntity(updated);
            var place = StudyListPosition.Of(updated);
            var moves = current is null || !StudyListPosition.Of(current).IsSamePlace(place);
            var statusMoves = moves || !string.Equals(current!.Status, updated.Status, StringComparison.Ordinal);
            try
            {
                if (current is null)
                {
                    await AddTenantIndexAsync(tenant, studyId, cancellationToken).ConfigureAwait(false);
                }

                // Before the row, so that no study row is ever without its list index row (once the index is complete).
                if (moves && !indexed.Any(p => p.IsSamePlace(place)))
                {
                    await PutListIndexAsync(tenant, place, cancellationToken).ConfigureAwait(false);
                    indexed.Add(place);
                }

                // The new status's row before the row, every attempt (a row of an earlier attempt may have been deleted
                // since by a writer that saw it); the version of the old status's row read now, before the row changes.
                if (statusMoves)
                {
                    if (await PutStatusIndexAsync(tenant, updated.Status, place, cancellationToken).ConfigureAwait(false) is { } put)
                    {
                        statusRows[(updated.Status, ListIndexRowKey(place))] = put;
                    }

                    if (current is not null && await ReadStatusIndexVersionAsync(tenant, current.Status, StudyListPosition.Of(current), cancellationToken).ConfigureAwait(false) is { } seen)
                    {
                        statusRows[(current.Status, ListIndexRowKey(StudyListPosition.Of(current)))] = seen;
                    }
                }

                Response response = current is null
                    ? await Table.AddEntityAsync(entity, cancellationToken).ConfigureAwait(false)
                    : await Table.UpdateEntityAsync(entity, new ETag(current.ETag!), TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false);
                var stale = indexed.Where(p => !p.IsSamePlace(place)).ToList();
                if (current is not null && moves)
                {
                    stale.Add(StudyListPosition.Of(current));
                }

                foreach (var old in stale)
                {
                    await DropListIndexAsync(tenant, old, cancellationToken).ConfigureAwait(false);
                }

                var held = (updated.Status, ListIndexRowKey(place));
                foreach (var (row, version) in statusRows.Where(r => r.Key != held))
                {
                    await DropStatusIndexAsync(tenant, row.Status, row.RowKey, version, cancellationToken).ConfigureAwait(false);
                }

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
        // Three key ranges around the index partitions: below the list index (every valid tenant: [a-z0-9] sort
        // before '~'), between it and the id index, and above that. Each list index partition is as large as its
        // tenant's history, the id index as the whole table: the ranges step over them, never read them.
        foreach (var (lowerExclusive, upperExclusive) in new (string? Lower, string? Upper)[]
        {
            (null, ListIndexPartitionPrefix),
            (ListIndexPartitionsEnd, TenantIndexPartition),
            (TenantIndexPartition, null),
        })
        {
            var inclusiveLower = lowerExclusive == ListIndexPartitionsEnd;
            var after = lowerExclusive;
            while (true)
            {
                var clauses = new List<string>();
                if (after is not null)
                {
                    // "~list}" itself could be a tenant's key were tenants not [a-z0-9-]: ge, so no key is stepped over.
                    clauses.Add(inclusiveLower && after == lowerExclusive
                        ? TableClient.CreateQueryFilter($"PartitionKey ge {after}")
                        : TableClient.CreateQueryFilter($"PartitionKey gt {after}"));
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
    public Task<bool> IsTenantIndexCompleteAsync(CancellationToken cancellationToken) => _tenantIndex.IsCompleteAsync(cancellationToken);

    /// <summary>
    /// Writes the index row of every study that lacks one (studies created before the index existed), then the marker
    /// that says the index is complete; returns how many index rows it wrote. One scan of the study rows (keys only, a
    /// query per tenant merged in id order) against one of the index partition, streamed (a merge join: memory holds a
    /// page of keys per tenant, not the table's); the missing rows are inserted up to 100 per transaction. Safe to run at any time
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
    public Task<int> CompleteTenantIndexAsync(CancellationToken cancellationToken) => _tenantIndex.CompleteAsync(BackfillAsync, cancellationToken);

    /// <summary>Inserts the id index row of every study that lacks one (the marker is <see cref="IndexCompletion"/>'s); returns how many.</summary>
    private async Task<int> BackfillAsync(CancellationToken cancellationToken)
    {
        // A merge join, streamed: the study ids of every tenant in one id order (each tenant's partition is in id order;
        // the tenants' are merged) against the index partition, also in id order. Memory holds a page of keys per
        // tenant and one batch, never the table's keys (before, every index row's id was read into a set first).
        var tenants = new List<string>();
        await foreach (var tenant in ListTenantsAsync(cancellationToken).ConfigureAwait(false))
        {
            tenants.Add(tenant);
        }

        var studyRows = StudyListing.MergeAsync(
            [.. tenants.Select(t => Table.QueryAsync<TableEntity>(TableClient.CreateQueryFilter($"PartitionKey eq {t}"), select: ["PartitionKey", "RowKey"], cancellationToken: cancellationToken))],
            (a, b) => string.CompareOrdinal(a.RowKey, b.RowKey) < 0,
            cancellationToken);
        var indexFilter = TableClient.CreateQueryFilter($"PartitionKey eq {TenantIndexPartition}");
        await using var indexed = Table.QueryAsync<TableEntity>(indexFilter, select: ["RowKey"], cancellationToken: cancellationToken).GetAsyncEnumerator(cancellationToken);
        var nextIndexed = await indexed.MoveNextAsync().ConfigureAwait(false) ? indexed.Current.RowKey : null;
        var missing = 0;
        string? previous = null;
        var batch = new List<TableEntity>(BackfillBatchSize);
        await foreach (var row in studyRows.ConfigureAwait(false))
        {
            // Keyed study ids are unique across tenants; should two rows share one, the first tenant's index row stays.
            if (string.Equals(row.RowKey, previous, StringComparison.Ordinal))
            {
                continue;
            }

            previous = row.RowKey;
            while (nextIndexed is not null && string.CompareOrdinal(nextIndexed, row.RowKey) < 0)
            {
                nextIndexed = await indexed.MoveNextAsync().ConfigureAwait(false) ? indexed.Current.RowKey : null;
            }

            if (string.Equals(nextIndexed, row.RowKey, StringComparison.Ordinal))
            {
                continue;
            }

            missing++;
            batch.Add(new TableEntity(TenantIndexPartition, row.RowKey) { [TenantIndexProperty] = row.PartitionKey });
            if (batch.Count == BackfillBatchSize)
            {
                await AddTenantIndexBatchAsync(batch, cancellationToken).ConfigureAwait(false);
            }
        }

        await AddTenantIndexBatchAsync(batch, cancellationToken).ConfigureAwait(false);
        return missing;
    }

    /// <summary>Inserts the batch's index rows in one transaction, or one by one when one of them exists already; empties it.</summary>
    private async Task AddTenantIndexBatchAsync(List<TableEntity> batch, CancellationToken cancellationToken)
    {
        if (batch.Count == 0)
        {
            return;
        }

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

        batch.Clear();
    }

    /// <summary>
    /// One page's worth of the studies list. With the list index complete (and, for a status filter, the status
    /// index): <see cref="ListPlacesAsync"/> (a query of each listed tenant's list index partition, or status index
    /// partition, from the request's place on: a RowKey range, <c>from</c>/<c>to</c> part of it exactly since the time
    /// is in the key; about <see cref="StudyListRequest.PageSize"/> + 1 keys each, merged in list order), then a point
    /// read of each study listed, up to <see cref="StudyListing.PointReadConcurrency"/> at once; an entry whose study does not hold
    /// that place (and status) is skipped (see the class remarks), and more keys are read when the caller reads on.
    /// Otherwise <see cref="StudyListing.ScanAsync"/> (every matching study of the tenants, sorted in memory).
    /// </summary>
    public async IAsyncEnumerable<StudyRecord> ListAsync(StudyListRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!await IsListIndexCompleteAsync(cancellationToken).ConfigureAwait(false)
            || (request.Status is not null && !await IsStatusIndexCompleteAsync(cancellationToken).ConfigureAwait(false)))
        {
            await foreach (var study in StudyListing.ScanAsync(this, request, cancellationToken).ConfigureAwait(false))
            {
                yield return study;
            }

            yield break;
        }

        var batchSize = Math.Max(1, request.PageSize + 1);
        await using var next = ListPlacesAsync(request, cancellationToken).GetAsyncEnumerator(cancellationToken);
        var batch = new List<StudyListPlace>(batchSize);
        while (true)
        {
            batch.Clear();
            while (batch.Count < batchSize && await next.MoveNextAsync().ConfigureAwait(false))
            {
                batch.Add(next.Current);
            }

            var read = await StudyListing.ReadStudiesAsync(this, [.. batch.Select(entry => (entry.Tenant, entry.Place.StudyId))], cancellationToken).ConfigureAwait(false);
            for (var i = 0; i < batch.Count; i++)
            {
                if (batch[i].IsHeldBy(read[i]) && (request.Status is null || string.Equals(read[i]!.Status, request.Status, StringComparison.Ordinal)))
                {
                    yield return read[i]!;
                }
            }

            if (batch.Count < batchSize)
            {
                yield break;
            }
        }
    }

    /// <summary>
    /// The entries of the request's tenants (every tenant with studies when it names none: <see cref="ListTenantsAsync"/>,
    /// a one-row query per tenant) in the list index, or in the status index for a status filter, after its place and
    /// within its times, merged in list order; no study is read. Each tenant's partition is read about
    /// <see cref="StudyListRequest.PageSize"/> + 1 keys at a time, as far as the caller reads. Meaningful once the index
    /// read is complete (<see cref="IsListIndexCompleteAsync"/>, <see cref="IsStatusIndexCompleteAsync"/>).
    /// </summary>
    public async IAsyncEnumerable<StudyListPlace> ListPlacesAsync(StudyListRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var tenants = new List<string>();
        if (request.Tenants is { } asked)
        {
            tenants.AddRange(asked);
        }
        else
        {
            await foreach (var tenant in ListTenantsAsync(cancellationToken).ConfigureAwait(false))
            {
                tenants.Add(tenant);
            }
        }

        var keysPerQuery = Math.Max(1, request.PageSize + 1);
        var partitions = tenants
            .Select(t => (Tenant: t, Partition: request.Status is { } status ? StatusIndexPartition(t, status) : ListIndexPartition(t)))
            .Where(p => IsTableKey(p.Tenant) && IsTableKey(p.Partition))
            .ToList();
        await foreach (var place in StudyListing.MergeInListOrder([.. partitions.Select(p => ListIndexPlacesAsync(p.Tenant, p.Partition, request, keysPerQuery, cancellationToken))], p => p.Place, cancellationToken).ConfigureAwait(false))
        {
            yield return place;
        }
    }

    /// <summary>The places in one index partition of a tenant that the request asks for, in list order.</summary>
    private async IAsyncEnumerable<StudyListPlace> ListIndexPlacesAsync(string tenant, string partition, StudyListRequest request, int pageSize, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var clauses = new List<string> { TableClient.CreateQueryFilter($"PartitionKey eq {partition}") };
        if (request.After is { } after)
        {
            clauses.Add(TableClient.CreateQueryFilter($"RowKey gt {ListIndexRowKey(after)}"));
        }

        if (request.To is { } to)
        {
            // Every key of a study created at or before `to` starts with an inverted time >= to's.
            clauses.Add(TableClient.CreateQueryFilter($"RowKey ge {InvertedTicks(to.UtcTicks)}"));
        }

        if (request.From is { } from)
        {
            // ... and of one created at or after `from` with an inverted time <= from's: below the next one up.
            clauses.Add(TableClient.CreateQueryFilter($"RowKey lt {InvertedTicks(from.UtcTicks - 1)}"));
        }

        await foreach (var row in Table.QueryAsync<TableEntity>(string.Join(" and ", clauses), maxPerPage: pageSize, select: ["RowKey"], cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            if (TryReadListIndexRowKey(row.RowKey, out var place))
            {
                yield return new StudyListPlace(tenant, place);
            }
        }
    }

    /// <summary>The list index partition of <paramref name="tenant"/>.</summary>
    public static string ListIndexPartition(string tenant) => ListIndexPartitionPrefix + tenant;

    /// <summary>
    /// The status index partition of <paramref name="tenant"/>'s studies of <paramref name="status"/>: the tenant's
    /// list index partition, '|', the status (no tenant has a '|', so no tenant's list index partition is one).
    /// </summary>
    public static string StatusIndexPartition(string tenant, string status) => ListIndexPartitionPrefix + tenant + "|" + status;

    /// <summary>
    /// The list index RowKey of a place: its creation time as the ticks left to <see cref="DateTimeOffset.MaxValue"/>
    /// (19 digits, so newer sorts first), '|', the study id. Ordinal key order is the list order
    /// (<see cref="StudyListPosition.Precedes(StudyListPosition)"/>): the fixed-width time first, then the id, and
    /// nothing after the id, so an id that is a prefix of another sorts first, as in an ordinal comparison.
    /// </summary>
    public static string ListIndexRowKey(StudyListPosition place)
    {
        ArgumentNullException.ThrowIfNull(place);
        return InvertedTicks(place.CreatedAt.UtcTicks) + "|" + place.StudyId;
    }

    /// <summary>The place a list index RowKey names; false for a key that is not one.</summary>
    public static bool TryReadListIndexRowKey(string rowKey, out StudyListPosition place)
    {
        place = null!;
        if (rowKey is not { Length: > 20 } || rowKey[19] != '|'
            || !long.TryParse(rowKey.AsSpan(0, 19), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var inverted)
            || inverted > DateTimeOffset.MaxValue.UtcTicks)
        {
            return false;
        }

        place = new StudyListPosition(new DateTimeOffset(DateTimeOffset.MaxValue.UtcTicks - inverted, TimeSpan.Zero), rowKey[20..]);
        return true;
    }

    /// <summary>The ticks from <paramref name="utcTicks"/> to the last representable time, 19 digits (ticks -1 gives one more than MaxValue's span: still 19).</summary>
    private static string InvertedTicks(long utcTicks) =>
        (DateTimeOffset.MaxValue.UtcTicks - utcTicks).ToString("D19", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Whether the list index holds every study (its marker row exists).</summary>
    public Task<bool> IsListIndexCompleteAsync(CancellationToken cancellationToken) => _listIndex.IsCompleteAsync(cancellationToken);

    /// <summary>
    /// Writes the list index row of every study, then the marker that says the list index is complete; returns how
    /// many rows it wrote. One scan of the study rows (keys and creation time only), streamed: the rows are upserted
    /// up to 100 per transaction (one tenant's partition each) as the scan reads them, so memory holds one batch
    /// whatever the table's size. Idempotent (a row is its study's place, written again unchanged) and safe at any
    /// time, here or in another process: a study created during the scan wrote its row before its study row. Calls at
    /// once in one process share one run; it is not cancelled with <paramref name="cancellationToken"/> (that only
    /// stops the wait). A study whose creation time changed after the scan read it may get a row of its old place,
    /// which lists skip (see the class remarks).
    /// </summary>
    public Task<int> CompleteListIndexAsync(CancellationToken cancellationToken) => _listIndex.CompleteAsync(BackfillListIndexAsync, cancellationToken);

    /// <summary>Upserts the list index row of every study (the marker is <see cref="IndexCompletion"/>'s); returns how many.</summary>
    private async Task<int> BackfillListIndexAsync(CancellationToken cancellationToken)
    {
        var written = 0;
        var batch = new List<TableTransactionAction>(BackfillBatchSize);
        string? batchPartition = null;
        await foreach (var row in Table.QueryAsync<TableEntity>(BuildFilter(null, null, null, null), select: ["PartitionKey", "RowKey", nameof(StudyRecord.CreatedAt)], cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            var partition = ListIndexPartition(row.PartitionKey);
            if (batch.Count == BackfillBatchSize || (batchPartition is not null && partition != batchPartition))
            {
                written += await SubmitBatchAsync(batch, cancellationToken).ConfigureAwait(false);
            }

            batchPartition = partition;
            var place = new StudyListPosition(row.GetDateTimeOffset(nameof(StudyRecord.CreatedAt)) ?? default, row.RowKey);
            batch.Add(new TableTransactionAction(TableTransactionActionType.UpsertReplace, new TableEntity(partition, ListIndexRowKey(place))));
        }

        written += await SubmitBatchAsync(batch, cancellationToken).ConfigureAwait(false);
        return written;
    }

    /// <summary>Whether the status index holds every study (its marker row exists).</summary>
    public Task<bool> IsStatusIndexCompleteAsync(CancellationToken cancellationToken) => _statusIndex.IsCompleteAsync(cancellationToken);

    /// <summary>
    /// Writes the status index row of every study (its status and place as the scan reads them), then the marker that
    /// says the status index is complete; returns how many rows it wrote. One scan of the study rows (keys, creation
    /// time and status), streamed: rows are upserted up to 100 per transaction (one partition each: a tenant and a
    /// status), so memory holds one batch per status of the tenant being read. Idempotent and safe at any time, here
    /// or in another process: a study created or changing status during the scan wrote the row of its new status before
    /// its study row. A study whose status changed after the scan read it may get a row of the status it left, which
    /// lists skip. Calls at once in one process share one run (see <see cref="CompleteListIndexAsync"/>).
    /// </summary>
    public Task<int> CompleteStatusIndexAsync(CancellationToken cancellationToken) => _statusIndex.CompleteAsync(BackfillStatusIndexAsync, cancellationToken);

    /// <summary>Upserts the status index row of every study (the marker is <see cref="IndexCompletion"/>'s); returns how many.</summary>
    private async Task<int> BackfillStatusIndexAsync(CancellationToken cancellationToken)
    {
        var written = 0;
        var batches = new Dictionary<string, List<TableTransactionAction>>(StringComparer.Ordinal);
        string? tenant = null;
        await foreach (var row in Table.QueryAsync<TableEntity>(BuildFilter(null, null, null, null), select: ["PartitionKey", "RowKey", nameof(StudyRecord.CreatedAt), nameof(StudyRecord.Status)], cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            if (tenant is not null && row.PartitionKey != tenant)
            {
                foreach (var full in batches.Values)
                {
                    written += await SubmitBatchAsync(full, cancellationToken).ConfigureAwait(false);
                }
            }

            tenant = row.PartitionKey;
            // A row without a status is read as queued (FromEntity): indexed as what lists show.
            var partition = StatusIndexPartition(row.PartitionKey, row.GetString(nameof(StudyRecord.Status)) ?? StudyStatus.Queued);
            if (!IsTableKey(partition))
            {
                continue;
            }

            if (!batches.TryGetValue(partition, out var batch))
            {
                batches[partition] = batch = new List<TableTransactionAction>(BackfillBatchSize);
            }

            var place = new StudyListPosition(row.GetDateTimeOffset(nameof(StudyRecord.CreatedAt)) ?? default, row.RowKey);
            batch.Add(new TableTransactionAction(TableTransactionActionType.UpsertReplace, new TableEntity(partition, ListIndexRowKey(place))));
            if (batch.Count == BackfillBatchSize)
            {
                written += await SubmitBatchAsync(batch, cancellationToken).ConfigureAwait(false);
            }
        }

        foreach (var rest in batches.Values)
        {
            written += await SubmitBatchAsync(rest, cancellationToken).ConfigureAwait(false);
        }

        return written;
    }

    /// <summary>Writes <paramref name="batch"/> (one partition) as one transaction and empties it; the rows written.</summary>
    private async Task<int> SubmitBatchAsync(List<TableTransactionAction> batch, CancellationToken cancellationToken)
    {
        if (batch.Count == 0)
        {
            return 0;
        }

        await Table.SubmitTransactionAsync(batch, cancellationToken).ConfigureAwait(false);
        var count = batch.Count;
        batch.Clear();
        return count;
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

    /// <summary>The OData filter of a query (all tenants: every partition but the indexes'); values are escaped by the SDK's formatter.</summary>
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
            clauses.Add("(" + TableClient.CreateQueryFilter($"PartitionKey lt {ListIndexPartitionPrefix}") + " or " + TableClient.CreateQueryFilter($"PartitionKey ge {ListIndexPartitionsEnd}") + ")");
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
        Put(entity, nameof(StudyRecord.IngestClaim), record.IngestClaim);
        Put(entity, nameof(StudyRecord.IngestClaimExpiresAt), record.IngestClaimExpiresAt?.ToUniversalTime());
        Put(entity, nameof(StudyRecord.IngestUsageJson), record.IngestUsageJson);
        Put(entity, nameof(StudyRecord.EventOwed), record.EventOwed);
        Put(entity, nameof(StudyRecord.ScoringUsageJson), record.ScoringUsageJson);

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
        IngestClaim = entity.GetString(nameof(StudyRecord.IngestClaim)),
        IngestClaimExpiresAt = entity.GetDateTimeOffset(nameof(StudyRecord.IngestClaimExpiresAt)),
        IngestUsageJson = entity.GetString(nameof(StudyRecord.IngestUsageJson)),
        EventOwed = entity.GetString(nameof(StudyRecord.EventOwed)),
        ScoringUsageJson = entity.GetString(nameof(StudyRecord.ScoringUsageJson)),
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

    /// <summary>Writes the list index row of a study's place (an upsert of a row without properties: idempotent).</summary>
    private async Task PutListIndexAsync(string tenant, StudyListPosition place, CancellationToken cancellationToken) =>
        await Table.UpsertEntityAsync(new TableEntity(ListIndexPartition(tenant), ListIndexRowKey(place)), TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Writes the status index row of a study's status and place (an upsert: idempotent); returns its version (null
    /// should the service not say it: such a row is never deleted, only skipped by lists once stale).
    /// </summary>
    private async Task<ETag?> PutStatusIndexAsync(string tenant, string status, StudyListPosition place, CancellationToken cancellationToken)
    {
        var partition = StatusIndexPartition(tenant, status);
        if (!IsTableKey(partition))
        {
            // No list can ask for such a status (the API accepts the five statuses only): no row, and the write goes on.
            return null;
        }

        var response = await Table.UpsertEntityAsync(new TableEntity(partition, ListIndexRowKey(place)), TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false);
        return response.Headers.ETag;
    }

    /// <summary>The version of the status index row of a status and place, or null when there is none (a study older than the index).</summary>
    private async Task<ETag?> ReadStatusIndexVersionAsync(string tenant, string status, StudyListPosition place, CancellationToken cancellationToken)
    {
        var partition = StatusIndexPartition(tenant, status);
        if (!IsTableKey(partition))
        {
            return null;
        }

        var row = await Table.GetEntityIfExistsAsync<TableEntity>(partition, ListIndexRowKey(place), ["RowKey"], cancellationToken).ConfigureAwait(false);
        return row.HasValue && row.Value is { } entity ? entity.ETag : null;
    }

    /// <summary>
    /// Deletes a status index row of a status or place the study does not hold, only in <paramref name="version"/> (the
    /// one this writer wrote or saw as the study's): a row another writer put back since, because the study holds that
    /// status again, stays. Best effort like <see cref="DropListIndexAsync"/>: a row left behind is skipped by lists.
    /// </summary>
    private async Task DropStatusIndexAsync(string tenant, string status, string rowKey, ETag version, CancellationToken cancellationToken)
    {
        try
        {
            await Table.DeleteEntityAsync(StatusIndexPartition(tenant, status), rowKey, version, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException)
        {
            // Gone already (404), put back by another writer (412), or storage refused: lists skip a row left behind.
        }
    }

    /// <summary>
    /// Deletes the list index row of a place the study does not hold. Best effort: a row left behind is skipped by every
    /// list (its study's row holds another place), so a failure here must not fail the write that succeeded.
    /// </summary>
    private async Task DropListIndexAsync(string tenant, StudyListPosition place, CancellationToken cancellationToken)
    {
        try
        {
            await Table.DeleteEntityAsync(ListIndexPartition(tenant), ListIndexRowKey(place), ETag.All, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException)
        {
            // Gone already (404), or storage refused: lists skip it.
        }
    }

    private static void Put(TableEntity entity, string name, object? value)
    {
        if (value is not null)
        {
            entity[name] = value;
        }
    }

    /// <summary>
    /// One index's completion: its marker row (<see cref="IndexCompleteRowKey"/> in <paramref name="markerPartition"/>,
    /// insert-only and never removed, so once seen it need not be read again) and this process's backfill, which calls
    /// at once share (another process's backfill is harmless: each index's writes are idempotent). A failed backfill is
    /// started again by the next call. The backfill is not cancelled with a caller's token (that only stops the wait):
    /// the scan it has done is worth finishing.
    /// </summary>
    private sealed class IndexCompletion(TableClient table, string markerPartition, string markerRowKey = IndexCompleteRowKey)
    {
        private readonly Lock _lock = new();
        private Task<int>? _run;
        private volatile bool _complete;

        public async Task<bool> IsCompleteAsync(CancellationToken cancellationToken)
        {
            if (!_complete)
            {
                var marker = await table.GetEntityIfExistsAsync<TableEntity>(markerPartition, markerRowKey, ["RowKey"], cancellationToken).ConfigureAwait(false);
                _complete = marker.HasValue;
            }

            return _complete;
        }

        /// <summary>Runs <paramref name="writeRows"/> (returns the rows it wrote) unless the marker exists, then writes the marker.</summary>
        public Task<int> CompleteAsync(Func<CancellationToken, Task<int>> writeRows, CancellationToken cancellationToken)
        {
            Task<int> running;
            lock (_lock)
            {
                if (_run is null || _run.IsFaulted || _run.IsCanceled)
                {
                    _run = RunAsync(writeRows);
                }

                running = _run;
            }

            return running.WaitAsync(cancellationToken);
        }

        private async Task<int> RunAsync(Func<CancellationToken, Task<int>> writeRows)
        {
            if (await IsCompleteAsync(CancellationToken.None).ConfigureAwait(false))
            {
                return 0;
            }

            var written = await writeRows(CancellationToken.None).ConfigureAwait(false);
            try
            {
                await table.AddEntityAsync(new TableEntity(markerPartition, markerRowKey) { ["CompletedAt"] = DateTimeOffset.UtcNow, ["Backfilled"] = written }, CancellationToken.None).ConfigureAwait(false);
            }
            catch (RequestFailedException ex) when (ex.Status == 409)
            {
                // Another backfill finished first.
            }

            _complete = true;
            return written;
        }
    }
}
