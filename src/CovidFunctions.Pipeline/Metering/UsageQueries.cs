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
    int UnscreenedStudies = 0);

/// <summary>Monthly totals over <see cref="IUsageStore"/> (the billing view of <c>covidfn usage</c> and <c>GET /api/usage</c>).</summary>
public sealed class UsageQueries(IUsageStore usage, IStudyStore studies)
{
    /// <summary>The month of a time, as <c>yyyy-MM</c> (UTC).</summary>
    public static string MonthOf(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM", CultureInfo.InvariantCulture);

    /// <summary>True for a <c>yyyy-MM</c> month.</summary>
    public static bool IsValidMonth(string? month) =>
        month is { Length: 7 } && DateTime.TryParseExact(month, "yyyy-MM", CultureInfo.InvariantCulture, DateTimeStyles.None, out _);

    public async Task<UsageTotals> MonthlyTotalsAsync(string tenant, string month, CancellationToken cancellationToken)
    {
        StudyIds.RequireTenant(tenant);
        if (!IsValidMonth(month))
        {
            throw new ArgumentException($"month '{month}' is not yyyy-MM", nameof(month));
        }

        var records = await usage.GetMonthAsync(tenant, month, cancellationToken).ConfigureAwait(false);
        return Total(tenant, month, records);
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

        var tenants = new SortedSet<string>(await usage.GetTenantsAsync(month, cancellationToken).ConfigureAwait(false), StringComparer.Ordinal);
        await foreach (var study in studies.QueryAsync(null, null, null, null, cancellationToken).ConfigureAwait(false))
        {
            tenants.Add(study.Tenant);
        }

        var totals = new List<UsageTotals>();
        foreach (var tenant in tenants.Where(StudyIds.IsValidTenant))
        {
            var total = await MonthlyTotalsAsync(tenant, month, cancellationToken).ConfigureAwait(false);
            if (total.Records > 0)
            {
                totals.Add(total);
            }
        }

        return totals;
    }

    /// <summary>Totals of a set of records (duplicates of one (study, stage) count once; see <see cref="UsageTotals"/>).</summary>
    public static UsageTotals Total(string tenant, string month, IEnumerable<UsageRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        var distinct = records
            .Where(r => r.Tenant == tenant)
            .GroupBy(r => (r.StudyId, r.Stage))
            .Select(g => g.OrderBy(r => r.At).First())
            .ToList();
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
            perStudy.Count - screened.Count);
    }
}
