namespace CovidFunctions.Pipeline.Storage;

/// <summary>Values of <see cref="StudyRecord.Status"/> (the <c>covidfn status --json</c> contract).</summary>
public static class StudyStatus
{
    public const string Queued = "queued";
    public const string Processing = "processing";
    public const string Completed = "completed";
    public const string Failed = "failed";
    public const string Rejected = "rejected";

    public static bool IsTerminal(string status) => status is Completed or Failed or Rejected;
}

/// <summary>
/// A row of the <c>Studies</c> table (PartitionKey tenant, RowKey study id). Never holds PHI: the study pseudonym is
/// the de-identified Study Instance UID; the upload path is the caller's own blob name.
/// </summary>
public sealed record StudyRecord
{
    public required string Tenant { get; init; }

    public required string StudyId { get; init; }

    public string Status { get; init; } = StudyStatus.Queued;

    /// <summary>Why the study failed or was rejected.</summary>
    public string? Reason { get; init; }

    /// <summary>The upload in <c>ct-uploads</c> (a blob, or a folder prefix ending in '/').</summary>
    public string? UploadPath { get; init; }

    /// <summary>
    /// <c>blob</c> or <c>folder</c>: how the study's upload arrived, kept after <see cref="UploadPath"/> is forgotten. A blob
    /// <c>lab/scan</c> and a folder <c>lab/scan/</c> get one study id (ids trim the '/'), so ingest tells their uploads
    /// apart by it (<c>name-collision</c>). Null on rows written before it existed.
    /// </summary>
    public string? UploadKind { get; init; }

    /// <summary>The de-identified Study Instance UID.</summary>
    public string? StudyPseudonym { get; init; }

    public string? OrchestrationId { get; init; }

    /// <summary>The tiles prefix in the slices container.</summary>
    public string? TilesPrefix { get; init; }

    public int SliceCount { get; init; }

    public string? Label { get; init; }

    public double? ProbabilityCovid { get; init; }

    public double? ProbabilityCap { get; init; }

    public double? ProbabilityNormal { get; init; }

    /// <summary>Lesion volume / lung volume estimate, in [0, 1].</summary>
    public double? LesionBurden { get; init; }

    public string? ModelVersion { get; init; }

    /// <summary>JSON: the selected series, its selection reason and geometry notes, and the other series seen.</summary>
    public string? SeriesJson { get; init; }

    /// <summary>JSON: per-stage timings in seconds (ingest, scoring, aggregate, total).</summary>
    public string? TimingsJson { get; init; }

    /// <summary>JSON array of the most affected slices: index, lesion percent, overlay path.</summary>
    public string? TopSlicesJson { get; init; }

    public string? MontagePath { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset? IngestedAt { get; init; }

    /// <summary>
    /// When scoring began: the study's orchestration marked the row processing and dispatched its chunks (the first
    /// time; a re-run keeps it). Null on rows written before it was kept.
    /// </summary>
    public DateTimeOffset? ScoringStartedAt { get; init; }

    /// <summary>
    /// When scoring finished: the orchestration had every chunk's result (written with the diagnosis, so only on a
    /// completed study). Null on rows written before it was kept.
    /// </summary>
    public DateTimeOffset? ScoringFinishedAt { get; init; }

    public DateTimeOffset? CompletedAt { get; init; }

    /// <summary>
    /// Ingest attempts started for this study, counted by the write that marks the row processing (so an attempt
    /// whose process died counts too, and one that could not reach storage does not). Ingest gives up after
    /// <see cref="PipelineOptions.MaxIngestAttempts"/>.
    /// </summary>
    public int IngestAttempts { get; init; }

    /// <summary>The last failed ingest attempt's error (exception type and message, the upload's names masked): the reason given when ingest gives up.</summary>
    public string? IngestError { get; init; }

    /// <summary>
    /// The ingest attempt that holds a study not yet ingested (a token per attempt), until <see cref="IngestClaimExpiresAt"/>:
    /// taken by the write that counts the attempt, only when no other attempt holds it, renewed while the attempt runs
    /// and released when it ends. Another delivery (the blob trigger's, the minute sweep's, the local watcher's) leaves
    /// the study to the holder; a claim whose holder died expires, and the next delivery takes the study over.
    /// </summary>
    public string? IngestClaim { get; init; }

    /// <summary>When <see cref="IngestClaim"/> runs out unless its attempt renews it (the holder's clock).</summary>
    public DateTimeOffset? IngestClaimExpiresAt { get; init; }

    /// <summary>
    /// JSON: the <c>ingest</c> <see cref="UsageRecord"/> of the attempt that wrote the study ingested, written by that same
    /// claim-fenced write. Ingest records the usage from it once the row has landed, and a later delivery that finds the
    /// study ingested records it again (insert-if-absent), so an attempt whose result was thrown away bills nothing and
    /// one that died between the row and the usage loses nothing. Null on rows not ingested, or ingested before it was
    /// kept (their usage was recorded before the row).
    /// </summary>
    public string? IngestUsageJson { get; init; }

    /// <summary>
    /// JSON: the <c>scoring</c> <see cref="UsageRecord"/> the study is billed, written by the AggregateStudy write that
    /// says completed. The orchestration records it after that write; when that write fails for good (the usage table
    /// away for all of RecordUsage's retries), nothing re-runs the orchestration, and the hourly usage sweep
    /// (<c>UsageAutoClose</c>) records it from here (insert-if-absent: billed once however often, and whoever records it).
    /// Null on rows not completed, or completed before it was kept.
    /// </summary>
    public string? ScoringUsageJson { get; init; }

    /// <summary>
    /// The study event (<c>study.rejected</c>, <c>study.failed</c>) the write that settled the study owes its subscribers:
    /// written with that write (a reject's row, an upload-missing failure's, the watchdog's failure) and cleared once the
    /// notifier has taken it. Its upload gone (or no longer met), nothing else would send it if the process died in
    /// between: the upload sweep (<see cref="Ingest.IngestHandler.SweepExpiredUploadsAsync"/>, hourly in Azure, at
    /// <c>covidfn up</c>'s start and every sweep interval) sends what is still owed, and the notifier's delivery ids keep it
    /// once. Null when nothing is owed (and on rows written without a notifier).
    /// </summary>
    public string? EventOwed { get; init; }

    /// <summary>Optimistic-concurrency token of the stored row (null for a new record).</summary>
    public string? ETag { get; init; }
}

/// <summary>A row of <c>SliceResults</c> (PartitionKey "{tenant}|{studyId}", RowKey slice index D5).</summary>
public sealed record SliceResultRecord(
    string Tenant,
    string StudyId,
    int SliceIndex,
    int ChunkIndex,
    float LesionMeanProbability,
    float LesionFraction,
    long LesionPixels,
    long LungPixels,
    IReadOnlyList<float> ClassProbabilities,
    string? OverlayPath);

/// <summary>
/// A row of <c>Usage</c> (PartitionKey "{tenant}|{yyyy-MM}" of the study's billing month, RowKey "{studyId}|{stage}"):
/// one per study and stage, written insert-if-absent so duplicates count once. <see cref="At"/> is the stage's own time,
/// which may fall after the billing month (see <see cref="IUsageStore"/>).
/// </summary>
public sealed record UsageRecord(
    string Tenant,
    string StudyId,
    string Stage,
    DateTimeOffset At,
    int Slices,
    double CpuSeconds,
    double GpuSeconds,
    long BytesStored)
{
    /// <summary>
    /// Throws <see cref="ArgumentException"/> for a record that cannot be billed correctly: an invalid tenant (it is
    /// part of the partition key), an empty study or stage, no time (the default time would file the study under the
    /// year 1, where no query looks), or a negative or non-finite quantity (it would lower or poison the month's sum).
    /// The stores call it before writing anything.
    /// </summary>
    public static void Validate(UsageRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        StudyIds.RequireTenant(record.Tenant);
        ArgumentException.ThrowIfNullOrEmpty(record.StudyId, nameof(record));
        ArgumentException.ThrowIfNullOrEmpty(record.Stage, nameof(record));
        if (record.At == default)
        {
            throw new ArgumentException($"usage of {record.Tenant}/{record.StudyId} ({record.Stage}) has no time", nameof(record));
        }

        if (record.Slices < 0 || record.BytesStored < 0 || !IsBillableSeconds(record.CpuSeconds) || !IsBillableSeconds(record.GpuSeconds))
        {
            throw new ArgumentException(
                string.Create(System.Globalization.CultureInfo.InvariantCulture, $"usage of {record.Tenant}/{record.StudyId} ({record.Stage}) has a negative or non-finite quantity: {record.Slices} slices, CPU {record.CpuSeconds} s, GPU {record.GpuSeconds} s, {record.BytesStored} bytes"),
                nameof(record));
        }
    }

    private static bool IsBillableSeconds(double seconds) => double.IsFinite(seconds) && seconds >= 0;
}
