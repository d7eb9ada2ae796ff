using System.Text;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Orchestration.Activities;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.DurableTask;

using static CovidFunctions.Pipeline.Azure.Tests.Storage.UploadTestFiles;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// The two ways a study could stay <c>processing</c> for ever, on a real Azurite (Studies table, blob containers), each
/// step by a fresh handler (a restarted process): an ingest that throws on every attempt (the attempt count survives
/// restarts in the Studies row) and a FailStudy that fails for good (the sweep's watchdog settles the study).
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class StuckStudyTests(AzuriteFixture azurite)
{
    private IBlobStore Uploads => azurite.Storage.BlobContainers.Get(PipelineNames.UploadsContainer);

    private IBlobStore Quarantine => azurite.Storage.BlobContainers.Get(PipelineNames.QuarantineContainer);

    [Fact]
    public async Task An_ingest_throwing_on_every_attempt_across_restarts_fails_the_study_on_the_third_with_the_upload_in_quarantine()
    {
        var tenant = AzuriteFixture.NewTenant();
        var uploadPath = $"{tenant}/scan.zip";
        var zip = Zip(MidChestSlices(3));
        await Uploads.WriteAsync(uploadPath, new MemoryStream(zip), CancellationToken.None);
        var unit = new UploadUnit(tenant, "s-throws", uploadPath, UploadUnitKind.SingleBlob, [new UploadBlob(uploadPath, DateTimeOffset.UtcNow, zip.Length)], null);
        var containers = new TilesWritesFail(azurite.Storage.BlobContainers, () => new IOException("No space left on device"));
        var notifier = new RecordingNotifier();

        for (var attempt = 1; attempt <= 2; attempt++)
        {
            await Assert.ThrowsAsync<IOException>(() => NewIngest(containers, notifier).IngestAsync(unit, CancellationToken.None));
            var row = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
            Assert.Equal((StudyStatus.Processing, attempt, "IOException: No space left on device"), (row.Status, row.IngestAttempts, row.IngestError));
        }

        var outcome = await NewIngest(containers, notifier).IngestAsync(unit, CancellationToken.None);

        Assert.Equal(IngestStatus.Failed, outcome.Status);
        var failed = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Failed, 3, null), (failed.Status, failed.IngestAttempts, failed.UploadPath));
        Assert.StartsWith("ingest failed on each of 3 attempt(s)", failed.Reason, StringComparison.Ordinal);
        Assert.False(await Uploads.ExistsAsync(uploadPath, CancellationToken.None));
        Assert.Equal(zip, await ReadAsync(Quarantine, $"{tenant}/{unit.StudyId}/original/scan.zip"));
        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await ReadAsync(Quarantine, $"{tenant}/{unit.StudyId}/reason.json")));
        Assert.Equal((IngestHandler.IngestFailedReason, failed.Reason), (reason.Reason, reason.Detail));
        Assert.Equal([(tenant, unit.StudyId, StudyEventTypes.Failed)], notifier.Events);
        Assert.Empty(await azurite.Storage.BlobContainers.Get(PipelineNames.SlicesContainer).ListAsync($"{tenant}/", CancellationToken.None).ToListAsync());
    }

    [Fact]
    public async Task A_FailStudy_failing_for_good_leaves_the_study_processing_until_the_sweep_fails_it_with_the_upload_in_quarantine()
    {
        var tenant = AzuriteFixture.NewTenant();
        var uploadPath = $"{tenant}/scan.zip";
        var zip = Zip(MidChestSlices(3));
        await Uploads.WriteAsync(uploadPath, new MemoryStream(zip), CancellationToken.None);
        var unit = new UploadUnit(tenant, "s-failstudy", uploadPath, UploadUnitKind.SingleBlob, [new UploadBlob(uploadPath, DateTimeOffset.UtcNow, zip.Length)], null);
        var orchestrations = new EndedOrchestrations();
        var notifier = new RecordingNotifier();
        Assert.Equal(IngestStatus.Ingested, (await NewIngest(azurite.Storage.BlobContainers, notifier, orchestrations).IngestAsync(unit, CancellationToken.None)).Status);

        // The orchestration fails the study, but every FailStudy attempt finds the Studies table away: the orchestration
        // itself fails (ended), the row stays processing and the upload stays in ct-uploads.
        var fail = new FailStudyActivity(new StudiesAway(), azurite.Storage.BlobContainers);
        await Assert.ThrowsAsync<IOException>(() => fail.RunAsync(new ActivityContext(), new FailStudyInput(tenant, unit.StudyId, "chunk 0 could not be scored")));
        Assert.Equal(StudyStatus.Processing, (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!.Status);

        // An hour later the orchestration has ended but the study is young: left alone. Seven hours later it is failed.
        var sweep = NewIngest(azurite.Storage.BlobContainers, notifier, orchestrations);
        await sweep.SweepExpiredUploadsAsync(DateTimeOffset.UtcNow.AddHours(1), CancellationToken.None);
        Assert.Equal(StudyStatus.Processing, (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!.Status);
        await sweep.SweepExpiredUploadsAsync(DateTimeOffset.UtcNow.AddHours(7), CancellationToken.None);

        var row = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Equal(StudyStatus.Failed, row.Status);
        Assert.Contains("its orchestration is not running", row.Reason, StringComparison.Ordinal);
        Assert.Null(row.UploadPath);
        Assert.False(await Uploads.ExistsAsync(uploadPath, CancellationToken.None));
        Assert.Equal(zip, await ReadAsync(Quarantine, $"{tenant}/{unit.StudyId}/original/scan.zip"));
        Assert.Equal(IngestHandler.StuckReason, PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await ReadAsync(Quarantine, $"{tenant}/{unit.StudyId}/reason.json"))).Reason);

        // The sweep is global: studies other tests left processing in the shared table are failed too, and not counted here.
        Assert.Equal([(tenant, unit.StudyId, StudyEventTypes.Failed)], notifier.Events.Where(e => e.Tenant == tenant));
    }

    private IngestHandler NewIngest(IBlobContainers containers, IStudyNotifier notifier, IStudyOrchestrationClient? orchestrations = null) =>
        IngestOnAzurite.NewHandler(azurite, DeidKey.Generate(), orchestrations ?? new EndedOrchestrations(), containers, notifier);

    /// <summary>Starts instances (recorded) and reports each as ended, as Durable does once an orchestration failed.</summary>
    private sealed class EndedOrchestrations : IStudyOrchestrationClient
    {
        public Task<bool> StartIfAbsentAsync(StudyOrchestrationInput input, CancellationToken cancellationToken) => Task.FromResult(true);

        public Task RaiseChunkResultAsync(ChunkResult result, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task<bool?> IsRunningAsync(string instanceId, CancellationToken cancellationToken) => Task.FromResult<bool?>(false);
    }

    /// <summary>A Studies table that stays away (every call fails), as during an outage longer than the activity's retries.</summary>
    private sealed class StudiesAway : IStudyStore
    {
        public Task<StudyRecord?> GetAsync(string tenant, string studyId, CancellationToken cancellationToken) => throw new IOException("table away");

        public Task<bool> TryCreateAsync(StudyRecord record, CancellationToken cancellationToken) => throw new IOException("table away");

        public Task<StudyRecord> UpdateAsync(string tenant, string studyId, Func<StudyRecord?, StudyRecord> update, CancellationToken cancellationToken) => throw new IOException("table away");

        public IAsyncEnumerable<StudyRecord> QueryAsync(string? tenant, string? status, DateTimeOffset? from, DateTimeOffset? to, CancellationToken cancellationToken) => throw new IOException("table away");
    }

    private sealed class ActivityContext : TaskActivityContext
    {
        public override TaskName Name { get; } = new(StudyOrchestration.FailStudy);

        public override string InstanceId { get; } = "test";
    }
}
