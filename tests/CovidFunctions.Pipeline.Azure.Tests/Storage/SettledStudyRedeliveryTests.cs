using System.Text;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;

using static CovidFunctions.Pipeline.Azure.Tests.Storage.UploadTestFiles;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// A re-delivery of the upload of a study settled without being screened (rejected, or given up before it was ingested),
/// on Azurite: the trigger retrying a delivery whose process died after the study was settled, or a duplicate event. The
/// upload is gone from <c>ct-uploads</c> (in quarantine). The delivery must leave the Studies row as it is, and must send
/// the study's outcome: the process that settled the study may have died after its last write and before the
/// notification. The notifier delivers once per (subscription, study attempt, event), so asking it again is free when
/// the notification was sent (WebhookReingestTests, WebhookNotifier).
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class SettledStudyRedeliveryTests(AzuriteFixture azurite)
{
    private static readonly CancellationToken None = CancellationToken.None;

    private readonly DeidKey _key = DeidKey.Generate();

    private IBlobStore Uploads => azurite.Storage.BlobContainers.Get(PipelineNames.UploadsContainer);

    private IBlobStore Quarantine => azurite.Storage.BlobContainers.Get(PipelineNames.QuarantineContainer);

    [Fact]
    public async Task A_rejected_studys_redelivery_leaves_its_row_untouched_and_sends_study_rejected_its_process_died_before()
    {
        var tenant = AzuriteFixture.NewTenant();
        var path = $"{tenant}/notes.dcm";
        var upload = "a text file named .dcm"u8.ToArray();
        await Uploads.WriteAsync(path, new MemoryStream(upload), None);
        var unit = SingleBlob(path);

        // The upload is rejected: quarantined, the row written rejected, then the process dies as it notifies.
        await Assert.ThrowsAsync<ProcessKilledException>(() => Handler(new DyingNotifier()).IngestAsync(unit, None));
        var rejected = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, None))!;
        Assert.Equal((StudyStatus.Rejected, 1, null), (rejected.Status, rejected.IngestAttempts, rejected.UploadPath));
        Assert.False(await Uploads.ExistsAsync(path, None));
        Assert.Equal(upload, await ReadAsync(Quarantine, $"{tenant}/{unit.StudyId}/original/notes.dcm"));

        // The trigger delivers the upload's event again.
        var notifier = new RecordingNotifier();
        var outcome = await Handler(notifier).IngestAsync(unit, None);

        // Before, the re-delivery was run as a new attempt of the rejected study: its count went to 2 and the row said
        // processing until the reject was written again. Now the row is left as the reject wrote it, but for the event it
        // owed (StudyRecord.EventOwed), cleared once sent.
        Assert.Equal(StudyEventTypes.Rejected, rejected.EventOwed);
        var sent = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, None))!;
        Assert.Equal(rejected with { EventOwed = null, ETag = sent.ETag }, sent);
        Assert.Equal((IngestStatus.Rejected, StudyStatus.Rejected), (outcome.Status, outcome.Reason));
        Assert.Equal([(tenant, unit.StudyId, StudyEventTypes.Rejected)], notifier.Events);
        Assert.Equal("unreadable", (await ReasonAsync(tenant, unit.StudyId)).Reason);

        // Delivered again and again: no write (same ETag; a row rewritten each time would be counted each time, before).
        await Handler(notifier).IngestAsync(unit, None);
        Assert.Equal(sent, await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, None));
    }

    [Fact]
    public async Task A_give_up_dying_as_it_sends_study_failed_leaves_the_upload_to_the_redelivery_which_sends_it()
    {
        var tenant = AzuriteFixture.NewTenant();
        var path = $"{tenant}/scan.zip";
        var zip = Zip(MidChestSlices(3));
        await Uploads.WriteAsync(path, new MemoryStream(zip), None);
        var unit = SingleBlob(path);
        var oneAttempt = new PipelineOptions { MaxIngestAttempts = 1 };

        // The only allowed attempt fails on its tiles (a full disk) and gives up: the row is failed, then the process dies
        // as it sends study.failed.
        var tilesFail = new TilesWritesFail(azurite.Storage.BlobContainers, () => new IOException("No space left on device"));
        await Assert.ThrowsAsync<IOException>(() => Handler(new DyingNotifier(), oneAttempt, tilesFail).IngestAsync(unit, None));

        // The trigger retries the delivery whose process died (the minute sweep and the local watcher would hand it the
        // upload too: it is still in ct-uploads).
        var notifier = new RecordingNotifier();
        var outcome = await Handler(notifier, oneAttempt).IngestAsync(unit, None);

        // Before, the event was sent after the upload's move to quarantine, so the process died with the row failed, the
        // path forgotten and the upload moved: the re-delivery found nothing to do and sent nothing, and the subscribers
        // never heard that the study failed.
        Assert.Equal([(tenant, unit.StudyId, StudyEventTypes.Failed)], notifier.Events);
        Assert.Equal((IngestStatus.Failed, IngestHandler.IngestFailedReason), (outcome.Status, outcome.Reason));
        var row = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, None))!;
        Assert.Equal((StudyStatus.Failed, null, null, 1), (row.Status, row.UploadPath, row.IngestedAt, row.IngestAttempts));
        Assert.StartsWith("ingest failed on each of 1 attempt(s)", row.Reason, StringComparison.Ordinal);
        Assert.False(await Uploads.ExistsAsync(path, None));
        Assert.Equal(zip, await ReadAsync(Quarantine, $"{tenant}/{unit.StudyId}/original/scan.zip"));
        Assert.Equal(IngestHandler.IngestFailedReason, (await ReasonAsync(tenant, unit.StudyId)).Reason);
    }

    [Fact]
    public async Task A_study_failed_as_upload_missing_whose_process_died_as_it_notified_is_sent_by_the_redelivery()
    {
        var tenant = AzuriteFixture.NewTenant();
        var path = $"{tenant}/scan.dcm";

        // The event names a blob deleted before ingest could read it: the study fails as upload-missing (its row written,
        // nothing to quarantine), then the process dies as it sends study.failed.
        var unit = SingleBlob(path);
        await Assert.ThrowsAsync<ProcessKilledException>(() => Handler(new DyingNotifier()).IngestAsync(unit, None));
        var failed = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, None))!;
        Assert.Equal(StudyStatus.Failed, failed.Status);
        Assert.StartsWith(IngestHandler.UploadMissingReason + ":", failed.Reason, StringComparison.Ordinal);

        var notifier = new RecordingNotifier();
        var outcome = await Handler(notifier).IngestAsync(unit, None);

        // Before, the re-delivery found the study settled with no blob at its path and sent nothing.
        Assert.Equal([(tenant, unit.StudyId, StudyEventTypes.Failed)], notifier.Events);
        Assert.Equal(IngestStatus.Failed, outcome.Status);
        Assert.Equal(StudyEventTypes.Failed, failed.EventOwed);
        var sent = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, None))!;
        Assert.Equal(failed with { EventOwed = null, ETag = sent.ETag }, sent);
    }

    private UploadUnit SingleBlob(string path) =>
        UploadUnitPlanner.ForSingleBlob(new UploadBlob(path, DateTimeOffset.UtcNow, 100), StudyIdKey.From(_key))!;

    private async Task<QuarantineReason> ReasonAsync(string tenant, string studyId) =>
        PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await ReadAsync(Quarantine, $"{tenant}/{studyId}/reason.json")));

    /// <summary>A fresh handler (a restarted process) on Azurite.</summary>
    private IngestHandler Handler(IStudyNotifier notifier, PipelineOptions? options = null, IBlobContainers? containers = null) =>
        IngestOnAzurite.NewHandler(azurite, _key, new RecordingOrchestrations(), containers, notifier, options);

    /// <summary>The process dying as it notifies: after the study's last write, before any subscriber heard of it.</summary>
    private sealed class DyingNotifier : IStudyNotifier
    {
        public Task NotifyAsync(string tenant, string studyId, string eventType, CancellationToken cancellationToken) => throw new ProcessKilledException();
    }

    private sealed class ProcessKilledException() : Exception("the process was killed");
}
