using CovidFunctions.Imaging.Series;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Imaging.Tests.Tiles;

public sealed class SeriesTilesTests : IDisposable
{
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(2));

    public void Dispose() => _timeout.Dispose();

    [Fact]
    public async Task WriteAsync_RealSeries_TilesEqualDecodedHuAndUidsAreMapped()
    {
        using var temp = TestData.CreateTempDirectory();
        using var series = SeriesAssembler.Assemble(TestData.Shared("dicom", "chest-ct", "lung-pet-ct-dx", "A0002-s2-b70f"));
        var store = new FileSystemBlobStore(temp.Path);

        var manifest = await SeriesTiles.WriteAsync(series, store, "studies/x/series/y", uid => "2.25." + uid.Length, 2, _timeout.Token);

        Assert.Equal(30, manifest.SliceCount);
        Assert.Equal(2, manifest.Chunks.Count);
        Assert.Equal(series.Geometry.SlicePositions, manifest.SlicePositions);
        Assert.All(manifest.SliceIds!, id => Assert.StartsWith("2.25.", id, StringComparison.Ordinal));
        Assert.DoesNotContain(series.Report.Selected.SeriesInstanceUid, File.ReadAllText(Path.Combine(temp.Path, "studies", "x", "series", "y", "manifest.json")), StringComparison.Ordinal);
        var reader = await TileSeriesReader.OpenAsync(store, "studies/x/series/y", _timeout.Token);
        var chunk = await reader.ReadChunkAsync(reader.Manifest.Chunks[1], _timeout.Token);
        Assert.Equal(series.ReadHuInt16(29), chunk.As<short>().Slice(13 * 512 * 512, 512 * 512).ToArray());
    }
}
