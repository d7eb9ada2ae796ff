using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Azure.Functions.Worker;
using static CovidFunctions.FunctionApp.Tests.IngestFunctionsBuilder;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// The minute sweep (<see cref="IngestFunctions.SweepFolderUploads"/>) and single-blob uploads, on Azurite with the
/// functions called directly: a blob whose Event Grid event never came is ingested once it is
/// <see cref="PipelineOptions.SingleUploadSweepAge"/> old (before, the sweep planned folders only and such a blob was
/// never ingested: the lifecycle rule deleted it after <c>uploadRetentionDays</c>); blobs ingest already recorded cost
/// one Studies point read per sweep each; the sweep and the trigger ingesting one blob at once make one study.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class SingleUploadSweepTests(AzuriteFixture azurite)
{
    private static readonly DeidKey DeidKey = DeidKey.Generate();

    private static readonly StudyIdKey StudyIdKey = StudyIdKey.From(DeidKey);

    private static readonly PipelineOptions SweepOptions = new() { SingleUploadSweepAge = TimeSpan.FromMinutes(15) };

    [Fact]
    public async Task A_single_blob_whose_event_never_came_is_ingested_by_the_sweep_once_it_is_quiet_for_the_sweep_age()
    {
        await using var durable = await StartDurableAsync();
        var tenant = NewTenant();
        var name = $"{tenant}/study.zip";
        await Uploads.GetBlobClient(name).UploadAsync(BinaryData.FromBytes(ZipOfSlices()), overwrite: true);
        var studyId = StudyIds.ForUpload(StudyIdKey, tenant, name);

        // Seconds after the upload the trigger's event is still due: the sweep leaves the blob to it.
        await Functions(tenant, SweepOptions, TimeSpan.Zero).SweepFolderUploads(new TimerInfo(), durable.Client, CancellationToken.None);
        Assert.Null(await azurite.Storage.Studies.GetAsync(tenant, studyId, CancellationToken.None));

        // No event came (lost, or dead-lettered after Event Grid's 24 h): 16 minutes on, the sweep ingests it.
        await Functions(tenant, SweepOptions, TimeSpan.FromMinutes(16)).SweepFolderUploads(new TimerInfo(), durable.Client, CancellationToken.None);

        var row = await azurite.Storage.Studies.GetAsync(tenant, studyId, CancellationToken.None);
        Assert.NotNull(row?.IngestedAt);
        Assert.Equal(SliceFiles.Length, row.SliceCount);
        Assert.Equal(1, row.IngestAttempts);
        Assert.NotNull(await durable.Client.GetInstanceAsync(StudyIds.OrchestrationId(tenant, studyId)));
        Assert.True(await azurite.Storage.BlobContainers.Get(PipelineNames.SlicesContainer).ExistsAsync($"{IngestHandler.TilesPrefixOf(tenant, studyId)}/manifest.json", CancellationToken.None));
    }

    [Fact]
    public async Task Already_ingested_single_blobs_cost_one_Studies_point_read_each_per_sweep_and_no_blob_request()
    {
        // Completed studies whose uploads Pipeline:UploadRetention keeps in ct-uploads for a week: every sweep meets them.
        const int Uploaded = 25;
        var options = SweepOptions with { UploadRetention = TimeSpan.FromDays(7) };
        await using var durable = await StartDurableAsync();
        var tenant = NewTenant();
        for (var i = 0; i < Uploaded; i++)
        {
            var name = $"{tenant}/scan-{i:D2}.zip";
            await Uploads.GetBlobClient(name).UploadAsync(BinaryData.FromString("an ingested upload"), overwrite: true);
            var ingestedAt = DateTimeOffset.UtcNow;
            Assert.True(await azurite.Storage.Studies.TryCreateAsync(new StudyRecord
            {
                Tenant = tenant,
                StudyId = StudyIds.ForUpload(StudyIdKey, tenant, name),
                Status = StudyStatus.Completed,
                UploadPath = name,
                UploadKind = "blob",
                CreatedAt = ingestedAt,
                IngestedAt = ingestedAt,
                CompletedAt = ingestedAt,
                IngestAttempts = 1,
            }, CancellationToken.None));
        }

        var blobRequests = new CountingPolicy();
        var tableRequests = new CountingPolicy();
        var blobOptions = PipelineStorage.CreateBlobOptions(loopback: true);
        blobOptions.AddPolicy(blobRequests, HttpPipelinePosition.PerCall);
        var tableOptions = new TableClientOptions();
        tableOptions.AddPolicy(tableRequests, HttpPipelinePosition.PerCall);
        var blobService = new BlobServiceClient(azurite.Server.ConnectionString, blobOptions);
        var studies = new TableStudyStore(new TableServiceClient(azurite.Server.ConnectionString, tableOptions).GetTableClient(PipelineNames.StudiesTable));
        var functions = IngestFunctionsBuilder.Create(
            azurite, DeidKey, options, studies, new AzureBlobContainers(blobService),
            new AzureUploadListing(blobService.GetBlobContainerClient(PipelineNames.UploadsContainer)), onlyTenant: tenant, clockAhead: TimeSpan.FromMinutes(16));

        await functions.SweepFolderUploads(new TimerInfo(), durable.Client, CancellationToken.None);

        // One listing page, and one point read per blob: no read list, no orchestration query, no download.
        Assert.Equal(1, blobRequests.Count);
        Assert.Equal(Uploaded, tableRequests.Count);
        Assert.All(tableRequests.Methods, m => Assert.Equal("GET", m));
        Assert.Equal(Uploaded, await CountUploadsAsync(tenant));
    }

    [Fact]
    public async Task An_attempt_in_flight_is_left_to_the_trigger_and_one_whose_attempts_are_spent_is_given_up_at_once()
    {
        await using var durable = await StartDurableAsync();
        var tenant = NewTenant();
        var inFlight = $"{tenant}/in-flight.zip";
        var spent = $"{tenant}/spent.zip";
        var rows = new Dictionary<string, string>();
        foreach (var (name, attempts) in new[] { (inFlight, 1), (spent, SweepOptions.MaxIngestAttempts) })
        {
            await Uploads.GetBlobClient(name).UploadAsync(BinaryData.FromBytes(ZipOfSlices()), overwrite: true);
            var studyId = StudyIds.ForUpload(StudyIdKey, tenant, name);
            rows[name] = studyId;
            Assert.True(await azurite.Storage.Studies.TryCreateAsync(new StudyRecord
            {
                Tenant = tenant,
                StudyId = studyId,
                Status = StudyStatus.Processing,
                UploadPath = name,
                UploadKind = "blob",
                CreatedAt = DateTimeOffset.UtcNow,
                IngestAttempts = attempts,
                IngestError = "IOException: the worker went away",
            }, CancellationToken.None));
        }

        await Functions(tenant, SweepOptions, TimeSpan.FromMinutes(16)).SweepFolderUploads(new TimerInfo(), durable.Client, CancellationToken.None);

        // In flight: no second ingest next to the trigger's (it would count an attempt of its own).
        var running = await azurite.Storage.Studies.GetAsync(tenant, rows[inFlight], CancellationToken.None);
        Assert.Equal(StudyStatus.Processing, running?.Status);
        Assert.Equal(1, running?.IngestAttempts);
        Assert.True(await Uploads.GetBlobClient(inFlight).ExistsAsync());

        // Spent (the last attempt died before it could give up, and its event is gone): failed now, upload to
        // quarantine with the reason, rather than 6 hours later by the watchdog.
        var failed = await azurite.Storage.Studies.GetAsync(tenant, rows[spent], CancellationToken.None);
        Assert.Equal(StudyStatus.Failed, failed?.Status);
        Assert.False(await Uploads.GetBlobClient(spent).ExistsAsync());
        var quarantine = azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.QuarantineContainer);
        Assert.True(await quarantine.GetBlobClient($"{tenant}/{rows[spent]}/reason.json").ExistsAsync());
    }

    [Fact]
    public async Task The_trigger_and_the_sweep_ingesting_one_blob_at_once_make_one_ingested_study_and_one_orchestration()
    {
        await using var durable = await StartDurableAsync();
        var tenant = NewTenant();
        var name = $"{tenant}/raced.zip";
        await Uploads.GetBlobClient(name).UploadAsync(BinaryData.FromBytes(ZipOfSlices()), overwrite: true);
        var studyId = StudyIds.ForUpload(StudyIdKey, tenant, name);
        var functions = Functions(tenant, SweepOptions with { SingleUploadSweepAge = TimeSpan.Zero }, TimeSpan.Zero);

        // A late Event Grid retry and the sweep on the same blob at the same moment.
        await Task.WhenAll(
            Task.Run(() => functions.IngestUpload(Uploads.GetBlobClient(name), name, durable.Client, CancellationToken.None)),
            Task.Run(() => functions.SweepFolderUploads(new TimerInfo(), durable.Client, CancellationToken.None)));

        var row = await azurite.Storage.Studies.GetAsync(tenant, studyId, CancellationToken.None);
        Assert.NotNull(row?.IngestedAt);
        Assert.Equal(StudyStatus.Processing, row.Status);
        Assert.Equal(SliceFiles.Length, row.SliceCount);
        Assert.InRange(row.IngestAttempts, 1, 2);
        var instanceId = StudyIds.OrchestrationId(tenant, studyId);
        using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2)))
        {
            await durable.Client.WaitForInstanceCompletionAsync(instanceId, getInputsAndOutputs: false, timeout.Token);
        }

        var instance = await durable.Client.GetInstanceAsync(instanceId);
        Assert.NotNull(instance);

        // The upload is the study's until it settles; nothing of it went to quarantine.
        Assert.True(await Uploads.GetBlobClient(name).ExistsAsync());
        await foreach (var _ in azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.QuarantineContainer).GetBlobsAsync(new GetBlobsOptions { Prefix = $"{tenant}/" }))
        {
            Assert.Fail("the raced upload left something in quarantine");
        }

        // The next sweep finds it ingested and in flight: the row stays as it is, the orchestration is not started again.
        await functions.SweepFolderUploads(new TimerInfo(), durable.Client, CancellationToken.None);
        var after = await azurite.Storage.Studies.GetAsync(tenant, studyId, CancellationToken.None);
        Assert.Equal(row.IngestedAt, after?.IngestedAt);
        Assert.Equal(row.IngestAttempts, after?.IngestAttempts);
        Assert.Equal(instance.CreatedAt, (await durable.Client.GetInstanceAsync(instanceId))?.CreatedAt);
    }

    private BlobContainerClient Uploads => azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.UploadsContainer);

    private static string NewTenant() => "sweep1-" + Guid.NewGuid().ToString("N")[..12];

    private IngestFunctions Functions(string tenant, PipelineOptions options, TimeSpan clockAhead) =>
        IngestFunctionsBuilder.Create(azurite, DeidKey, options, onlyTenant: tenant, clockAhead: clockAhead);

    private async Task<int> CountUploadsAsync(string tenant)
    {
        var count = 0;
        await foreach (var _ in Uploads.GetBlobsAsync(new GetBlobsOptions { Prefix = tenant + "/" }))
        {
            count++;
        }

        return count;
    }

    /// <summary>Counts the requests a client sends (each try of each call).</summary>
    private sealed class CountingPolicy : HttpPipelinePolicy
    {
        private readonly List<string> _methods = [];

        public int Count
        {
            get
            {
                lock (_methods)
                {
                    return _methods.Count;
                }
            }
        }

        public IReadOnlyList<string> Methods
        {
            get
            {
                lock (_methods)
                {
                    return [.. _methods];
                }
            }
        }

        public override async ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            Record(message);
            await ProcessNextAsync(message, pipeline);
        }

        public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            Record(message);
            ProcessNext(message, pipeline);
        }

        private void Record(HttpMessage message)
        {
            lock (_methods)
            {
                _methods.Add(message.Request.Method.ToString());
            }
        }
    }
}
