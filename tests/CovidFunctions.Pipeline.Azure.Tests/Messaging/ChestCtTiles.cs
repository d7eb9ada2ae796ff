using CovidFunctions.Imaging.Series;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Pipeline.Azure.Tests.Messaging;

/// <summary>
/// Tiles of a real chest CT for the scoring tests on Azurite: the given number of consecutive slices of the
/// LUNG-PET-CT-Dx series A0002 from its 21st instance (in file-name order), written under a study's tiles prefix as
/// ingest writes them.
/// </summary>
internal static class ChestCtTiles
{
    public static async Task WriteAsync(AzuriteFixture azurite, string tilesPrefix, int slices = 2)
    {
        using var temp = TestData.CreateTempDirectory();
        foreach (var file in Directory.EnumerateFiles(TestData.Shared("dicom", "chest-ct", "lung-pet-ct-dx", "A0002-s3-b40f"), "*.dcm").Order(StringComparer.Ordinal).Skip(20).Take(slices))
        {
            File.Copy(file, Path.Combine(temp.Path, Path.GetFileName(file)));
        }

        using var series = SeriesAssembler.Assemble(temp.Path);
        await SeriesTiles.WriteAsync(series, azurite.Storage.BlobContainers.Get(PipelineNames.SlicesContainer), tilesPrefix, null, 2, CancellationToken.None);
    }
}
