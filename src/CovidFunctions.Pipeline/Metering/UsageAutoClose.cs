using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Metering;

/// <summary>What one run of <see cref="UsageAutoClose"/> did for the previous month.</summary>
public sealed record UsageAutoCloseOutcome(string Month, bool Due, IReadOnlyList<string> Closed, IReadOnlyList<string> Waiting);

/// <summary>
/// Closes the previous UTC month's bills automatically (the Function app's hourly timer <c>CloseUsageMonth</c> and
/// <c>covidfn up</c>'s sweep loop run it). Nothing happens before <see cref="MeteringOptions.CloseAfterDays"/> days after
/// the month ends; then each tenant's month is closed once no study billed in it is still running (its Studies row
/// neither failed nor rejected, and no scoring record yet), or in any case once
/// <see cref="MeteringOptions.CloseMaxWaitDays"/> have passed. Months already closed are left alone; running it again
/// changes nothing. An earlier month left open (the timer stopped for a whole month) is closed with
/// <c>covidfn usage close</c>.
/// </summary>
public sealed partial class UsageAutoClose(
    IUsageStore usage,
    IStudyStore studies,
    MeteringOptions options,
    TimeProvider time,
    ILogger<UsageAutoClose> logger)
{
    public async Task<UsageAutoCloseOutcome> RunAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var ended = new DateTimeOffset(now.UtcDateTime.Year, now.UtcDateTime.Month, 1, 0, 0, 0, TimeSpan.Zero);
        var month = UsageQueries.MonthOf(ended.AddDays(-1));
        if (now < ended.AddDays(options.CloseAfterDays))
        {
            return new UsageAutoCloseOutcome(month, false, [], []);
        }

        var force = now >= ended.AddDays(options.CloseMaxWaitDays);
        var queries = new UsageQueries(usage, studies);
        var closing = new UsageClosing(usage, studies, time);
        var tenants = await queries.TenantsAsync(month, cancellationToken).ConfigureAwait(false);

        // Up to UsageQueries.TenantConcurrency tenants at once (before, one after another); each tenant's close is its own.
        var states = await UsageQueries.ForEachTenantAsync(tenants, UsageQueries.TenantConcurrency, async (tenant, token) =>
        {
            if (await usage.GetClosedAsync(tenant, month, token).ConfigureAwait(false) is not null)
            {
                return TenantState.AlreadyClosed;
            }

            var running = await RunningStudiesAsync(tenant, month, token).ConfigureAwait(false);
            if (running > 0 && !force)
            {
                Log.Waiting(logger, tenant, month, running, ended.AddDays(options.CloseMaxWaitDays));
                return TenantState.Waiting;
            }

            var snapshot = await closing.CloseAsync(tenant, month, token).ConfigureAwait(false);
            Log.Closed(logger, tenant, month, snapshot.Studies, running);
            return TenantState.Closed;
        }, cancellationToken).ConfigureAwait(false);

        return new UsageAutoCloseOutcome(
            month,
            true,
            [.. tenants.Where((_, i) => states[i] == TenantState.Closed)],
            [.. tenants.Where((_, i) => states[i] == TenantState.Waiting)]);
    }

    private enum TenantState
    {
        AlreadyClosed,
        Waiting,
        Closed,
    }

    /// <summary>Studies filed under the tenant's month without a scoring record whose Studies row says they may still finish.</summary>
    private async Task<int> RunningStudiesAsync(string tenant, string month, CancellationToken cancellationToken)
    {
        var filed = await usage.GetFiledAsync(tenant, month, cancellationToken).ConfigureAwait(false);
        var unscreened = filed.GroupBy(f => f.Record.StudyId)
            .Where(g => g.All(f => f.Record.Stage != StudyOrchestration.UsageStage))
            .Select(g => g.Key);
        var running = 0;
        foreach (var studyId in unscreened)
        {
            // A completed row without a scoring record is still finishing: RecordUsage runs after the diagnosis is stored.
            var study = await studies.GetAsync(tenant, studyId, cancellationToken).ConfigureAwait(false);
            if (study is not null && study.Status is not (StudyStatus.Failed or StudyStatus.Rejected))
            {
                running++;
            }
        }

        return running;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 7001, Level = LogLevel.Information, Message = "Usage of {Tenant} for {Month} closed: {Studies} studies billed; {Running} still running, billed when they complete in the first open month")]
        public static partial void Closed(ILogger logger, string tenant, string month, int studies, int running);

        [LoggerMessage(EventId = 7002, Level = LogLevel.Information, Message = "Usage of {Tenant} for {Month} not closed yet: {Running} studies still running (closed at the latest at {Deadline:u})")]
        public static partial void Waiting(ILogger logger, string tenant, string month, int running, DateTimeOffset deadline);
    }
}
