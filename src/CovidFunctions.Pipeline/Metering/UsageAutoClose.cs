using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Metering;

/// <summary>What one run of <see cref="UsageAutoClose"/> did for the previous month.</summary>
public sealed record UsageAutoCloseOutcome(string Month, bool Due, IReadOnlyList<string> Closed, IReadOnlyList<string> Waiting)
{
    /// <summary>
    /// The completed studies (<c>{tenant}/{studyId}</c>) whose scoring usage this run recorded from their Studies row,
    /// their orchestration having failed to record it (the current and the previous month, before any close).
    /// </summary>
    public IReadOnlyList<string> Recorded { get; init; } = [];
}

/// <summary>
/// Closes the previous UTC month's bills automatically (the Function app's hourly timer <c>CloseUsageMonth</c> and
/// <c>covidfn up</c>'s sweep loop run it). Nothing happens before <see cref="MeteringOptions.CloseAfterDays"/> days after
/// the month ends; then each tenant's month is closed once no study billed in it is still running (its Studies row
/// neither failed nor rejected, and no scoring record yet), or in any case once
/// <see cref="MeteringOptions.CloseMaxWaitDays"/> have passed. Months already closed are left alone; running it again
/// changes nothing. An earlier month left open (the timer stopped for a whole month) is closed with
/// <c>covidfn usage close</c>.
/// </summary>
/// <remarks>
/// Each run first bills the completed studies of the current and the previous month that have no scoring record
/// (<see cref="RecordUnbilledCompletedAsync"/>): the orchestration records a study's scoring usage after its diagnosis is
/// stored, and when that write fails after all its retries nothing re-runs it. The row that says completed carries the
/// usage (<see cref="StudyRecord.ScoringUsageJson"/>), and it is recorded from there, insert-if-absent, so the study is
/// billed once whoever records it first (a late retry of the orchestration's write is refused). Before, such a study was
/// never billed, and held its month's close as "still running" until <see cref="MeteringOptions.CloseMaxWaitDays"/>.
/// </remarks>
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
        var queries = new UsageQueries(usage, studies);
        var recorded = new List<string>();

        // The previous month's tenants serve its close below too: recording a study's scoring usage adds no tenant to
        // a month (its ingest record filed it there already).
        var tenants = await queries.TenantsAsync(month, cancellationToken).ConfigureAwait(false);
        var current = UsageQueries.MonthOf(now);
        var currentTenants = await queries.TenantsAsync(current, cancellationToken).ConfigureAwait(false);
        foreach (var (open, inMonth) in new[] { (month, tenants), (current, currentTenants) })
        {
            var found = await UsageQueries.ForEachTenantAsync(inMonth, UsageQueries.TenantConcurrency, (tenant, token) =>
                RecordUnbilledCompletedAsync(tenant, open, token), cancellationToken).ConfigureAwait(false);
            recorded.AddRange(found.SelectMany(f => f));
        }

        if (now < ended.AddDays(options.CloseAfterDays))
        {
            return new UsageAutoCloseOutcome(month, false, [], []) { Recorded = recorded };
        }

        var force = now >= ended.AddDays(options.CloseMaxWaitDays);
        var closing = new UsageClosing(usage, studies, time);

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
            [.. tenants.Where((_, i) => states[i] == TenantState.Waiting)])
        {
            Recorded = recorded,
        };
    }

    /// <summary>
    /// Records the scoring usage of each study filed under the tenant's open month that has no scoring record and whose
    /// Studies row says completed and carries the usage it is billed (<see cref="StudyRecord.ScoringUsageJson"/>); returns
    /// the studies recorded now. A closed month is left alone (its bill is final; its studies were counted as running
    /// until the close waited no longer). The usage store keeps the first record per study and stage, so the record
    /// the orchestration may still write (a retry racing this run) and this one count once.
    /// </summary>
    private async Task<IReadOnlyList<string>> RecordUnbilledCompletedAsync(string tenant, string month, CancellationToken cancellationToken)
    {
        if (await usage.GetClosedAsync(tenant, month, cancellationToken).ConfigureAwait(false) is not null)
        {
            return [];
        }

        var filed = await usage.GetFiledAsync(tenant, month, cancellationToken).ConfigureAwait(false);
        var unscreened = filed.GroupBy(f => f.Record.StudyId, StringComparer.Ordinal)
            .Where(g => g.All(f => f.Record.Stage != StudyOrchestration.UsageStage))
            .Select(g => g.Key)
            .Order(StringComparer.Ordinal);
        var recorded = new List<string>();
        foreach (var studyId in unscreened)
        {
            var study = await studies.GetAsync(tenant, studyId, cancellationToken).ConfigureAwait(false);
            if (study is not { Status: StudyStatus.Completed, ScoringUsageJson: { Length: > 0 } json })
            {
                continue;
            }

            UsageRecord? record;
            try
            {
                record = PipelineJson.Deserialize<UsageRecord>(json);
            }
            catch (System.Text.Json.JsonException ex)
            {
                Log.UnreadableScoringUsage(logger, tenant, studyId, ex.Message);
                continue;
            }

            if (record is null || record.Tenant != tenant || record.StudyId != studyId || record.Stage != StudyOrchestration.UsageStage)
            {
                Log.UnreadableScoringUsage(logger, tenant, studyId, "the row's usage names another study or stage");
                continue;
            }

            try
            {
                if (await usage.TryRecordAsync(record, cancellationToken).ConfigureAwait(false))
                {
                    Log.RecordedFromRow(logger, tenant, studyId, record.Slices, record.CpuSeconds, record.GpuSeconds);
                    recorded.Add($"{tenant}/{studyId}");
                }
            }
            catch (ArgumentException ex)
            {
                // Refused by UsageRecord.Validate: the orchestration's write was refused the same way. Tried again
                // next run; the other studies are billed meanwhile.
                Log.UnreadableScoringUsage(logger, tenant, studyId, ex.Message);
            }
        }

        return recorded;
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

        [LoggerMessage(EventId = 7003, Level = LogLevel.Warning, Message = "Study {Tenant}/{StudyId} completed without a scoring usage record (its orchestration's write failed): recorded it from the Studies row, {Slices} slices, CPU {CpuSeconds} s, GPU {GpuSeconds} s")]
        public static partial void RecordedFromRow(ILogger logger, string tenant, string studyId, int slices, double cpuSeconds, double gpuSeconds);

        [LoggerMessage(EventId = 7004, Level = LogLevel.Error, Message = "Study {Tenant}/{StudyId} completed without a scoring usage record, and the usage its row carries cannot be recorded: {Reason}")]
        public static partial void UnreadableScoringUsage(ILogger logger, string tenant, string studyId, string reason);
    }
}
