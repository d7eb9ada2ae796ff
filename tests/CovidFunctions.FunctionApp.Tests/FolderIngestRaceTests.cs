using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Testing;
using static CovidFunctions.FunctionApp.Tests.IngestFunctionsBuilder;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// A marker-closed folder upload is ingested by its <c>.complete</c> blob's trigger and met again by the minute sweep
/// (<see cref="IngestFunctions.SweepFolderUploads"/>), which plans every closed folder still in <c>ct-uploads</c>. On
/// Azurite, with the functions called directly and the trigger's attempt held inside its download: the sweep must not
/// run a second ingest of the folder next to it (count an attempt, or give the study up while that attempt runs), and
/// an attempt whose process died must not hold the folder for longer than its claim.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class FolderIngestRaceTests(AzuriteFixture azurite)
{
    private static readonly DeidKey DeidKey = DeidKey.Generate();

    private static readonly StudyIdKey StudyIdKey = StudyIdKey.From(DeidKey);

    [Fact]
    public async Task The_sweep_leaves_a_folder_whose_trigger_retry_is_running_and_gives_no_study_up_under_it()
    {
        await using var durable = await StartDurableAsync();
        var tenant = NewTenant();
        var folder = $"{tenant}/series/";
        await UploadFolderAsync(folder);
        var studyId = StudyIds.ForUpload(StudyIdKey, tenant, folder);

        // The first slice's reads: the trigger's first delivery meets a storage fault, its retry is held inside the
        // download (a slow read), and any read after that fails again (storage still flaky).
        var gate = new ReadGate($"{folder}{SliceFiles[0]}", [ReadStep.Fail, ReadStep.Hold]);
        var functions = Functions(tenant, gate, TimeSpan.Zero);

        await Assert.ThrowsAsync<IngestFailedException>(() => functions.IngestUpload(Marker(folder), folder + PipelineNames.CompleteMarker, durable.Client, CancellationToken.None));
        Assert.Equal((StudyStatus.Processing, 1), await StateAsync(tenant, studyId));

        var retry = Task.Run(() => functions.IngestUpload(Marker(folder), folder + PipelineNames.CompleteMarker, durable.Client, CancellationToken.None));
        await gate.Held.WaitAsync(TimeSpan.FromMinutes(1));

        // The minute sweep meets the marker-closed folder while the retry runs. Before, it started a third attempt next
        // to it, which met the fault, was the last allowed one and gave the study up: failed, its upload moved to
        // quarantine, while the retry was still reading it.
        await SweepAsync(functions, durable);

        Assert.Equal((StudyStatus.Processing, 2), await StateAsync(tenant, studyId));
        Assert.Equal(SliceFiles.Length + 1, await CountAsync(PipelineNames.UploadsContainer, folder));
        Assert.Equal(0, await CountAsync(PipelineNames.QuarantineContainer, $"{tenant}/"));

        gate.Release();
        await retry;

        var row = await azurite.Storage.Studies.GetAsync(tenant, studyId, CancellationToken.None);
        Assert.NotNull(row?.IngestedAt);
        Assert.Equal((StudyStatus.Processing, 2, SliceFiles.Length), (row.Status, row.IngestAttempts, row.SliceCount));
        Assert.NotNull(await durable.Client.GetInstanceAsync(StudyIds.OrchestrationId(tenant, studyId)));
        Assert.Equal(0, await CountAsync(PipelineNames.QuarantineContainer, $"{tenant}/"));

        // The next sweep finds it ingested: nothing is counted or redone.
        await SweepAsync(functions, durable);
        Assert.Equal((StudyStatus.Processing, 2), await StateAsync(tenant, studyId));
    }

    [Fact]
    public async Task The_trigger_and_the_sweep_on_one_folder_at_once_count_one_attempt_and_make_one_study()
    {
        await using var durable = await StartDurableAsync();
        var tenant = NewTenant();
        var folder = $"{tenant}/series/";
        await UploadFolderAsync(folder);
        var studyId = StudyIds.ForUpload(StudyIdKey, tenant, folder);
        var gate = new ReadGate($"{folder}{SliceFiles[0]}", [ReadStep.Hold]);
        var functions = Functions(tenant, gate, TimeSpan.Zero);

        var trigger = Task.Run(() => functions.IngestUpload(Marker(folder), folder + PipelineNames.CompleteMarker, durable.Client, CancellationToken.None));
        await gate.Held.WaitAsync(TimeSpan.FromMinutes(1));

        // Before, the sweep ingested the folder a second time next to the trigger (a second attempt counted).
        await SweepAsync(functions, durable);
        Assert.Equal((StudyStatus.Processing, 1), await StateAsync(tenant, studyId));

        gate.Release();
        await trigger;
        var row = await azurite.Storage.Studies.GetAsync(tenant, studyId, CancellationToken.None);
        Assert.NotNull(row?.IngestedAt);
        Assert.Equal((1, SliceFiles.Length), (row.IngestAttempts, row.SliceCount));
    }

    [Fact]
    public async Task A_folder_whose_ingesting_process_died_holding_its_claim_is_taken_over_by_the_sweep_once_the_claim_expired()
    {
        await using var durable = await StartDurableAsync();
        var tenant = NewTenant();
        var folder = $"{tenant}/series/";
        await UploadFolderAsync(folder);
        var studyId = StudyIds.ForUpload(StudyIdKey, tenant, folder);

        // The trigger's attempt counted itself and took the claim, then its worker was killed: nothing renews the claim.
        var now = DateTimeOffset.UtcNow;
        Assert.True(await azurite.Storage.Studies.TryCreateAsync(new StudyRecord
        {
            Tenant = tenant,
            StudyId = studyId,
            Status = StudyStatus.Processing,
            UploadPath = folder,
            UploadKind = "folder",
            CreatedAt = now,
            IngestAttempts = 1,
            IngestClaim = "the-killed-worker",
            IngestClaimExpiresAt = now + IngestHandler.IngestClaimLease,
        }, CancellationToken.None));
        var unscripted = new ReadGate("no blob of this test", []);

        // While the claim may still be renewed, the sweep leaves the folder alone.
        await SweepAsync(Functions(tenant, unscripted, TimeSpan.Zero), durable);
        Assert.Equal((StudyStatus.Processing, 1), await StateAsync(tenant, studyId));

        // Once it has expired, the next sweep takes the study over: its own attempt, counted, ingests the folder.
        await SweepAsync(Functions(tenant, unscripted, IngestHandler.IngestClaimLease + TimeSpan.FromSeconds(1)), durable);

        var row = await azurite.Storage.Studies.GetAsync(tenant, studyId, CancellationToken.None);
        Assert.NotNull(row?.IngestedAt);
        Assert.Equal((StudyStatus.Processing, 2, SliceFiles.Length), (row.Status, row.IngestAttempts, row.SliceCount));
        Assert.Null(row.IngestClaim);
        Assert.NotNull(await durable.Client.GetInstanceAsync(StudyIds.OrchestrationId(tenant, studyId)));
    }

    private BlobContainerClient Uploads => azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.UploadsContainer);

    private static string NewTenant() => "race-" + Guid.NewGuid().ToString("N")[..12];

    private BlobClient Marker(string folder) => Uploads.GetBlobClient(folder + PipelineNames.CompleteMarker);

    private static async Task SweepAsync(IngestFunctions functions, DurableTaskTestHost durable)
    {
        try
        {
            await functions.SweepFolderUploads(new TimerInfo(), durable.Client, CancellationToken.None);
        }
        catch (AggregateException)
        {
            // A sweep whose own ingest failed reports it at the end; what it did to the study is what is checked.
        }
    }

    private async Task UploadFolderAsync(string folder)
    {
        foreach (var file in SliceFiles)
        {
            await Uploads.GetBlobClient(folder + file).UploadAsync(SlicePath(file), overwrite: true);
        }

        await Uploads.GetBlobClient(folder + PipelineNames.CompleteMarker).UploadAsync(BinaryData.FromString("4"), overwrite: true);
    }

    private async Task<(string? Status, int? Attempts)> StateAsync(string tenant, string studyId)
    {
        var row = await azurite.Storage.Studies.GetAsync(tenant, studyId, CancellationToken.None);
        return (row?.Status, row?.IngestAttempts);
    }

    private async Task<int> CountAsync(string container, string prefix)
    {
        var count = 0;
        await foreach (var _ in azurite.Storage.Blobs.GetBlobContainerClient(container).GetBlobsAsync(new GetBlobsOptions { Prefix = prefix }))
        {
            count++;
        }

        return count;
    }

    private IngestFunctions Functions(string tenant, ReadGate gate, TimeSpan clockAhead) =>
        IngestFunctionsBuilder.Create(azurite, DeidKey, containers: new GatedUploads(azurite.Storage.BlobContainers, gate), onlyTenant: tenant, clockAhead: clockAhead);

    private enum ReadStep
    {
        /// <summary>The read throws an IOException (a storage fault).</summary>
        Fail,

        /// <summary>The read waits until the test releases it (an attempt in flight).</summary>
        Hold,
    }

    /// <summary>
    /// Scripts the reads of one upload blob: the n-th read does the n-th step, and every read after the script fails
    /// (storage still faulty), so an attempt the test did not plan for shows as a failed attempt.
    /// </summary>
    private sealed class ReadGate(string path, ReadStep[] steps)
    {
        private readonly TaskCompletionSource _held = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _reads;

        public string Path => path;

        /// <summary>Completes when a read is held.</summary>
        public Task Held => _held.Task;

        public void Release() => _released.TrySetResult();

        public async Task BeforeReadAsync(CancellationToken cancellationToken)
        {
            var read = Interlocked.Increment(ref _reads);
            if (read > steps.Length || steps[read - 1] == ReadStep.Fail)
            {
                throw new IOException($"storage fault on read {read} of the upload");
            }

            _held.TrySetResult();
            await _released.Task.WaitAsync(cancellationToken);
        }
    }

    /// <summary>Azurite's containers, with the reads of the gate's upload blob scripted.</summary>
    private sealed class GatedUploads(IBlobContainers inner, ReadGate gate) : IBlobContainers
    {
        public IBlobStore Get(string container) => container == PipelineNames.UploadsContainer ? new Store(inner.Get(container), gate) : inner.Get(container);

        public string LinkTo(string container, string path) => inner.LinkTo(container, path);

        private sealed class Store(IBlobStore store, ReadGate gate) : IBlobStore
        {
            public async Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken)
            {
                if (path == gate.Path)
                {
                    await gate.BeforeReadAsync(cancellationToken);
                }

                return await store.OpenReadAsync(path, cancellationToken);
            }

            public async Task<VersionedStream> OpenReadVersionedAsync(string path, CancellationToken cancellationToken)
            {
                if (path == gate.Path)
                {
                    await gate.BeforeReadAsync(cancellationToken);
                }

                return await store.OpenReadVersionedAsync(path, cancellationToken);
            }

            public Task WriteAsync(string path, Stream content, CancellationToken cancellationToken) => store.WriteAsync(path, content, cancellationToken);

            public Task<bool> ExistsAsync(string path, CancellationToken cancellationToken) => store.ExistsAsync(path, cancellationToken);

            public IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellationToken) => store.ListAsync(prefix, cancellationToken);

            public Task DeleteAsync(string path, CancellationToken cancellationToken) => store.DeleteAsync(path, cancellationToken);

            public Task<ConditionalDelete> DeleteIfVersionAsync(string path, string version, CancellationToken cancellationToken) => store.DeleteIfVersionAsync(path, version, cancellationToken);
        }
    }
}
