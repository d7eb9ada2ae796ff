using System.Globalization;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Orchestration.Activities;
using CovidFunctions.Pipeline.Storage;
using Microsoft.DurableTask;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Orchestration;

/// <summary>
/// One study, end to end after ingest: mark it processing, fan the series out to the scorer in chunks (one message
/// per chunk through <see cref="StudyOrchestration.DispatchChunk"/>), collect the chunk results as external events
/// with a durable timer, re-dispatch what is missing a bounded number of times, aggregate, record usage and notify.
/// Only blob references pass through here (claim check), never pixels.
/// </summary>
/// <remarks>
/// Replay-safe: time comes from <see cref="TaskOrchestrationContext.CurrentUtcDateTime"/>, every side effect is an
/// activity, logging goes through the replay-safe logger, and collections are iterated in a fixed order.
/// Duplicate events (the relay delivers at least once; a re-dispatched chunk may answer twice) and events of other
/// studies are ignored, so each chunk counts once.
/// </remarks>
public sealed partial class StudyOrchestrator : TaskOrchestrator<StudyOrchestrationInput, StudyOutcome>
{
    // Activities touch storage and queues: transient faults are retried here, a few times, before the study fails.
    // A study settled by another path (StudyAlreadySettledException) stays settled: no retry changes that.
    private static readonly TaskOptions ActivityRetry = TaskOptions.FromRetryPolicy(new RetryPolicy(
        maxNumberOfAttempts: 3,
        firstRetryInterval: TimeSpan.FromSeconds(2),
        backoffCoefficient: 2)
    {
        HandleFailure = failure => !IsAlreadySettled(failure),
    });

    // The steps after a study is settled (usage, notification, the failed row) have no later chance: nothing re-runs
    // them once the orchestration ends, so a storage or queue outage of a few seconds would leave a completed study
    // unbilled and its clinicians untold. They retry for about four minutes (2 s doubling to a 2 min cap, 8 tries).
    // A refusal by validation (ArgumentException) is permanent and is not retried.
    private static readonly TaskOptions SettledStepRetry = TaskOptions.FromRetryPolicy(new RetryPolicy(
        maxNumberOfAttempts: 8,
        firstRetryInterval: TimeSpan.FromSeconds(2),
        backoffCoefficient: 2,
        maxRetryInterval: TimeSpan.FromMinutes(2))
    {
        HandleFailure = failure => !failure.IsCausedBy<ArgumentException>(),
    });

    public override async Task<StudyOutcome> RunAsync(TaskOrchestrationContext context, StudyOrchestrationInput input)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(input);
        var logger = context.CreateReplaySafeLogger<StudyOrchestrator>();
        var startedAt = context.CurrentUtcDateTime;
        string reason;
        StudyDiagnosis? diagnosis = null;
        IReadOnlyList<ChunkResult> results = [];
        RecordUsageInput? usage = null;
        try
        {
            if (Validate(input) is { } invalid)
            {
                reason = invalid;
            }
            else
            {
                if (!await context.CallActivityAsync<bool>(StudyOrchestration.MarkStudyProcessing, input, ActivityRetry))
                {
                    // Failed (or otherwise settled) by another path before this orchestration began, as when the
                    // stuck-study watchdog failed it while a late ingest re-delivery started it: nothing to do, and
                    // nothing to tell (whoever settled it sent the event).
                    return AlreadySettled(input, logger, "the study was already settled when its orchestration began; nothing was dispatched");
                }

                var collected = await CollectChunksAsync(context, input, logger);
                results = collected.Results;
                reason = collected.Failure ?? string.Empty;
                if (collected.Failure is null)
                {
                    // The usage goes with the aggregate, whose completing write keeps it on the row (ScoringUsageJson):
                    // if RecordUsage fails for good below, the hourly usage sweep records it from there.
                    usage = UsageOf(input, results, context.CurrentUtcDateTime);
                    var aggregateInput = new AggregateStudyInput(input.Tenant, input.StudyId, input.TilesPrefix, results, startedAt, context.CurrentUtcDateTime, usage);
                    diagnosis = await context.CallActivityAsync<StudyDiagnosis>(StudyOrchestration.AggregateStudy, aggregateInput, ActivityRetry);
                }
            }
        }
        catch (TaskFailedException ex) when (IsAlreadySettled(ex.FailureDetails))
        {
            // The row was failed by another path while the chunks were scored: the first settled state stands.
            return AlreadySettled(input, logger, ex.FailureDetails.ErrorMessage);
        }
        catch (TaskFailedException ex)
        {
            reason = $"activity {ex.TaskName} failed: {ex.FailureDetails.ErrorMessage}";
        }

        if (diagnosis is not null)
        {
            // The diagnosis is stored: from here a failing activity (after its retries) fails the orchestration
            // itself, visible in Durable's instance status, and never turns the completed study into a failed one.
            // Usage and the notification are independent: the clinicians are told even when billing failed, and the
            // orchestration then fails naming what did not happen. A usage write that failed for good is not lost: the
            // completed row keeps the usage (AggregateStudy wrote it), and the hourly usage sweep (UsageAutoClose)
            // records it, insert-if-absent, so the study is billed once.
            var unsettled = new List<string>(2);
            foreach (var (activity, activityInput) in new (string, object)[]
            {
                (StudyOrchestration.RecordUsage, usage ?? UsageOf(input, results, context.CurrentUtcDateTime)),
                (StudyOrchestration.NotifyStudy, new NotifyStudyInput(input.Tenant, input.StudyId, StudyEventTypes.Completed)),
            })
            {
                try
                {
                    await context.CallActivityAsync<bool>(activity, activityInput, SettledStepRetry);
                }
                catch (TaskFailedException ex)
                {
                    Log.SettledStepFailed(logger, input.Tenant, input.StudyId, activity, ex.FailureDetails.ErrorMessage);
                    unsettled.Add($"{activity}: {ex.FailureDetails.ErrorMessage}");
                }
            }

            if (unsettled.Count > 0)
            {
                throw new InvalidOperationException($"study {input.Tenant}/{input.StudyId} completed, but {string.Join("; ", unsettled)}");
            }

            Log.Completed(logger, input.Tenant, input.StudyId, diagnosis.Label, diagnosis.Slices);
            return new StudyOutcome(input.Tenant, input.StudyId, StudyStatus.Completed, null, diagnosis);
        }

        Log.Failed(logger, input.Tenant, input.StudyId, reason);
        await context.CallActivityAsync<bool>(StudyOrchestration.FailStudy, new FailStudyInput(input.Tenant, input.StudyId, reason), SettledStepRetry);
        await context.CallActivityAsync<bool>(StudyOrchestration.NotifyStudy, new NotifyStudyInput(input.Tenant, input.StudyId, StudyEventTypes.Failed), SettledStepRetry);
        return new StudyOutcome(input.Tenant, input.StudyId, StudyStatus.Failed, reason, null);
    }

    /// <summary>Chunk <c>i</c> covers slices <c>[i·size, min((i+1)·size, count))</c>.</summary>
    public static IReadOnlyList<(int FirstSlice, int SliceCount)> PlanChunks(int sliceCount, int chunkSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sliceCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkSize, 1);
        var chunks = new List<(int, int)>((sliceCount + chunkSize - 1) / chunkSize);
        for (var first = 0; first < sliceCount; first += chunkSize)
        {
            chunks.Add((first, Math.Min(chunkSize, sliceCount - first)));
        }

        return chunks;
    }

    private static bool IsAlreadySettled(TaskFailureDetails failure) =>
        failure.ErrorType == typeof(StudyAlreadySettledException).FullName;

    private static StudyOutcome AlreadySettled(StudyOrchestrationInput input, ILogger logger, string reason)
    {
        Log.AlreadySettled(logger, input.Tenant, input.StudyId, reason);
        return new StudyOutcome(input.Tenant, input.StudyId, StudyOutcome.AlreadySettled, reason, null);
    }

    private static string? Validate(StudyOrchestrationInput input) =>
        !StudyIds.IsValidTenant(input.Tenant) ? $"tenant '{input.Tenant}' is not valid"
        : string.IsNullOrEmpty(input.StudyId) ? "the study id is empty"
        : string.IsNullOrEmpty(input.TilesPrefix) ? "the study has no tiles prefix"
        : input.SliceCount < 1 ? $"the study has {input.SliceCount} slices"
        : input.ChunkSize < 1 ? $"chunk size {input.ChunkSize} is not positive"
        : input.MaxChunkAttempts < 1 ? $"max chunk attempts {input.MaxChunkAttempts} is not positive"
        : input.ChunkTimeout <= TimeSpan.Zero ? $"chunk timeout {input.ChunkTimeout} is not positive"
        : null;

    private static async Task<(IReadOnlyList<ChunkResult> Results, string? Failure)> CollectChunksAsync(
        TaskOrchestrationContext context, StudyOrchestrationInput input, ILogger logger)
    {
        var plan = PlanChunks(input.SliceCount, input.ChunkSize);
        var attempts = new int[plan.Count];
        var firstDispatchedAt = new DateTime[plan.Count];
        var results = new ChunkResult?[plan.Count];
        var received = 0;

        async Task DispatchAsync(IReadOnlyList<int> chunkIndexes)
        {
            var dispatches = new List<Task>(chunkIndexes.Count);
            foreach (var i in chunkIndexes)
            {
                if (attempts[i] == 0)
                {
                    firstDispatchedAt[i] = context.CurrentUtcDateTime;
                }

                attempts[i]++;
                var request = new ChunkRequest(input.Tenant, input.StudyId, input.InstanceId, input.TilesPrefix, i, plan[i].FirstSlice, plan[i].SliceCount, attempts[i]);
                dispatches.Add(context.CallActivityAsync<bool>(StudyOrchestration.DispatchChunk, request, ActivityRetry));
            }

            await Task.WhenAll(dispatches);
        }

        await DispatchAsync([.. Enumerable.Range(0, plan.Count)]);
        var deadline = context.CurrentUtcDateTime + input.ChunkTimeout;

        // One durable timer per collection round, raced against the pending event. Revision 0 passed a timeout to each
        // wait instead, which creates a durable timer per awaited result: a study of n chunks left n timers that each
        // still fire (one more orchestration episode, each replaying the whole history) while the study is running.
        // Kept for instances started under it, whose histories hold those timers (see StudyOrchestrationInput.Revision).
        using var timerCancellation = new CancellationTokenSource();
        var roundTimer = input.Revision >= 1 ? context.CreateTimer(deadline, timerCancellation.Token) : null;
        Task<ChunkResult>? pendingResult = null;
        try
        {
            while (received < plan.Count)
            {
                ChunkResult? result = null;
                if (roundTimer is not null)
                {
                    pendingResult ??= context.WaitForExternalEvent<ChunkResult>(PipelineNames.ChunkResultEvent);
                    if (await Task.WhenAny(pendingResult, roundTimer) == pendingResult)
                    {
                        result = await pendingResult;
                        pendingResult = null;
                    }
                }
                else
                {
                    result = await WaitWithTimerPerEventAsync(context, deadline);
                }

                if (result is null)
                {
                    var missing = Enumerable.Range(0, plan.Count).Where(i => results[i] is null).ToList();
                    var exhausted = missing.Where(i => attempts[i] >= input.MaxChunkAttempts).ToList();
                    if (exhausted.Count > 0)
                    {
                        return ([], FormattableString.Invariant(
                            $"no result for chunk(s) {Describe(exhausted, plan)} after {input.MaxChunkAttempts} attempt(s) of {input.ChunkTimeout.TotalSeconds:0.#} s each"));
                    }

                    Log.Redispatching(logger, input.Tenant, input.StudyId, string.Join(",", missing));
                    await DispatchAsync(missing);
                    deadline = context.CurrentUtcDateTime + input.ChunkTimeout;
                    if (roundTimer is not null)
                    {
                        roundTimer = context.CreateTimer(deadline, timerCancellation.Token);
                    }

                    continue;
                }

                if (result.Tenant != input.Tenant || result.StudyId != input.StudyId || result.ChunkIndex < 0 || result.ChunkIndex >= plan.Count)
                {
                    Log.IgnoredForeign(logger, input.Tenant, input.StudyId, result.Tenant, result.StudyId, result.ChunkIndex);
                    continue;
                }

                if (results[result.ChunkIndex] is not null)
                {
                    Log.IgnoredDuplicate(logger, input.Tenant, input.StudyId, result.ChunkIndex, result.Attempt);
                    continue;
                }

                if (result.Error is not null || string.IsNullOrEmpty(result.ResultPath))
                {
                    return ([], $"chunk {Describe([result.ChunkIndex], plan)} could not be scored: {result.Error ?? "the scorer gave no result document"}");
                }

                if (result.SliceCount > plan[result.ChunkIndex].SliceCount)
                {
                    // Billing counts at most the planned slices of the chunk (see BilledSlices): say that the scorer
                    // claimed more, which is a faulty or tampered scorer, not a reason to fail the study.
                    Log.MoreSlicesThanPlanned(logger, input.Tenant, input.StudyId, result.ChunkIndex, result.Attempt, result.SliceCount, plan[result.ChunkIndex].SliceCount);
                }

                // Bounded once, here, so the bill (UsageOf) and the study's scoringCompute timing (AggregateStudy)
                // both hold the billed seconds (see BilledScoringSeconds).
                var billedSeconds = BilledScoringSeconds(result.ScoringSeconds, context.CurrentUtcDateTime - firstDispatchedAt[result.ChunkIndex]);
                if (!billedSeconds.Equals(result.ScoringSeconds))
                {
                    Log.ScoringSecondsBounded(logger, input.Tenant, input.StudyId, result.ChunkIndex, result.Attempt, result.ScoringSeconds, billedSeconds);
                    result = result with { ScoringSeconds = billedSeconds };
                }

                results[result.ChunkIndex] = result;
                received++;
            }

            return ([.. results.Select(r => r!)], null);
        }
        finally
        {
            // The study is collected (or failed): the round's timer has nothing left to wake. Cancel, not CancelAsync:
            // the cancellation callbacks must run on the orchestrator's own thread.
#pragma warning disable CA1849
            timerCancellation.Cancel();
#pragma warning restore CA1849
        }
    }

    /// <summary>Revision 0's wait: a durable timer for each awaited result; null when the deadline passed.</summary>
    private static async Task<ChunkResult?> WaitWithTimerPerEventAsync(TaskOrchestrationContext context, DateTime deadline)
    {
        var remaining = deadline - context.CurrentUtcDateTime;
        if (remaining <= TimeSpan.Zero)
        {
            return null;
        }

        try
        {
            return await context.WaitForExternalEvent<ChunkResult>(PipelineNames.ChunkResultEvent, remaining);
        }
        catch (TaskCanceledException)
        {
            // The durable timer fired first: handled by the caller as a timeout.
            return null;
        }
    }

    private static string Describe(IReadOnlyList<int> chunkIndexes, IReadOnlyList<(int FirstSlice, int SliceCount)> plan) =>
        string.Join(", ", chunkIndexes.Select(i => string.Create(
            CultureInfo.InvariantCulture, $"{i} (slices {plan[i].FirstSlice}-{plan[i].FirstSlice + plan[i].SliceCount - 1})")));

    /// <summary>
    /// The slices billed for one accepted chunk result: what the scorer reports, bounded by what this orchestration
    /// dispatched for that chunk (0 to <paramref name="plannedSlices"/>).
    /// </summary>
    /// <remarks>
    /// The tenant pays for the slices of its study, and the orchestrator knows them (the plan); the count in a chunk
    /// result is the scorer's word, relayed unchecked. Billed as reported, a faulty or compromised scorer could raise a
    /// tenant's bill at will (a chunk of 32 slices answered as 32 000), and the study's slice total no longer matched
    /// its slice count. Each chunk's result is accepted once (CollectChunksAsync ignores duplicates and other studies' results), so with this bound a study is never
    /// billed more than its planned slices, however many times or however a chunk is answered.
    /// </remarks>
    public static int BilledSlices(int reportedSlices, int plannedSlices) => Math.Clamp(reportedSlices, 0, plannedSlices);

    /// <summary>
    /// The scoring seconds billed for one accepted chunk result: what the scorer reports, bounded by the time the chunk
    /// was out, from its first dispatch to the acceptance of its result (<paramref name="window"/>, both read from
    /// <see cref="TaskOrchestrationContext.CurrentUtcDateTime"/>). A negative, NaN or infinite report counts as 0.
    /// </summary>
    /// <remarks>
    /// Like the slice count (<see cref="BilledSlices"/>), the seconds are the scorer's word: billed as reported, a faulty
    /// or compromised scorer could bill a tenant any time (10^9 s for a chunk), and a negative count lowered the bill
    /// or, the study's sum below 0, had its usage record refused (the completed study unbilled). NaN and infinity
    /// cannot cross the JSON transport (the serializers refuse them) but are billed 0 should one ever arrive. The window is the tightest bound the orchestrator knows
    /// that never under-bills a real chunk: the scorer's stopwatch starts after it received the request, which the
    /// DispatchChunk activity sent after the first dispatch's orchestration time, and stops before it sends the result,
    /// which reaches the orchestration before the episode that accepts it begins; a late answer of an earlier attempt
    /// measured inside the same window, since it was dispatched no earlier than the first. The other bound the
    /// orchestrator knows, the chunk timeout times the attempts, is looser where it holds (the chunk must be accepted
    /// before its last round's deadline) and, where it is tighter, would under-bill a real chunk: each round's deadline
    /// starts only once its dispatch activity has finished, so a chunk can be out a little longer than that product.
    /// A non-positive window (a clock set back between the two episodes) bills nothing: nothing can be shown to have run.
    /// </remarks>
    public static double BilledScoringSeconds(double reportedSeconds, TimeSpan window) =>
        !double.IsFinite(reportedSeconds) || reportedSeconds <= 0 ? 0 : Math.Min(reportedSeconds, Math.Max(0, window.TotalSeconds));

    private static RecordUsageInput UsageOf(StudyOrchestrationInput input, IReadOnlyList<ChunkResult> results, DateTime at)
    {
        var plan = PlanChunks(input.SliceCount, input.ChunkSize);
        double cpu = 0, gpu = 0;
        var slices = 0;
        foreach (var r in results)
        {
            slices += BilledSlices(r.SliceCount, plan[r.ChunkIndex].SliceCount);
            if (IsGpu(r.Device))
            {
                gpu += r.ScoringSeconds;
            }
            else
            {
                cpu += r.ScoringSeconds;
            }
        }

        return new RecordUsageInput(input.Tenant, input.StudyId, at, slices, cpu, gpu);
    }

    private static bool IsGpu(string? device) =>
        device is not null && (device.Contains("CUDA", StringComparison.OrdinalIgnoreCase) || device.Contains("GPU", StringComparison.OrdinalIgnoreCase));

    private static partial class Log
    {
        [LoggerMessage(EventId = 2001, Level = LogLevel.Information, Message = "Study {Tenant}/{StudyId} completed: {Label} over {Slices} slices")]
        public static partial void Completed(ILogger logger, string tenant, string studyId, string label, int slices);

        [LoggerMessage(EventId = 2002, Level = LogLevel.Warning, Message = "Study {Tenant}/{StudyId} failed: {Reason}")]
        public static partial void Failed(ILogger logger, string tenant, string studyId, string reason);

        [LoggerMessage(EventId = 2003, Level = LogLevel.Warning, Message = "Study {Tenant}/{StudyId}: no result in time for chunk(s) {Chunks}; dispatching them again")]
        public static partial void Redispatching(ILogger logger, string tenant, string studyId, string chunks);

        [LoggerMessage(EventId = 2004, Level = LogLevel.Information, Message = "Study {Tenant}/{StudyId}: ignored a duplicate result of chunk {Chunk} (attempt {Attempt})")]
        public static partial void IgnoredDuplicate(ILogger logger, string tenant, string studyId, int chunk, int attempt);

        [LoggerMessage(EventId = 2005, Level = LogLevel.Warning, Message = "Study {Tenant}/{StudyId}: ignored a result for {OtherTenant}/{OtherStudyId} chunk {Chunk}")]
        public static partial void IgnoredForeign(ILogger logger, string tenant, string studyId, string otherTenant, string otherStudyId, int chunk);

        [LoggerMessage(EventId = 2006, Level = LogLevel.Error, Message = "Study {Tenant}/{StudyId} completed, but {Activity} failed after its retries: {Error}")]
        public static partial void SettledStepFailed(ILogger logger, string tenant, string studyId, string activity, string error);

        [LoggerMessage(EventId = 2007, Level = LogLevel.Warning, Message = "Study {Tenant}/{StudyId} was settled by another path; this orchestration stops: {Reason}")]
        public static partial void AlreadySettled(ILogger logger, string tenant, string studyId, string reason);

        [LoggerMessage(EventId = 2008, Level = LogLevel.Warning, Message = "Study {Tenant}/{StudyId}: the result of chunk {Chunk} (attempt {Attempt}) reports {ReportedSlices} slices, {PlannedSlices} were dispatched; only those are billed")]
        public static partial void MoreSlicesThanPlanned(ILogger logger, string tenant, string studyId, int chunk, int attempt, int reportedSlices, int plannedSlices);

        [LoggerMessage(EventId = 2009, Level = LogLevel.Warning, Message = "Study {Tenant}/{StudyId}: the result of chunk {Chunk} (attempt {Attempt}) reports {ReportedSeconds} s of scoring, more than the chunk was out or not a valid time; billed {BilledSeconds} s")]
        public static partial void ScoringSecondsBounded(ILogger logger, string tenant, string studyId, int chunk, int attempt, double reportedSeconds, double billedSeconds);
    }
}
