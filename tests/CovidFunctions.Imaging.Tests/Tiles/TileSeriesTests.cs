using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Imaging.Tests.Tiles;

public sealed class TileSeriesTests : IDisposable
{
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(2));

    private CancellationToken Ct => _timeout.Token;

    public void Dispose() => _timeout.Dispose();

    private static short[] Slice(int k, int rows, int columns) =>
        Enumerable.Range(0, rows * columns).Select(i => (short)(-1000 + (k * 7) + (i % 1700))).ToArray();

    private static TileManifest Template(int rows, int columns, int slices) => new()
    {
        Rows = rows,
        Columns = columns,
        PixelSpacing = [0.7, 0.7],
        SliceSpacing = 1.25,
        Origin = [-180, -180, -300],
        RowDirection = [1, 0, 0],
        ColumnDirection = [0, 1, 0],
        SlicePositions = Enumerable.Range(0, slices).Select(k => -300 + (1.25 * k)).ToArray(),
        StudyInstanceUid = "2.25.1",
        SeriesInstanceUid = "2.25.2",
        SliceIds = Enumerable.Range(0, slices).Select(k => $"2.25.{100 + k}").ToArray(),
    };

    [Fact]
    public async Task WriteThenRead_HuSeries_RoundTripsManifestAndVoxels()
    {
        using var temp = TestData.CreateTempDirectory();
        var store = new FileSystemBlobStore(temp.Path);
        var writer = new TileSeriesWriter(store, "studies/abc/series/1", Template(24, 20, 37), chunkSize: 16);
        for (var k = 0; k < 37; k++)
        {
            await writer.AddSliceAsync(Slice(k, 24, 20), Ct);
        }

        var written = await writer.CompleteAsync(Ct);
        var reader = await TileSeriesReader.OpenAsync(store, "studies/abc/series/1", Ct);

        Assert.Equal(37, reader.Manifest.SliceCount);
        Assert.Equal([0, 16, 32], reader.Manifest.Chunks.Select(c => c.FirstSlice));
        Assert.Equal([16, 16, 5], reader.Manifest.Chunks.Select(c => c.SliceCount));
        Assert.Equal("lung2d-v1", reader.Manifest.PreprocessingId);
        Assert.Equal(written.SlicePositions, reader.Manifest.SlicePositions);
        Assert.Equal("2.25.136", reader.Manifest.SliceIds![36]);
        var chunk = await reader.ReadChunkAsync(reader.Manifest.Chunks[2], Ct);
        Assert.Equal([5, 24, 20], chunk.Shape);
        Assert.Equal(Slice(33, 24, 20), chunk.As<short>().Slice(24 * 20, 24 * 20).ToArray());
        var images = new List<GreyImage>();
        await foreach (var image in reader.ReadImagesAsync(Ct))
        {
            images.Add(image);
        }

        Assert.Equal(37, images.Count);
        Assert.Equal(LungPreprocessor.WindowHu(Slice(20, 24, 20), 20, 24).Pixels, images[20].Pixels);
    }

    [Fact]
    public async Task ReadChunk_TamperedChunk_ThrowsHashMismatch()
    {
        using var temp = TestData.CreateTempDirectory();
        var store = new FileSystemBlobStore(temp.Path);
        var writer = new TileSeriesWriter(store, "s", Template(4, 4, 2));
        await writer.AddSliceAsync(Slice(0, 4, 4), Ct);
        await writer.AddSliceAsync(Slice(1, 4, 4), Ct);
        await writer.CompleteAsync(Ct);
        var file = Path.Combine(temp.Path, "s", "hu-00000.npy");
        var bytes = File.ReadAllBytes(file);
        bytes[^1] ^= 1;
        File.WriteAllBytes(file, bytes);

        var reader = await TileSeriesReader.OpenAsync(store, "s", Ct);
        var ex = await Assert.ThrowsAsync<ImageFormatException>(() => reader.ReadChunkAsync(reader.Manifest.Chunks[0], Ct));
        Assert.Contains("hash", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WriteThenRead_UnitSeries_KeepsFloatValues()
    {
        using var temp = TestData.CreateTempDirectory();
        var store = new FileSystemBlobStore(temp.Path);
        var writer = new TileSeriesWriter(store, "png", new TileManifest { Kind = TileKinds.Unit, Rows = 2, Columns = 3 });
        await writer.AddSliceAsync(new float[] { 0, 0.1f, 0.2f, 0.3f, 0.4f, 1 }, Ct);
        await writer.CompleteAsync(Ct);

        var reader = await TileSeriesReader.OpenAsync(store, "png", Ct);
        var images = new List<GreyImage>();
        await foreach (var image in reader.ReadImagesAsync(Ct))
        {
            images.Add(image);
        }

        Assert.Equal([0, 0.1f, 0.2f, 0.3f, 0.4f, 1], Assert.Single(images).Pixels);
    }

    [Theory]
    [InlineData("../escape")]
    [InlineData("/abs")]
    [InlineData("a//b")]
    [InlineData("a/./b")]
    public async Task FileSystemBlobStore_UnsafePath_Throws(string path)
    {
        using var temp = TestData.CreateTempDirectory();
        var store = new FileSystemBlobStore(temp.Path);
        await Assert.ThrowsAsync<ArgumentException>(() => store.WriteAsync(path, new MemoryStream([1]), Ct));
    }

    [Fact]
    public async Task FileSystemBlobStore_List_ReturnsPathsUnderPrefix()
    {
        using var temp = TestData.CreateTempDirectory();
        var store = new FileSystemBlobStore(temp.Path);
        await store.WriteAsync("a/x.bin", new MemoryStream([1]), Ct);
        await store.WriteAsync("a/y/z.bin", new MemoryStream([2]), Ct);
        await store.WriteAsync("b/x.bin", new MemoryStream([3]), Ct);

        var listed = new List<string>();
        await foreach (var path in store.ListAsync("a/", Ct))
        {
            listed.Add(path);
        }

        Assert.Equal(["a/x.bin", "a/y/z.bin"], listed);
    }
}
