namespace CovidFunctions.Pipeline;

/// <summary>Pipeline settings (configuration section <c>Pipeline</c>; those the Function app reads are listed in local.settings.sample.json,
/// <see cref="MaxDeliveryCount"/> is used only by the local host).</summary>
public sealed record PipelineOptions
{
    public const string SectionName = "Pipeline";

    /// <summary>Slices per scorer message.</summary>
    public int ChunkSize { get; init; } = 32;

    /// <summary>How long the orchestrator waits for outstanding chunks before re-dispatching them.</summary>
    public TimeSpan ChunkTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Dispatches per chunk (first + re-dispatches) before the study fails.</summary>
    public int MaxChunkAttempts { get; init; } = 3;

    /// <summary>A folder upload without a <c>.complete</c> marker is closed when no blob arrived for this long.</summary>
    public TimeSpan FolderStableAge { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// The Function app's minute sweep ingests a single-blob upload (a blob directly under <c>{tenant}/</c>) this long
    /// after it was written when no ingest has recorded it: its Event Grid event was lost or dead-lettered, or ingest
    /// never got as far as its Studies row. Well above Event Grid's normal delivery (seconds) and its first retries, so
    /// the sweep does not race the trigger on every upload. The local watcher ingests every upload at once and does not
    /// read it.
    /// </summary>
    public TimeSpan SingleUploadSweepAge { get; init; } = TimeSpan.FromMinutes(15);

    /// <summary>How long a raw upload is kept after its study's results are stored (zero: delete at once). Until then it is
    /// always kept, and a study that fails moves it to quarantine.</summary>
    public TimeSpan UploadRetention { get; init; } = TimeSpan.Zero;

    /// <summary>
    /// The most bytes one upload unit may declare (a blob, or a folder's blobs together) before ingest rejects it to
    /// quarantine as <c>too-large</c> without downloading it (ingest copies an upload to local disk). 0: no limit.
    /// The default matches the zip reader's 4 GiB expansion limit.
    /// </summary>
    public long MaxUploadBytes { get; init; } = 4L * 1024 * 1024 * 1024;

    /// <summary>Deliveries of a queue message before it is dead-lettered.</summary>
    public int MaxDeliveryCount { get; init; } = 5;

    /// <summary>The most affected slices shown in the study montage and listed in the Studies row.</summary>
    public int MontageSlices { get; init; } = 12;

    /// <summary>
    /// Ingest attempts of one study (counted in its Studies row, so restarts do not reset them) before ingest gives up:
    /// the upload goes to quarantine with the last error and the study fails like any study failing after ingest
    /// (<c>study.failed</c>). Below the 5 tries Azure's blob trigger makes before its poison queue, so the bound is
    /// reached in Azure too. 0: no bound.
    /// </summary>
    public int MaxIngestAttempts { get; init; } = 3;

    /// <summary>
    /// How long one ingest attempt may run (download, de-identification, tiling, the closing writes). An attempt that
    /// reaches it is stopped and counted as a failed attempt whose error names the limit and the upload's size, so
    /// <see cref="MaxIngestAttempts"/> ends such an upload as <c>ingest-failed</c> with that reason. It sits below
    /// host.json's <c>functionTimeout</c> (60 minutes): when the host cuts an invocation it cancels it like a host stop,
    /// which is not counted, so before this limit an ingest longer than the Function timeout was cut and repeated until the
    /// watchdog failed it 6 h on with no word of the timeout. 50 minutes leaves the failed attempt 10 minutes to record
    /// itself (and give up) inside the invocation, and is 1.6× the slowest ingest measured of the largest upload Azure
    /// accepts (about 31 min for 2 GiB, docs/deployment.md "Time budgets"). The Function app refuses at start-up a limit
    /// that is not below the host's <c>functionTimeout</c>, or zero under a bounded one (FunctionAppOptions). Zero: no
    /// limit (a hung ingest then waits for the watchdog). <c>covidfn up</c> and <c>screen</c> have no Function timeout:
    /// when the setting is not given they size the limit to their largest upload (Cli LocalHostSettings.LocalIngestTimeLimit,
    /// 94 min for 4 GiB), since this 50 minutes is shorter than the slowest measured ingest of 4 GiB (about 62 min).
    /// </summary>
    public TimeSpan IngestTimeLimit { get; init; } = TimeSpan.FromMinutes(50);

    /// <summary>
    /// The hourly sweep fails a study still <c>processing</c> this long after it was created (never ingested) or
    /// ingested, when nothing can finish it any more: its ingest never completed, or its orchestration is not running
    /// (it failed, for example because FailStudy could not write). Well above the longest orchestration
    /// (<see cref="MaxChunkAttempts"/> × <see cref="ChunkTimeout"/>, 30 minutes by default). Zero: no watchdog.
    /// </summary>
    public TimeSpan StuckStudyAge { get; init; } = TimeSpan.FromHours(6);

    /// <summary>
    /// How long ingest may keep a study processing by its own bounds: <see cref="MaxIngestAttempts"/> attempts (one when
    /// unbounded) of <see cref="IngestTimeLimit"/> each, after which the last attempt gives the study up itself, naming
    /// the limit; null without a limit. A <see cref="StuckStudyAge"/> at or below it would fail as stuck a study whose
    /// ingest is still within its limit: both hosts refuse that at start-up (covidfn up's LocalHostSettings, the Function
    /// app's FunctionAppOptions). A method, not a property, so configuration binding and serialization never see it.
    /// </summary>
    public TimeSpan? IngestBound() =>
        IngestTimeLimit > TimeSpan.Zero ? IngestTimeLimit * Math.Max(1, MaxIngestAttempts) : null;

    /// <summary>
    /// A study orchestration's Durable history (the task hub's instance and history rows) is purged by the daily timer
    /// once the instance completed, failed or was terminated and was created at least this long ago; a running or
    /// pending instance is never purged. Zero: never purged (the history grows with every study).
    /// </summary>
    public TimeSpan OrchestrationHistoryRetention { get; init; } = TimeSpan.FromDays(30);

    /// <summary>
    /// Throws <see cref="InvalidOperationException"/> naming the setting (<c>Pipeline:Name</c>) when a value is out of
    /// range, so that a bad app setting stops the host at start-up instead of failing studies (a zero chunk size or
    /// timeout, a negative age) once they arrive.
    /// </summary>
    public void Validate()
    {
        static void Require(bool valid, string name, object value, string rule)
        {
            if (!valid)
            {
                throw new InvalidOperationException($"{SectionName}:{name} {rule} (got '{value}').");
            }
        }

        Require(ChunkSize >= 1, nameof(ChunkSize), ChunkSize, "must be at least 1");
        Require(ChunkTimeout > TimeSpan.Zero, nameof(ChunkTimeout), ChunkTimeout, "must be positive");
        Require(MaxChunkAttempts >= 1, nameof(MaxChunkAttempts), MaxChunkAttempts, "must be at least 1");
        Require(FolderStableAge >= TimeSpan.Zero, nameof(FolderStableAge), FolderStableAge, "must not be negative");
        Require(SingleUploadSweepAge >= TimeSpan.Zero, nameof(SingleUploadSweepAge), SingleUploadSweepAge, "must not be negative");
        Require(UploadRetention >= TimeSpan.Zero, nameof(UploadRetention), UploadRetention, "must not be negative (0: delete at once)");
        Require(MaxUploadBytes >= 0, nameof(MaxUploadBytes), MaxUploadBytes, "must not be negative (0: no limit)");
        Require(MaxDeliveryCount >= 1, nameof(MaxDeliveryCount), MaxDeliveryCount, "must be at least 1");
        Require(MontageSlices >= 0, nameof(MontageSlices), MontageSlices, "must not be negative");
        Require(MaxIngestAttempts >= 0, nameof(MaxIngestAttempts), MaxIngestAttempts, "must not be negative (0: no bound)");
        Require(IngestTimeLimit >= TimeSpan.Zero, nameof(IngestTimeLimit), IngestTimeLimit, "must not be negative (0: no limit)");
        Require(StuckStudyAge >= TimeSpan.Zero, nameof(StuckStudyAge), StuckStudyAge, "must not be negative (0: no watchdog)");
        Require(OrchestrationHistoryRetention >= TimeSpan.Zero, nameof(OrchestrationHistoryRetention), OrchestrationHistoryRetention, "must not be negative (0: never purged)");
    }
}
