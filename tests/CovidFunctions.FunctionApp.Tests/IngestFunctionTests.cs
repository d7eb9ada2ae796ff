using Azure.Storage.Blobs.Models;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;
using Microsoft.DurableTask.Client;
using static CovidFunctions.FunctionApp.Tests.IngestFunctionsBuilder;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// The Event Grid blob-triggered ingest function, called directly with a blob client on a real Azurite and a real
/// Durable client (in-process test host, where a stand-in answers to the orchestrator's name): a zip of real CT
/// slices becomes de-identified tiles, a Studies row and one orchestration under the deterministic id, also when
/// the event is delivered twice; a folder upload waits for its <c>.complete</c> marker.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class IngestFunctionTests(AzuriteFixture azurite)
{
    private const string Tenant = "ingest-fn-tests";

    /// <summary>The Function app's de-identification key here; study ids are keyed with the key derived from it.</summary>
    private static readonly DeidKey DeidKey = DeidKey.Generate();

    private static readonly StudyIdKey StudyIdKey = StudyIdKey.From(DeidKey);

    [Fact]
    public async Task IngestUpload_ZipOfRealSlices_WritesTilesAndStartsOneOrchestration()
    {
        await using var durable = await StartDurableAsync();
        var name = $"{Tenant}/study-{Guid.NewGuid():N}.zip";
        await UploadAsync(name, ZipOfSlices());
        var functions = IngestFunctionsBuilder.Create(azurite, DeidKey);

        await functions.IngestUpload(Blob(name), name, durable.Client, CancellationToken.None);

        var studyId = StudyIds.ForUpload(StudyIdKey, Tenant, name);
        var instanceId = StudyIds.OrchestrationId(Tenant, studyId);
        var tilesPrefix = IngestHandler.TilesPrefixOf(Tenant, studyId);
        Assert.True(await azurite.Storage.BlobContainers.Get(PipelineNames.SlicesContainer).ExistsAsync($"{tilesPrefix}/manifest.json", CancellationToken.None));
        var row = await azurite.Storage.Studies.GetAsync(Tenant, studyId, CancellationToken.None);
        Assert.NotNull(row);
        Assert.NotNull(row.IngestedAt);
        Assert.Equal(SliceFiles.Length, row.SliceCount);
        // Let the stand-in finish first: the in-process host can report a pending instance's CreatedAt differently
        // from the same instance's once it ran, which made the comparison below flaky (1 in ~6 runs).
        using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2)))
        {
            await durable.Client.WaitForInstanceCompletionAsync(instanceId, getInputsAndOutputs: false, timeout.Token);
        }

        var instance = await durable.Client.GetInstanceAsync(instanceId, getInputsAndOutputs: true);
        Assert.NotNull(instance);
        var input = instance.ReadInputAs<StudyOrchestrationInput>();
        Assert.Equal(studyId, input?.StudyId);
        Assert.Equal(tilesPrefix, input?.TilesPrefix);
        Assert.Equal(SliceFiles.Length, input?.SliceCount);

        // Event Grid delivers at least once: the same event again starts nothing new and re-tiles nothing.
        await functions.IngestUpload(Blob(name), name, durable.Client, CancellationToken.None);
        var again = await durable.Client.GetInstanceAsync(instanceId);
        Assert.Equal(instance.CreatedAt, again?.CreatedAt);
        Assert.Equal(row.IngestedAt, (await azurite.Storage.Studies.GetAsync(Tenant, studyId, CancellationToken.None))?.IngestedAt);
    }

    [Fact]
    public async Task IngestUpload_BlobWrittenAgainWithinTheSkewMargin_IsRejectedAsAReupload()
    {
        // The blob's ETag travels with the event: a second upload under the same name seconds after ingest (inside the
        // one-minute clock-skew margin, where the times cannot tell it from a re-delivered event) is told apart by its
        // version and kept in quarantine at once, instead of waiting for the study's completion to notice.
        await using var durable = await StartDurableAsync();
        var name = $"{Tenant}/study-{Guid.NewGuid():N}.zip";
        await UploadAsync(name, ZipOfSlices());
        var functions = IngestFunctionsBuilder.Create(azurite, DeidKey);
        await functions.IngestUpload(Blob(name), name, durable.Client, CancellationToken.None);

        var second = ZipOfSlices(SliceFiles[..2]);
        await UploadAsync(name, second);
        await functions.IngestUpload(Blob(name), name, durable.Client, CancellationToken.None);

        var studyId = StudyIds.ForUpload(StudyIdKey, Tenant, name);
        var quarantine = azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.QuarantineContainer);
        var kept = new List<string>();
        await foreach (var item in quarantine.GetBlobsAsync(new GetBlobsOptions { Prefix = $"{Tenant}/{studyId}/reupload-" }))
        {
            kept.Add(item.Name);
        }

        Assert.Contains(kept, n => n.EndsWith("/reason.json", StringComparison.Ordinal));
        var copy = Assert.Single(kept, n => !n.EndsWith("/reason.json", StringComparison.Ordinal));
        Assert.Equal(second, (await quarantine.GetBlobClient(copy).DownloadContentAsync()).Value.Content.ToArray());
    }

    [Fact]
    public async Task IngestUpload_FolderUpload_WaitsForTheMarkerThenIngestsTheFolder()
    {
        await using var durable = await StartDurableAsync();
        var folder = $"{Tenant}/folder-{Guid.NewGuid():N}/";
        foreach (var file in SliceFiles)
        {
            await UploadAsync(folder + file, await File.ReadAllBytesAsync(SlicePath(file)));
        }

        var functions = IngestFunctionsBuilder.Create(azurite, DeidKey);
        var studyId = StudyIds.ForUpload(StudyIdKey, Tenant, folder);

        // A blob of the folder alone does nothing: the folder is not complete yet.
        await functions.IngestUpload(Blob(folder + SliceFiles[0]), folder + SliceFiles[0], durable.Client, CancellationToken.None);
        Assert.Null(await azurite.Storage.Studies.GetAsync(Tenant, studyId, CancellationToken.None));

        var marker = folder + PipelineNames.CompleteMarker;
        await UploadAsync(marker, []);
        await functions.IngestUpload(Blob(marker), marker, durable.Client, CancellationToken.None);

        var row = await azurite.Storage.Studies.GetAsync(Tenant, studyId, CancellationToken.None);
        Assert.Equal(SliceFiles.Length, row?.SliceCount);
        Assert.NotNull(await durable.Client.GetInstanceAsync(StudyIds.OrchestrationId(Tenant, studyId)));
    }

    private Azure.Storage.Blobs.BlobClient Blob(string name) =>
        azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.UploadsContainer).GetBlobClient(name);

    private async Task UploadAsync(string name, byte[] content) =>
        await Blob(name).UploadAsync(BinaryData.FromBytes(content), overwrite: true);
}
