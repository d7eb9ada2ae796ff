using System.Text;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Orchestration.Activities;
using CovidFunctions.Pipeline.Scoring;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.DurableTask;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

using static CovidFunctions.Pipeline.Azure.Tests.Storage.UploadTestFiles;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// "Nothing is lost": on a real Azurite, the raw upload stays in ct-uploads from ingest until the study's results are
/// stored (then it is deleted), or until the study fails (then it is moved to quarantine with the reason), whatever
/// crashes and re-deliveries happen in between. Ingest, the AggregateStudy and the FailStudy activities are run as
/// the hosts run them, each step by a fresh instance (a restarted process).
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class UploadLifecycleTests(AzuriteFixture azurite)
{
    private static readonly DeidKey Key = DeidKey.Generate();

    private IBlobStore Uploads => azurite.Storage.BlobContainers.Get(PipelineNames.UploadsContainer);

    private IBlobStore Quarantine => azurite.Storage.BlobContainers.Get(PipelineNames.QuarantineContainer);

    [Fact]
    public async Task CrashBeforeTheOrchestrationStarts_UploadKeptThroughReDeliveries_DeletedOnlyOnceTheResultsAreStored()
    {
        var tenant = AzuriteFixture.NewTenant();
        var uploadPath = $"{tenant}/scan.zip";
        await WriteAsync(Uploads, uploadPath, Zip(MidChestSlices(3)));

        // Process 1 writes the tiles and the Studies row, then dies before the orchestration is started.
        var crashed = await Assert.ThrowsAsync<IOException>(async () => await NewIngest(new RecordingOrchestrations(failStarts: true)).IngestAsync(await PlanAsync(tenant), CancellationToken.None));
        Assert.Equal("process killed", crashed.Message);
        var unit = await PlanAsync(tenant);
        var row = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.NotNull(row.IngestedAt);
        Assert.True(await azurite.Storage.BlobContainers.Get(PipelineNames.SlicesContainer).ExistsAsync($"{row.TilesPrefix}/manifest.json", CancellationToken.None));
        Assert.True(await Uploads.ExistsAsync(uploadPath, CancellationToken.None));

        // Process 2 gets the same blob event again: it starts the orchestration (once) and keeps the upload.
        var orchestrations = new RecordingOrchestrations();
        var resumed = await NewIngest(orchestrations).IngestAsync(unit, CancellationToken.None);
        Assert.Equal((IngestStatus.AlreadyIngested, true), (resumed.Status, resumed.OrchestrationStarted));
        var again = await NewIngest(orchestrations).IngestAsync(await PlanAsync(tenant), CancellationToken.None);
        Assert.Equal((IngestStatus.AlreadyIngested, false), (again.Status, again.OrchestrationStarted));
        Assert.Single(orchestrations.Started);
        Assert.True(await Uploads.ExistsAsync(uploadPath, CancellationToken.None), "the upload must outlive ingest while the study is scored");

        // Scoring stored its chunk result; the aggregate stores the diagnosis and only then deletes the upload.
        var input = orchestrations.Started[0];
        var chunk = await WriteChunkResultAsync(input, sliceCount: 3);
        var aggregate = new AggregateStudyActivity(azurite.Storage.BlobContainers, azurite.Storage.Studies, UploadReadKey.From(Key), Options.Create(new PipelineOptions()), NullLogger<AggregateStudyActivity>.Instance);
        var diagnosis = await aggregate.RunAsync(new ActivityContext(StudyOrchestration.AggregateStudy, input.InstanceId), new AggregateStudyInput(tenant, input.StudyId, input.TilesPrefix, [chunk], DateTime.UtcNow, DateTime.UtcNow));

        Assert.Equal(3, diagnosis.Slices);
        Assert.Equal(StudyStatus.Completed, (await azurite.Storage.Studies.GetAsync(tenant, input.StudyId, CancellationToken.None))!.Status);
        Assert.False(await Uploads.ExistsAsync(uploadPath, CancellationToken.None));

        // A late re-delivery of the blob event finds a completed study: nothing is started or written.
        var late = await NewIngest(orchestrations).IngestAsync(unit, CancellationToken.None);
        Assert.Equal((IngestStatus.AlreadyIngested, false), (late.Status, late.OrchestrationStarted));
        Assert.Empty(await Quarantine.ListAsync($"{tenant}/", CancellationToken.None).ToListAsync());
    }

    [Fact]
    public async Task StudyFailingAfterIngest_MovesTheOriginalsToQuarantineWithTheReason_MarkerLast()
    {
        var tenant = AzuriteFixture.NewTenant();
        var slices = MidChestSlices(3);
        foreach (var file in slices)
        {
            await WriteAsync(Uploads, $"{tenant}/series-4/{Path.GetFileName(file)}", File.ReadAllBytes(file));
        }

        await WriteAsync(Uploads, $"{tenant}/series-4/{PipelineNames.CompleteMarker}", []);
        var orchestrations = new RecordingOrchestrations();
        var outcome = await NewIngest(orchestrations).IngestAsync(await PlanAsync(tenant), CancellationToken.None);
        Assert.Equal(IngestStatus.Ingested, outcome.Status);
        Assert.Equal(4, (await Uploads.ListAsync($"{tenant}/", CancellationToken.None).ToListAsync()).Count);

        // The orchestration gives up on a chunk (a poison chunk after all its attempts).
        const string Reason = "no result for chunk(s) 0 (slices 0-2) after 3 attempt(s) of 600 s each";
        var fail = new FailStudyActivity(azurite.Storage.Studies, azurite.Storage.BlobContainers);
        Assert.True(await fail.RunAsync(new ActivityContext(StudyOrchestration.FailStudy, orchestrations.Started[0].InstanceId), new FailStudyInput(tenant, outcome.StudyId, Reason)));

        var row = (await azurite.Storage.Studies.GetAsync(tenant, outcome.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Failed, Reason), (row.Status, row.Reason));
        Assert.Empty(await Uploads.ListAsync($"{tenant}/", CancellationToken.None).ToListAsync());
        foreach (var file in slices)
        {
            Assert.Equal(File.ReadAllBytes(file), await ReadAsync(Quarantine, $"{tenant}/{outcome.StudyId}/original/{Path.GetFileName(file)}"));
        }

        var reasonJson = await ReadAsync(Quarantine, $"{tenant}/{outcome.StudyId}/reason.json");
        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(reasonJson));
        Assert.Equal((IngestHandler.StudyFailedReason, Reason, $"{tenant}/series-4/"), (reason.Reason, reason.Detail, reason.UploadPath));

        // The activity retried after a crash, and a late blob event, change nothing and lose nothing.
        Assert.True(await fail.RunAsync(new ActivityContext(StudyOrchestration.FailStudy, orchestrations.Started[0].InstanceId), new FailStudyInput(tenant, outcome.StudyId, Reason)));
        var late = await NewIngest(orchestrations).IngestAsync(FolderUnitWithoutBlobs(tenant), CancellationToken.None);
        Assert.Equal(IngestStatus.AlreadyIngested, late.Status);
        Assert.Equal(reasonJson, await ReadAsync(Quarantine, $"{tenant}/{outcome.StudyId}/reason.json"));
        Assert.Equal(3, (await Quarantine.ListAsync($"{tenant}/{outcome.StudyId}/original/", CancellationToken.None).ToListAsync()).Count);
        Assert.Single(orchestrations.Started);
    }

    [Fact]
    public async Task RetentionSweep_NeverDeletesTheUploadOfAStudyStillBeingScored()
    {
        var tenant = AzuriteFixture.NewTenant();
        var uploadPath = $"{tenant}/kept.zip";
        await WriteAsync(Uploads, uploadPath, Zip(MidChestSlices(2)));
        var orchestrations = new RecordingOrchestrations();
        var ingest = NewIngest(orchestrations, new PipelineOptions { UploadRetention = TimeSpan.FromMinutes(5) });
        Assert.Equal(IngestStatus.Ingested, (await ingest.IngestAsync(await PlanAsync(tenant), CancellationToken.None)).Status);

        // Long past the retention, but the study has no results yet.
        Assert.Equal(0, await ingest.SweepExpiredUploadsAsync(DateTimeOffset.UtcNow.AddDays(2), CancellationToken.None));
        Assert.True(await Uploads.ExistsAsync(uploadPath, CancellationToken.None));

        var input = orchestrations.Started[0];
        var chunk = await WriteChunkResultAsync(input, sliceCount: 2);
        var aggregate = new AggregateStudyActivity(azurite.Storage.BlobContainers, azurite.Storage.Studies, UploadReadKey.From(Key), Options.Create(new PipelineOptions { UploadRetention = TimeSpan.FromMinutes(5) }), NullLogger<AggregateStudyActivity>.Instance);
        await aggregate.RunAsync(new ActivityContext(StudyOrchestration.AggregateStudy, input.InstanceId), new AggregateStudyInput(tenant, input.StudyId, input.TilesPrefix, [chunk], DateTime.UtcNow, DateTime.UtcNow));
        Assert.True(await Uploads.ExistsAsync(uploadPath, CancellationToken.None), "kept for the retention after the results");

        Assert.True(await ingest.SweepExpiredUploadsAsync(DateTimeOffset.UtcNow.AddMinutes(6), CancellationToken.None) >= 1);
        Assert.False(await Uploads.ExistsAsync(uploadPath, CancellationToken.None));
    }

    [Fact]
    public async Task A_blob_written_again_under_its_name_after_ingest_survives_completion_in_quarantine_the_others_are_deleted()
    {
        var tenant = AzuriteFixture.NewTenant();
        var slices = MidChestSlices(4);
        foreach (var file in slices.Take(3))
        {
            await WriteAsync(Uploads, $"{tenant}/series/{Path.GetFileName(file)}", File.ReadAllBytes(file));
        }

        await WriteAsync(Uploads, $"{tenant}/series/{PipelineNames.CompleteMarker}", []);
        var orchestrations = new RecordingOrchestrations();
        var outcome = await NewIngest(orchestrations).IngestAsync(await PlanAsync(tenant), CancellationToken.None);
        Assert.Equal((IngestStatus.Ingested, 3), (outcome.Status, outcome.SliceCount));

        // While the study is scored, the uploader writes another slice under the name of one ingest read: a file never
        // screened. Before, completion deleted "the blobs ingest read" by name, this one with them.
        var overwritten = $"{tenant}/series/{Path.GetFileName(slices[1])}";
        var newContent = File.ReadAllBytes(slices[3]);
        await WriteAsync(Uploads, overwritten, newContent);

        var input = orchestrations.Started[0];
        var chunk = await WriteChunkResultAsync(input, sliceCount: 3);
        var aggregate = new AggregateStudyActivity(azurite.Storage.BlobContainers, azurite.Storage.Studies, UploadReadKey.From(Key), Options.Create(new PipelineOptions()), NullLogger<AggregateStudyActivity>.Instance);
        await aggregate.RunAsync(new ActivityContext(StudyOrchestration.AggregateStudy, input.InstanceId), new AggregateStudyInput(tenant, input.StudyId, input.TilesPrefix, [chunk], DateTime.UtcNow, DateTime.UtcNow));

        Assert.Equal(StudyStatus.Completed, (await azurite.Storage.Studies.GetAsync(tenant, input.StudyId, CancellationToken.None))!.Status);
        Assert.Empty(await Uploads.ListAsync($"{tenant}/", CancellationToken.None).ToListAsync()); // the untouched ones and the marker deleted
        var kept = await Quarantine.ListAsync($"{tenant}/{outcome.StudyId}/", CancellationToken.None).ToListAsync();
        var reasonPath = Assert.Single(kept, p => p.EndsWith("/reason.json", StringComparison.Ordinal));
        Assert.StartsWith($"{tenant}/{outcome.StudyId}/changed-", reasonPath, StringComparison.Ordinal);
        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await ReadAsync(Quarantine, reasonPath)));
        Assert.Equal((IngestHandler.ChangedAfterIngestReason, $"{tenant}/series/"), (reason.Reason, reason.UploadPath));
        Assert.Equal(Path.GetFileName(overwritten), Assert.Single(reason.Files!).Name);
        Assert.Equal(newContent, await ReadAsync(Quarantine, reasonPath[..^"reason.json".Length] + "original/" + Path.GetFileName(overwritten)));
        Assert.Equal(2, kept.Count);
    }

    [Fact]
    public async Task A_blob_written_again_after_ingest_is_late_at_the_next_look_by_its_version()
    {
        var tenant = AzuriteFixture.NewTenant();
        var slices = MidChestSlices(4);
        foreach (var file in slices.Take(3))
        {
            await WriteAsync(Uploads, $"{tenant}/series/{Path.GetFileName(file)}", File.ReadAllBytes(file));
        }

        await WriteAsync(Uploads, $"{tenant}/series/{PipelineNames.CompleteMarker}", []);
        var orchestrations = new RecordingOrchestrations();
        Assert.Equal(IngestStatus.Ingested, (await NewIngest(orchestrations).IngestAsync(await PlanAsync(tenant), CancellationToken.None)).Status);
        var overwritten = $"{tenant}/series/{Path.GetFileName(slices[1])}";
        await WriteAsync(Uploads, overwritten, File.ReadAllBytes(slices[3]));

        // The next look lists the folder with ETags: the name is in the read list, its version is not the one read.
        var second = await NewIngest(orchestrations).IngestAsync(await PlanAsync(tenant), CancellationToken.None);

        Assert.Equal((IngestStatus.Rejected, IngestHandler.ReuploadAfterIngestReason), (second.Status, second.Reason));
        var original = Assert.Single(await Quarantine.ListAsync($"{tenant}/{second.StudyId}/", CancellationToken.None).ToListAsync(), p => p.Contains("/original/", StringComparison.Ordinal));
        Assert.Equal(File.ReadAllBytes(slices[3]), await ReadAsync(Quarantine, original));
        Assert.Equal(3, (await Uploads.ListAsync($"{tenant}/", CancellationToken.None).ToListAsync()).Count); // the unchanged ones and the marker stay
    }

    private IngestHandler NewIngest(IStudyOrchestrationClient orchestrations, PipelineOptions? options = null) =>
        IngestOnAzurite.NewHandler(azurite, Key, orchestrations, options: options);

    private async Task<UploadUnit> PlanAsync(string tenant)
    {
        return Assert.Single(await PlanTenantAsync(azurite.Storage.UploadListing, tenant, Key));
    }

    /// <summary>The folder unit as a late event would carry it after the upload was moved away (no blobs left to list).</summary>
    private static UploadUnit FolderUnitWithoutBlobs(string tenant) =>
        new(tenant, StudyIds.ForUpload(StudyIdKey.From(Key), tenant, $"{tenant}/series-4/"), $"{tenant}/series-4/", UploadUnitKind.Folder, [], null);

    /// <summary>What the scorer stores for one chunk: its result document (no lesion, so no masks) and the chunk result.</summary>
    private async Task<ChunkResult> WriteChunkResultAsync(StudyOrchestrationInput input, int sliceCount)
    {
        var slices = Enumerable.Range(0, sliceCount).Select(s => new SliceScore(s, 0.01f, 0, 0, 1000, [0.1f, 0.1f, 0.8f], null, null)).ToList();
        var path = ScoringHandler.ChunkDocumentPath(input.Tenant, input.StudyId, 0);
        var document = new ChunkResultDocument(input.StudyId, 0, "test@000000000000", ["covid", "cap", "normal"], slices);
        await WriteAsync(azurite.Storage.BlobContainers.Get(PipelineNames.ResultsContainer), path, Encoding.UTF8.GetBytes(PipelineJson.Serialize(document)));
        return new ChunkResult(input.Tenant, input.StudyId, input.InstanceId, 0, 1, sliceCount, path, 0.5, "CPU", null);
    }

    private static async Task WriteAsync(IBlobStore store, string path, byte[] content) =>
        await store.WriteAsync(path, new MemoryStream(content, writable: false), CancellationToken.None);

    private sealed class ActivityContext(string name, string instanceId) : TaskActivityContext
    {
        public override TaskName Name { get; } = new(name);

        public override string InstanceId { get; } = instanceId;
    }
}
