using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.DurableTask.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// The <c>Imaging</c> section reaches ingest in the Function app: the composition root (AddCovidFunctionsApp, as
/// Program.cs calls it) with <c>Imaging__Zip__MaxEntries</c> and <c>Imaging__MinSlices</c> set, and the ingest function
/// it resolves, on a real Azurite with real CT slices. Before, no host read the section and ingest used the defaults
/// (50,000 entries, 1 slice): both uploads below were ingested.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class ImagingSettingsIngestTests(AzuriteFixture azurite)
{
    private const string Tenant = "imaging-settings";

    [Fact]
    public async Task ZipWithMoreEntriesThanImagingZipMaxEntries_IsRejectedAsZipRefused()
    {
        var row = await IngestFourSliceZipAsync(new() { ["Imaging:Zip:MaxEntries"] = "3" });

        Assert.Equal(StudyStatus.Rejected, row.Status);
        Assert.Equal("zip-refused: [name]: 4 entries exceed the limit of 3", row.Reason?[..52]);
    }

    [Fact]
    public async Task SeriesWithFewerSlicesThanImagingMinSlices_IsRejected()
    {
        var row = await IngestFourSliceZipAsync(new() { ["Imaging:MinSlices"] = "5" });

        Assert.Equal(StudyStatus.Rejected, row.Status);
        Assert.Contains("4 slices, fewer than 5", row.Reason, StringComparison.Ordinal);
    }

    private async Task<StudyRecord> IngestFourSliceZipAsync(Dictionary<string, string?> imaging)
    {
        using var keys = TestData.CreateTempDirectory();
        await using var services = SampleApp.Build(azurite, keys.Path, [.. imaging.Select(s => (s.Key, s.Value))]);
        var functions = ActivatorUtilities.CreateInstance<IngestFunctions>(services);

        // A refused upload never reaches an orchestration; the durable client is there because the function takes one.
        await using var durable = await DurableTaskTestHost.StartAsync(_ => { });
        var name = $"{Tenant}/study-{Guid.NewGuid():N}.zip";
        var blob = azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.UploadsContainer).GetBlobClient(name);
        await blob.UploadAsync(BinaryData.FromBytes(IngestFunctionsBuilder.ZipOfSlices()), overwrite: true);

        await functions.IngestUpload(blob, name, durable.Client, CancellationToken.None);

        var studyId = StudyIds.ForUpload(services.GetRequiredService<StudyIdKey>(), Tenant, name);
        var row = await azurite.Storage.Studies.GetAsync(Tenant, studyId, CancellationToken.None);
        Assert.NotNull(row);
        Assert.False(await azurite.Storage.BlobContainers.Get(PipelineNames.SlicesContainer).ExistsAsync($"{IngestHandler.TilesPrefixOf(Tenant, studyId)}/manifest.json", CancellationToken.None));
        return row;
    }
}
