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

    /// <summary>
    /// Completed studies (<c>{tenant}/{studyId}</c>, current and previous month) with records but no scoring record whose
    /// Studies row carries no usage that can be recorded: rows completed before the row kept it (b61fec6), or a usage
    /// the store refuses. Nothing can bill them (their figures are not known); they do not hold their month's close.
    /// </summary>
    public IReadOnlyList<string> Unbillable { get; init; } = [];

    /// <summary>
    /// The steps that failed in this run, one line each (<c>{step} {tenant} {month}[ {studyId}]: {reason}</c>; no
    /// PHI): the other steps and tenants ran regardless, and a failed step is tried again by the next run.
    /// </summary>
    public IReadOnlyList<string> Failures { get; init; } = [];
}

/// <summary>
/// A run of <see cref="UsageAutoClose"/> in which some steps failed (<see cref="UsageAutoCloseOutcome.Failures"/>),
/// thrown once every other step and tenant has run, so the host records the run as failed.
/// </summary>
public sealed class UsageSweepException(UsageAutoCloseOutcome outcome)
    : Exception($"usage sweep: {outcome.Failures.Count} step(s) failed (the others ran; tried again next run): {string.Join("; ", outcome.Failures)}")
{
    public UsageAutoCloseOutcome Outcome { get; } = outcome;
}

/// <summary>
/// Closes the previous UTC month's bills automatically (the Function app's hourly timer <c>CloseUsageMonth</c> and
/// <c>covidfn up</c>'s sweep loop run it). Nothing happens before <see cref="MeteringOptions.CloseAfterDays"/> days after
/// the month ends; then each tenant's month is closed once no study billed in it is still running (its Studies row
/// neither failed nor rejected nor completed, and no scoring record yet), or in any case once
/// <see cref="MeteringOptions.CloseMaxWaitDays"/> have passed. Months already closed are left alone; running it again
/// changes nothing. An earlier month left open (the timer stopped for a whole month) is closed with
/// <c>covidfn usage close</c>.
/// </summary>
/// <remarks>
/// <para>
/// Each run first bills the completed studies of the current and the previous month that have no scoring record:
/// the orchestration records a study's scoring usage after its diagnosis is stored, and when that write fails after all
/// its retries nothing re-runs it. The row that says completed carries the usage
/// (<see cref="StudyRecord.ScoringUsageJson"/>), and it is recorded from there, insert-if-absent, so the study is
/// billed once whoever records it first (a late retry of the orchestration's write is refused). A completed row without
/// it (completed before the row kept it) cannot be billed, and no longer holds its month's close as if running.
/// </para>
/// <para>
/// Steps and tenants are independent: a tenant-month is read once per run (its close state, the studies filed without
/// a scoring record, from the table store's index of them rather than every record of the month, then one point read
/// of each such study, shared by the billing and the close; a study found failed or rejected is dropped from the index
/// so later runs do not read it again, an unbillable one stays listed so the close names it). The run that closes a
/// month also reads its records once, before the close, and settles the studies the index did not list (filed by a
/// writer older than the index), so no study filed under the month depends on the index to be billed; a failing read,
/// recording or close is logged (7006 for a tenant-month, 7007 for a study) and the rest of the run goes on; a tenant
/// with a failed step is not closed in that run (the next run tries again, closing then if due). The run then throws
/// <see cref="UsageSweepException"/> naming every failed step, so the host records the run as failed.
/// </para>
/// </remarks>
public sealed partial class UsageAutoClose(
    IUsageStore usage,
    IStudyStore studies,
    MeteringOptions options,
    TimeProvider time,
    ILogger<UsageAutoClose> logger)
{
    /// <summary>
    /// Runs the sweep: billing of the current and previous months' completed studies without a scoring record, then the
    /// previous month's close when due. Throws <see cref="UsageSweepException"/> after the whole run when any step
    /// failed (its <see cref="UsageSweepException.Outcome"/> holds what the run did).
    /// </summary>
    public async Task<UsageAutoCloseOutcome> RunAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var ended = new DateTimeOffset(now.UtcDateTime.Year, now.UtcDateTime.Month, 1, 0, 0, 0, TimeSpan.Zero);
        var month = UsageQueries.MonthOf(ended.AddDays(-1));
        var current = UsageQueries.MonthOf(now);
        var due = now >= ended.AddDays(options.CloseAfterDays);
        var force = now >= ended.AddDays(options.CloseMaxWaitDays);
        var run = new Run(force, ended.AddDays(options.CloseMaxWaitDays));

        // The Studies table's tenants (for records filed before the Usage table's month index) are listed once and serve
        // both months; recording a study's scoring usage adds no tenant to a month (its ingest record filed it there).
        IReadOnlyList<string> studyTenants = [];
        try
        {
            var listed = new List<string>();
            await foreach (var tenant in studies.ListTenantsAsync(cancellationToken).ConfigureAwait(false))
            {
                listed.Add(tenant);
            }

            studyTenants = listed;
        }
        catch (Exception ex) when (IsStepFailure(ex, cancellationToken))
        {
            // The month indexes still name every tenant with records filed since they exist: those are swept.
            run.Fail(logger, "list the Studies table's tenants", "*", current, null, ex);
        }

        var tenants = await TenantsAsync(run, month, studyTenants, cancellationToken).ConfigureAwait(false);
        var currentTenants = await TenantsAsync(run, current, studyTenants, cancellationToken).ConfigureAwait(false);

        // Up to UsageQueries.TenantConcurrency tenants at once; each tenant's sweep catches its own failures.
        var states = await UsageQueries.ForEachTenantAsync(tenants, UsageQueries.TenantConcurrency, (tenant, token) =>
            SweepAsync(run, tenant, month, close: due, token), cancellationToken).ConfigureAwait(false);
        await UsageQueries.ForEachTenantAsync(currentTenants, UsageQueries.TenantConcurrency, (tenant, token) =>
            SweepAsync(run, tenant, current, close: false, token), cancellationToken).ConfigureAwait(false);

        var outcome = new UsageAutoCloseOutcome(
            month,
            due,
            [.. tenants.Where((_, i) => states[i] == TenantState.Closed)],
            [.. tenants.Where((_, i) => states[i] == TenantState.Waiting)])
        {
            Recorded = [.. run.Recorded.Order(StringComparer.Ordinal)],
            Unbillable = [.. run.Unbillable.Order(StringComparer.Ordinal)],
            Failures = [.. run.Failures.Order(StringComparer.Ordinal)],
        };
        if (outcome.Failures.Count > 0)
        {
            Log.RunFailed(logger, outcome.Failures.Count, month, current);
            throw new UsageSweepException(outcome);
        }

        return outcome;
    }

    /// <summary>
    /// The month's tenants: its index in the Usage table and the Studies table's tenants. Either source failing is a
    /// failed step; the other still gives its tenants.
    /// </summary>
    private async Task<IReadOnlyList<string>> TenantsAsync(Run run, string month, IReadOnlyList<string> studyTenants, CancellationToken cancellationToken)
    {
        var tenants = new SortedSet<string>(studyTenants, StringComparer.Ordinal);
        try
        {
            tenants.UnionWith(await usage.GetTenantsAsync(month, cancellationToken).ConfigureAwait(false));
        }
        catch (Exception ex) when (IsStepFailure(ex, cancellationToken))
        {
            run.Fail(logger, "list the month's tenants", "*", month, null, ex);
        }

        return [.. tenants.Where(StudyIds.IsValidTenant)];
    }

    /// <summary>
    /// One tenant's month: unless closed, records the scoring usage of each study filed under it that has no scoring
    /// record and whose Studies row says completed and carries the usage it is billed
    /// (<see cref="StudyRecord.ScoringUsageJson"/>), then, when <paramref name="close"/>, closes the month unless a
    /// study is still running (before <see cref="MeteringOptions.CloseMaxWaitDays"/>) or a step of this tenant failed.
    /// A closed month is left alone (its bill is final; its studies were counted as running until the close waited no
    /// longer). The usage store keeps the first record per study and stage, so the record the orchestration may still
    /// write (a retry racing this run) and this one count once. Never throws but for cancellation.
    /// </summary>
    private async Task<TenantState> SweepAsync(Run run, string tenant, string month, bool close, CancellationToken cancellationToken)
    {
        IReadOnlyList<OpenStudy> listed;
        try
        {
            if (await usage.GetClosedAsync(tenant, month, cancellationToken).ConfigureAwait(false) is not null)
            {
                return TenantState.AlreadyClosed;
            }

            // The table store answers from its index of such studies (not every record of the month).
            listed = await usage.GetOpenStudiesAsync(tenant, month, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsStepFailure(ex, cancellationToken))
        {
            run.Fail(logger, "read the month's usage", tenant, month, null, ex);
            return TenantState.Failed;
        }

        var found = new Found();
        await SettleAllAsync(run, tenant, month, listed, found, cancellationToken).ConfigureAwait(false);
        if (!close)
        {
            return TenantState.Open;
        }

        if (Hold() is { } held)
        {
            return held;
        }

        // About to close: the close rests on the month's records, not on the index alone. A record filed after the
        // month was indexed by a writer older than the index (a deployment's old instances still writing) has no entry
        // there; the records, read once here, name every study filed under the month, and those the index did not list
        // are settled first (billed when their row carries the usage, or holding the close while running).
        IReadOnlyList<FiledUsage> filed;
        try
        {
            filed = await usage.GetFiledAsync(tenant, month, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsStepFailure(ex, cancellationToken))
        {
            run.Fail(logger, "read the month's usage", tenant, month, null, ex);
            return TenantState.Failed;
        }

        var ids = listed.Select(o => o.StudyId).ToHashSet(StringComparer.Ordinal);
        await SettleAllAsync(run, tenant, month, [.. OpenStudy.Of(filed).Where(o => !ids.Contains(o.StudyId))], found, cancellationToken).ConfigureAwait(false);
        if (Hold() is { } heldByUnlisted)
        {
            return heldByUnlisted;
        }

        try
        {
            var snapshot = await new UsageClosing(usage, studies, time).CloseAsync(tenant, month, cancellationToken).ConfigureAwait(false);
            foreach (var studyId in found.Unbillable)
            {
                Log.ClosedWithoutUsage(logger, tenant, studyId, month);
            }

            Log.Closed(logger, tenant, month, snapshot.Studies, found.Running);
            return TenantState.Closed;
        }
        catch (Exception ex) when (IsStepFailure(ex, cancellationToken))
        {
            run.Fail(logger, "close the month", tenant, month, null, ex);
            return TenantState.Failed;
        }

        // Why the month cannot close in this run, or null.
        TenantState? Hold()
        {
            if (found.Failed)
            {
                // A study that could not be read or recorded may be one to bill or still running: closing now could
                // leave it out of the bill for good (closed months are not swept). The next run tries again.
                return TenantState.Failed;
            }

            if (found.Running > 0 && !run.Force)
            {
                Log.Waiting(logger, tenant, month, found.Running, run.Deadline);
                return TenantState.Waiting;
            }

            return null;
        }
    }

    /// <summary>Settles each study (<see cref="SettleAsync"/>) into <paramref name="found"/>; drops those that ended without a bill from the index.</summary>
    private async Task SettleAllAsync(Run run, string tenant, string month, IReadOnlyList<OpenStudy> open, Found found, CancellationToken cancellationToken)
    {
        foreach (var study in open)
        {
            switch (await SettleAsync(run, tenant, month, study.StudyId, cancellationToken).ConfigureAwait(false))
            {
                case StudyState.Running:
                    found.Running++;
                    break;
                case StudyState.Failed:
                    found.Failed = true;
                    break;
                case StudyState.Unbillable:
                    // Stays listed, so the run that closes the month names it (7005) whichever run found it first.
                    found.Unbillable.Add(study.StudyId);
                    break;
                case StudyState.Unbilled:
                    await ForgetAsync(tenant, month, study, cancellationToken).ConfigureAwait(false);
                    break;
            }
        }
    }

    /// <summary>
    /// Drops a study that ended without a bill (failed, rejected, no row) from the store's index, so later runs do not
    /// read it again (a billed one lost its entry when its scoring record was filed). A failure costs only that: the
    /// next run reads it again and retries.
    /// </summary>
    private async Task ForgetAsync(string tenant, string month, OpenStudy open, CancellationToken cancellationToken)
    {
        try
        {
            await usage.ForgetOpenStudyAsync(tenant, month, open, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsStepFailure(ex, cancellationToken))
        {
            Log.ForgetFailed(logger, tenant, open.StudyId, month, ReasonOf(ex));
        }
    }

    /// <summary>
    /// What a study filed without a scoring record is, read once from its Studies row: ended without a bill (failed,
    /// rejected, no row), running, completed and billed (now from its row, or first by another writer), or completed
    /// with nothing that can be billed.
    /// </summary>
    private async Task<StudyState> SettleAsync(Run run, string tenant, string month, string studyId, CancellationToken cancellationToken)
    {
        StudyRecord? study;
        try
        {
            study = await studies.GetAsync(tenant, studyId, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsStepFailure(ex, cancellationToken))
        {
            run.Fail(logger, "read the study", tenant, month, studyId, ex);
            return StudyState.Failed;
        }

        if (study is null || study.Status is StudyStatus.Failed or StudyStatus.Rejected)
        {
            return StudyState.Unbilled;
        }

        if (study.Status != StudyStatus.Completed)
        {
            return StudyState.Running;
        }

        // Completed before AggregateStudy kept the usage on the row (b61fec6) and its own write failed for good: its
        // figures are not known, so it is not billed; before, it held the month's close as "still running" until
        // CloseMaxWaitDays. (An orchestration still running its RecordUsage carries its record late.)
        if (study.ScoringUsageJson is not { Length: > 0 } json)
        {
            return Unbillable(null);
        }

        UsageRecord? record;
        try
        {
            record = PipelineJson.Deserialize<UsageRecord>(json);
        }
        catch (System.Text.Json.JsonException ex)
        {
            return Unbillable(ex.Message);
        }

        if (record is null || record.Tenant != tenant || record.StudyId != studyId || record.Stage != StudyOrchestration.UsageStage)
        {
            return Unbillable("the row's usage names another study or stage");
        }

        try
        {
            if (await usage.TryRecordAsync(record, cancellationToken).ConfigureAwait(false))
            {
                Log.RecordedFromRow(logger, tenant, studyId, record.Slices, record.CpuSeconds, record.GpuSeconds);
                run.Recorded.Add($"{tenant}/{studyId}");
            }

            // Recorded now, or by another writer first: billed either way.
            return StudyState.Billed;
        }
        catch (ArgumentException ex)
        {
            // Refused by UsageRecord.Validate, as the orchestration's write was: the same row is refused every run.
            return Unbillable(ex.Message);
        }
        catch (Exception ex) when (IsStepFailure(ex, cancellationToken))
        {
            run.Fail(logger, "record the study's scoring usage", tenant, month, studyId, ex);
            return StudyState.Failed;
        }

        // No usage on the row (reason null), or one that cannot be recorded (error 7004, every run: the row does not change).
        StudyState Unbillable(string? reason)
        {
            if (reason is not null)
            {
                Log.UnreadableScoringUsage(logger, tenant, studyId, reason);
            }

            run.Unbillable.Add($"{tenant}/{studyId}");
            return StudyState.Unbillable;
        }
    }

    /// <summary>Every failure but this run's own cancellation (the host stopping): that one ends the run at once.</summary>
    private static bool IsStepFailure(Exception ex, CancellationToken cancellationToken) =>
        !(ex is OperationCanceledException && cancellationToken.IsCancellationRequested);

    /// <summary>
    /// The reason logged for a failed step: the exception's type and its message up to the first blank line, on one
    /// line, at most 300 characters (the Storage SDK's message puts status and error code on its first lines and the
    /// headers after a blank line). No PHI: the stores' messages name tables, keys (tenant, study id, month) and codes.
    /// </summary>
    private static string ReasonOf(Exception ex)
    {
        var lines = ex.Message.Replace("\r", "", StringComparison.Ordinal).Split('\n');
        var head = string.Join(" ", lines.TakeWhile(l => l.Trim().Length > 0).Select(l => l.Trim()));
        var reason = $"{ex.GetType().Name}: {head}";
        return reason.Length <= 300 ? reason : reason[..300];
    }

    private enum TenantState
    {
        AlreadyClosed,
        Open,
        Waiting,
        Closed,
        Failed,
    }

    private enum StudyState
    {
        /// <summary>Ended without a bill (failed, rejected, no row): dropped from the index.</summary>
        Unbilled,

        /// <summary>Its scoring record is filed (the store dropped it from the index).</summary>
        Billed,

        Running,

        /// <summary>Completed with nothing that can be billed: stays listed until its month closes.</summary>
        Unbillable,

        /// <summary>A step failed: its month is not closed in this run.</summary>
        Failed,
    }

    /// <summary>What one tenant-month's studies were found to be in this run (one tenant's sweep: not shared).</summary>
    private sealed class Found
    {
        public int Running { get; set; }

        public bool Failed { get; set; }

        public List<string> Unbillable { get; } = [];
    }

    /// <summary>One run's shared state: when it closes, and what it recorded, found unbillable and failed (thread-safe).</summary>
    private sealed class Run(bool force, DateTimeOffset deadline)
    {
        public bool Force { get; } = force;

        public DateTimeOffset Deadline { get; } = deadline;

        public System.Collections.Concurrent.ConcurrentBag<string> Recorded { get; } = [];

        public System.Collections.Concurrent.ConcurrentBag<string> Unbillable { get; } = [];

        public System.Collections.Concurrent.ConcurrentBag<string> Failures { get; } = [];

        public void Fail(ILogger logger, string step, string tenant, string month, string? studyId, Exception ex)
        {
            var reason = ReasonOf(ex);
            if (studyId is null)
            {
                Log.StepFailed(logger, step, tenant, month, reason);
                Failures.Add($"{step} {tenant} {month}: {reason}");
            }
            else
            {
                Log.StudyStepFailed(logger, step, tenant, studyId, month, reason);
                Failures.Add($"{step} {tenant} {month} {studyId}: {reason}");
            }
        }
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

        [LoggerMessage(EventId = 7005, Level = LogLevel.Warning, Message = "Study {Tenant}/{StudyId} of {Month} completed without a scoring usage record and its Studies row carries none to record (completed before the row kept it): not billed; the month closed without waiting for it")]
        public static partial void ClosedWithoutUsage(ILogger logger, string tenant, string studyId, string month);

        [LoggerMessage(EventId = 7006, Level = LogLevel.Error, Message = "Usage sweep: {Step} failed for tenant {Tenant}, month {Month}: {Reason}; the other steps and tenants ran, this one is tried again next run")]
        public static partial void StepFailed(ILogger logger, string step, string tenant, string month, string reason);

        [LoggerMessage(EventId = 7007, Level = LogLevel.Error, Message = "Usage sweep: {Step} failed for study {Tenant}/{StudyId} of {Month}: {Reason}; the other studies and tenants ran, this one is tried again next run (its month is not closed in this run)")]
        public static partial void StudyStepFailed(ILogger logger, string step, string tenant, string studyId, string month, string reason);

        [LoggerMessage(EventId = 7009, Level = LogLevel.Debug, Message = "Usage sweep: study {Tenant}/{StudyId} of {Month} is settled without a bill but could not be dropped from the open-study index ({Reason}); read again next run")]
        public static partial void ForgetFailed(ILogger logger, string tenant, string studyId, string month, string reason);

        [LoggerMessage(EventId = 7008, Level = LogLevel.Error, Message = "Usage sweep of {Month} and {Current}: {Failures} step(s) failed; every other step and tenant ran")]
        public static partial void RunFailed(ILogger logger, int failures, string month, string current);
    }
}
