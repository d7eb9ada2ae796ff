using System.Text;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Orchestration.Activities;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

using static CovidFunctions.Pipeline.Azure.Tests.Storage.UploadTestFiles;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// A new upload at the path of a study that was settled without being screened (rejected, or failed before it was
/// ingested), on Azurite. While the study's quarantine holds the first upload's originals and <c>reason.json</c>, the
/// new upload is kept apart next to them (<c>reupload-after-reject</c> / <c>reupload-after-failure</c>). Once the
/// lifecycle rule has deleted that quarantine (<c>quarantineRetentionDays</c>), the new upload is a new attempt of the
/// study: ingested from a fresh row (created now, its attempts counted from one, the first outcome's reason gone),
/// not from the first attempt's leftovers. The lifecycle rule is played by deleting the study's quarantine folder.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class QuarantineReuploadTests(AzuriteFixture azurite)
{
    private static readonly TimeSpan PastRetention = TimeSpan.FromDays(31);

    private readonly DeidKey _key = DeidKey.Generate();

    private IBlobStore Uploads => azurite.Storage.BlobContainers.Get(PipelineNames.UploadsContainer);

    private IBlobStore Quarantine => azurite.Storage.BlobContainers.Get(PipelineNames.QuarantineContainer);

    [Fact]
    public async Task A_reupload_after_a_rejected_studys_quarantine_expired_is_ingested_as_a_new_attempt_from_a_fresh_row()
    {
        var tenant = AzuriteFixture.NewTenant();
        var path = $"{tenant}/scan.zip";
        var clock = new MovableClock();
        var notifier = new RecordingNotifier();
        var orchestrations = new RecordingOrchestrations();
        await Uploads.WriteAsync(path, new MemoryStream("not a zip, not DICOM"u8.ToArray()), CancellationToken.None);
        var first = await Handler(clock, notifier, orchestrations).IngestAsync(Unit(path, clock), CancellationToken.None);
        Assert.Equal(IngestStatus.Rejected, first.Status);
        var rejected = (await azurite.Storage.Studies.GetAsync(tenant, first.StudyId, CancellationToken.None))!;

        // A month on, the lifecycle rule has deleted the study's quarantine (originals and reason.json).
        clock.Ahead = PastRetention;
        await DeleteQuarantineAsync(tenant, first.StudyId);

        // A late event for the first upload, long gone, changes nothing. Before, it reopened the rejected study, met no
        // blob to read and failed it as upload-missing, with a study.failed event.
        var late = await Handler(clock, notifier, orchestrations).IngestAsync(Unit(path, clock), CancellationToken.None);
        Assert.Equal(IngestStatus.Rejected, late.Status);
        Assert.Equal(rejected, await azurite.Storage.Studies.GetAsync(tenant, first.StudyId, CancellationToken.None));

        // The user uploads a good study at the same path.
        var zip = Zip(MidChestSlices(3));
        await Uploads.WriteAsync(path, new MemoryStream(zip), CancellationToken.None);
        var second = await Handler(clock, notifier, orchestrations).IngestAsync(Unit(path, clock), CancellationToken.None);

        // Before, the rejected row was reopened: created a month ago (the list put it a month back, and the hourly
        // watchdog counted its age from then), attempts counted on from the first upload's.
        Assert.Equal((IngestStatus.Ingested, 3), (second.Status, second.SliceCount));
        var row = (await azurite.Storage.Studies.GetAsync(tenant, first.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Processing, 1, null, null), (row.Status, row.IngestAttempts, row.Reason, row.IngestError));
        Assert.True(row.CreatedAt > rejected.CreatedAt + PastRetention - TimeSpan.FromMinutes(1), $"created {row.CreatedAt:O}, the rejection's row {rejected.CreatedAt:O}");
        Assert.NotNull(row.IngestedAt);
        Assert.Single(orchestrations.Started);
        // The late event asked the notifier for the rejection again (SettledStudyRedeliveryTests: the rejecting process may
        // have died before sending it); the notifier delivers once per study attempt and event, so nothing more is sent.
        Assert.Equal([StudyEventTypes.Rejected, StudyEventTypes.Rejected], notifier.Events.Select(e => e.EventType));
        Assert.True(await Uploads.ExistsAsync(path, CancellationToken.None), "an ingested upload stays until its results are stored");
    }

    [Fact]
    public async Task A_new_attempt_after_an_expired_quarantine_is_not_failed_by_the_watchdog_for_the_first_attempts_age()
    {
        var tenant = AzuriteFixture.NewTenant();
        var path = $"{tenant}/scan.zip";
        var clock = new MovableClock();
        await Uploads.WriteAsync(path, new MemoryStream("not a zip, not DICOM"u8.ToArray()), CancellationToken.None);
        var first = await Handler(clock).IngestAsync(Unit(path, clock), CancellationToken.None);
        Assert.Equal(IngestStatus.Rejected, first.Status);
        clock.Ahead = PastRetention;
        await DeleteQuarantineAsync(tenant, first.StudyId);

        // The new upload's first attempt meets a storage fault (retried by its trigger), and the hourly sweep runs.
        var zip = Zip(MidChestSlices(3));
        await Uploads.WriteAsync(path, new MemoryStream(zip), CancellationToken.None);
        var failing = new TilesWritesFail(azurite.Storage.BlobContainers, () => new IOException("the slices container is away"));
        await Assert.ThrowsAsync<IOException>(() => Handler(clock, containers: failing).IngestAsync(Unit(path, clock), CancellationToken.None));
        await Handler(clock).FailStuckStudiesAsync(clock.GetUtcNow(), CancellationToken.None);

        // Before, the watchdog read the reopened row as created a month ago and failed the new upload as stuck after one
        // transient fault: moved to quarantine, never screened.
        var row = (await azurite.Storage.Studies.GetAsync(tenant, first.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Processing, 1), (row.Status, row.IngestAttempts));
        Assert.True(await Uploads.ExistsAsync(path, CancellationToken.None));

        // Its retry ingests it.
        Assert.Equal(IngestStatus.Ingested, (await Handler(clock).IngestAsync(Unit(path, clock), CancellationToken.None)).Status);
    }

    [Fact]
    public async Task A_reupload_after_a_given_up_studys_quarantine_expired_is_ingested_and_one_before_is_kept_apart()
    {
        var tenant = AzuriteFixture.NewTenant();
        var path = $"{tenant}/scan.zip";
        var clock = new MovableClock();
        var zip = Zip(MidChestSlices(3));
        await Uploads.WriteAsync(path, new MemoryStream(zip), CancellationToken.None);
        var failing = new TilesWritesFail(azurite.Storage.BlobContainers, () => new IOException("No space left on device"));
        for (var attempt = 1; attempt <= 2; attempt++)
        {
            await Assert.ThrowsAsync<IOException>(() => Handler(clock, containers: failing).IngestAsync(Unit(path, clock), CancellationToken.None));
        }

        var gaveUp = await Handler(clock, containers: failing).IngestAsync(Unit(path, clock), CancellationToken.None);
        Assert.Equal((IngestStatus.Failed, IngestHandler.IngestFailedReason), (gaveUp.Status, gaveUp.Reason));
        var reasonPath = $"{tenant}/{gaveUp.StudyId}/reason.json";
        var firstReason = await ReadAsync(Quarantine, reasonPath);

        // A day later (the quarantine is there): the new upload is kept apart, the first one's evidence stays.
        clock.Ahead = TimeSpan.FromDays(1);
        await Uploads.WriteAsync(path, new MemoryStream(zip), CancellationToken.None);
        var keptApart = await Handler(clock).IngestAsync(Unit(path, clock), CancellationToken.None);
        Assert.Equal((IngestStatus.Rejected, "reupload-after-failure"), (keptApart.Status, keptApart.Reason));
        Assert.Equal(firstReason, await ReadAsync(Quarantine, reasonPath));
        Assert.False(await Uploads.ExistsAsync(path, CancellationToken.None));

        // Past the retention the quarantine is gone. Before, a new upload was still kept apart, for ever: every upload
        // at the path went to quarantine unscreened, with no event, until the rule deleted it in turn.
        clock.Ahead = PastRetention;
        await DeleteQuarantineAsync(tenant, gaveUp.StudyId);
        await Uploads.WriteAsync(path, new MemoryStream(zip), CancellationToken.None);
        var again = await Handler(clock).IngestAsync(Unit(path, clock), CancellationToken.None);

        Assert.Equal((IngestStatus.Ingested, 3), (again.Status, again.SliceCount));
        var row = (await azurite.Storage.Studies.GetAsync(tenant, gaveUp.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Processing, 1, null, null), (row.Status, row.IngestAttempts, row.Reason, row.IngestError));
    }

    [Fact]
    public async Task A_reupload_while_a_stuck_studys_quarantine_is_there_is_kept_apart_and_the_first_uploads_evidence_stays()
    {
        var tenant = AzuriteFixture.NewTenant();
        var path = $"{tenant}/scan.dcm";
        var clock = new MovableClock();
        var firstUpload = "the first upload, never ingested"u8.ToArray();
        await Uploads.WriteAsync(path, new MemoryStream(firstUpload), CancellationToken.None);
        var studyId = StudyIds.ForUpload(StudyIdKey.From(_key), tenant, path);

        // Its ingest never finished (every worker died in it); the watchdog fails it and moves the upload to quarantine.
        Assert.True(await azurite.Storage.Studies.TryCreateAsync(new StudyRecord
        {
            Tenant = tenant,
            StudyId = studyId,
            Status = StudyStatus.Processing,
            UploadPath = path,
            UploadKind = "blob",
            CreatedAt = clock.GetUtcNow(),
            IngestAttempts = 1,
        }, CancellationToken.None));
        const string Why = "the study was still processing 6 h after it was created (Pipeline:StuckStudyAge): its ingest never finished";
        Assert.True(await FailStudyActivity.FailAsync(azurite.Storage.Studies, azurite.Storage.BlobContainers, tenant, studyId, Why, IngestHandler.StuckReason, Why, clock.GetUtcNow(), null, CancellationToken.None));
        var failed = (await azurite.Storage.Studies.GetAsync(tenant, studyId, CancellationToken.None))!;
        var firstReason = await ReadAsync(Quarantine, $"{tenant}/{studyId}/reason.json");

        // An hour later the user uploads again at the path (not DICOM either).
        clock.Ahead = TimeSpan.FromHours(1);
        var secondUpload = "the second upload, not DICOM"u8.ToArray();
        await Uploads.WriteAsync(path, new MemoryStream(secondUpload), CancellationToken.None);
        var writtenAt = clock.GetUtcNow();
        var second = await Handler(clock).IngestAsync(Unit(path, writtenAt), CancellationToken.None);

        // Before, the failed study was reopened and the new upload rejected in its place: its copy overwrote
        // original/scan.dcm and reason.json (the first upload's bytes and the stuck reason lost), and the row said rejected.
        Assert.Equal((IngestStatus.Rejected, "reupload-after-failure"), (second.Status, second.Reason));
        Assert.Equal(firstUpload, await ReadAsync(Quarantine, $"{tenant}/{studyId}/original/scan.dcm"));
        Assert.Equal(firstReason, await ReadAsync(Quarantine, $"{tenant}/{studyId}/reason.json"));
        var prefix = $"{tenant}/{studyId}/reupload-{writtenAt.UtcDateTime:yyyyMMddTHHmmssZ}";
        Assert.Equal(secondUpload, await ReadAsync(Quarantine, $"{prefix}/original/scan.dcm"));
        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await ReadAsync(Quarantine, $"{prefix}/reason.json")));
        Assert.Equal(("reupload-after-failure", path), (reason.Reason, reason.UploadPath));
        Assert.Equal(failed, await azurite.Storage.Studies.GetAsync(tenant, studyId, CancellationToken.None));
        Assert.False(await Uploads.ExistsAsync(path, CancellationToken.None));
    }

    private IngestHandler Handler(MovableClock clock, RecordingNotifier? notifier = null, RecordingOrchestrations? orchestrations = null, IBlobContainers? containers = null) =>
        IngestOnAzurite.NewHandler(azurite, _key, orchestrations ?? new RecordingOrchestrations(), containers, notifier, time: clock);

    private UploadUnit Unit(string path, MovableClock clock) => Unit(path, clock.GetUtcNow());

    private UploadUnit Unit(string path, DateTimeOffset writtenAt) =>
        UploadUnitPlanner.ForSingleBlob(new UploadBlob(path, writtenAt, 100), StudyIdKey.From(_key))!;

    /// <summary>What the lifecycle rule does to a study's quarantine after <c>quarantineRetentionDays</c>.</summary>
    private async Task DeleteQuarantineAsync(string tenant, string studyId)
    {
        var paths = await Quarantine.ListAsync($"{tenant}/{studyId}/", CancellationToken.None).ToListAsync();
        Assert.NotEmpty(paths);
        foreach (var blob in paths)
        {
            await Quarantine.DeleteAsync(blob, CancellationToken.None);
        }
    }

    /// <summary>The system clock, moved ahead when the test says (ingest's and the watchdog's "now").</summary>
    private sealed class MovableClock : TimeProvider
    {
        public TimeSpan Ahead { get; set; }

        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + Ahead;
    }
}
