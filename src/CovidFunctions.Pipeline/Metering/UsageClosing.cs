using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Metering;

/// <summary>
/// Closes a tenant's month: its bill becomes final. The store first writes the month's close fence (insert-only; two
/// closers share the first one), then the bill of the records filed before the fence is computed and written as an
/// insert-only snapshot with <see cref="UsageTotals.Closed"/> and <see cref="UsageTotals.ClosedAt"/> (the fence's time).
/// Two closers compute the same figures from the same fence and the first snapshot written stays, so closing again, or
/// racing, returns one snapshot. A record that reaches the month after its fence is carried into the first open month
/// (<see cref="FiledUsage.LateFrom"/>, docs/api.md "Metering"), never into the closed bill.
/// Only a month that is over can be closed: the current and future UTC months are refused.
/// </summary>
public sealed class UsageClosing(IUsageStore usage, IStudyStore studies, TimeProvider time)
{
    /// <summary>
    /// Tenants closed at once by <see cref="CloseAllAsync"/> (<see cref="UsageQueries.TenantConcurrency"/> unless set;
    /// 1 closes them one after another, as before).
    /// </summary>
    public int TenantConcurrency { get; init; } = UsageQueries.TenantConcurrency;

    /// <summary>Why the month cannot be closed at <paramref name="now"/> (not <c>yyyy-MM</c>, not over yet), or null.</summary>
    public static string? WhyNotClosable(string? month, DateTimeOffset now)
    {
        if (!UsageQueries.IsValidMonth(month))
        {
            return $"month '{month}' is not yyyy-MM";
        }

        var current = UsageQueries.MonthOf(now);
        return string.CompareOrdinal(month, current) >= 0
            ? $"month {month} is not over yet (the current UTC month is {current}): only a past month can be closed"
            : null;
    }

    /// <summary>
    /// Closes the tenant's month and returns its snapshot (the stored one when the month was closed before).
    /// Throws <see cref="ArgumentException"/> for an invalid tenant or a month <see cref="WhyNotClosable"/> refuses.
    /// </summary>
    public async Task<UsageTotals> CloseAsync(string tenant, string month, CancellationToken cancellationToken)
    {
        StudyIds.RequireTenant(tenant);
        if (WhyNotClosable(month, time.GetUtcNow()) is { } why)
        {
            throw new ArgumentException(why, nameof(month));
        }

        if (await usage.GetClosedAsync(tenant, month, cancellationToken).ConfigureAwait(false) is { } closed)
        {
            return closed;
        }

        // After the fence no record enters the month's bill, so what is read now is the whole bill; a closer that died
        // here left the fence, and the next close, the timer or the next read of the month writes the same snapshot.
        var closedAt = await usage.BeginCloseAsync(tenant, month, time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
        return await WriteSnapshotAsync(usage, tenant, month, closedAt, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Writes the snapshot of a month whose close fence is at <paramref name="closedAt"/>: the bill of the records filed
    /// before the fence, which no later write can change, so every caller computes the same figures; the first snapshot
    /// written stays and is returned. Used by <see cref="CloseAsync"/> and by <see cref="UsageQueries"/> when it reads a
    /// month whose closer died between the fence and the snapshot.
    /// </summary>
    internal static async Task<UsageTotals> WriteSnapshotAsync(IUsageStore usage, string tenant, string month, DateTimeOffset closedAt, CancellationToken cancellationToken)
    {
        var filed = await usage.GetFiledAsync(tenant, month, cancellationToken).ConfigureAwait(false);
        var snapshot = UsageQueries.Total(tenant, month, filed) with { Closed = true, ClosedAt = closedAt };
        return await usage.AddClosedIfAbsentAsync(snapshot, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Closes the month for every tenant known now (<see cref="UsageQueries.TenantsAsync"/>; a tenant without records
    /// gets an empty snapshot, so a record dated in the month that reaches it later is carried like any other).
    /// Returns the snapshots of the tenants with records that month, in tenant order. Up to <see cref="TenantConcurrency"/>
    /// tenants are closed at once (before, one after another: a request closing 50 tenants waited for 50 closes in a
    /// row). Each tenant's close is the same fence and snapshot as alone, in the tenant's own partitions, so closing
    /// them side by side changes no figure and no byte; a failure stops the tenants not yet begun, and the run can be
    /// repeated (closed tenants answer their snapshot).
    /// </summary>
    public async Task<IReadOnlyList<UsageTotals>> CloseAllAsync(string month, CancellationToken cancellationToken)
    {
        if (WhyNotClosable(month, time.GetUtcNow()) is { } why)
        {
            throw new ArgumentException(why, nameof(month));
        }

        var tenants = await new UsageQueries(usage, studies).TenantsAsync(month, cancellationToken).ConfigureAwait(false);
        var snapshots = await UsageQueries.ForEachTenantAsync(tenants, TenantConcurrency, (tenant, token) => CloseAsync(tenant, month, token), cancellationToken).ConfigureAwait(false);
        return [.. snapshots.Where(s => s.Records > 0)];
    }
}
