using CovidFunctions.Pipeline.Metering;

namespace CovidFunctions.Pipeline.Storage;

/// <summary>The <c>Studies</c> table.</summary>
public interface IStudyStore
{
    Task<StudyRecord?> GetAsync(string tenant, string studyId, CancellationToken cancellationToken);

    /// <summary>Inserts the record when no row exists; returns false (and leaves the row alone) when one does.</summary>
    Task<bool> TryCreateAsync(StudyRecord record, CancellationToken cancellationToken);

    /// <summary>
    /// Reads the row, applies <paramref name="update"/> and writes it back with ETag concurrency, re-reading and
    /// re-applying on a conflict. Creates the row from <c>update(null)</c> when it does not exist. Returns the stored record.
    /// </summary>
    Task<StudyRecord> UpdateAsync(string tenant, string studyId, Func<StudyRecord?, StudyRecord> update, CancellationToken cancellationToken);

    /// <summary>Studies of one tenant (or all tenants when null), newest first, filtered by status and creation time.</summary>
    IAsyncEnumerable<StudyRecord> QueryAsync(string? tenant, string? status, DateTimeOffset? from, DateTimeOffset? to, CancellationToken cancellationToken);

    /// <summary>
    /// One page's worth of the studies list (<c>GET /api/studies</c>): the studies of the request's tenants in list
    /// order (<see cref="StudyListPosition"/>) after its position, filtered. This default reads it with
    /// <see cref="QueryAsync"/> (<see cref="StudyListing.ScanAsync"/>: every matching study of the tenants, sorted);
    /// the table store reads about one page of its time-ordered list index instead (<see cref="IStudyListIndex"/>).
    /// Whatever the store, the same studies in the same order.
    /// </summary>
    IAsyncEnumerable<StudyRecord> ListAsync(StudyListRequest request, CancellationToken cancellationToken) =>
        StudyListing.ScanAsync(this, request, cancellationToken);

    /// <summary>
    /// The tenants that have studies, each once, in ordinal order. The table store reads one row per tenant (its cost
    /// grows with the number of tenants, not of studies); this default reads every study.
    /// </summary>
    async IAsyncEnumerable<string> ListTenantsAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var tenants = new SortedSet<string>(StringComparer.Ordinal);
        await foreach (var study in QueryAsync(null, null, null, null, cancellationToken).ConfigureAwait(false))
        {
            tenants.Add(study.Tenant);
        }

        foreach (var tenant in tenants)
        {
            yield return tenant;
        }
    }
}

/// <summary>The <c>SliceResults</c> table.</summary>
public interface ISliceResultStore
{
    /// <summary>Upserts the rows of one chunk (idempotent: the same slice index overwrites).</summary>
    Task UpsertAsync(IReadOnlyList<SliceResultRecord> records, CancellationToken cancellationToken);

    Task<IReadOnlyList<SliceResultRecord>> GetAsync(string tenant, string studyId, CancellationToken cancellationToken);
}

/// <summary>
/// The <c>Usage</c> table. A study is billed in one month: the UTC month of its first record (its <em>billing
/// month</em>, claimed once per tenant and study); every later stage of the study is filed under that month too, whatever
/// its own time, so a study that starts on the last day of a month and finishes on the first of the next is billed once.
/// </summary>
public interface IUsageStore
{
    /// <summary>
    /// Inserts the record unless one exists for the same tenant, study and stage, in any month (a retry or a second run
    /// with a later time, even in the next month, is refused); true when inserted.
    /// </summary>
    Task<bool> TryRecordAsync(UsageRecord record, CancellationToken cancellationToken);

    /// <summary>
    /// Records of one tenant's bill for one month (<c>yyyy-MM</c>): those filed under it (see <see cref="GetFiledAsync"/>:
    /// once the month is closing, only those filed before its fence).
    /// </summary>
    Task<IReadOnlyList<UsageRecord>> GetMonthAsync(string tenant, string month, CancellationToken cancellationToken);

    /// <summary>The tenants with records filed under a billing month (the all-tenant usage view; no Studies rows needed).</summary>
    Task<IReadOnlyList<string>> GetTenantsAsync(string month, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<string>>([]);

    // Month closing (Metering/UsageClosing.cs, docs/api.md "Metering"). Closing a tenant's month first writes its close
    // fence (insert-only): from then on the month's bill is the records filed before the fence, and a record filed
    // after it (a study of that month finishing later, a writer racing the close) is carried into the first month
    // without a fence, with the study's earlier records when the closed bill did not bill the study. Then the
    // snapshot of the bill is written, insert-only. A store without closing (a test wrapper) reports every month open.

    /// <summary>
    /// The records of the month's bill with where each came from: every record filed under the month while it is
    /// open, only those filed before its close fence once closing began.
    /// </summary>
    async Task<IReadOnlyList<FiledUsage>> GetFiledAsync(string tenant, string month, CancellationToken cancellationToken) =>
        [.. (await GetMonthAsync(tenant, month, cancellationToken).ConfigureAwait(false)).Select(r => new FiledUsage(r, null))];

    /// <summary>The time the tenant's month began closing (its fence), or null while it is open.</summary>
    Task<DateTimeOffset?> GetClosingAsync(string tenant, string month, CancellationToken cancellationToken) =>
        Task.FromResult<DateTimeOffset?>(null);

    /// <summary>Writes the month's close fence at <paramref name="at"/> unless one exists; returns the stored fence's time.</summary>
    Task<DateTimeOffset> BeginCloseAsync(string tenant, string month, DateTimeOffset at, CancellationToken cancellationToken) =>
        throw new NotSupportedException($"{GetType().Name} cannot close months");

    /// <summary>The closed month's snapshot, or null when the month is not closed.</summary>
    Task<UsageTotals?> GetClosedAsync(string tenant, string month, CancellationToken cancellationToken) =>
        Task.FromResult<UsageTotals?>(null);

    /// <summary>Inserts the snapshot unless the month has one; returns the stored snapshot (the first one written).</summary>
    Task<UsageTotals> AddClosedIfAbsentAsync(UsageTotals closed, CancellationToken cancellationToken) =>
        throw new NotSupportedException($"{GetType().Name} cannot close months");

    /// <summary>
    /// The studies filed under the tenant's month (in its bill: before the fence once closing) without a scoring record,
    /// in study id order: the hourly usage sweep's candidates (<see cref="UsageAutoClose"/>). This default reads every
    /// record of the month; the table store reads its index of such studies instead, once the month's index is complete.
    /// </summary>
    async Task<IReadOnlyList<OpenStudy>> GetOpenStudiesAsync(string tenant, string month, CancellationToken cancellationToken) =>
        OpenStudy.Of(await GetFiledAsync(tenant, month, cancellationToken).ConfigureAwait(false));

    /// <summary>
    /// Drops a study the sweep found ended without a bill (failed, rejected, no Studies row) from the month's index of
    /// open studies, unless its entry changed since it was listed (the study filed again). A store without an index has
    /// nothing to drop.
    /// </summary>
    Task ForgetOpenStudyAsync(string tenant, string month, OpenStudy study, CancellationToken cancellationToken) => Task.CompletedTask;
}
