using System.Text;
using Azure.Storage.Blobs;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

using static CovidFunctions.Pipeline.Azure.Tests.Storage.UploadTestFiles;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// A blob and a folder of one name (<c>lab/scan</c> and <c>lab/scan/</c>) on a real Azurite (a file system cannot hold
/// both). Study ids trim the '/', so both map to one study; the ids of studies in flight cannot change, so ingest tells
/// the two uploads apart by the row's upload path and kind, and keeps the second one apart as <c>name-collision</c>.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class UploadNameCollisionTests(AzuriteFixture azurite)
{
    private static readonly DeidKey Key = DeidKey.Generate();

    private BlobContainerClient RawUploads => ((AzureBlobStore)azurite.Storage.BlobContainers.Get(PipelineNames.UploadsContainer)).Container;

    private IBlobStore Quarantine => azurite.Storage.BlobContainers.Get(PipelineNames.QuarantineContainer);

    [Fact]
    public async Task A_folder_named_like_a_completed_blob_upload_is_kept_apart_not_deleted_unscreened()
    {
        var tenant = AzuriteFixture.NewTenant();
        var slices = MidChestSlices(4);
        await UploadAsync($"{tenant}/scan", File.ReadAllBytes(slices[0]));
        var blobUnit = Assert.Single(await PlanAsync(tenant));
        var first = await NewIngest().IngestAsync(blobUnit, CancellationToken.None);
        Assert.Equal((IngestStatus.Ingested, 1), (first.Status, first.SliceCount));

        // The blob's study completes: its upload is deleted and its path forgotten, as AggregateStudy does.
        await azurite.Storage.Studies.UpdateAsync(tenant, first.StudyId, row => row! with { Status = StudyStatus.Completed, CompletedAt = DateTimeOffset.UtcNow, UploadPath = null }, CancellationToken.None);
        await RawUploads.GetBlobClient($"{tenant}/scan").DeleteAsync();
        var completed = await azurite.Storage.Studies.GetAsync(tenant, first.StudyId, CancellationToken.None);

        // Then a folder of the same name arrives. Before, it answered "already ingested" for the blob's study and, that
        // study being completed, deleted the folder's files, never screened.
        foreach (var slice in slices.Skip(1))
        {
            await UploadAsync($"{tenant}/scan/{Path.GetFileName(slice)}", File.ReadAllBytes(slice));
        }

        await UploadAsync($"{tenant}/scan/{PipelineNames.CompleteMarker}", []);
        var folderUnit = Assert.Single(await PlanAsync(tenant));
        Assert.Equal((first.StudyId, UploadUnitKind.Folder), (folderUnit.StudyId, folderUnit.Kind));
        var second = await NewIngest().IngestAsync(folderUnit, CancellationToken.None);

        Assert.Equal((IngestStatus.Rejected, IngestHandler.NameCollisionReason), (second.Status, second.Reason));
        Assert.Contains($"upload {tenant}/scan/ (a folder)", second.Detail, StringComparison.Ordinal);
        Assert.Contains($"blob upload {tenant}/scan,", second.Detail, StringComparison.Ordinal);
        var kept = await ListAsync(Quarantine, $"{tenant}/{first.StudyId}/");
        var reasonPath = Assert.Single(kept, p => p.EndsWith("/reason.json", StringComparison.Ordinal));
        Assert.Contains("/name-collision-", reasonPath, StringComparison.Ordinal);
        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await ReadAsync(Quarantine, reasonPath)));
        Assert.Equal(($"{tenant}/scan/", IngestHandler.NameCollisionReason), (reason.UploadPath, reason.Reason));
        var folder = reasonPath[..^"reason.json".Length];
        foreach (var slice in slices.Skip(1))
        {
            Assert.Equal(File.ReadAllBytes(slice), await ReadAsync(Quarantine, $"{folder}original/{Path.GetFileName(slice)}"));
        }

        Assert.Empty(await ListAsync(azurite.Storage.BlobContainers.Get(PipelineNames.UploadsContainer), $"{tenant}/"));
        Assert.Equal(completed, await azurite.Storage.Studies.GetAsync(tenant, first.StudyId, CancellationToken.None));
    }

    [Fact]
    public async Task A_blob_named_like_a_folder_in_flight_is_kept_apart_and_the_folder_stays()
    {
        var tenant = AzuriteFixture.NewTenant();
        var slices = MidChestSlices(4);
        foreach (var slice in slices.Take(3))
        {
            await UploadAsync($"{tenant}/scan/{Path.GetFileName(slice)}", File.ReadAllBytes(slice));
        }

        await UploadAsync($"{tenant}/scan/{PipelineNames.CompleteMarker}", []);
        var first = await NewIngest().IngestAsync(Assert.Single(await PlanAsync(tenant)), CancellationToken.None);
        Assert.Equal((IngestStatus.Ingested, 3), (first.Status, first.SliceCount));

        await UploadAsync($"{tenant}/scan", File.ReadAllBytes(slices[3]));
        var blobUnit = Assert.Single(await PlanAsync(tenant), u => u.Kind == UploadUnitKind.SingleBlob);
        var second = await NewIngest().IngestAsync(blobUnit, CancellationToken.None);

        Assert.Equal((IngestStatus.Rejected, IngestHandler.NameCollisionReason), (second.Status, second.Reason));
        Assert.Contains($"folder upload {tenant}/scan/,", second.Detail, StringComparison.Ordinal);
        Assert.Single(await ListAsync(Quarantine, $"{tenant}/{first.StudyId}/"), p => p.EndsWith("/original/scan", StringComparison.Ordinal));
        Assert.Equal(4, (await ListAsync(azurite.Storage.BlobContainers.Get(PipelineNames.UploadsContainer), $"{tenant}/")).Count);
        var row = await azurite.Storage.Studies.GetAsync(tenant, first.StudyId, CancellationToken.None);
        Assert.Equal(($"{tenant}/scan/", "folder", 3), (row!.UploadPath, row.UploadKind, row.SliceCount));
    }

    private async Task UploadAsync(string name, byte[] content) => await RawUploads.GetBlobClient(name).UploadAsync(new BinaryData(content), overwrite: true);

    private async Task<IReadOnlyList<UploadUnit>> PlanAsync(string tenant)
    {
        return await PlanTenantAsync(azurite.Storage.UploadListing, tenant, Key);
    }

    private IngestHandler NewIngest() => IngestOnAzurite.NewHandler(azurite, Key, new StartedOrchestrations());

    private static async Task<List<string>> ListAsync(IBlobStore store, string prefix)
    {
        var paths = new List<string>();
        await foreach (var path in store.ListAsync(prefix, CancellationToken.None))
        {
            paths.Add(path);
        }

        return paths;
    }
}
