using System.Globalization;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Metering;

/// <summary>
/// A tenant's usage in one month. <see cref="SlicesScreened"/> counts each study's slices once (the largest slice
/// count any of its stages recorded), CPU/GPU seconds and bytes add up over distinct (study, stage) records, so a
/// duplicate record, however it got there, is not billed twice.
/// </summary>
public sealed record UsageTotals(
    string Tenant,
    string Month,
    int Studies,
    long SlicesScreened,
    double CpuSeconds,
    double GpuSeconds,
    long BytesStored,
    int Records);

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
    /// Totals for every tenant with studies (the Studies table names the tenants; the Usage table is partitioned by
    /// tenant and month), tenants without usage that month left out.
    /// </summary>
    public async Task<IReadOnlyList<UsageTotals>> MonthlyTotalsForAllAsync(string month, CancellationToken cancellationToken)
    {
        var tenants = new SortedSet<string>(StringComparer.Ordinal);
        await foreach (var study in studies.QueryAsync(null, null, null, null, cancellationToken).ConfigureAwait(false))
        {
            tenants.Add(study.Tenant);
        }

        var totals = new List<UsageTotals>();
        foreach (var tenant in tenants)
        {
            var total = await MonthlyTotalsAsync(tenant, month, cancellationToken).ConfigureAwait(false);
            if (total.Records > 0)
            {
                totals.Add(total);
            }
        }

        return totals;
    }

    /// <summary>Totals of a set of records (duplicates of one (study, stage) count once).</summary>
    public static UsageTotals Total(string tenant, string month, IEnumerable<UsageRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        var distinct = records
            .Where(r => r.Tenant == tenant)
            .GroupBy(r => (r.StudyId, r.Stage))
            .Select(g => g.OrderBy(r => r.At).First())
            .ToList();
        var perStudy = distinct.GroupBy(r => r.StudyId).ToList();
        return new UsageTotals(
            tenant,
            month,
            perStudy.Count,
            perStudy.Sum(g => (long)g.Max(r => r.Slices)),
            Math.Round(distinct.Sum(r => r.CpuSeconds), 3),
            Math.Round(distinct.Sum(r => r.GpuSeconds), 3),
            distinct.Sum(r => r.BytesStored),
            distinct.Count);
    }
}
