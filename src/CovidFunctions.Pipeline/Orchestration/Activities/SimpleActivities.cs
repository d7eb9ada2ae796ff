using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;
using Microsoft.DurableTask;

namespace CovidFunctions.Pipeline.Orchestration.Activities;

/// <summary>
/// Sets the Studies row to processing with the orchestration id, tiles prefix, slice count and (once) the time
/// scoring started; true. A row already
/// completed, failed or rejected is left as it is and the answer is false: the study was settled by another path
/// before this orchestration began (the stuck-study watchdog failing it while a late ingest re-delivery started the
/// orchestration), and a settled study is never reopened (its upload may be in quarantine, its event sent).
/// </summary>
public sealed class MarkStudyProcessingActivity(IStudyStore studies, TimeProvider? timeProvider = null) : TaskActivity<StudyOrchestrationInput, bool>
{
    private readonly TimeProvider _time = timeProvider ?? TimeProvider.System;

    public override async Task<bool> RunAsync(TaskActivityContext context, StudyOrchestrationInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var now = _time.GetUtcNow();
        var stored = await studies.UpdateAsync(input.Tenant, input.StudyId, existing => existing is not null && StudyStatus.IsTerminal(existing.Status)
            ? existing
            : (existing ?? new StudyRecord { Tenant = input.Tenant, StudyId = input.StudyId, CreatedAt = now }) with
            {
                Status = StudyStatus.Processing,
                Reason = null,
                OrchestrationId = input.InstanceId,
                TilesPrefix = input.TilesPrefix,
                SliceCount = input.SliceCount,
                ScoringStartedAt = existing?.ScoringStartedAt ?? now,
            }, CancellationToken.None).ConfigureAwait(false);
        return stored.Status == StudyStatus.Processing;
    }
}

/// <summary>
/// Thrown by <see cref="AggregateStudyActivity"/> when the study's row was failed or rejected by another path (the
/// stuck-study watchdog) while its chunks were scored: the first settled state stands, so the results are not stored
/// over it. The orchestrator does not retry it and ends without failing or notifying the study a second time.
/// </summary>
public sealed class StudyAlreadySettledException : InvalidOperationException
{
    public StudyAlreadySettledException()
    {
    }

    public StudyAlreadySettledException(string message)
        : base(message)
    {
    }

    public StudyAlreadySettledException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// Sends one chunk request to the scorer's queue. The message id is deterministic per (study, chunk, attempt), so a
/// retried activity does not produce a second message where the queue detects duplicates (Service Bus), and the
/// scorer's outputs are idempotent where it does not (Storage queues).
/// </summary>
public sealed class DispatchChunkActivity(IMessageSender sender) : TaskActivity<ChunkRequest, bool>
{
    public override async Task<bool> RunAsync(TaskActivityContext context, ChunkRequest input)
    {
        ArgumentNullException.ThrowIfNull(input);
        await sender.SendAsync(PipelineNames.SliceRequestsQueue, new QueueMessage(input.MessageId, PipelineJson.Serialize(input)), CancellationToken.None).ConfigureAwait(false);
        return true;
    }
}

/// <summary>Records the scoring usage of a study once (insert-if-absent on tenant, study and stage).</summary>
public sealed class RecordUsageActivity(IUsageStore usage) : TaskActivity<RecordUsageInput, bool>
{
    public override Task<bool> RunAsync(TaskActivityContext context, RecordUsageInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return usage.TryRecordAsync(ToRecord(input), CancellationToken.None);
    }

    /// <summary>The <c>scoring</c> usage record of the input (also kept on the completed row, StudyRecord.ScoringUsageJson).</summary>
    public static UsageRecord ToRecord(RecordUsageInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return new UsageRecord(
            input.Tenant,
            input.StudyId,
            StudyOrchestration.UsageStage,
            new DateTimeOffset(DateTime.SpecifyKind(input.At, DateTimeKind.Utc)),
            input.Slices,
            input.CpuSeconds,
            input.GpuSeconds,
            BytesStored: 0);
    }
}

/// <summary>Tells subscribers that the study reached a terminal state (the notifier delivers at most once per event).</summary>
public sealed class NotifyStudyActivity(IStudyNotifier notifier) : TaskActivity<NotifyStudyInput, bool>
{
    public override async Task<bool> RunAsync(TaskActivityContext context, NotifyStudyInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        await notifier.NotifyAsync(input.Tenant, input.StudyId, input.EventType, CancellationToken.None).ConfigureAwait(false);
        return true;
    }
}

/// <summary>
/// Marks the Studies row failed with the reason (a completed row is left alone: a late failure cannot undo it), then
/// moves the study's raw upload, which ingest kept, to <c>quarantine/{tenant}/{studyId}/</c> with the reason
/// (<see cref="IngestHandler.StudyFailedReason"/>), so nothing is lost with the failed study.
/// </summary>
public sealed class FailStudyActivity(IStudyStore studies, IBlobContainers containers, TimeProvider? timeProvider = null) : TaskActivity<FailStudyInput, bool>
{
    private readonly TimeProvider _time = timeProvider ?? TimeProvider.System;

    public override Task<bool> RunAsync(TaskActivityContext context, FailStudyInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return FailAsync(studies, containers, input.Tenant, input.StudyId, input.Reason, IngestHandler.StudyFailedReason, input.Reason, _time.GetUtcNow(), null, CancellationToken.None);
    }

    /// <summary>
    /// The one failure path of a study whose upload is kept until the study is settled: the row is set failed with
    /// <paramref name="reason"/> (a completed or rejected row is left alone; false then), THEN the upload (the row's
    /// <c>UploadPath</c>, else <paramref name="uploadPath"/>) is moved to quarantine with <paramref name="code"/> and
    /// <paramref name="detail"/> in <c>reason.json</c> and the path forgotten (<see cref="UploadArchive.SettleAsync"/>).
    /// Used by this activity, by ingest when it gives up (<see cref="PipelineOptions.MaxIngestAttempts"/>) and by the
    /// stuck-study watchdog (<see cref="PipelineOptions.StuckStudyAge"/>); the caller sends <c>study.failed</c>. Safe to repeat.
    /// </summary>
    public static Task<bool> FailAsync(
        IStudyStore studies,
        IBlobContainers containers,
        string tenant,
        string studyId,
        string reason,
        string code,
        string detail,
        DateTimeOffset now,
        string? uploadPath,
        CancellationToken cancellationToken) =>
        FailAsync(studies, containers, tenant, studyId, reason, code, detail, now, uploadPath, null, cancellationToken);

    /// <summary>
    /// As <see cref="FailAsync(IStudyStore, IBlobContainers, string, string, string, string, string, DateTimeOffset, string?, CancellationToken)"/>,
    /// with <paramref name="whileTheRowNamesTheUpload"/> run once the row is failed and before the upload's move (each
    /// time the row is, or is already, failed). Ingest and the watchdog send <c>study.failed</c> there: while the row
    /// still names the upload, whoever meets the upload again finishes the move and sends the event (ingest's
    /// FinishQuarantineMove), so a process that dies after the move cannot leave the event unsent for ever (no
    /// orchestration re-runs their notification, as it re-runs this activity's).
    /// </summary>
    public static async Task<bool> FailAsync(
        IStudyStore studies,
        IBlobContainers containers,
        string tenant,
        string studyId,
        string reason,
        string code,
        string detail,
        DateTimeOffset now,
        string? uploadPath,
        Func<Task>? whileTheRowNamesTheUpload,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(studies);
        ArgumentNullException.ThrowIfNull(containers);
        var stored = await studies.UpdateAsync(tenant, studyId, existing =>
        {
            var record = existing ?? new StudyRecord { Tenant = tenant, StudyId = studyId, CreatedAt = now };
            return record.Status is StudyStatus.Completed or StudyStatus.Rejected
                ? record
                : record with { Status = StudyStatus.Failed, Reason = reason, CompletedAt = now };
        }, cancellationToken).ConfigureAwait(false);
        if (stored.Status != StudyStatus.Failed)
        {
            return false;
        }

        if (whileTheRowNamesTheUpload is not null)
        {
            await whileTheRowNamesTheUpload().ConfigureAwait(false);
        }

        if ((stored.UploadPath ?? uploadPath) is { Length: > 0 } upload)
        {
            var quarantineReason = new QuarantineReason(tenant, studyId, upload, code, detail, now);
            await UploadArchive.SettleAsync(containers, studies, tenant, studyId, upload, quarantineReason, cancellationToken).ConfigureAwait(false);
        }

        return true;
    }
}
