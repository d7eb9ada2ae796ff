using System.Globalization;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Metering;

/// <summary>
/// A tenant's bill for one month: the studies the pipeline screened (those with a <c>scoring</c> record, which the
/// orchestration writes only for a completed study) and, for those studies, the slices screened and the CPU/GPU seconds
/// and bytes of every stage. Each (study, stage) record counts once, however many copies reach the totals. A study with
/// records but no scoring record (it failed after ingest, or is still running) is not billed: it is counted in
/// <see cref="UnscreenedStudies"/> only. <see cref="Records"/> counts every distinct record of the month.
/// <see cref="Closed"/>: the month's bill is final (<see cref="UsageClosing"/>); these figures are its snapshot, written
/// at <see cref="ClosedAt"/>, and never change. <see cref="LateRecords"/>: records of studies begun in a month closed
/// before they completed, carried into this month's bill (<see cref="FiledUsage.LateFrom"/>).
/// </summary>
public sealed record UsageTotals(
    string Tenant,
    string Month,
    int Studies,
    long SlicesScreened,
    double CpuSeconds,
    double GpuSeconds,
    long BytesStored,
    int Records,
    int UnscreenedStudies = 0,
    bool Closed = false,
    DateTimeOffset? ClosedAt = null,
    int LateRecords = 0);

/// <summary>
/// A usage record in a month's bill. <see cref="LateFrom"/> is null for a record filed under its study's billing month;
/// otherwise the record arrived after that month (<c>LateFrom</c>) was closed and was carried into this month, with the
/// study's earlier records when the closed bill did not bill the study (it was still running when the month closed).
/// </summary>
public sealed record FiledUsage(UsageRecord Record, string? LateFrom);

/// <summary>Monthly totals over <see cref="IUsageStore"/> (the billing view of <c>covidfn usage</c> and <c>GET /api/usage</c>).</summary>
public sealed class UsageQueries(IUsageStore usage, IStudyStore studies)
{
    /// <summary>
    /// Tenants read or closed at once by the all-tenant operations (the all-tenant usage view, closing every tenant's
    /// month over the API or <c>covidfn usage close</c>, the hourly close). A constant, not a setting: each tenant's work
    /// is a few requests on its own partitions, and 8 at once keeps one request's fan-out far below the Table service's
    /// limits; closing 50 tenants with 5 ms per request took 1.1 s instead of 2.9 s (docs/benchmarks.md, "Usage close").
    /// </summary>
    public const int TenantConcurrency = 8;

    /// <summary>Closing months of the same stores (the results API's close endpoint), on the clock <paramref name="time"/>.</summary>
    public UsageClosing Closing(TimeProvider time) => new(usage, studies, time);

    /// <summary>The month of a time, as <c>yyyy-MM</c> (UTC).</summary>
    public static string MonthOf(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM", CultureInfo.InvariantCulture);

    /// <summary>True for a <c>yyyy-MM</c> month.</summary>
    public static bool IsValidMonth(string? month) =>
        month is { Length: 7 } && DateTime.TryParseExact(month, "yyyy-MM", CultureInfo.InvariantCulture, DateTimeStyles.None, out _);

    /// <summary>The first day of the month after <paramref name="month"/> (<c>yyyy-MM</c>), 00:00 UTC: when the month ends.</summary>
    public static DateTimeOffset EndOf(string month) =>
        new DateTimeOffset(DateTime.ParseExact(month, "yyyy-MM", CultureInfo.InvariantCulture, DateTimeStyles.None), TimeSpan.Zero).AddMonths(1);

    /// <summary>The month after <paramref name="month"/>.</summary>
    public static string Next(string month) => MonthOf(EndOf(month));

    /// <summary>
    /// The tenant's bill for the month: its snapshot once the month is closed (<see cref="UsageTotals.Closed"/>), else
    /// the totals of the records filed under it so far. A month whose close fence is written but whose snapshot is not
    /// (its closer died between the two rows) is closed: its bill was fixed at the fence, so this read writes the
    /// snapshot the closer would have written (insert-only, the same figures whoever writes it) and answers it. Before,
    /// such a month read as open, with the fenced figures, until the next close.
    /// </summary>
    public async Task<UsageTotals> MonthlyTotalsAsync(string tenant, string month, CancellationToken cancellationToken)
    {
        StudyIds.RequireTenant(tenant);
        if (!IsValidMonth(month))
        {
            throw new ArgumentException($"month '{month}' is not yyyy-MM", nameof(month));
        }

        if (await usage.GetClosedAsync(tenant, month, cancellationToken).ConfigureAwait(false) is { } closed)
        {
            return closed;
        }

        if (await usage.GetClosingAsync(tenant, month, cancellationToken).ConfigureAwait(false) is { } closingAt)
        {
            return await UsageClosing.WriteSnapshotAsync(usage, tenant, month, closingAt, cancellationToken).ConfigureAwait(false);
        }

        var filed = await usage.GetFiledAsync(tenant, month, cancellationToken).ConfigureAwait(false);
        return Total(tenant, month, filed);
    }

    /// <summary>
    /// Totals for every tenant with records filed under the month (the Usage table's month index, plus the tenants of
    /// the Studies table for records written before that index existed), tenants without records that month left out.
    /// </summary>
    public async Task<IReadOnlyList<UsageTotals>> MonthlyTotalsForAllAsync(string month, CancellationToken cancellationToken)
    {
        if (!IsValidMonth(month))
        {
            throw new ArgumentException($"month '{month}' is not yyyy-MM", nameof(month));
        }

        var tenants = await TenantsAsync(month, cancellationToken).ConfigureAwait(false);
        var totals = await ForEachTenantAsync(tenants, TenantConcurrency, (tenant, token) => MonthlyTotalsAsync(tenant, month, token), cancellationToken).ConfigureAwait(false);
        return [.. totals.Where(t => t.Records > 0)];
    }

    /// <summary>
    /// <paramref name="work"/> for each tenant, up to <paramref name="concurrency"/> at once; the results in the order of
    /// <paramref name="tenants"/>, whatever order they finish in. The first failure stops tenants not yet begun and is
    /// thrown once those running have ended.
    /// </summary>
    public static async Task<IReadOnlyList<T>> ForEachTenantAsync<T>(IReadOnlyList<string> tenants, int concurrency, Func<string, CancellationToken, Task<T>> work, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenants);
        ArgumentNullException.ThrowIfNull(work);
        ArgumentOutOfRangeException.ThrowIfLessThan(concurrency, 1);
        var results = new T[tenants.Count];
        await Parallel.ForEachAsync(
            Enumerable.Range(0, tenants.Count),
            new ParallelOptions { MaxDegreeOfParallelism = concurrency, CancellationToken = cancellationToken },
            async (i, token) => results[i] = await work(tenants[i], token).ConfigureAwait(false)).ConfigureAwait(false);
        return results;
    }

    /// <summary>
    /// The tenants whose bill for the month may hold records: the Usage table's month index, plus the tenants of the
    /// Studies table for records written before that index existed (<see cref="IStudyStore.ListTenantsAsync"/>: one row
    /// read per tenant on the table store; before, every study row was read, whole, on each call).
    /// </summary>
    public async Task<IReadOnlyList<string>> TenantsAsync(string month, CancellationToken cancellationToken)
    {
        var tenants = new SortedSet<string>(await usage.GetTenantsAsync(month, cancellationToken).ConfigureAwait(false), StringComparer.Ordinal);
        await foreach (var tenant in studies.ListTenantsAsync(cancellationToken).ConfigureAwait(false))
        {
            tenants.Add(tenant);
        }

        return [.. tenants.Where(StudyIds.IsValidTenant)];
    }

    /// <summary>Totals of a set of records (duplicates of one (study, stage) count once; see <see cref="UsageTotals"/>).</summary>
    public static UsageTotals Total(string tenant, string month, IEnumerable<UsageRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        return Total(tenant, month, records.Select(r => new FiledUsage(r, null)));
    }

    /// <summary>Totals of a month's filed records, counting those carried in from a closed month (<see cref="UsageTotals.LateRecords"/>).</summary>
    public static UsageTotals Total(string tenant, string month, IEnumerable<FiledUsage> filed)
    {
        ArgumentNullException.ThrowIfNull(filed);
        var distinctFiled = filed
            .Where(f => f.Record.Tenant == tenant)
            .GroupBy(f => (f.Record.StudyId, f.Record.Stage))
            .Select(g => g.OrderBy(f => f.Record.At).First())
            .ToList();
        var distinct = distinctFiled.Select(f => f.Record).ToList();
        var perStudy = distinct.GroupBy(r => r.StudyId).ToList();
        var screened = perStudy
            .Select(g => (Records: g.ToList(), Scoring: g.FirstOrDefault(r => r.Stage == StudyOrchestration.UsageStage)))
            .Where(s => s.Scoring is not null)
            .ToList();
        var billed = screened.SelectMany(s => s.Records).ToList();
        return new UsageTotals(
            tenant,
            month,
            screened.Count,
            screened.Sum(s => (long)s.Scoring!.Slices),
            Math.Round(billed.Sum(r => r.CpuSeconds), 3),
            Math.Round(billed.Sum(r => r.GpuSeconds), 3),
            billed.Sum(r => r.BytesStored),
            distinct.Count,
            perStudy.Count - screened.Count,
            LateRecords: distinctFiled.Count(f => f.LateFrom is not null));
    }
}
