using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using CovidFunctions.Dicom;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging;
using CovidFunctions.Imaging.Archives;
using CovidFunctions.Imaging.Diagnostics;
using CovidFunctions.Imaging.Nifti;
using CovidFunctions.Imaging.Series;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Inference;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Orchestration.Activities;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CovidFunctions.Pipeline.Ingest;

/// <summary>
/// Flow step 1: turns one upload unit into de-identified tiles in <c>slices</c> and a started study orchestration,
/// or into a quarantined upload with a reason. Idempotent per unit: the study id and orchestration id are derived
/// from the upload path, a study whose tiles are already written is never re-tiled, and the orchestration is started
/// with <see cref="IStudyOrchestrationClient.StartIfAbsentAsync"/>. A rejected upload is deleted only after its
/// quarantine copy and reason are written. An ingested upload stays in <c>ct-uploads</c> until its study's results are
/// stored: the AggregateStudy activity deletes it then (or the retention sweep, <see cref="PipelineOptions.UploadRetention"/>
/// later), and the FailStudy activity moves it to quarantine with the reason if the study fails after ingest.
/// </summary>
/// <remarks>
/// Only content problems become rejects; storage and transport failures propagate, so the trigger retries the unit, up
/// to <see cref="PipelineOptions.MaxIngestAttempts"/> attempts counted in the Studies row: then the study fails with the
/// last error and its upload goes to quarantine (docs/design/failure-semantics.md, "Studies that could hang").
/// </remarks>
public sealed partial class IngestHandler
{
    /// <summary>The usage stage this handler records.</summary>
    public const string UsageStage = "ingest";

    /// <summary>The reason code in <c>reason.json</c> of an upload whose study failed after ingest.</summary>
    public const string StudyFailedReason = "study-failed";

    /// <summary>The reason code of an upload whose ingest failed on each of <see cref="PipelineOptions.MaxIngestAttempts"/> attempts.</summary>
    public const string IngestFailedReason = "ingest-failed";

    /// <summary>The reason code of an upload whose study the watchdog failed (<see cref="PipelineOptions.StuckStudyAge"/>).</summary>
    public const string StuckReason = "stuck-processing";

    /// <summary>How the row's reason of a study the watchdog failed begins (it tells that failure's quarantine code, <see cref="StuckReason"/>, when its move is finished later).</summary>
    private const string StuckReasonPrefix = "the study was still processing ";

    /// <summary>The reason code in the <c>skipped/reason.json</c> of an ingested study: its files not screened, each with why.</summary>
    public const string NotScreenedReason = "not-screened";

    /// <summary>The reason code of a blob written to an ingested upload after ingest read it: a new name in its folder, or (at the next look, by its version or time) one it read.</summary>
    public const string ReuploadAfterIngestReason = "reupload-after-ingest";

    /// <summary>The reason code of a blob ingest read that was written again under its name before completion: kept in <c>…/changed-{time}/</c>, never deleted unscreened.</summary>
    public const string ChangedAfterIngestReason = "changed-after-ingest";

    /// <summary>The reason code of a blob and a folder of one name (<c>lab/scan</c>, <c>lab/scan/</c>): the second upload is kept apart.</summary>
    public const string NameCollisionReason = "name-collision";

    /// <summary>
    /// The reason code of a study whose upload was deleted before ingest could read it: failed, with nothing to
    /// quarantine (the row's reason starts with it).
    /// </summary>
    public const string UploadMissingReason = "upload-missing";

    /// <summary>
    /// The reason code of an instance whose reading, de-identification or writing failed with an exception nobody
    /// expected (a defect on that file, not a refusal by the policy): it is kept in <c>skipped/</c> with this code, as
    /// <c>covidfn deid</c> reports it; when no instance of the upload could be screened because of it, the study's reject code.
    /// </summary>
    public const string InternalErrorReason = "internal-error";

    /// <summary>Slices decoded at once while tiling.</summary>
    public const int TilingParallelism = 2;

    private const string SlicesFolder = "tiles";

    /// <summary>The quarantine folder (under the study's) of the upload's files that were not screened.</summary>
    private const string NotScreenedFolder = "skipped";

    /// <summary>Skipped-instance notes kept in the Studies row (a table property holds at most 32 K characters).</summary>
    private const int MaxSkippedNotes = 100;

    /// <summary>Clock skew allowed between a blob's last-modified time and the ingest host's clock.</summary>
    private static readonly TimeSpan ReuploadTolerance = TimeSpan.FromMinutes(1);

    private static readonly HashSet<string> ImageExtensions = new([".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif"], StringComparer.OrdinalIgnoreCase);

    private readonly IBlobContainers _containers;
    private readonly IStudyStore _studies;
    private readonly IUsageStore _usage;
    private readonly IStudyOrchestrationClient _orchestrations;
    private readonly DeidentificationEngine _deidentification;
    private readonly Func<DicomFile, DeidOutcome> _deidentifyFile;
    private readonly PipelineOptions _options;
    private readonly ILogger<IngestHandler> _logger;
    private readonly TimeProvider _time;
    private readonly IStudyNotifier? _notifier;
    private readonly UploadReadKey _uploadReadKey;
    private readonly SeriesAssemblyOptions _assembly;

    /// <summary>
    /// <paramref name="assembly"/>: how uploads are assembled into a series and how far their zips may expand (the
    /// host's <c>Imaging</c> section, checked at start; null: <see cref="SeriesAssemblyOptions.Default"/>).
    /// </summary>
    public IngestHandler(
        IBlobContainers containers,
        IStudyStore studies,
        IUsageStore usage,
        IStudyOrchestrationClient orchestrations,
        DeidentificationEngine deidentification,
        IOptions<PipelineOptions> options,
        ILogger<IngestHandler> logger,
        TimeProvider time,
        IStudyNotifier? notifier = null,
        SeriesAssemblyOptions? assembly = null)
        : this(containers, studies, usage, orchestrations, deidentification, null, options, logger, time, notifier, assembly)
    {
    }

    /// <summary>
    /// As the public constructor, with the call that de-identifies one opened instance in place given:
    /// <paramref name="deidentifyFile"/> (null: <see cref="DeidentificationEngine.DeidentifyFile"/> of
    /// <paramref name="deidentification"/>, whose key also keys the upload read list).
    /// </summary>
    internal IngestHandler(
        IBlobContainers containers,
        IStudyStore studies,
        IUsageStore usage,
        IStudyOrchestrationClient orchestrations,
        DeidentificationEngine deidentification,
        Func<DicomFile, DeidOutcome>? deidentifyFile,
        IOptions<PipelineOptions> options,
        ILogger<IngestHandler> logger,
        TimeProvider time,
        IStudyNotifier? notifier = null,
        SeriesAssemblyOptions? assembly = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _containers = containers ?? throw new ArgumentNullException(nameof(containers));
        _studies = studies ?? throw new ArgumentNullException(nameof(studies));
        _usage = usage ?? throw new ArgumentNullException(nameof(usage));
        _orchestrations = orchestrations ?? throw new ArgumentNullException(nameof(orchestrations));
        _deidentification = deidentification ?? throw new ArgumentNullException(nameof(deidentification));
        _deidentifyFile = deidentifyFile ?? deidentification.DeidentifyFile;
        _uploadReadKey = UploadReadKey.From(deidentification);
        _options = options.Value;
        _logger = logger ?? throw new ArgumentNullException(nameof(logger));
        _time = time ?? throw new ArgumentNullException(nameof(time));
        _notifier = notifier;
        _assembly = assembly ?? SeriesAssemblyOptions.Default;
    }

    /// <summary>The tiles prefix of a study in the slices container.</summary>
    public static string TilesPrefixOf(string tenant, string studyId) => $"{tenant}/{studyId}/{SlicesFolder}";

    /// <summary>The quarantine folder of a study (uploads with an invalid tenant go under <see cref="UploadUnitPlanner.InvalidTenantQuarantine"/>).</summary>
    public static string QuarantinePrefixOf(UploadUnit unit)
    {
        ArgumentNullException.ThrowIfNull(unit);
        return $"{(unit.Rejection is null ? unit.Tenant : UploadUnitPlanner.InvalidTenantQuarantine)}/{unit.StudyId}";
    }

    /// <summary>Ingests one unit (see the class remarks for what is idempotent).</summary>
    public async Task<IngestOutcome> IngestAsync(UploadUnit unit, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(unit);
        if (unit.Rejection is not null)
        {
            var detail = $"upload {unit.UploadPath}: tenant '{unit.Tenant}' is not valid (use 1-40 of a-z, 0-9 and '-', as the first folder of the blob path)";
            return await RejectAsync(unit, unit.Rejection, detail, cancellationToken).ConfigureAwait(false);
        }

        var existing = await _studies.GetAsync(unit.Tenant, unit.StudyId, cancellationToken).ConfigureAwait(false);
        if (CollidingPath(existing, unit) is { } collidingPath)
        {
            return await NameCollisionAsync(unit, collidingPath, cancellationToken).ConfigureAwait(false);
        }

        if (existing?.IngestedAt is { } previouslyIngestedAt)
        {
            // A blob written after the study was ingested is a new upload to the same path, not a re-delivery: it would
            // map to the same (finished) study, so it is kept in quarantine rather than silently deleted.
            // A re-delivered event for a blob already deleted carries the time of delivery (the Function cannot read the
            // blob's own): only a blob that exists now is a new upload.
            // Only the blobs written after ingest are the new upload: in a folder, the others are the study's originals,
            // which stay (with the marker) until its results are stored or it fails.
            // A folder's read list says which blobs ingest read: any other is late, whatever its time (no clock-skew
            // margin), and so is a read one whose version (when the listing gives one) is not the one ingest read: it
            // was written again under its name. A single blob keeps the time rule too (not every event carries a version:
            // one for a blob already deleted does not).
            // Studies ingested before the list existed fall back to the times.
            var newest = unit.Blobs.Count == 0 ? DateTimeOffset.MinValue : unit.Blobs.Max(b => b.LastModified);
            var read = await UploadArchive.ReadListAsync(_containers, _uploadReadKey, unit.Tenant, unit.StudyId, unit.UploadPath, cancellationToken).ConfigureAwait(false);
            var lateBlobs = unit with { Blobs = [.. unit.Blobs.Where(b => IsLate(b, read, unit.Kind, previouslyIngestedAt))] };
            if (lateBlobs.Blobs.Count < unit.Blobs.Count)
            {
                lateBlobs = lateBlobs with { MarkerPath = null };
            }

            if (lateBlobs.Blobs.Count > 0 && await AnyBlobExistsAsync(lateBlobs, cancellationToken).ConfigureAwait(false))
            {
                var names = string.Join(", ", lateBlobs.Blobs.Take(5).Select(b => unit.RelativeName(b.Path))) + (lateBlobs.Blobs.Count > 5 ? $" and {lateBlobs.Blobs.Count - 5} more" : string.Empty);
                var detail = $"upload {unit.UploadPath} was written again at {newest:O} ({names}), after its study was ingested at {previouslyIngestedAt:O}; upload under a new name to screen it";
                return await RejectAsync(lateBlobs, ReuploadAfterIngestReason, detail, cancellationToken, $"{QuarantinePrefixOf(unit)}/reupload-{newest.UtcDateTime:yyyyMMddTHHmmssZ}", updateStudy: false).ConfigureAwait(false);
            }

            return await ResumeIngestedAsync(unit, existing, cancellationToken).ConfigureAwait(false);
        }

        // A study failed before it was ingested (by the watchdog, given up, or failed on an input defect) whose upload's move
        // to quarantine was cut short: the failed row is written first and names the upload until the move is done
        // (FailStudyActivity.FailAsync), so a process that died in between left the originals in ct-uploads, perhaps without
        // reason.json. Whoever meets the upload again finishes the move (the minute sweep, a re-delivery, the watcher).
        // Before, the counting write below reopened the deliberately failed study as a new attempt, and the first
        // failure's originals never reached quarantine.
        if (QuarantineMovePending(existing))
        {
            return await FinishQuarantineMoveAsync(unit, existing!, cancellationToken).ConfigureAwait(false);
        }

        // A study settled without being screened (rejected, or failed before it was ingested) whose path holds blobs again:
        // while its quarantine holds the first upload's originals and reason.json (quarantineRetentionDays in Azure), the
        // new upload is kept apart next to them (ingested or rejected in the study's place, it would overwrite that
        // evidence and reopen a settled study). Once the lifecycle rule has deleted it, nothing of the first attempt is
        // left but the row: the new upload is a new attempt of the study, ingested from a fresh row (created now,
        // attempts from one, no reason), not from the first attempt's state (before, the row was reopened: created
        // weeks ago, so the watchdog failed the new attempt as stuck at its first fault, its attempts counted on; a
        // given-up study's path kept every new upload apart for ever). A late event for the first upload (no blob at the
        // path) changes nothing on the row; it sends the study's outcome again, which the notifier delivers once.
        var newAttempt = false;
        if (SettledUnscreened(existing) && unit.Blobs.Count > 0)
        {
            var quarantined = await QuarantineReasonAsync(unit, cancellationToken).ConfigureAwait(false);
            var written = unit.Blobs.Max(b => b.LastModified);
            if (!await AnyBlobExistsAsync(unit, cancellationToken).ConfigureAwait(false))
            {
                // A late event (no blob at the path): a re-delivery of the upload that settled the study. The row is left
                // as it is, and the study's outcome is sent again (NotifySettledAsync).
                return await NotifySettledAsync(unit, existing!, cancellationToken).ConfigureAwait(false);
            }
            else if (quarantined is null)
            {
                newAttempt = true;
                Log.NewAttempt(_logger, unit.Tenant, unit.StudyId, existing!.Status);
            }
            else if (existing!.Status == StudyStatus.Failed || written > quarantined.At + ReuploadTolerance)
            {
                var (code, what) = existing.Status == StudyStatus.Rejected
                    ? ("reupload-after-reject", $"after its study was rejected at {quarantined.At:O}")
                    : ("reupload-after-failure", $"after its study failed at {quarantined.At:O}");
                var detail = $"upload {unit.UploadPath} was written again at {written:O}, {what} ({existing.Reason}); it was not screened: the study keeps its first outcome while that upload's originals and reason.json are kept in quarantine (quarantineRetentionDays), so upload under a new name to screen it now";
                return await RejectAsync(unit, code, detail, cancellationToken, $"{QuarantinePrefixOf(unit)}/reupload-{written.UtcDateTime:yyyyMMddTHHmmssZ}", updateStudy: false).ConfigureAwait(false);
            }
        }

        // Another attempt holds the study (the trigger's, a retry's, the sweep's, the watcher's; in this process or another):
        // it is left to that attempt, which records its own outcome and gives up by itself when it is the last allowed one.
        // Before, a second delivery started an attempt next to it: both counted, and the third gave the study up (upload
        // to quarantine, study failed) while the first still ran. The counting write below checks it again, atomically.
        if (LiveClaim(existing, _time.GetUtcNow()) is { } heldUntil)
        {
            return ClaimedElsewhere(unit, heldUntil);
        }

        // An ingest that failed on every attempt (storage away for good, a decoder bug outside the classified errors, a
        // process that dies) would leave the study processing for ever: the count in the row bounds it, across restarts.
        // Checked before the next attempt too, for attempts that died before they could give up themselves.
        // A study ingest failed at once on an input defect (FailOnInputDefectAsync) is settled the same way: its attempts
        // are not spent, but another one would only fail the same (and reopen the row), so a re-delivery does not make it.
        var attemptsSpent = !newAttempt && _options.MaxIngestAttempts > 0 && existing is { IngestedAt: null } && existing.IngestAttempts >= _options.MaxIngestAttempts
            && existing.Status is StudyStatus.Processing or StudyStatus.Failed;
        var failedOnDefect = !newAttempt && !attemptsSpent && existing is { IngestedAt: null, Status: StudyStatus.Failed }
            && await QuarantineReasonAsync(unit, cancellationToken).ConfigureAwait(false) is { Reason: IngestFailedReason };
        if ((attemptsSpent || failedOnDefect) && existing is not null)
        {
            // The last allowed attempt rejected the upload but died after its reason.json and before the row said rejected
            // (RejectAsync writes the row last): the reject is finished, not turned into 'ingest failed on each of N
            // attempt(s)' over the reject's own reason.json (before, giving up overwrote it, and the row said failed).
            if (attemptsSpent && existing.Status == StudyStatus.Processing
                && await QuarantineReasonAsync(unit, cancellationToken).ConfigureAwait(false) is { } cutReject && !IsFailureReason(cutReject.Reason))
            {
                return await RejectAsync(unit, cutReject.Reason, cutReject.Detail, cancellationToken).ConfigureAwait(false);
            }

            // Given up and settled: a new upload at the path was kept apart (or taken as a new attempt) above.
            return failedOnDefect
                ? await SettleFailedOnDefectAsync(unit, existing, cancellationToken).ConfigureAwait(false)
                : await GiveUpAsync(unit, existing, cancellationToken).ConfigureAwait(false);
        }

        // Ingest copies the upload to local disk: a unit over the limit is refused before that, by its declared size.
        var declaredBytes = unit.Blobs.Sum(b => Math.Max(0, b.Length));
        if (_options.MaxUploadBytes > 0 && declaredBytes > _options.MaxUploadBytes)
        {
            var detail = string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"upload {unit.UploadPath}: {declaredBytes} bytes in {unit.Blobs.Count} blob(s), over the limit of {_options.MaxUploadBytes} bytes (Pipeline:MaxUploadBytes); upload the series alone, or in parts as separate studies");
            return await RejectAsync(unit, "too-large", detail, cancellationToken).ConfigureAwait(false);
        }

        var started = _time.GetUtcNow();
        var stopwatch = Stopwatch.StartNew();
        // This study's compute only: per-thread CPU time of its de-identification, assembly and decoding sections
        // (other studies ingested by the same process at the same time are not counted). Where the platform has no
        // per-thread clock, the process-wide delta stands in (an overcount under concurrency).
        var cpu = new CpuTimeAccount();
        var cpuAtStart = Environment.CpuUsage.TotalTime;
        Log.IngestStarted(_logger, unit.Tenant, unit.StudyId, unit.Blobs.Count);

        // This write counts the attempt and takes the study's ingest claim: if storage is away it fails, and the attempt
        // is neither made nor counted. It is conditional (the row's ETag): a blob and a folder of one name racing to
        // create the row are told apart here too, and of two deliveries racing to start an attempt one takes the claim,
        // the other finds it live on its re-read and leaves the study to it.
        int attempt;
        var claimToken = Guid.NewGuid().ToString("N");
        try
        {
            attempt = (await _studies.UpdateAsync(unit.Tenant, unit.StudyId, row => CollidingPath(row, unit) is { } path
                ? throw new NameCollisionException(path)
                : LiveClaim(row, _time.GetUtcNow()) is { } until
                ? throw new ClaimHeldException(until)
                : row is { IngestedAt: not null }
                ? throw new IngestedMeanwhileException()
                : row is { EventOwed: { } owed }
                ? throw new EventStillOwedException(owed)
                : row is null || (newAttempt && SettledUnscreened(row))
                ? new StudyRecord { Tenant = unit.Tenant, StudyId = unit.StudyId, Status = StudyStatus.Processing, CreatedAt = started, UploadPath = unit.UploadPath, UploadKind = KindOf(unit), IngestAttempts = 1, IngestClaim = claimToken, IngestClaimExpiresAt = _time.GetUtcNow() + IngestClaimLease }
                : row with { Status = StudyStatus.Processing, Reason = null, UploadPath = unit.UploadPath, UploadKind = KindOf(unit), IngestAttempts = row.IngestAttempts + 1, IngestClaim = claimToken, IngestClaimExpiresAt = _time.GetUtcNow() + IngestClaimLease },
                cancellationToken).ConfigureAwait(false)).IngestAttempts;
        }
        catch (NameCollisionException ex)
        {
            return await NameCollisionAsync(unit, ex.OtherPath, cancellationToken).ConfigureAwait(false);
        }
        catch (ClaimHeldException ex)
        {
            return ClaimedElsewhere(unit, ex.Until);
        }
        catch (IngestedMeanwhileException)
        {
            // Another attempt finished since the row was read: this delivery is a re-delivery of an ingested upload now.
            return await IngestAsync(unit, cancellationToken).ConfigureAwait(false);
        }
        catch (EventStillOwedException ex)
        {
            // The row to be reopened (a new upload at the path of a study settled unscreened) still owes its settling
            // write's event (StudyRecord.EventOwed: that process died before notifying, and no sweep has sent it yet).
            // The counting write would replace the row, and the owed event with it: the new attempt's fresh row owes
            // nothing, and a study.failed or study.rejected sent later would be built from the new attempt's row (its
            // status, its CreatedAt in the delivery id). Before, it was dropped so, and no subscriber was told of the first
            // attempt's outcome. It is sent now, from the settled row, and cleared; then the delivery runs again. A send
            // that fails throws before anything is written (the row still owes it, the upload is still at its path), so
            // the trigger's retry, the minute sweep or the watcher meets both again.
            if (_notifier is null)
            {
                return EventOwedElsewhere(unit, ex.EventType);
            }

            await NotifyAsync(unit.Tenant, unit.StudyId, ex.EventType, cancellationToken).ConfigureAwait(false);
            Log.OwedEventSentBeforeReopen(_logger, unit.Tenant, unit.StudyId, ex.EventType);
            return await IngestAsync(unit, cancellationToken).ConfigureAwait(false);
        }

        // The attempt runs under Pipeline:IngestTimeLimit (below host.json's functionTimeout): an attempt that reaches it is
        // a failed, counted attempt naming the limit, not the host's cut (a cancellation of the caller's token, which is
        // not counted), so MaxIngestAttempts ends an ingest that cannot finish in time with a reason that says so.
        using var timeLimit = _options.IngestTimeLimit > TimeSpan.Zero ? new CancellationTokenSource(_options.IngestTimeLimit, _time) : null;
        using var attemptToken = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeLimit?.Token ?? CancellationToken.None);
        var stage = "downloading the upload";
        var claim = new ClaimRenewal(this, unit, claimToken, attemptToken.Token);
        DirectoryInfo? work = null;

        // Set once this attempt's fenced write says the study ingested: a failure after it (the usage, the orchestration
        // start) is still this attempt's to record, though the claim went with that write (FailedAttemptAsync).
        var ingestedHere = false;
        try
        {
            // Made inside the attempt: a temp disk that is full, missing or read-only fails the attempt like any other fault
            // (error recorded, claim released, retried). Before, it threw before this try: nothing recorded, and the claim's
            // renewal loop, never stopped, kept the study held for the life of the process.
            work = Directory.CreateTempSubdirectory("covidfn-ingest-");
            var versions = new Dictionary<string, string>(StringComparer.Ordinal);
            var downloaded = await DownloadAsync(unit, Path.Combine(work.FullName, "upload"), versions, claim.Token).ConfigureAwait(false);
            if (downloaded is null)
            {
                return await UploadMissingAsync(unit, claim.Token).ConfigureAwait(false);
            }

            var downloadSeconds = stopwatch.Elapsed.TotalSeconds;
            stage = "de-identifying and assembling the series";
            PreparedSeries prepared;
            try
            {
                prepared = await PrepareAsync(unit, downloaded, work.FullName, cpu, claim.Token).ConfigureAwait(false);
            }
            catch (IngestRejectedException ex)
            {
                return await RejectAsync(unit, ex.Code, ex.Detail, claim.Token).ConfigureAwait(false);
            }

            var deidSeconds = stopwatch.Elapsed.TotalSeconds - downloadSeconds;
            var tilesPrefix = TilesPrefixOf(unit.Tenant, unit.StudyId);
            var slicesStore = new CountingBlobStore(_containers.Get(PipelineNames.SlicesContainer));
            stage = "writing the tiles";
            TileManifest manifest;
            using (prepared.Series)
            {
                try
                {
                    // UIDs are already pseudonymised by de-identification (NIfTI has none), so they are kept as they are.
                    manifest = await SeriesTiles.WriteAsync(prepared.Series, slicesStore, tilesPrefix, uid => uid, TilingParallelism, cpu, claim.Token).ConfigureAwait(false);
                }
                catch (ImagingException ex)
                {
                    await UploadArchive.DeletePrefixAsync(_containers.Get(PipelineNames.SlicesContainer), tilesPrefix + "/", claim.Token).ConfigureAwait(false);
                    return await RejectAsync(unit, ReasonCode(ex), prepared.Clean(ex.Message), claim.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (!slicesStore.Failed && IsInputFault(ex))
                {
                    // Tiling decodes the slices and writes them: a failure while no write failed is the decoding's, the
                    // same on every retry. Any failure of the store (whatever its type) leaves this to the retry below.
                    throw new InputDefectException("the slices were decoded for tiling", prepared.Clean(ex.Message), ex);
                }
            }

            stage = "recording the ingested study";
            // Files not screened (refused by policy, unreadable, another series or study of the upload) are not lost when
            // the upload is deleted with the study's results: they are kept in quarantine, each named with why.
            await KeepNotScreenedAsync(unit, prepared.NotScreened, prepared.Clean, claim.Token).ConfigureAwait(false);

            // What ingest read is the study's upload: at completion only these blobs are deleted, each only as read; any
            // other is a late file, a changed one was written again (written before the row says ingested, so every
            // ingested study has one; a reject has none).
            await UploadArchive.WriteReadListAsync(_containers, _uploadReadKey, unit, versions, claim.Token).ConfigureAwait(false);
            var totalSeconds = stopwatch.Elapsed.TotalSeconds;
            var tileSeconds = totalSeconds - downloadSeconds - deidSeconds;
            var cpuSeconds = CpuTimeAccount.IsSupported ? cpu.Total.TotalSeconds : (Environment.CpuUsage.TotalTime - cpuAtStart).TotalSeconds;

            // The usage goes into the row with the fenced write below and is recorded only once that write has landed
            // (RecordIngestUsageAsync): an attempt whose result is thrown away (another attempt took the study over, or it
            // was given up or failed by the watchdog while this one stalled) bills nothing. Before, it was recorded ahead
            // of the fence: a study given up under a stalled attempt was billed an ingest that never landed, and a study
            // taken over was billed the lost attempt's figures (the store keeps the first record of a study and stage).
            var usage = new UsageRecord(unit.Tenant, unit.StudyId, UsageStage, started, manifest.SliceCount, cpuSeconds, 0, slicesStore.BytesWritten);

            var input = new StudyOrchestrationInput(unit.Tenant, unit.StudyId, tilesPrefix, manifest.SliceCount, _options.ChunkSize, _options.MaxChunkAttempts, _options.ChunkTimeout);
            var ingestedAt = _time.GetUtcNow();
            // The claim is released with it: from here on the study is ingested, and no attempt needs it. Written only while
            // the study is still this attempt's (compare-and-swap on the row): an attempt that outlived its claim (a paused
            // process, renewals failing past the lease) while another delivery took the study over or settled it records
            // nothing (StillHeldBy).
            var ingestedRow = await _studies.UpdateAsync(unit.Tenant, unit.StudyId, row => !StillHeldBy(row, claimToken) ? throw new ClaimLostException() : Released(RowOrNew(row, unit, started), claimToken) with
            {
                Status = row is not null && StudyStatus.IsTerminal(row.Status) ? row.Status : StudyStatus.Processing,
                UploadPath = unit.UploadPath,
                TilesPrefix = tilesPrefix,
                SliceCount = manifest.SliceCount,
                StudyPseudonym = prepared.StudyPseudonym,
                SeriesJson = prepared.SeriesJson,
                IngestedAt = ingestedAt,
                OrchestrationId = input.InstanceId,
                TimingsJson = MergeTimings(row?.TimingsJson, totalSeconds, downloadSeconds, deidSeconds, tileSeconds, cpuSeconds),

                // A row another attempt wrote ingested keeps that attempt's usage (it may be recorded already).
                IngestUsageJson = row is { IngestedAt: not null } ? row.IngestUsageJson : PipelineJson.Serialize(usage),
            }, claim.Token).ConfigureAwait(false);
            ingestedHere = true;
            await RecordIngestUsageAsync(ingestedRow, claim.Token).ConfigureAwait(false);

            // The upload is kept: tiles are not results, and a study that fails after ingest returns its original to
            // the quarantine (see the class summary).
            var orchestrationStarted = await _orchestrations.StartIfAbsentAsync(input, claim.Token).ConfigureAwait(false);
            Log.Ingested(_logger, unit.Tenant, unit.StudyId, manifest.SliceCount, totalSeconds, orchestrationStarted);
            return new IngestOutcome(unit.Tenant, unit.StudyId, IngestStatus.Ingested, manifest.SliceCount, orchestrationStarted);
        }
        catch (ClaimLostException)
        {
            // Found at the closing write: the study is another attempt's, or was settled before it was ingested.
            return await LostAtTheEndAsync(unit).ConfigureAwait(false);
        }
        catch (Exception) when (claim.Lost)
        {
            // This process stalled past the claim's lease and another delivery took the study over: its attempt decides,
            // so this one records nothing (no error, no count given back) and stops.
            return ClaimedElsewhere(unit, _time.GetUtcNow());
        }
        catch (InputDefectException ex)
        {
            return await FailOnInputDefectAsync(unit, attempt, claimToken, ex, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The host is stopping (a scale-in, a restart): not a failure of this upload, so the attempt is not counted,
            // and its claim is released so the next start ingests the study at once.
            await UncountAttemptAsync(unit, claimToken).ConfigureAwait(false);
            throw;
        }
        catch (Exception ex) when (timeLimit is { IsCancellationRequested: true } && !cancellationToken.IsCancellationRequested)
        {
            // The attempt reached Pipeline:IngestTimeLimit (whatever the interrupted call threw on its cancelled token):
            // counted and recorded with the limit and the upload's size. Retried like other faults, within MaxIngestAttempts:
            // an attempt's time is not the upload's alone (a throttled storage account, other ingests on the instance).
            var timeout = new TimeoutException(TimeLimitReason(_options.IngestTimeLimit, declaredBytes, unit.Blobs.Count, stage), ex);
            if (await FailedAttemptAsync(unit, attempt, claimToken, ingestedHere, timeout).ConfigureAwait(false) is { } gaveUp)
            {
                return gaveUp;
            }

            throw timeout;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // A cancellation this caller did not ask for (an SDK timeout) is a failed attempt like any other.
            if (await FailedAttemptAsync(unit, attempt, claimToken, ingestedHere, ex).ConfigureAwait(false) is { } gaveUp)
            {
                return gaveUp;
            }

            throw;
        }
        finally
        {
            await claim.DisposeAsync().ConfigureAwait(false);
            if (work is not null)
            {
                TryDeleteDirectory(work.FullName);
            }
        }
    }

    /// <summary>
    /// Whether the Function app's minute sweep must hand a single-blob unit (planned by
    /// <see cref="UploadUnitPlanner.PlanSweep"/>) to <see cref="IngestAsync"/>: one point read of the Studies row, so the
    /// uploads ingest has already recorded (kept in <c>ct-uploads</c> until their study settles, or for
    /// <see cref="PipelineOptions.UploadRetention"/> after it completed) cost one table read per sweep each, not a read
    /// list, an orchestration query or a download. Folder units and units with a bad tenant are always ingested, as
    /// before. See <see cref="SweepMustIngest"/> for the rule.
    /// </summary>
    public async Task<bool> SweepMustIngestAsync(UploadUnit unit, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(unit);
        if (unit.Kind != UploadUnitKind.SingleBlob || unit.Rejection is not null || unit.Blobs.Count == 0)
        {
            return true;
        }

        var row = await _studies.GetAsync(unit.Tenant, unit.StudyId, cancellationToken).ConfigureAwait(false);
        return SweepMustIngest(row, unit, _options, _time.GetUtcNow());
    }

    /// <summary>
    /// The sweep's rule for a single blob still in <c>ct-uploads</c>, from its study's row:
    /// <list type="bullet">
    /// <item>no row: no ingest ever recorded it (its event was lost or dead-lettered, or every delivery failed before the
    /// row): ingest it.</item>
    /// <item>a row of another upload (a blob and a folder of one name): ingest, which keeps it apart.</item>
    /// <item>written again after the study was ingested (beyond the clock-skew margin): ingest, which keeps the new upload
    /// apart (<c>reupload-after-ingest</c>).</item>
    /// <item><c>processing</c> and ingested: skipped, the orchestration is in flight and bounds itself (the watchdog
    /// fails it after <see cref="PipelineOptions.StuckStudyAge"/> if it never settles).</item>
    /// <item><c>processing</c> and not ingested, its ingest claim live (<see cref="StudyRecord.IngestClaim"/>): an attempt is
    /// running; skipped (ingest would leave it to that attempt anyway, which gives up by itself when it must).</item>
    /// <item><c>processing</c> and not ingested, its claim expired: the attempt's process died holding it; ingest takes
    /// the study over (one attempt more, or giving up at once when the attempts are spent) instead of the watchdog
    /// hours later.</item>
    /// <item><c>processing</c> and not ingested, no claim: the last attempt failed and released it (its delivery is
    /// retried by the trigger), or it ran before claims existed. Skipped, as before, until the attempts are spent
    /// (<see cref="PipelineOptions.MaxIngestAttempts"/>): then ingested, and the handler gives up at once (quarantine,
    /// <c>study.failed</c>) instead of waiting for the watchdog.</item>
    /// <item><c>completed</c>: skipped while <see cref="PipelineOptions.UploadRetention"/> keeps the upload (the hourly
    /// retention sweep settles it); with no retention the aggregate deletes it, so one still here is a cleanup cut
    /// short: ingest settles it.</item>
    /// <item>any other state (failed, rejected): the upload belongs in quarantine, so a blob still here is a new upload
    /// or a move cut short: ingest keeps it apart or finishes the move.</item>
    /// </list>
    /// Each "ingest" case ends with the blob gone from <c>ct-uploads</c> (or counted towards the bound), so it is not
    /// met again on every sweep.
    /// </summary>
    internal static bool SweepMustIngest(StudyRecord? row, UploadUnit unit, PipelineOptions options, DateTimeOffset now)
    {
        if (row is null || CollidingPath(row, unit) is not null)
        {
            return true;
        }

        if (row.IngestedAt is { } ingestedAt)
        {
            if (unit.Blobs.Max(b => b.LastModified) > ingestedAt + ReuploadTolerance)
            {
                return true;
            }

            return row.Status switch
            {
                StudyStatus.Processing => false,
                StudyStatus.Completed => options.UploadRetention <= TimeSpan.Zero,
                _ => true,
            };
        }

        if (row.Status != StudyStatus.Processing)
        {
            return true;
        }

        if (row is { IngestClaim: not null, IngestClaimExpiresAt: not null })
        {
            return LiveClaim(row, now) is null;
        }

        return options.MaxIngestAttempts > 0 && row.IngestAttempts >= options.MaxIngestAttempts;
    }

    /// <summary>
    /// Deletes the raw uploads of studies completed at least <see cref="PipelineOptions.UploadRetention"/> before
    /// <paramref name="now"/> (never one whose results are not stored yet; a rejected or failed study's upload is already
    /// in quarantine), after failing the stuck studies (<see cref="FailStuckStudiesAsync"/>), and sends the study events
    /// still owed (<see cref="StudyRecord.EventOwed"/>: a settling write whose process died before its notification).
    /// Returns how many uploads had blobs deleted.
    /// </summary>
    public async Task<int> SweepExpiredUploadsAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        // The hourly timer that runs this sweep also runs the stuck-study watchdog (no second timer to deploy).
        await FailStuckStudiesAsync(now, cancellationToken).ConfigureAwait(false);
        var cutoff = now - _options.UploadRetention;
        var swept = 0;

        // One pass over every study, for the owed events too (a study of any age can owe one). Not bounded by CreatedAt
        // as it was for retention alone: the Studies table filters that column server-side, reading every row anyway, so
        // the pass only returns the rows of the last retention period more. CompletedAt decides retention.
        await foreach (var study in _studies.QueryAsync(null, null, null, null, cancellationToken).ConfigureAwait(false))
        {
            if (study.EventOwed is { } owed)
            {
                await SendOwedEventAsync(study, owed, cancellationToken).ConfigureAwait(false);
            }

            if (study.Status != StudyStatus.Completed || study.CompletedAt is not { } completedAt || completedAt > cutoff || study.UploadPath is not { Length: > 0 } uploadPath)
            {
                continue;
            }

            var deleted = await UploadArchive.SettleCompletedAsync(_containers, _studies, _uploadReadKey, study.Tenant, study.StudyId, uploadPath, cancellationToken).ConfigureAwait(false);
            if (deleted > 0)
            {
                swept++;
                Log.UploadSwept(_logger, study.Tenant, study.StudyId, deleted);
            }
        }

        return swept;
    }

    /// <summary>
    /// The watchdog (run by the hourly sweep, <see cref="SweepExpiredUploadsAsync"/>): fails the studies still
    /// <c>processing</c> <see cref="PipelineOptions.StuckStudyAge"/> after they were created (never ingested) or
    /// ingested, whose orchestration is not running (ended without settling the study, as when FailStudy itself failed
    /// for good, or never started). A study whose orchestration is running, or whose state the client cannot tell, is
    /// left alone: the orchestration bounds itself. Each goes the way of every study failing after ingest: row failed
    /// with the reason, upload to quarantine with <c>reason.json</c>, then <c>study.failed</c>. Returns how many.
    /// </summary>
    public async Task<int> FailStuckStudiesAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (_options.StuckStudyAge <= TimeSpan.Zero)
        {
            return 0;
        }

        var cutoff = now - _options.StuckStudyAge;
        var stuck = new List<(StudyRecord Study, string Why)>();

        // A study is created before it is ingested, so CreatedAt <= cutoff bounds the query; IngestedAt decides.
        await foreach (var study in _studies.QueryAsync(null, StudyStatus.Processing, null, cutoff, cancellationToken).ConfigureAwait(false))
        {
            if (study.Status != StudyStatus.Processing || (study.IngestedAt ?? study.CreatedAt) > cutoff)
            {
                continue;
            }

            if (study.IngestedAt is null)
            {
                stuck.Add((study, "its ingest never finished"));
                continue;
            }

            var instanceId = study.OrchestrationId ?? StudyIds.OrchestrationId(study.Tenant, study.StudyId);
            if (await _orchestrations.IsRunningAsync(instanceId, cancellationToken).ConfigureAwait(false) == false)
            {
                stuck.Add((study, "its orchestration is not running (it ended without settling the study, or never started)"));
            }
        }

        var failed = 0;
        foreach (var (study, why) in stuck)
        {
            var reason = string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{StuckReasonPrefix}{_options.StuckStudyAge.TotalHours:0.##} h after it was {(study.IngestedAt is null ? "created" : "ingested")} (Pipeline:StuckStudyAge): {why}")
                + (study.IngestError is { } error ? $"; the last ingest error: {error}" : string.Empty);
            // The row is failed with study.failed owed in one write, made only while the study is as the query saw it (still
            // processing, not ingested since): a watchdog that dies after it, before the notification, leaves the event
            // owed, and the next sweep sends it (SendOwedEventAsync). Before, a study failed after ingest whose watchdog
            // died there was never notified: the minute sweep moved its upload to quarantine without the event. A study
            // that settled or was ingested meanwhile is left to whoever did it.
            try
            {
                await _studies.UpdateAsync(study.Tenant, study.StudyId, r => r is { Status: StudyStatus.Processing } && r.IngestedAt == study.IngestedAt
                    ? r with { Status = StudyStatus.Failed, Reason = reason, CompletedAt = now, EventOwed = Owed(StudyEventTypes.Failed, r) }
                    : throw new StudyMovedOnException(), cancellationToken).ConfigureAwait(false);
            }
            catch (StudyMovedOnException)
            {
                continue;
            }

            // FailStudy's way for the rest (the same failed row again, then the move): study.failed goes out once the row is
            // failed and before the upload's move (NotifyFailed), so a watchdog that dies after it leaves the row naming the
            // upload, still in ct-uploads, and the minute sweep finishes the move and sends the event too. Before, it was
            // sent after the move: a watchdog that died in between left a failed study, its path forgotten and its upload
            // in quarantine, that nothing would meet again, and no subscriber was ever told.
            if (await FailStudyActivity.FailAsync(_studies, _containers, study.Tenant, study.StudyId, reason, StuckReason, reason, now, null, NotifyFailed(study.Tenant, study.StudyId, cancellationToken), cancellationToken).ConfigureAwait(false))
            {
                failed++;
                Log.StuckFailed(_logger, study.Tenant, study.StudyId, why);
            }
        }

        return failed;
    }

    /// <summary>
    /// A failed attempt: its error goes into the row, and on the last allowed attempt ingest gives up here rather than
    /// leave it to a next attempt that may never come (Azure's blob trigger stops after 5 tries). Null: the caller
    /// rethrows so the trigger retries. If storage fails here too, nothing is recorded: the next attempt (or the
    /// watchdog) decides, and the original exception is the one the trigger sees.
    /// The write is fenced like the one that says ingested and the host-stop give-back: made only while the row is still
    /// this attempt's (its claim, the study processing and not ingested, or ingested by this attempt's own write;
    /// compare-and-swap on the row's ETag). An attempt
    /// that outlived its claim unnoticed (a paused process: no renewal ran) and fails after another delivery took the
    /// study over, or settled it, records nothing and gives nothing up (log event 119); the row is the other's. Before,
    /// its error was written onto the row whoever held it: the new holder's row carried the lost attempt's error (read as
    /// that study's last error if it was later given up), and a given-up row's error was overwritten.
    /// </summary>
    private async Task<IngestOutcome?> FailedAttemptAsync(UploadUnit unit, int attempt, string claimToken, bool ingestedHere, Exception ex)
    {
        // Messages can name the upload's files or their temporary copies: masked like every ingest log line and reason.
        var error = $"{ex.GetType().Name}: {UploadNames.Mask(ex.Message, unit)}";
        Log.AttemptFailed(_logger, unit.Tenant, unit.StudyId, attempt, _options.MaxIngestAttempts, error);
        try
        {
            // The claim is released with the error: the trigger's retry of this delivery must not find the study held.
            // An attempt that wrote the study ingested itself keeps its error on the row (the watchdog quotes it for a study
            // whose orchestration never started).
            var row = await _studies.UpdateAsync(unit.Tenant, unit.StudyId, r => (r is { Status: StudyStatus.Processing, IngestedAt: null } && r.IngestClaim == claimToken) || (ingestedHere && r is { IngestedAt: not null })
                ? Released(r, claimToken) with { IngestError = error }
                : throw new ClaimLostException(), CancellationToken.None).ConfigureAwait(false);
            if (_options.MaxIngestAttempts > 0 && attempt >= _options.MaxIngestAttempts && row.IngestedAt is null && row.Status == StudyStatus.Processing)
            {
                return await GiveUpAsync(unit, row, CancellationToken.None).ConfigureAwait(false);
            }
        }
        catch (ClaimLostException)
        {
            Log.FailureNotRecorded(_logger, unit.Tenant, unit.StudyId, attempt);
        }
        catch (Exception recordFailure) when (recordFailure is not OperationCanceledException)
        {
            Log.AttemptNotRecorded(_logger, unit.Tenant, unit.StudyId, recordFailure.GetType().Name);
        }

        return null;
    }

    /// <summary>
    /// The error of an attempt stopped at <see cref="PipelineOptions.IngestTimeLimit"/>: the limit, the upload's declared
    /// size and what the attempt was doing (no file names: the row's error and the logs name the study only).
    /// </summary>
    internal static string TimeLimitReason(TimeSpan limit, long bytes, int blobs, string stage) => string.Create(
        System.Globalization.CultureInfo.InvariantCulture,
        $"ingest did not finish within {Duration(limit)} (Pipeline:IngestTimeLimit; upload {Size(bytes)} in {blobs} blob(s)), stopped while {stage}");

    private static string Duration(TimeSpan span) => span switch
    {
        { TotalHours: >= 1 } when span.TotalMinutes % 60 == 0 => FormattableString.Invariant($"{span.TotalHours:0} h"),
        { TotalMinutes: >= 1 } => FormattableString.Invariant($"{span.TotalMinutes:0.##} min"),
        { TotalSeconds: >= 1 } => FormattableString.Invariant($"{span.TotalSeconds:0.##} s"),
        _ => FormattableString.Invariant($"{span.TotalMilliseconds:0.##} ms"),
    };

    private static string Size(long bytes) => bytes switch
    {
        >= 1L << 30 => FormattableString.Invariant($"{bytes / (double)(1L << 30):0.0} GiB"),
        >= 1L << 20 => FormattableString.Invariant($"{bytes / (double)(1L << 20):0.0} MiB"),
        >= 1L << 10 => FormattableString.Invariant($"{bytes / 1024.0:0.0} KiB"),
        _ => FormattableString.Invariant($"{bytes} bytes"),
    };

    /// <summary>
    /// A study-level defect a retry cannot change (<see cref="InputDefectException"/>): the study fails on this attempt
    /// rather than after <see cref="PipelineOptions.MaxIngestAttempts"/> identical ones, the way <see cref="GiveUpAsync"/>
    /// fails it (partial tiles deleted, row failed, upload to quarantine with <c>reason.json</c> <c>ingest-failed</c>,
    /// <c>study.failed</c> once), with the upload and the cause in the reason. A storage failure on the way propagates
    /// and the attempt is retried (the row, failed or not, then decides: see the entry checks in <see cref="IngestAsync"/>).
    /// Fenced on the attempt's claim like a failed attempt's error (<see cref="FailedAttemptAsync"/>): its error is
    /// written, and the study failed, only while the row is still this attempt's (its claim, processing, not ingested;
    /// compare-and-swap on the ETag), and that write renews the claim, so no delivery takes the study over while the
    /// failure is being recorded. An attempt that outlived its claim unnoticed (a paused process) and meets its defect
    /// after another delivery took the study over, or settled it, records nothing, fails nothing and sends nothing (log
    /// event 119); the row and the upload are the other's. Before, it wrote its error onto the new holder's row, deleted
    /// the tiles under the study's prefix (the holder's too), failed the study, moved the upload the holder was
    /// ingesting to quarantine and sent <c>study.failed</c>.
    /// </summary>
    private async Task<IngestOutcome> FailOnInputDefectAsync(UploadUnit unit, int attempt, string claimToken, InputDefectException ex, CancellationToken cancellationToken)
    {
        var cause = $"{ex.InnerException!.GetType().Name}: {ex.Message}";
        var detail = $"upload {unit.UploadPath}: ingest failed while {ex.Stage}, on a defect a retry cannot change (the same upload fails the same way): {cause}; not retried (attempt {attempt} of {_options.MaxIngestAttempts})";
        var masked = UploadNames.Mask(detail, unit);
        Log.InputDefect(_logger, unit.Tenant, unit.StudyId, ex.Stage, ex.InnerException.GetType().Name, UploadNames.Mask(ex.Message, unit), ex.InnerException.StackTrace ?? string.Empty);
        try
        {
            await _studies.UpdateAsync(unit.Tenant, unit.StudyId, r => r is { Status: StudyStatus.Processing, IngestedAt: null } && r.IngestClaim == claimToken
                ? r with { IngestError = UploadNames.Mask(cause, unit), IngestClaimExpiresAt = _time.GetUtcNow() + IngestClaimLease }
                : throw new ClaimLostException(), cancellationToken).ConfigureAwait(false);
        }
        catch (ClaimLostException)
        {
            Log.FailureNotRecorded(_logger, unit.Tenant, unit.StudyId, attempt);
            return await LostAtTheEndAsync(unit).ConfigureAwait(false);
        }

        await FailIngestAsync(unit, masked, detail, notify: true, cancellationToken).ConfigureAwait(false);
        return IngestFailed(unit, detail);
    }

    /// <summary>
    /// Fails the study for ingest (given up, or a defect a retry cannot change): its partial tiles are deleted, then the
    /// study fails the way every study failing after ingest does (<see cref="FailStudyActivity.FailAsync(IStudyStore, IBlobContainers, string, string, string, string, string, DateTimeOffset, string?, Func{Task}?, CancellationToken)"/>: the row failed
    /// with <paramref name="rowReason"/>, the upload to quarantine with <c>reason.json</c> <c>ingest-failed</c> and
    /// <paramref name="detail"/>, its path forgotten). With <paramref name="notify"/>, <c>study.failed</c> is sent once the
    /// row is failed and before the move, while the row still names the upload (<see cref="NotifyFailed"/>). True when the
    /// row is failed (false: it was completed or rejected, and is left so).
    /// </summary>
    private async Task<bool> FailIngestAsync(UploadUnit unit, string rowReason, string detail, bool notify, CancellationToken cancellationToken)
    {
        await UploadArchive.DeletePrefixAsync(_containers.Get(PipelineNames.SlicesContainer), TilesPrefixOf(unit.Tenant, unit.StudyId) + "/", cancellationToken).ConfigureAwait(false);
        return await FailStudyActivity.FailAsync(_studies, _containers, unit.Tenant, unit.StudyId, rowReason, IngestFailedReason, detail, _time.GetUtcNow(), unit.UploadPath,
            notify ? NotifyFailed(unit.Tenant, unit.StudyId, cancellationToken) : null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Sends <c>study.failed</c> for a study failed before it was ingested, run by <see cref="FailStudyActivity.FailAsync(IStudyStore, IBlobContainers, string, string, string, string, string, DateTimeOffset, string?, Func{Task}?, CancellationToken)"/>
    /// once the row is failed and before the upload's move: a process that dies between the two leaves the row naming the
    /// upload, still in <c>ct-uploads</c>, and whoever meets it again (the minute sweep, a re-delivery, the watcher)
    /// finishes the move and sends the event (<see cref="FinishQuarantineMoveAsync"/>; the notifier delivers once).
    /// Before, the event was sent after the move: a process that died in between left it unsent for good, as nothing
    /// meets a moved upload again. Null without a notifier.
    /// </summary>
    private Func<Task>? NotifyFailed(string tenant, string studyId, CancellationToken cancellationToken) => _notifier is null
        ? null
        : () => NotifyAsync(tenant, studyId, StudyEventTypes.Failed, cancellationToken);

    /// <summary>
    /// Hands <paramref name="eventType"/> to the notifier, then clears it from the row when the row owes it
    /// (<see cref="StudyRecord.EventOwed"/>): a process that dies in between leaves it owed, and the sweep sends it again
    /// (the notifier's delivery ids keep it once). Nothing without a notifier.
    /// </summary>
    private async Task NotifyAsync(string tenant, string studyId, string eventType, CancellationToken cancellationToken)
    {
        if (_notifier is null)
        {
            return;
        }

        await _notifier.NotifyAsync(tenant, studyId, eventType, cancellationToken).ConfigureAwait(false);
        try
        {
            await _studies.UpdateAsync(tenant, studyId, r => r is { } row && row.EventOwed == eventType ? row with { EventOwed = null } : throw new NothingOwedException(), cancellationToken).ConfigureAwait(false);
        }
        catch (NothingOwedException)
        {
            // Nothing owed (a row written before owed events existed, or one another process cleared): no write.
        }
    }

    /// <summary>
    /// What a settling write puts in <see cref="StudyRecord.EventOwed"/>: <paramref name="eventType"/> when this handler
    /// has a notifier to send it (and clear it), else what the row held.
    /// </summary>
    private string? Owed(string eventType, StudyRecord? row) => _notifier is null ? row?.EventOwed : eventType;

    /// <summary>
    /// The sweep's send of an event a settling write owes (<see cref="StudyRecord.EventOwed"/>) whose process died before
    /// its notification: a reject or an upload-missing failure (its upload already gone, so no delivery or watcher meets
    /// it again), a watchdog failure. Sent and cleared as the settling write would have (<see cref="NotifyAsync"/>). A
    /// failure to send is logged and left owed for the next sweep; the other studies go on.
    /// </summary>
    private async Task SendOwedEventAsync(StudyRecord study, string eventType, CancellationToken cancellationToken)
    {
        if (_notifier is null)
        {
            return;
        }

        try
        {
            await NotifyAsync(study.Tenant, study.StudyId, eventType, cancellationToken).ConfigureAwait(false);
            Log.OwedEventSent(_logger, study.Tenant, study.StudyId, eventType);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Log.OwedEventNotSent(_logger, study.Tenant, study.StudyId, eventType, ex.GetType().Name);
        }
    }

    /// <summary>
    /// A handler without a notifier (no webhooks: a host built without them) that meets a row still owing its event where
    /// a new upload would reopen the study. Reopening would replace the row, and the owed event with it, silently: the
    /// storage may later be served by a host that sends webhooks (<c>covidfn up</c> on the same data folder, the Function
    /// app on the same account), which would then find nothing owed. Sending it is not this handler's to do, and carrying
    /// it to the new attempt's row would send it built from that row (its status, its CreatedAt in the delivery id). So
    /// nothing is written: the row keeps its outcome and owed event, the upload stays at its path, and the outcome says why,
    /// naming the study; the next host with a notifier that meets the upload (or its sweep) sends the event, then ingests.
    /// </summary>
    private IngestOutcome EventOwedElsewhere(UploadUnit unit, string eventType)
    {
        Log.EventOwedNotReopened(_logger, unit.Tenant, unit.StudyId, eventType);
        return new IngestOutcome(unit.Tenant, unit.StudyId, IngestStatus.InProgress, 0, false, EventOwedReason,
            $"study {unit.StudyId} still owes {eventType} to its webhook subscribers (the process that settled it died before sending it), and this host sends no webhooks: the study was not reopened and upload {unit.UploadPath} was left at its path; a host that sends them (covidfn up, the Function app) sends the event, then ingests the upload");
    }

    private static IngestOutcome IngestFailed(UploadUnit unit, string detail) =>
        new(unit.Tenant, unit.StudyId, IngestStatus.Failed, 0, false, IngestFailedReason, detail);

    /// <summary>
    /// Whether a blob at an ingested upload's path is new to it: not in its read list, or in it with another version
    /// than ingest read (when the listing gives one); without a list, or for a single blob, written after the ingest
    /// (beyond the clock-skew margin).
    /// </summary>
    private static bool IsLate(UploadBlob blob, UploadReadSet? read, UploadUnitKind kind, DateTimeOffset ingestedAt)
    {
        var writtenAfter = blob.LastModified > ingestedAt + ReuploadTolerance;
        if (read is null)
        {
            return writtenAfter;
        }

        var changed = !read.Contains(blob.Path) || (blob.Version is { } now && read.VersionOf(blob.Path) is { } version && now != version);
        return changed || (kind == UploadUnitKind.SingleBlob && writtenAfter);
    }

    /// <summary>
    /// Whether the attempt holding <paramref name="token"/> may still write the study ingested: no other attempt holds
    /// its claim (one whose claim ran out unrenewed was taken over), and nobody settled it before it was ingested (given
    /// up by a delivery that found the claim expired and the attempts spent, failed by the watchdog, rejected). Before,
    /// such an attempt wrote a study failed as <c>ingest-failed</c> (its upload in quarantine) ingested, with its tiles
    /// and series, and started its orchestration. A claim released since (the other attempt ended) or an ingested row
    /// (ingest is idempotent) leaves the write to it.
    /// </summary>
    private static bool StillHeldBy(StudyRecord? row, string token) => row is null
        || ((row.IngestClaim is null || row.IngestClaim == token) && !(row.IngestedAt is null && row.Status is StudyStatus.Failed or StudyStatus.Rejected));

    /// <summary>
    /// An attempt that found at its closing write that the study is no longer its own (<see cref="StillHeldBy"/>):
    /// nothing is recorded. A study settled before it was ingested loses what this attempt wrote in <c>slices</c> (tiles,
    /// read list: nothing reads them); the outcome is then the study's; otherwise the other attempt holds it.
    /// </summary>
    private async Task<IngestOutcome> LostAtTheEndAsync(UploadUnit unit)
    {
        var row = await _studies.GetAsync(unit.Tenant, unit.StudyId, CancellationToken.None).ConfigureAwait(false);
        if (row is { IngestedAt: null, Status: StudyStatus.Failed or StudyStatus.Rejected })
        {
            await UploadArchive.DeletePrefixAsync(_containers.Get(PipelineNames.SlicesContainer), $"{unit.Tenant}/{unit.StudyId}/", CancellationToken.None).ConfigureAwait(false);
            Log.SettledUnderAttempt(_logger, unit.Tenant, unit.StudyId, row.Status);
            return new IngestOutcome(unit.Tenant, unit.StudyId, row.Status == StudyStatus.Rejected ? IngestStatus.Rejected : IngestStatus.Failed, 0, false, row.Status,
                $"study {unit.StudyId} was {row.Status} ({row.Reason}) while this ingest attempt ran, after its claim ran out; the attempt recorded nothing");
        }

        Log.ClaimLost(_logger, unit.Tenant, unit.StudyId);
        return ClaimedElsewhere(unit, row?.IngestClaimExpiresAt ?? _time.GetUtcNow());
    }

    /// <summary>
    /// Whether the study failed before it was ingested and its upload's move to quarantine is not done: the row still
    /// names the upload (<see cref="FailStudyActivity.FailAsync(IStudyStore, IBlobContainers, string, string, string, string, string, DateTimeOffset, string?, Func{Task}?, CancellationToken)"/> writes the failed row first and forgets the path only
    /// once the move is done). A study failed because its upload was missing keeps the path with nothing to move.
    /// </summary>
    private static bool QuarantineMovePending(StudyRecord? row) => row is { Status: StudyStatus.Failed, IngestedAt: null, UploadPath: not null }
        && !FailedForAMissingUpload(row);

    /// <summary>Whether a quarantine reason code is a failed study's (given up, failed after ingest, stuck), not a reject's.</summary>
    private static bool IsFailureReason(string code) => code is StudyFailedReason or IngestFailedReason or StuckReason;

    /// <summary>
    /// Finishes the move to quarantine of a study that failed before it was ingested (<see cref="QuarantineMovePending"/>)
    /// and tells its subscribers, as the failure would have: the upload's blobs still in <c>ct-uploads</c> are copied to
    /// <c>quarantine/{tenant}/{study}/original/</c> with <c>reason.json</c>, deleted each as copied, and the path
    /// forgotten (<see cref="UploadArchive.SettleAsync"/>). The row's failure is left as it is: no new attempt, no new
    /// reason. The <c>reason.json</c> the cut move wrote is kept when there is one (its detail names the upload
    /// unmasked); otherwise it is written from the row: the code from who failed the study (<see cref="StuckReason"/> or
    /// <see cref="IngestFailedReason"/>), the detail the row's reason (its names masked). <c>study.failed</c> is sent
    /// again (deliveries are claimed once, and the cut failure may not have sent it). Safe to repeat.
    /// </summary>
    private async Task<IngestOutcome> FinishQuarantineMoveAsync(UploadUnit unit, StudyRecord row, CancellationToken cancellationToken)
    {
        var uploadPath = row.UploadPath!;
        var written = await QuarantineReasonAsync(unit, cancellationToken).ConfigureAwait(false);
        var reason = written is { } kept && IsFailureReason(kept.Reason) && kept.UploadPath == uploadPath
            ? kept
            : new QuarantineReason(unit.Tenant, unit.StudyId, uploadPath,
                row.Reason?.StartsWith(StuckReasonPrefix, StringComparison.Ordinal) == true ? StuckReason : IngestFailedReason,
                row.Reason ?? "the study failed before it was ingested", _time.GetUtcNow());
        var moved = await UploadArchive.SettleAsync(_containers, _studies, unit.Tenant, unit.StudyId, uploadPath, reason, cancellationToken).ConfigureAwait(false);
        Log.QuarantineMoveFinished(_logger, unit.Tenant, unit.StudyId, reason.Reason, moved);
        await NotifyAsync(unit.Tenant, unit.StudyId, StudyEventTypes.Failed, cancellationToken).ConfigureAwait(false);

        return new IngestOutcome(unit.Tenant, unit.StudyId, IngestStatus.Failed, 0, false, reason.Reason, reason.Detail);
    }

    /// <summary>
    /// Whether the study was settled without being screened and its upload moved away: rejected, or failed before it was
    /// ingested with its upload quarantined (path forgotten) or missing (<see cref="UploadMissingReason"/>). A blob at
    /// its path is then a new upload (<see cref="IngestAsync"/>: kept apart while the quarantine holds the first one's
    /// evidence, a new attempt after).
    /// </summary>
    private static bool SettledUnscreened(StudyRecord? row) => row is { IngestedAt: null }
        && (row.Status == StudyStatus.Rejected
            || (row.Status == StudyStatus.Failed && (row.UploadPath is null || FailedForAMissingUpload(row))));

    /// <summary>A row failed as <see cref="UploadMissingReason"/> (its reason as <see cref="UploadMissingAsync"/> writes
    /// it): it keeps its upload path, but there is nothing to move to quarantine.</summary>
    private static bool FailedForAMissingUpload(StudyRecord row) => row.Reason?.StartsWith(UploadMissingReason + ":", StringComparison.Ordinal) == true;

    /// <summary>
    /// A delivery for a study settled without being screened (rejected, or failed before it was ingested), with no blob
    /// at its path now: a re-delivery of the upload that settled it (the trigger retrying a delivery whose process died,
    /// a duplicate event). Nothing is written to the row. The study's outcome (<c>study.rejected</c>,
    /// <c>study.failed</c>) is handed to the notifier again: the process that settled it may have died after its last
    /// write and before the notification (the quarantine move done, the row settled), and the notifier delivers once per
    /// (subscription, study attempt, event), so when it was sent this sends nothing. Before, a failed study's
    /// re-delivery sent nothing (the notification was lost), and a rejected one's was re-run as a new attempt: counted
    /// on the row (<see cref="StudyRecord.IngestAttempts"/>), the row processing until the reject was written again.
    /// </summary>
    private async Task<IngestOutcome> NotifySettledAsync(UploadUnit unit, StudyRecord row, CancellationToken cancellationToken)
    {
        await NotifyAsync(unit.Tenant, unit.StudyId, row.Status == StudyStatus.Rejected ? StudyEventTypes.Rejected : StudyEventTypes.Failed, cancellationToken).ConfigureAwait(false);
        return AlreadySettled(unit, row);
    }

    /// <summary>The outcome of a delivery for a study settled without being screened, with no blob at its path now.</summary>
    private static IngestOutcome AlreadySettled(UploadUnit unit, StudyRecord row) =>
        new(unit.Tenant, unit.StudyId, row.Status == StudyStatus.Rejected ? IngestStatus.Rejected : IngestStatus.Failed, 0, false, row.Status,
            $"study {unit.StudyId} was {row.Status} before ({row.Reason}) and no blob of upload {unit.UploadPath} exists now (a late event)");

    /// <summary>The study's row, or a new one for the unit when there is none yet (what an update of a missing row starts from).</summary>
    private static StudyRecord RowOrNew(StudyRecord? row, UploadUnit unit, DateTimeOffset createdAt) =>
        row ?? new StudyRecord { Tenant = unit.Tenant, StudyId = unit.StudyId, CreatedAt = createdAt, UploadKind = KindOf(unit) };

    /// <summary>The <see cref="StudyRecord.UploadKind"/> of a unit.</summary>
    private static string KindOf(UploadUnit unit) => unit.Kind == UploadUnitKind.Folder ? "folder" : "blob";

    /// <summary>
    /// The path of another upload that owns the unit's study row, or null: study ids trim the '/', so a blob
    /// <c>lab/scan</c> and a folder <c>lab/scan/</c> share one (the ids of studies in flight cannot change). The row's
    /// path tells them apart while it is kept, its upload kind after that; rows from before the kind was kept cannot.
    /// </summary>
    private static string? CollidingPath(StudyRecord? row, UploadUnit unit)
    {
        if (row?.UploadPath is { } path && path != unit.UploadPath)
        {
            return path;
        }

        return row?.UploadKind is { } kind && kind != KindOf(unit)
            ? (unit.Kind == UploadUnitKind.Folder ? unit.UploadPath.TrimEnd('/') : unit.UploadPath + "/")
            : null;
    }

    /// <summary>
    /// A blob and a folder of one name: the second to arrive is quarantined under <c>…/name-collision-{time}/</c> with
    /// reason <c>name-collision</c>, naming both paths, and never screened in the first one's place (which would answer
    /// "already ingested" for it, and delete its files with the first study's upload). The first study is left alone.
    /// A late event for a blob already gone writes nothing.
    /// </summary>
    private async Task<IngestOutcome> NameCollisionAsync(UploadUnit unit, string otherPath, CancellationToken cancellationToken)
    {
        if (unit.Blobs.Count == 0 || !await AnyBlobExistsAsync(unit, cancellationToken).ConfigureAwait(false))
        {
            return new IngestOutcome(unit.Tenant, unit.StudyId, IngestStatus.Rejected, 0, false, NameCollisionReason, $"upload {unit.UploadPath} has the name of upload {otherPath}; none of its blobs exists now (kept apart already, or a late event)");
        }

        var written = unit.Blobs.Max(b => b.LastModified);
        var (kind, otherKind) = unit.Kind == UploadUnitKind.Folder ? ("folder", "blob") : ("blob", "folder");
        var detail = $"upload {unit.UploadPath} (a {kind}) has the name of the {otherKind} upload {otherPath}, whose study it would share (study ids ignore a trailing '/'); it was not screened: upload it under another name";
        return await RejectAsync(unit, NameCollisionReason, detail, cancellationToken, $"{QuarantinePrefixOf(unit)}/name-collision-{written.UtcDateTime:yyyyMMddTHHmmssZ}", updateStudy: false).ConfigureAwait(false);
    }

    /// <summary>
    /// A re-delivery for a study that failed at once on an input defect: settled again as it was failed
    /// (<see cref="FailIngestAsync"/>, as a re-delivery after giving up is: an upload still at its path, left by a process
    /// that died mid-way, goes to quarantine with the same reason), with no new attempt and no second <c>study.failed</c>.
    /// </summary>
    private async Task<IngestOutcome> SettleFailedOnDefectAsync(UploadUnit unit, StudyRecord row, CancellationToken cancellationToken)
    {
        var reason = await QuarantineReasonAsync(unit, cancellationToken).ConfigureAwait(false);
        var detail = reason?.Detail ?? row.Reason ?? "ingest failed on a defect a retry cannot change";
        await FailIngestAsync(unit, row.Reason ?? UploadNames.Mask(detail, unit), detail, notify: false, cancellationToken).ConfigureAwait(false);
        return IngestFailed(unit, detail);
    }

    /// <summary>The unit's quarantine <c>reason.json</c> (the study's own, not a kept-apart upload's); null when there is none.</summary>
    private async Task<QuarantineReason?> QuarantineReasonAsync(UploadUnit unit, CancellationToken cancellationToken)
    {
        Stream stream;
        try
        {
            stream = await _containers.Get(PipelineNames.QuarantineContainer).OpenReadAsync(QuarantinePrefixOf(unit) + "/reason.json", cancellationToken).ConfigureAwait(false);
        }
        catch (FileNotFoundException)
        {
            return null;
        }

        await using (stream.ConfigureAwait(false))
        {
            return await JsonSerializer.DeserializeAsync<QuarantineReason>(stream, PipelineJson.Options, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<bool> AnyBlobExistsAsync(UploadUnit unit, CancellationToken cancellationToken)
    {
        var uploads = _containers.Get(PipelineNames.UploadsContainer);
        foreach (var blob in unit.Blobs)
        {
            if (await uploads.ExistsAsync(blob.Path, cancellationToken).ConfigureAwait(false))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Records the <c>ingest</c> usage an ingested row carries (<see cref="StudyRecord.IngestUsageJson"/>), insert-if-absent
    /// on tenant, study and stage: by the attempt whose fenced write landed it, and by any later delivery that finds the
    /// study ingested (the attempt may have died in between). Rows ingested before the usage was kept in them had it
    /// recorded before the row: nothing to do.
    /// </summary>
    private async Task RecordIngestUsageAsync(StudyRecord row, CancellationToken cancellationToken)
    {
        if (row is { IngestedAt: not null, IngestUsageJson: { Length: > 0 } json })
        {
            await _usage.TryRecordAsync(PipelineJson.Deserialize<UsageRecord>(json), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Gives back the attempt a host stop interrupted (it was not the upload's failure) and releases its claim, only while
    /// the row is still that attempt's: its claim, the study not ingested nor settled (compare-and-swap on the row's
    /// ETag). A row another attempt holds now (this one stalled past its lease and was taken over) or one written since
    /// (ingested, given up) is left as it is. Before, the count was decremented whoever held the row: a stopped attempt
    /// gave back the attempt that took the study over, and the study got one attempt more than
    /// <see cref="PipelineOptions.MaxIngestAttempts"/>.
    /// </summary>
    private async Task UncountAttemptAsync(UploadUnit unit, string claimToken)
    {
        try
        {
            await _studies.UpdateAsync(unit.Tenant, unit.StudyId, r => r is { Status: StudyStatus.Processing, IngestedAt: null } && r.IngestClaim == claimToken
                ? Released(r, claimToken) with { IngestAttempts = Math.Max(0, r.IngestAttempts - 1) }
                : throw new ClaimLostException(), CancellationToken.None).ConfigureAwait(false);
        }
        catch (ClaimLostException)
        {
            Log.NotGivenBack(_logger, unit.Tenant, unit.StudyId);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Counted then: one attempt less before ingest gives up, never a study left processing.
            Log.AttemptNotRecorded(_logger, unit.Tenant, unit.StudyId, ex.GetType().Name);
        }
    }

    /// <summary>
    /// Ingest failed on each of <see cref="PipelineOptions.MaxIngestAttempts"/> attempts: the partial tiles are
    /// deleted, and the study fails the way every study failing after ingest does (<see cref="FailStudyActivity.FailAsync(IStudyStore, IBlobContainers, string, string, string, string, string, DateTimeOffset, string?, Func{Task}?, CancellationToken)"/>:
    /// row failed with the reason, the upload to quarantine with the last error in <c>reason.json</c>, its path
    /// forgotten), then <c>study.failed</c> is sent, once: a late re-delivery settles a re-written upload the same way.
    /// </summary>
    private async Task<IngestOutcome> GiveUpAsync(UploadUnit unit, StudyRecord row, CancellationToken cancellationToken)
    {
        var lastError = row.IngestError ?? "none was recorded (the process ended during the attempt, or storage failed with it)";
        var detail = $"ingest failed on each of {row.IngestAttempts} attempt(s) (Pipeline:MaxIngestAttempts {_options.MaxIngestAttempts}); the last error: {lastError}";
        var alreadyFailed = row.Status == StudyStatus.Failed;
        var failed = await FailIngestAsync(unit, detail, detail, notify: !alreadyFailed, cancellationToken).ConfigureAwait(false);
        if (failed && !alreadyFailed)
        {
            Log.GaveUp(_logger, unit.Tenant, unit.StudyId, row.IngestAttempts, lastError);
        }

        return IngestFailed(unit, detail);
    }

    private async Task<IngestOutcome> ResumeIngestedAsync(UploadUnit unit, StudyRecord study, CancellationToken cancellationToken)
    {
        // Tiles and row are written: only the usage, the orchestration start and the upload cleanup can be outstanding.
        // The usage first, whatever the study's state (its ingest landed): the attempt that wrote the row may have died
        // before recording it. Insert-if-absent, so a study whose usage is recorded is not billed twice.
        await RecordIngestUsageAsync(study, cancellationToken).ConfigureAwait(false);

        // A study in a terminal state is not started again (its instance may have been purged, and it is done).
        var started = false;
        if (!StudyStatus.IsTerminal(study.Status) && study.TilesPrefix is { } tilesPrefix)
        {
            var input = new StudyOrchestrationInput(study.Tenant, study.StudyId, tilesPrefix, study.SliceCount, _options.ChunkSize, _options.MaxChunkAttempts, _options.ChunkTimeout);
            started = await _orchestrations.StartIfAbsentAsync(input, cancellationToken).ConfigureAwait(false);
        }

        // The upload outlives ingest until the study is settled; a re-delivery after that settles it as the orchestration
        // would have (the activity may have run before this upload was written back, or crashed before its cleanup).
        // With a read list, only what ingest read and is unchanged is deleted (a blob written again is kept in quarantine).
        if (study.Status == StudyStatus.Completed && _options.UploadRetention <= TimeSpan.Zero)
        {
            if (await UploadArchive.ReadListAsync(_containers, _uploadReadKey, unit.Tenant, unit.StudyId, unit.UploadPath, cancellationToken).ConfigureAwait(false) is { } read)
            {
                await UploadArchive.DeleteReadAsync(_containers, read, unit.Tenant, unit.StudyId, unit.UploadPath, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await DeleteUploadAsync(unit, cancellationToken).ConfigureAwait(false);
            }
        }
        else if (study.Status == StudyStatus.Failed)
        {
            var reason = new QuarantineReason(unit.Tenant, unit.StudyId, unit.UploadPath, StudyFailedReason, study.Reason ?? "the study failed after ingest", _time.GetUtcNow());
            await UploadArchive.QuarantineAsync(_containers, reason, cancellationToken).ConfigureAwait(false);
        }

        Log.AlreadyIngested(_logger, unit.Tenant, unit.StudyId, started);
        return new IngestOutcome(unit.Tenant, unit.StudyId, IngestStatus.AlreadyIngested, study.SliceCount, started);
    }

    /// <summary>
    /// A blob of the unit disappeared before it was read: another delivery of the same unit may have finished it
    /// (ingested, or quarantined it); otherwise the study fails with the reason.
    /// </summary>
    private async Task<IngestOutcome> UploadMissingAsync(UploadUnit unit, CancellationToken cancellationToken)
    {
        var study = await _studies.GetAsync(unit.Tenant, unit.StudyId, cancellationToken).ConfigureAwait(false);
        if (study?.IngestedAt is not null)
        {
            return await ResumeIngestedAsync(unit, study, cancellationToken).ConfigureAwait(false);
        }

        var quarantine = _containers.Get(PipelineNames.QuarantineContainer);
        var reasonPath = QuarantinePrefixOf(unit) + "/reason.json";
        if (await quarantine.ExistsAsync(reasonPath, cancellationToken).ConfigureAwait(false))
        {
            QuarantineReason reason;
            await using (var stream = await quarantine.OpenReadAsync(reasonPath, cancellationToken).ConfigureAwait(false))
            {
                reason = await JsonSerializer.DeserializeAsync<QuarantineReason>(stream, PipelineJson.Options, cancellationToken).ConfigureAwait(false)
                    ?? throw new JsonException("empty reason.json");
            }

            // Moved there because the study failed (a concurrent delivery gave up on it, or the watchdog): not a reject.
            if (reason.Reason is StudyFailedReason or IngestFailedReason or StuckReason)
            {
                return new IngestOutcome(unit.Tenant, unit.StudyId, IngestStatus.Failed, 0, false, reason.Reason, reason.Detail);
            }

            return await RejectAsync(unit, reason.Reason, reason.Detail, cancellationToken).ConfigureAwait(false);
        }

        var detail = $"upload {unit.UploadPath}: a blob was deleted before ingest could read it";
        await _studies.UpdateAsync(unit.Tenant, unit.StudyId, row => RowOrNew(row, unit, _time.GetUtcNow()) with
        {
            Status = StudyStatus.Failed,
            Reason = UploadMissingReason + ": " + UploadNames.Mask(detail, unit),
            IngestClaim = null,
            IngestClaimExpiresAt = null,
            UploadPath = unit.UploadPath,

            // Owed until sent: the upload is gone, so a process that dies before the notification is met again only by a
            // re-delivery of the upload's event (Azure), never by covidfn up's watcher; the sweep sends it.
            EventOwed = Owed(StudyEventTypes.Failed, row),
        }, cancellationToken).ConfigureAwait(false);
        await NotifyAsync(unit.Tenant, unit.StudyId, StudyEventTypes.Failed, cancellationToken).ConfigureAwait(false);

        Log.UploadMissing(_logger, unit.Tenant, unit.StudyId);
        return new IngestOutcome(unit.Tenant, unit.StudyId, IngestStatus.Failed, 0, false, UploadMissingReason, detail);
    }

    /// <summary>
    /// Quarantine: copy the originals and write reason.json, THEN delete the upload, set the study rejected and notify.
    /// Safe to repeat (copies of blobs already moved are skipped; the reason is rewritten). Each blob is deleted only
    /// while it holds the version copied: one written again during the reject stays in <c>ct-uploads</c> for the next
    /// look (before, it was deleted by name, its new content in no copy).
    /// </summary>
    private async Task<IngestOutcome> RejectAsync(UploadUnit unit, string code, string detail, CancellationToken cancellationToken, string? quarantinePrefix = null, bool updateStudy = true)
    {
        var prefix = quarantinePrefix ?? QuarantinePrefixOf(unit);

        // Named as ingest names them (UploadUnit.RelativeName): the same names as before this loop was shared.
        var copied = await UploadArchive.CopyToQuarantineAsync(_containers, unit.UploadPath, unit.BlobPaths, prefix, (_, path) => unit.RelativeName(path), cancellationToken).ConfigureAwait(false);

        var reason = new QuarantineReason(unit.Tenant, unit.StudyId, unit.UploadPath, code, detail, _time.GetUtcNow());
        await UploadArchive.WriteReasonAsync(_containers, prefix, reason, cancellationToken).ConfigureAwait(false);

        // The unit's own blobs only as copied (a blob written into the folder after planning is not the unit's), and
        // the marker last: while it exists the watcher still sees the folder as one closed unit.
        var uploads = _containers.Get(PipelineNames.UploadsContainer);
        await UploadArchive.DeleteCopiedAsync(uploads, copied, cancellationToken).ConfigureAwait(false);
        if (unit.MarkerPath is not null)
        {
            await uploads.DeleteAsync(unit.MarkerPath, cancellationToken).ConfigureAwait(false);
        }

        // reason.json keeps the upload's names (the quarantine holds the originals anyway); the log and the Studies row
        // (API, report, status) get them masked: file names can carry patient names (docs/compliance/phi-flow.md).
        var maskedDetail = UploadNames.Mask(detail, unit);
        Log.Rejected(_logger, UploadNames.LoggableTenant(unit), unit.StudyId, code, maskedDetail);

        // An invalid tenant has no Studies partition and no subscribers: the quarantine is its record. A re-upload
        // leaves its (finished) study as it is.
        if (unit.Rejection is null && updateStudy)
        {
            await _studies.UpdateAsync(unit.Tenant, unit.StudyId, row => RowOrNew(row, unit, reason.At) with
            {
                Status = StudyStatus.Rejected,
                Reason = $"{code}: {maskedDetail}",

                // When it settled, as a failed or completed study keeps it: status, the API's completedAt and diagnosis
                // stage, and a re-sent study.rejected (its time, from this row) then say when, and say it alike.
                CompletedAt = reason.At,
                IngestClaim = null,
                IngestClaimExpiresAt = null,

                // The upload is gone from ct-uploads; its path (a name the uploader chose) lives on in reason.json only.
                UploadPath = null,

                // Owed until sent: with the upload gone, a process that dies before the notification is met again only by
                // a re-delivery of the upload's event (Azure's trigger retries), never by covidfn up's watcher, which lists
                // ct-uploads. The sweep sends what is still owed (SendOwedEventAsync).
                EventOwed = Owed(StudyEventTypes.Rejected, row),
            }, cancellationToken).ConfigureAwait(false);
            await NotifyAsync(unit.Tenant, unit.StudyId, StudyEventTypes.Rejected, cancellationToken).ConfigureAwait(false);
        }

        return new IngestOutcome(unit.Tenant, unit.StudyId, IngestStatus.Rejected, 0, false, code, detail);
    }

    /// <summary>
    /// Downloads the unit's blobs under <paramref name="folder"/>, recording in <paramref name="versions"/> the version
    /// each one read (by blob path, for the read list); null when one of them no longer exists. Each local copy is named
    /// by its index, never by its blob name: a blob name the local file system cannot hold (a segment over 255 bytes, a
    /// blob <c>notes</c> next to a blob <c>notes/readme.txt</c>) used to throw an IOException that retried the attempt
    /// until the study failed, though nothing was wrong with the upload. The upload name stays in <see cref="LocalFile.Name"/>.
    /// </summary>
    private async Task<List<LocalFile>?> DownloadAsync(UploadUnit unit, string folder, Dictionary<string, string> versions, CancellationToken cancellationToken)
    {
        var uploads = _containers.Get(PipelineNames.UploadsContainer);
        var root = Path.GetFullPath(folder);
        Directory.CreateDirectory(root);
        var files = new List<LocalFile>(unit.Blobs.Count);
        for (var i = 0; i < unit.Blobs.Count; i++)
        {
            var blob = unit.Blobs[i];
            var name = SafeRelativePath(unit.RelativeName(blob.Path));
            var local = Path.Combine(root, i.ToString("D5", System.Globalization.CultureInfo.InvariantCulture));
            try
            {
                var source = await uploads.OpenReadVersionedAsync(blob.Path, cancellationToken).ConfigureAwait(false);
                await using (source.ConfigureAwait(false))
                {
                    var target = new FileStream(local, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous);
                    await using (target.ConfigureAwait(false))
                    {
                        await source.Content.CopyToAsync(target, cancellationToken).ConfigureAwait(false);
                    }
                }

                versions[blob.Path] = source.Version;
            }
            catch (FileNotFoundException)
            {
                return null;
            }

            files.Add(new LocalFile(local, name));
        }

        return files;
    }

    /// <summary>Expands zips, de-identifies DICOM instances into a folder and assembles the series (or reads a NIfTI volume).</summary>
    private async Task<PreparedSeries> PrepareAsync(UploadUnit unit, List<LocalFile> downloaded, string work, CpuTimeAccount cpu, CancellationToken cancellationToken)
    {
        var inputs = cpu.Measure(() => ExpandZips(downloaded, Path.Combine(work, "expanded"), _assembly.ZipLimits));
        if (inputs.Count == 0)
        {
            throw new IngestRejectedException("no-images", $"upload {unit.UploadPath}: no files in it");
        }

        var volumes = inputs.Where(f => NiftiFile.HasNiftiExtension(f.Name)).ToList();
        var candidates = inputs.Where(f => !NiftiFile.HasNiftiExtension(f.Name)).ToList();
        var deidFolder = Path.Combine(work, "deid");
        Directory.CreateDirectory(deidFolder);
        var results = new InstanceResult[candidates.Count];
        await Parallel.ForAsync(0, candidates.Count, new ParallelOptions { MaxDegreeOfParallelism = TilingParallelism, CancellationToken = cancellationToken }, (i, _) =>
        {
            var index = i;
            results[index] = cpu.Measure(() => DeidentifyInstance(unit, candidates[index], Path.Combine(deidFolder, $"{index:D5}.dcm")));
            return ValueTask.CompletedTask;
        }).ConfigureAwait(false);

        var accepted = results.Count(r => r.Accepted);
        var skipped = results.Where(r => !r.Accepted).Select(r => r.Note).ToList();
        var undecodable = results.Where(r => r.UndecodableSeries is not null).ToList();
        if (accepted == 0 && undecodable.Count > 0)
        {
            // The DICOM series' pixel data cannot be decoded: unreadable, as before these instances were refused at
            // de-identification (the series then failed to decode in Assemble), and not screened from a NIfTI next to it.
            throw new IngestRejectedException("unreadable", undecodable.Count == 1 && results.Length == 1
                ? undecodable[0].Note
                : $"upload {unit.UploadPath}: the pixel data of {undecodable.Count} DICOM instance(s) cannot be decoded: {Summarise([.. undecodable.Select(r => r.Note)])}");
        }

        var names = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < candidates.Count; i++)
        {
            names[$"{i:D5}.dcm"] = candidates[i].Name;
        }

        if (accepted > 0)
        {
            skipped.AddRange(volumes.Select(v => $"{v.Name}: NIfTI volume next to DICOM instances (the DICOM series is used)"));
            return cpu.Measure(() => Assemble(unit, deidFolder, "dicom", skipped, names, work, accepted, series => NotScreenedDicom(series, candidates, results, volumes, deidFolder), undecodable));
        }

        if (volumes.Count == 1)
        {
            // Copied under a neutral name: the volume's file name would otherwise appear in the manifest's notes.
            var volume = Path.Combine(work, volumes[0].Name.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? "volume.nii.gz" : "volume.nii");
            File.Copy(volumes[0].Path, volume);
            names[Path.GetFileName(volume)] = volumes[0].Name;
            return cpu.Measure(() => Assemble(unit, volume, "nifti", skipped, names, work, 0, _ => SkippedResults(results)));
        }

        if (volumes.Count > 1)
        {
            throw new IngestRejectedException("multiple-volumes", $"upload {unit.UploadPath}: {volumes.Count} NIfTI volumes ({string.Join(", ", volumes.Take(5).Select(v => v.Name))}); upload one volume per study");
        }

        var refused = results.Where(r => r.Refusal is not null).ToList();
        var internalErrors = results.Count(r => r.InternalError);
        if (internalErrors > 0 && internalErrors + refused.Count == results.Count(r => r.Readable))
        {
            // Nothing could be screened, and at least one instance only because ingest failed on it: said as such (not as
            // "no images" or a policy refusal), so the upload is known to be worth screening again once the defect is fixed.
            var alsoRefused = refused.Count > 0 ? $", {refused.Count} refused by the de-identification policy" : string.Empty;
            throw new IngestRejectedException(InternalErrorReason, $"upload {unit.UploadPath}: no DICOM instance could be screened: {internalErrors} failed unexpectedly in ingest (a defect, not known to be the file's fault){alsoRefused}: {Summarise(skipped)}");
        }

        if (refused.Count > 0 && refused.Count == results.Count(r => r.Readable))
        {
            var code = refused.All(r => r.Refusal == DeidRejectReason.UnsupportedSopClass) ? "not-ct" : "deid-refused";
            throw new IngestRejectedException(code, $"upload {unit.UploadPath}: every DICOM instance was refused by the de-identification policy: {Summarise(skipped)}");
        }

        var images = candidates.Where(f => ImageExtensions.Contains(Path.GetExtension(f.Name))).ToList();
        if (images.Count > 0 && images.Count == results.Count(r => !r.Readable))
        {
            // 2-D images carry no header to de-identify and may carry burned-in text: the same policy that refuses
            // secondary captures refuses them here.
            throw new IngestRejectedException("images-not-accepted", $"upload {unit.UploadPath}: {images.Count} 2-D image file(s) ({string.Join(", ", images.Take(3).Select(i => i.Name))}{(images.Count > 3 ? ", ..." : string.Empty)}) and no DICOM or NIfTI; ingest takes DICOM instances (a file, a folder or a zip) or one NIfTI volume, since 2-D images cannot be de-identified");
        }

        if (results.Length == 1)
        {
            throw new IngestRejectedException("unreadable", skipped[0]);
        }

        throw new IngestRejectedException("no-images", $"upload {unit.UploadPath}: {results.Length} files, none is a DICOM image: {Summarise(skipped)}");
    }

    private PreparedSeries Assemble(UploadUnit unit, string path, string source, List<string> skipped, Dictionary<string, string> names, string work, int deidentified, Func<AssembledSeries, List<NotScreenedFile>> notScreenedOf, IReadOnlyList<InstanceResult>? undecodable = null)
    {
        string Clean(string message)
        {
            // Messages name the temporary files; say the upload's own names instead (whole paths first, then bare names).
            var folder = File.Exists(path) ? Path.GetDirectoryName(path)! : path;
            var cleaned = message;
            foreach (var (temp, original) in names)
            {
                cleaned = cleaned.Replace(Path.Combine(folder, temp), original, StringComparison.Ordinal);
            }

            cleaned = cleaned.Replace(path, unit.UploadPath.TrimEnd('/'), StringComparison.Ordinal)
                .Replace(work, unit.UploadPath.TrimEnd('/'), StringComparison.Ordinal);
            foreach (var (temp, original) in names)
            {
                cleaned = cleaned.Replace(temp, original, StringComparison.Ordinal);
            }

            return cleaned;
        }

        AssembledSeries series;
        try
        {
            series = SeriesAssembler.Assemble(path, _assembly);
        }
        catch (ImagingException ex)
        {
            throw new IngestRejectedException(ReasonCode(ex), Clean(ex.Message));
        }
        catch (Exception ex) when (IsInputFault(ex))
        {
            // Local files in, a series out: nothing but this upload and this code decides it, so every retry would throw
            // the same (storage is not touched here; the local disk, memory and cancellation are not input faults).
            throw new InputDefectException("the series was assembled", Clean(ex.Message), ex);
        }

        // A slice of the selected series whose pixel data does not decode was refused at de-identification (never written):
        // the series is not screened with a hole in it, but rejected as unreadable, as when it failed to decode below.
        var selected = series.Report.Selected;
        var holes = (undecodable ?? []).Where(r => r.UndecodableSeries == (selected.StudyInstanceUid, selected.SeriesInstanceUid)).ToList();
        if (holes.Count > 0)
        {
            series.Dispose();
            throw new IngestRejectedException("unreadable", $"upload {unit.UploadPath}: {holes.Count} instance(s) of the selected series cannot be decoded: {Summarise([.. holes.Select(r => r.Note)])}");
        }

        // Screening a study without lungs (a head CT, an abdomen) would give a diagnosis of nothing. Measuring decodes
        // pixel data for the first time: a corrupt codestream fails here, and is a reject like any other bad content
        // (thrown on, it would fail every re-delivery the same way and leave the study processing for ever).
        ChestCoverage? coverage;
        try
        {
            coverage = ChestCoverage.Measure(series);
        }
        catch (ImagingException ex)
        {
            series.Dispose();
            throw new IngestRejectedException(ReasonCode(ex), Clean(ex.Message));
        }
        catch (Exception ex) when (IsInputFault(ex))
        {
            series.Dispose();
            throw new InputDefectException("the chest coverage was measured", Clean(ex.Message), ex);
        }

        if (coverage is { ShowsLungs: false })
        {
            series.Dispose();
            throw new IngestRejectedException("no-lungs", $"upload {unit.UploadPath}: {coverage.Reason}");
        }

        var report = series.Report;
        var notScreened = notScreenedOf(series);
        var keptIn = notScreened.Count > 0 ? $"{PipelineNames.QuarantineContainer}/{QuarantinePrefixOf(unit)}/{NotScreenedFolder}/" : null;
        skipped.AddRange(report.SkippedSources.Select(Clean));
        var document = new SeriesDocument(
            source,
            report.Selected,
            report.SelectionReason,
            [.. report.Issues],
            report.GantryTiltDegrees,
            [.. report.Others],
            deidentified,
            // The notes name the upload's files: masked in the row (the skipped files are kept in quarantine under their names).
            skipped.Count <= MaxSkippedNotes
                ? [.. skipped.Select(n => UploadNames.Mask(n, unit))]
                : [.. skipped.Take(MaxSkippedNotes).Select(n => UploadNames.Mask(n, unit)), $"... and {skipped.Count - MaxSkippedNotes} more"],
            keptIn,
            notScreened.Count);
        var pseudonym = source == "dicom" && report.Selected.StudyInstanceUid is { Length: > 0 } uid ? uid : null;
        string seriesJson;
        try
        {
            seriesJson = JsonSerializer.Serialize(document, PipelineJson.Options);
        }
        catch (Exception ex) when (IsInputFault(ex))
        {
            // The series as read, written as JSON for the row: a geometry JSON cannot hold (a NIfTI whose sform puts the
            // origin at infinity gives NaN slice positions and spacing) throws the same on every retry. Before, this throw
            // was outside the classified sections: retried as a storage fault, MaxIngestAttempts identical attempts.
            series.Dispose();
            throw new InputDefectException("the series was described", Clean(ex.Message), ex);
        }

        return new PreparedSeries(series, pseudonym, seriesJson, Clean, notScreened);
    }

    private InstanceResult DeidentifyInstance(UploadUnit unit, LocalFile input, string output)
    {
        // Top-level zips are expanded before this: a zip here came out of one. It is not opened (one level bounds what
        // an upload can expand to), and saying so beats the DICOM reader's complaint about its bytes.
        if (SafeZipArchive.IsZip(input.Path))
        {
            return InstanceResult.Skipped("a zip inside a zip is not opened (upload its files in one zip)", input, readable: false);
        }

        var stage = "read";
        try
        {
            DicomFile file;
            try
            {
                file = DicomFile.Open(input.Path);
            }
            catch (DicomException ex)
            {
                return InstanceResult.Skipped($"not readable as DICOM ({ex.Message.Replace(input.Path, input.Name, StringComparison.Ordinal)})", input, readable: false);
            }

            stage = "de-identified";
            DeidOutcome outcome;
            (string? Study, string? Series)? undecodableSeries = null;
            try
            {
                outcome = _deidentifyFile(file);
                if (outcome.Rejection?.Reason == DeidRejectReason.PixelDataUnreadable)
                {
                    undecodableSeries = DeidentifiedSeriesOf(file);
                }
            }
            catch (Exception ex) when (ex is DicomException or FormatException or ArgumentException)
            {
                return InstanceResult.Skipped($"de-identification failed ({ex.GetType().Name})", input, readable: true);
            }

            if (undecodableSeries is { } series)
            {
                // Encapsulated frames that do not decode cannot be rewritten as pixels, so the engine refused the instance
                // (it is never written). Not a policy refusal: its series is kept so a screened series that held it is
                // still rejected as unreadable, as when the series failed to decode (PrepareAsync, Assemble).
                return new InstanceResult(false, true, outcome.Rejection!.Reason, input.Name, $"pixel data cannot be decoded: {outcome.Rejection.Message}")
                {
                    File = input,
                    UndecodableSeries = series,
                };
            }

            if (!outcome.Accepted)
            {
                return new InstanceResult(false, true, outcome.Rejection!.Reason, input.Name, $"refused by the de-identification policy: {outcome.Rejection.Message}") { File = input };
            }

            stage = "written";
            try
            {
                file.Save(output);
            }
            catch (DicomException ex)
            {
                return InstanceResult.Skipped($"cannot be written after de-identification ({ex.GetType().Name})", input, readable: true);
            }

            return new InstanceResult(true, true, null, input.Name, string.Empty);
        }
#pragma warning disable CA1031 // one instance's unexpected failure must not fail the study: it is kept with a reason, the others are screened
        catch (Exception ex) when (IsInputFault(ex))
#pragma warning restore CA1031
        {
            // A defect on this file (the reader, the engine or the writer): like covidfn deid, the instance alone is left
            // out. Retrying would fail it the same way each time and, after the last attempt, fail the whole study. No
            // de-identified output of it is left for the assembler (Save renames into place, so there is none; deleted
            // anyway). The type only: an exception's message may quote the file's values.
            TryDeleteFile(output);
            Log.InstanceInternalError(_logger, unit.Tenant, unit.StudyId, stage, ex.GetType().Name, ex.StackTrace ?? string.Empty);
            return InstanceResult.Skipped($"{InternalErrorReason}: failed unexpectedly while it was {stage} ({ex.GetType().Name}); it was not screened", input, readable: true) with { InternalError = true };
        }
    }

    /// <summary>
    /// The de-identified Study and Series Instance UIDs of an instance the engine refused for its pixel data (and left as
    /// read): what the assembler would have read from its de-identified copy, to match it against the selected series.
    /// The attribute rules are applied to the refused file's own dataset without its Pixel Data (the rules refuse
    /// fragments they cannot rewrite); the dataset is dropped afterwards and never written.
    /// </summary>
    private (string? Study, string? Series) DeidentifiedSeriesOf(DicomFile refused)
    {
        var dataset = refused.Dataset;
        dataset.Remove(DicomTags.PixelData);
        _deidentification.Deidentify(dataset, refused.FileMetaInformation);
        return (dataset.GetString(DicomTags.StudyInstanceUID), dataset.GetString(DicomTags.SeriesInstanceUID));
    }

    /// <summary>
    /// Whether an exception from local work on the upload (an instance read, de-identified and written; the series
    /// assembled, measured, decoded) is the input's own failure, which a retry of the same input through the same code
    /// repeats. Not: the host stopping (cancellation); the local disk (I/O, access: the temporary copies, retried as
    /// storage faults are); the process itself (memory, stack, an interrupted thread: an OutOfMemoryException may be
    /// another study's load at the same time, so it is retried, bounded by MaxIngestAttempts). Those propagate and the
    /// attempt is retried. An AggregateException is the input's only when each exception in it is.
    /// </summary>
    private static bool IsInputFault(Exception ex) => ex is AggregateException aggregate
        ? aggregate.Flatten().InnerExceptions.All(IsInputFault)
        : ex is not (OperationCanceledException or IOException or UnauthorizedAccessException
            or OutOfMemoryException or InsufficientExecutionStackException or ThreadInterruptedException);

    private static void TryDeleteFile(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // DicomFile.Save renames a finished file into place, so a failed one leaves nothing at this name to delete.
        }
    }

    /// <summary>The instances de-identification left out (refused by policy, unreadable), each with its note's reason.</summary>
    private static List<NotScreenedFile> SkippedResults(InstanceResult[] results) =>
        [.. results.Where(r => !r.Accepted && r.File is not null).Select(r => new NotScreenedFile(r.File!, r.Why))];

    /// <summary>
    /// Every file of a DICOM upload that is not a source of the screened series, and why: the instances
    /// de-identification left out, NIfTI volumes next to the DICOM, the instances of the other series and studies
    /// (<see cref="AssemblyReport.Others"/>: another study in the same upload, a localizer, a reformat, a series ranked
    /// lower), slices of the screened series left out at a repeated position, and files the assembler skipped. Each
    /// other instance's series is read from its de-identified header (the UIDs of <c>otherSeries</c>).
    /// </summary>
    private static List<NotScreenedFile> NotScreenedDicom(AssembledSeries series, List<LocalFile> candidates, InstanceResult[] results, List<LocalFile> volumes, string deidFolder)
    {
        var kept = SkippedResults(results);
        kept.AddRange(volumes.Select(v => new NotScreenedFile(v, "a NIfTI volume next to DICOM instances: the DICOM series is screened")));
        var report = series.Report;
        var screened = series.Slices.Select(s => Path.GetFileName(s.SourceName)).ToHashSet(StringComparer.Ordinal);
        for (var i = 0; i < candidates.Count; i++)
        {
            var deidName = $"{i:D5}.dcm";
            if (results[i].Accepted && !screened.Contains(deidName))
            {
                kept.Add(new NotScreenedFile(candidates[i], WhyNotScreened(Path.Combine(deidFolder, deidName), report)));
            }
        }

        return kept;
    }

    private static string WhyNotScreened(string deidPath, AssemblyReport report)
    {
        // The assembler's own reason (no image in it, defective image attributes, ...), found by the file's path.
        if (report.Skipped.FirstOrDefault(s => s.Source == deidPath) is { } skipped)
        {
            return skipped.Reason;
        }

        string? study;
        string? seriesUid;
        try
        {
            var header = DicomFile.Open(deidPath, DicomReadOptions.HeaderOnly).Dataset;
            (study, seriesUid) = (header.GetString(DicomTags.StudyInstanceUID), header.GetString(DicomTags.SeriesInstanceUID));
        }
        catch (DicomException ex)
        {
            return $"not readable after de-identification ({ex.GetType().Name})";
        }

        var selected = report.Selected;
        if (study == selected.StudyInstanceUid && seriesUid == selected.SeriesInstanceUid)
        {
            return "a slice of the screened series at a position already used: left out (duplicate-position)";
        }

        var other = report.Others.FirstOrDefault(o => o.StudyInstanceUid == study && o.SeriesInstanceUid == seriesUid);
        var label = other is null ? $"series {seriesUid}" : $"series {SeriesLabel(other)}";
        if (study != selected.StudyInstanceUid)
        {
            return $"another study in the same upload (StudyInstanceUID {study}, {label}{(other?.ExclusionReason is { } why ? $": {why}" : string.Empty)}): one series of one study is screened per upload; upload each study on its own to screen it";
        }

        return other?.ExclusionReason is { } exclusion
            ? $"{label} of the same study cannot be screened: {exclusion}"
            : $"{label} of the same study ranked lower than the screened series ({report.SelectionReason})";
    }

    private static string SeriesLabel(SeriesSummary s)
    {
        var label = s.SeriesNumber is { } n ? n.ToString(System.Globalization.CultureInfo.InvariantCulture) : s.SeriesInstanceUid;
        var extra = string.Join(", ", new[] { s.Description, s.ConvolutionKernel }.Where(x => !string.IsNullOrWhiteSpace(x)));
        return extra.Length > 0 ? $"{label} ({extra})" : label;
    }

    private static List<LocalFile> ExpandZips(List<LocalFile> files, string folder, ZipSafetyLimits limits)
    {
        var expanded = new List<LocalFile>(files.Count);
        for (var i = 0; i < files.Count; i++)
        {
            var file = files[i];
            if (!SafeZipArchive.IsZip(file.Path))
            {
                expanded.Add(file);
                continue;
            }

            var target = Path.Combine(folder, i.ToString("D5", System.Globalization.CultureInfo.InvariantCulture));
            try
            {
                using var stream = new FileStream(file.Path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.RandomAccess);
                using var archive = SafeZipArchive.Open(stream, file.Name, limits);

                // Each entry under its index, not its name (as the downloads): an entry name the local file system cannot
                // hold (a segment over 255 bytes; an entry "a" next to "a/b") threw an IOException, retried to a failed study.
                Directory.CreateDirectory(target);
                for (var j = 0; j < archive.Entries.Count; j++)
                {
                    var entry = archive.Entries[j];
                    var local = Path.Combine(target, j.ToString("D5", System.Globalization.CultureInfo.InvariantCulture));
                    using (var output = new FileStream(local, FileMode.CreateNew, FileAccess.Write))
                    using (var input = archive.OpenEntry(entry))
                    {
                        input.CopyTo(output);
                    }

                    expanded.Add(new LocalFile(local, $"{file.Name}/{entry.Name}"));
                }
            }
            catch (ArchiveException ex)
            {
                // The reader's message names the archive (opened under its upload name) and the entry.
                throw new IngestRejectedException("zip-refused", ex.Message.Contains(file.Name, StringComparison.Ordinal) ? ex.Message : $"{file.Name}: {ex.Message}");
            }
            catch (InvalidDataException ex)
            {
                throw new IngestRejectedException("zip-refused", $"{file.Name}: corrupt zip ({ex.Message})");
            }
        }

        return expanded;
    }

    /// <summary>
    /// Copies the files not screened to <c>quarantine/{tenant}/{study}/skipped/</c> under their upload names, then writes
    /// its <c>reason.json</c> (<see cref="NotScreenedReason"/>, each file named with why). Before the row says ingested,
    /// so before anything can delete the upload; repeated by a retried ingest with the same bytes.
    /// </summary>
    private async Task KeepNotScreenedAsync(UploadUnit unit, IReadOnlyList<NotScreenedFile> notScreened, Func<string, string> clean, CancellationToken cancellationToken)
    {
        if (notScreened.Count == 0)
        {
            return;
        }

        var quarantine = _containers.Get(PipelineNames.QuarantineContainer);
        var prefix = $"{QuarantinePrefixOf(unit)}/{NotScreenedFolder}";
        foreach (var kept in notScreened)
        {
            var source = new FileStream(kept.File.Path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
            await using (source.ConfigureAwait(false))
            {
                await quarantine.WriteAsync($"{prefix}/{SafeRelativePath(kept.File.Name)}", source, cancellationToken).ConfigureAwait(false);
            }
        }

        var detail = $"upload {unit.UploadPath}: {notScreened.Count} file(s) were not screened; each is named in 'files' with why. They are kept here because the upload is deleted once the study's results are stored";
        var reason = new QuarantineReason(unit.Tenant, unit.StudyId, unit.UploadPath, NotScreenedReason, detail, _time.GetUtcNow())
        {
            Files = [.. notScreened.Select(k => new QuarantinedFile(k.File.Name, clean(k.Why)))],
        };
        await UploadArchive.WriteReasonAsync(_containers, prefix, reason, cancellationToken).ConfigureAwait(false);
    }

    private Task DeleteUploadAsync(UploadUnit unit, CancellationToken cancellationToken)
    {
        // The unit's own blobs (a blob written into the folder after planning is not the unit's to delete), and the
        // marker last: while it exists the watcher still sees the folder as one closed unit.
        IEnumerable<string> paths = unit.Blobs.Select(b => b.Path);
        if (unit.MarkerPath is not null)
        {
            paths = paths.Append(unit.MarkerPath);
        }

        return UploadArchive.DeleteBlobsAsync(_containers.Get(PipelineNames.UploadsContainer), paths, cancellationToken);
    }

    private static string MergeTimings(string? existing, double total, double download, double deidentify, double tile, double cpu)
    {
        JsonObject timings;
        try
        {
            timings = existing is { Length: > 0 } && JsonNode.Parse(existing) is JsonObject parsed ? parsed : [];
        }
        catch (JsonException)
        {
            timings = [];
        }

        timings["ingest"] = Math.Round(total, 3);
        timings["ingestDownload"] = Math.Round(download, 3);
        timings["ingestDeidentify"] = Math.Round(deidentify, 3);
        timings["ingestTile"] = Math.Round(tile, 3);
        timings["ingestCpu"] = Math.Round(cpu, 3);
        return timings.ToJsonString();
    }

    /// <summary>The short reject code of an imaging failure (the assembler's own code where it gives one).</summary>
    private static string ReasonCode(ImagingException ex) => ex switch
    {
        SeriesAssemblyException { Reason: { Length: > 0 } code } => code,
        SeriesAssemblyException => "cannot-assemble",
        ArchiveException => "zip-refused",
        _ => "unreadable",
    };

    private static string Summarise(List<string> notes) =>
        string.Join("; ", notes.Take(5)) + (notes.Count > 5 ? $"; and {notes.Count - 5} more" : string.Empty);

    /// <summary>A blob name made safe as a relative path: no empty, '.' or '..' segments, no backslashes.</summary>
    internal static string SafeRelativePath(string name) =>
        string.Join('/', name.Replace('\\', '_').Split('/').Select(s => s is "" or "." or ".." ? "_" : s));

    private static void TryDeleteDirectory(string path)
    {
        try
        {
            Directory.Delete(path, recursive: true);
        }
        catch (IOException)
        {
            // A file still open (a failing decoder): the OS temp cleaner takes it.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private sealed record LocalFile(string Path, string Name);

    /// <summary>What de-identification did with one file of the upload.</summary>
    /// <param name="Accepted">De-identified and written for assembly.</param>
    /// <param name="Readable">Read as DICOM.</param>
    /// <param name="Refusal">The de-identifier's reason when it refused the file.</param>
    /// <param name="Name">The file's name in the upload.</param>
    /// <param name="Why">Why it was left out (empty when accepted).</param>
    private sealed record InstanceResult(bool Accepted, bool Readable, DeidRejectReason? Refusal, string Name, string Why)
    {
        /// <summary>The note for people: <c>NAME: WHY</c>.</summary>
        public string Note => $"{Name}: {Why}";

        /// <summary>The input file of a skipped instance (kept in quarantine when the study is ingested).</summary>
        public LocalFile? File { get; init; }

        /// <summary>Left out because processing it failed unexpectedly (<see cref="InternalErrorReason"/>).</summary>
        public bool InternalError { get; init; }

        /// <summary>
        /// Refused because its encapsulated Pixel Data does not decode (<see cref="DeidRejectReason.PixelDataUnreadable"/>):
        /// the de-identified Study and Series Instance UIDs it would have been screened under.
        /// </summary>
        public (string? Study, string? Series)? UndecodableSeries { get; init; }

        public static InstanceResult Skipped(string why, LocalFile file, bool readable) => new(false, readable, null, file.Name, why) { File = file };
    }

    private sealed record PreparedSeries(AssembledSeries Series, string? StudyPseudonym, string SeriesJson, Func<string, string> Clean, IReadOnlyList<NotScreenedFile> NotScreened);

    /// <summary>A file of the upload that was not screened (an original: downloaded, or a zip's entry), and why.</summary>
    private sealed record NotScreenedFile(LocalFile File, string Why);

    /// <summary>The Studies row's SeriesJson: what was screened and what was not.</summary>
    private sealed record SeriesDocument(
        string Source,
        SeriesSummary Selected,
        string SelectionReason,
        IReadOnlyList<GeometryIssue> Geometry,
        double GantryTiltDegrees,
        IReadOnlyList<SeriesSummary> OtherSeries,
        int DeidentifiedInstances,
        IReadOnlyList<string> SkippedInstances,
        string? SkippedKeptIn,
        int NotScreenedFiles);

    /// <summary>Thrown out of the attempt's row update when the row belongs to another upload of the same name.</summary>
    private sealed class NameCollisionException(string otherPath) : Exception($"the study row belongs to upload {otherPath}")
    {
        public string OtherPath { get; } = otherPath;
    }

    private sealed class IngestRejectedException(string code, string detail) : Exception(detail)
    {
        public string Code { get; } = code;

        public string Detail { get; } = detail;
    }

    /// <summary>
    /// A study-level failure of local work on the upload (assembling, measuring, decoding) that is not an
    /// <see cref="ImagingException"/> and not the environment's (<see cref="IsInputFault"/>): the same upload through the
    /// same code fails the same way, so the study fails now instead of after every retry. The message is cleaned of the
    /// temporary paths; the original exception is the inner one.
    /// </summary>
    /// <summary>Thrown inside a row update that finds nothing to clear (<see cref="NotifyAsync"/>): the row is not written.</summary>
    private sealed class NothingOwedException() : Exception("the study owes no such event");

    /// <summary>Thrown inside the counting write when the row it would reopen still owes <see cref="EventType"/>: not written.</summary>
    private sealed class EventStillOwedException(string eventType) : Exception($"the study still owes {eventType}")
    {
        public string EventType { get; } = eventType;
    }

    /// <summary>Thrown inside the watchdog's row update when the study settled or was ingested since the query: not written.</summary>
    private sealed class StudyMovedOnException() : Exception("the study is no longer as the watchdog found it");

    private sealed class InputDefectException(string stage, string message, Exception inner) : Exception(message, inner)
    {
        /// <summary>What ingest was doing ("the series was assembled"), for the reason.</summary>
        public string Stage { get; } = stage;
    }

    /// <summary>
    /// Counts the bytes written through it (the usage record's bytes stored), and says whether any call to the store
    /// failed: tiling decodes and writes in one call, and only a failure of neither kind can be the upload's.
    /// </summary>
    private sealed class CountingBlobStore(IBlobStore inner) : IBlobStore
    {
        private long _bytesWritten;
        private volatile bool _failed;

        public long BytesWritten => Interlocked.Read(ref _bytesWritten);

        /// <summary>True once a call to the store threw (whatever the exception: storage SDKs do not all throw IOException).</summary>
        public bool Failed => _failed;

        public Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken) => Watch(() => inner.OpenReadAsync(path, cancellationToken));

        public async Task WriteAsync(string path, Stream content, CancellationToken cancellationToken)
        {
            ArgumentNullException.ThrowIfNull(content);
            var length = content.CanSeek ? content.Length - content.Position : -1;
            await Watch(async () =>
            {
                await inner.WriteAsync(path, content, cancellationToken).ConfigureAwait(false);
                return true;
            }).ConfigureAwait(false);
            if (length >= 0)
            {
                Interlocked.Add(ref _bytesWritten, length);
            }
        }

        public Task<bool> ExistsAsync(string path, CancellationToken cancellationToken) => Watch(() => inner.ExistsAsync(path, cancellationToken));

        public async IAsyncEnumerable<string> ListAsync(string prefix, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
        {
            var listing = inner.ListAsync(prefix, cancellationToken).GetAsyncEnumerator(cancellationToken);
            await using (listing.ConfigureAwait(false))
            {
                while (await Watch(() => listing.MoveNextAsync().AsTask()).ConfigureAwait(false))
                {
                    yield return listing.Current;
                }
            }
        }

        public Task DeleteAsync(string path, CancellationToken cancellationToken) => Watch(async () =>
        {
            await inner.DeleteAsync(path, cancellationToken).ConfigureAwait(false);
            return true;
        });

        public Task<VersionedStream> OpenReadVersionedAsync(string path, CancellationToken cancellationToken) => Watch(() => inner.OpenReadVersionedAsync(path, cancellationToken));

        public Task<ConditionalDelete> DeleteIfVersionAsync(string path, string version, CancellationToken cancellationToken) => Watch(() => inner.DeleteIfVersionAsync(path, version, cancellationToken));

        /// <summary>The store's call, <see cref="Failed"/> set when it throws (synchronously or from its task).</summary>
        private async Task<T> Watch<T>(Func<Task<T>> call)
        {
            try
            {
                return await call().ConfigureAwait(false);
            }
            catch
            {
                _failed = true;
                throw;
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 118, Level = LogLevel.Information, Message = "Ingest of {Tenant}/{StudyId} stopped with the host; its attempt was not given back: another attempt holds the study now, or it was ingested or settled")]
        public static partial void NotGivenBack(ILogger logger, string tenant, string studyId);

        [LoggerMessage(EventId = 120, Level = LogLevel.Information, Message = "Study {Tenant}/{StudyId}: {EventType} owed by its settling write (its process died before notifying) was sent by the sweep")]
        public static partial void OwedEventSent(ILogger logger, string tenant, string studyId, string eventType);

        [LoggerMessage(EventId = 122, Level = LogLevel.Information, Message = "Study {Tenant}/{StudyId}: {EventType} owed by its settling write was sent before a new upload at its path reopened it")]
        public static partial void OwedEventSentBeforeReopen(ILogger logger, string tenant, string studyId, string eventType);

        [LoggerMessage(EventId = 123, Level = LogLevel.Warning, Message = "Study {Tenant}/{StudyId} still owes {EventType} and this host has no notifier: a new upload at its path did not reopen it and was left in place for a host that sends webhooks")]
        public static partial void EventOwedNotReopened(ILogger logger, string tenant, string studyId, string eventType);

        [LoggerMessage(EventId = 121, Level = LogLevel.Warning, Message = "Study {Tenant}/{StudyId}: {EventType} is owed and could not be sent ({Type}); the next sweep tries again")]
        public static partial void OwedEventNotSent(ILogger logger, string tenant, string studyId, string eventType, string type);

        [LoggerMessage(EventId = 119, Level = LogLevel.Warning, Message = "Ingest of {Tenant}/{StudyId}: attempt {Attempt} failed after its claim ran out unrenewed; its error was not recorded and nothing given up: another attempt holds the study now, or it was ingested or settled")]
        public static partial void FailureNotRecorded(ILogger logger, string tenant, string studyId, int attempt);

        [LoggerMessage(EventId = 117, Level = LogLevel.Warning, Message = "Ingest of {Tenant}/{StudyId}: the study was {Status} while this attempt ran, after its claim ran out unrenewed; the attempt recorded nothing")]
        public static partial void SettledUnderAttempt(ILogger logger, string tenant, string studyId, string status);

        [LoggerMessage(EventId = 116, Level = LogLevel.Warning, Message = "Ingest of {Tenant}/{StudyId}: the study had failed ({Code}) but its upload's move to quarantine was cut short; finished it ({Moved} blob(s) moved), the study stays failed")]
        public static partial void QuarantineMoveFinished(ILogger logger, string tenant, string studyId, string code, int moved);

        [LoggerMessage(EventId = 115, Level = LogLevel.Information, Message = "Ingest of {Tenant}/{StudyId}: the study was {Status} and its quarantine is gone (deleted by its retention); the new upload at its path is a new attempt, from a fresh row")]
        public static partial void NewAttempt(ILogger logger, string tenant, string studyId, string status);

        [LoggerMessage(EventId = 112, Level = LogLevel.Information, Message = "Ingest of {Tenant}/{StudyId}: another attempt holds the study (claim to {Until:O}); left to it")]
        public static partial void ClaimedElsewhere(ILogger logger, string tenant, string studyId, DateTimeOffset until);

        [LoggerMessage(EventId = 113, Level = LogLevel.Warning, Message = "Ingest of {Tenant}/{StudyId}: this attempt's claim was taken over by another (this process stalled past the lease); it stops and records nothing")]
        public static partial void ClaimLost(ILogger logger, string tenant, string studyId);

        [LoggerMessage(EventId = 114, Level = LogLevel.Warning, Message = "Ingest of {Tenant}/{StudyId}: the claim could not be renewed ({Type}); tried again at the next renewal")]
        public static partial void ClaimNotRenewed(ILogger logger, string tenant, string studyId, string type);

        // Upload paths are chosen by the uploader and may carry patient names; logs leave the tenant (Application
        // Insights), so they name the study by its pseudonymous id (a hash of tenant and path) instead.
        [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Ingest {Tenant}/{StudyId}: {BlobCount} upload blob(s)")]
        public static partial void IngestStarted(ILogger logger, string tenant, string studyId, int blobCount);

        [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Ingested {Tenant}/{StudyId}: {SliceCount} slices in {Seconds:0.00} s, orchestration started: {Started}")]
        public static partial void Ingested(ILogger logger, string tenant, string studyId, int sliceCount, double seconds, bool started);

        [LoggerMessage(EventId = 102, Level = LogLevel.Information, Message = "Study {Tenant}/{StudyId} was already ingested; orchestration started now: {Started}")]
        public static partial void AlreadyIngested(ILogger logger, string tenant, string studyId, bool started);

        [LoggerMessage(EventId = 103, Level = LogLevel.Warning, Message = "Rejected {Tenant}/{StudyId} to quarantine: {Reason}: {Detail}")]
        public static partial void Rejected(ILogger logger, string tenant, string studyId, string reason, string detail);

        [LoggerMessage(EventId = 104, Level = LogLevel.Warning, Message = "Study {Tenant}/{StudyId} failed: a blob of its upload disappeared before it was read")]
        public static partial void UploadMissing(ILogger logger, string tenant, string studyId);

        [LoggerMessage(EventId = 105, Level = LogLevel.Information, Message = "Retention over for {Tenant}/{StudyId}: deleted {BlobCount} upload blob(s)")]
        public static partial void UploadSwept(ILogger logger, string tenant, string studyId, int blobCount);

        [LoggerMessage(EventId = 106, Level = LogLevel.Warning, Message = "Ingest of {Tenant}/{StudyId} failed on attempt {Attempt} of {MaxAttempts}: {Error}")]
        public static partial void AttemptFailed(ILogger logger, string tenant, string studyId, int attempt, int maxAttempts, string error);

        [LoggerMessage(EventId = 107, Level = LogLevel.Warning, Message = "Ingest of {Tenant}/{StudyId}: the attempt's outcome could not be recorded ({Type}); the next attempt or the watchdog decides")]
        public static partial void AttemptNotRecorded(ILogger logger, string tenant, string studyId, string type);

        [LoggerMessage(EventId = 108, Level = LogLevel.Error, Message = "Ingest of {Tenant}/{StudyId} failed on each of {Attempts} attempt(s); the upload is in quarantine and the study failed. The last error: {Error}")]
        public static partial void GaveUp(ILogger logger, string tenant, string studyId, int attempts, string error);

        [LoggerMessage(EventId = 109, Level = LogLevel.Error, Message = "Study {Tenant}/{StudyId} was stuck processing and is failed now: {Why}")]
        public static partial void StuckFailed(ILogger logger, string tenant, string studyId, string why);

        // The exception's type and stack (method names) for the defect's fix; never its message, which may quote values.
        [LoggerMessage(EventId = 110, Level = LogLevel.Error, Message = "Ingest of {Tenant}/{StudyId}: an instance failed unexpectedly while it was {Stage} ({Type}); it is left out as internal-error and kept in quarantine. At: {StackTrace}")]
        public static partial void InstanceInternalError(ILogger logger, string tenant, string studyId, string stage, string type, string stackTrace);

        [LoggerMessage(EventId = 111, Level = LogLevel.Error, Message = "Ingest of {Tenant}/{StudyId} failed while {Stage} on a defect a retry cannot change ({Type}: {Error}); the study failed without retries and the upload is in quarantine. At: {StackTrace}")]
        public static partial void InputDefect(ILogger logger, string tenant, string studyId, string stage, string type, string error, string stackTrace);
    }
}
