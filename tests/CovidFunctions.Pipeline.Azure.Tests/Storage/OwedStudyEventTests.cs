using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;

using static CovidFunctions.Pipeline.Azure.Tests.Storage.UploadTestFiles;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// A settling write whose process dies before its notification, where nothing would meet the study again, on Azurite:
/// the row says the event is owed (<see cref="StudyRecord.EventOwed"/>) and the upload sweep sends it (the Function app's
/// hourly timer; <c>covidfn up</c> runs the same sweep at start and every sweep interval). The death is a notifier that
/// throws for the test's tenant (the sweep is global: other tests' studies are left alone).
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class OwedStudyEventTests(AzuriteFixture azurite)
{
    private readonly DeidKey _key = DeidKey.Generate();

    private IBlobStore Uploads => azurite.Storage.BlobContainers.Get(PipelineNames.UploadsContainer);

    [Fact]
    public async Task The_watchdog_failing_an_ingested_study_and_dying_before_study_failed_leaves_it_owed_and_the_next_sweep_sends_it_once()
    {
        var tenant = AzuriteFixture.NewTenant();
        var path = $"{tenant}/scan.zip";
        var zip = Zip(MidChestSlices(3));
        await Uploads.WriteAsync(path, new MemoryStream(zip), CancellationToken.None);
        var unit = UploadUnitPlanner.ForSingleBlob(new UploadBlob(path, DateTimeOffset.UtcNow, zip.Length), StudyIdKey.From(_key))!;
        Assert.Equal(IngestStatus.Ingested, (await Handler(new RecordingNotifier()).IngestAsync(unit, CancellationToken.None)).Status);

        // Seven hours on the study is still processing and its orchestration is not running: the watchdog fails it, and
        // its process dies as it sends study.failed.
        var watchdogNow = DateTimeOffset.UtcNow.AddHours(7);
        await Assert.ThrowsAsync<ProcessKilledException>(() => Handler(new NotifierDiesFor(tenant)).FailStuckStudiesAsync(watchdogNow, CancellationToken.None));
        var failed = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Equal(StudyStatus.Failed, failed.Status);
        Assert.NotNull(failed.IngestedAt);

        // The minute sweep meets the upload still in ct-uploads and moves it to quarantine, as for any study failed after
        // ingest; the event is not that path's to send.
        var notifier = new RecordingNotifier();
        foreach (var planned in await PlanTenantAsync(azurite.Storage.UploadListing, tenant, _key))
        {
            if (await Handler(notifier).SweepMustIngestAsync(planned, CancellationToken.None))
            {
                await Handler(notifier).IngestAsync(planned, CancellationToken.None);
            }
        }

        // The next hourly sweep sends what is owed. Before, nothing did: the row was failed and no subscriber was told.
        await Handler(notifier).SweepExpiredUploadsAsync(watchdogNow.AddHours(1), CancellationToken.None);
        Assert.Equal([(tenant, unit.StudyId, StudyEventTypes.Failed)], notifier.Events.Where(e => e.Tenant == tenant));
        var row = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Failed, failed.Reason, null), (row.Status, row.Reason, row.EventOwed));

        // Sent, it is no longer owed: the sweep after sends nothing more.
        await Handler(notifier).SweepExpiredUploadsAsync(watchdogNow.AddHours(2), CancellationToken.None);
        Assert.Single(notifier.Events, e => e.Tenant == tenant);
    }

    [Fact]
    public async Task A_reject_dying_before_study_rejected_leaves_it_owed_with_nothing_left_in_ct_uploads_and_the_sweep_sends_it_once()
    {
        var tenant = AzuriteFixture.NewTenant();
        var path = $"{tenant}/notes.dcm";
        var upload = "a text file named .dcm"u8.ToArray();
        await Uploads.WriteAsync(path, new MemoryStream(upload), CancellationToken.None);
        var unit = UploadUnitPlanner.ForSingleBlob(new UploadBlob(path, DateTimeOffset.UtcNow, upload.Length), StudyIdKey.From(_key))!;

        // The reject moves the upload to quarantine, writes the row rejected, and its process dies as it notifies.
        await Assert.ThrowsAsync<ProcessKilledException>(() => Handler(new NotifierDiesFor(tenant)).IngestAsync(unit, CancellationToken.None));
        var rejected = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Equal(StudyStatus.Rejected, rejected.Status);

        // covidfn up's watcher lists ct-uploads: nothing of the study is left there to deliver again.
        Assert.Empty(await PlanTenantAsync(azurite.Storage.UploadListing, tenant, _key));

        // The sweep up runs at its next start (and every sweep interval) sends it. Before, it stayed unsent for good.
        var notifier = new RecordingNotifier();
        await Handler(notifier).SweepExpiredUploadsAsync(DateTimeOffset.UtcNow, CancellationToken.None);
        Assert.Equal([(tenant, unit.StudyId, StudyEventTypes.Rejected)], notifier.Events.Where(e => e.Tenant == tenant));
        var row = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Equal(StudyEventTypes.Rejected, rejected.EventOwed);
        Assert.Equal(rejected with { EventOwed = null, ETag = row.ETag }, row);

        await Handler(notifier).SweepExpiredUploadsAsync(DateTimeOffset.UtcNow, CancellationToken.None);
        Assert.Single(notifier.Events, e => e.Tenant == tenant);
    }

    [Fact]
    public async Task A_reject_that_notified_owes_nothing()
    {
        var tenant = AzuriteFixture.NewTenant();
        var path = $"{tenant}/notes.dcm";
        var upload = "a text file named .dcm"u8.ToArray();
        await Uploads.WriteAsync(path, new MemoryStream(upload), CancellationToken.None);
        var unit = UploadUnitPlanner.ForSingleBlob(new UploadBlob(path, DateTimeOffset.UtcNow, upload.Length), StudyIdKey.From(_key))!;
        var notifier = new RecordingNotifier();

        Assert.Equal(IngestStatus.Rejected, (await Handler(notifier).IngestAsync(unit, CancellationToken.None)).Status);

        var row = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Rejected, null), (row.Status, row.EventOwed));
        await Handler(notifier).SweepExpiredUploadsAsync(DateTimeOffset.UtcNow, CancellationToken.None);
        Assert.Equal([(tenant, unit.StudyId, StudyEventTypes.Rejected)], notifier.Events.Where(e => e.Tenant == tenant));
    }

    private IngestHandler Handler(IStudyNotifier notifier) =>
        IngestOnAzurite.NewHandler(azurite, _key, new EndedOrchestrations(), notifier: notifier);

    /// <summary>The process dying as it notifies a study of <paramref name="tenant"/>; other tenants' studies are left alone.</summary>
    private sealed class NotifierDiesFor(string tenant) : IStudyNotifier
    {
        public Task NotifyAsync(string tenant1, string studyId, string eventType, CancellationToken cancellationToken) =>
            tenant1 == tenant ? throw new ProcessKilledException() : Task.CompletedTask;
    }

    private sealed class ProcessKilledException() : Exception("the process was killed");

    /// <summary>Starts instances and reports each as ended, as Durable does once an orchestration ended without settling its study.</summary>
    private sealed class EndedOrchestrations : IStudyOrchestrationClient
    {
        public Task<bool> StartIfAbsentAsync(StudyOrchestrationInput input, CancellationToken cancellationToken) => Task.FromResult(true);

        public Task RaiseChunkResultAsync(ChunkResult result, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task<bool?> IsRunningAsync(string instanceId, CancellationToken cancellationToken) => Task.FromResult<bool?>(false);
    }
}
