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

    /// <summary>Records of one tenant filed under one billing month (<c>yyyy-MM</c>).</summary>
    Task<IReadOnlyList<UsageRecord>> GetMonthAsync(string tenant, string month, CancellationToken cancellationToken);

    /// <summary>The tenants with records filed under a billing month (the all-tenant usage view; no Studies rows needed).</summary>
    Task<IReadOnlyList<string>> GetTenantsAsync(string month, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<string>>([]);
}
