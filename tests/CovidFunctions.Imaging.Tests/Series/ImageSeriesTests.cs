using System.IO.Compression;
using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.Imaging.Series;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Imaging.Tests.Series;

/// <summary>
/// A folder or zip of 2-D research images as one series, on real images copied into temporary folders at test
/// time: 16 PNGs of one figure from the UCSD COVID-CT set (287×202, 9 RGB and 7 grey, names _0 … _15) and
/// COVID-SemiSeg JPEGs with their masks. Expected pixel values from PIL (<c>/usr/bin/python3</c>).
/// </summary>
public sealed class ImageSeriesTests : IDisposable
{
    private const string Prefix = "2020.02.10.20021584-p6-52_";
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(2));

    public void Dispose() => _timeout.Dispose();

    private static string Ucsd(int n) => TestData.Shared("cls", "ucsd-covid-ct", "COVID", $"{Prefix}{n}.png");

    private static string SemiSeg(string folder, string name) => TestData.Shared("seg", "covid-semiseg", "train", folder, name);

    /// <summary>Copies the 16 UCSD images into <paramref name="folder"/> in a shuffled copy order, named by <paramref name="name"/>.</summary>
    private static void CopyUcsd(string folder, Func<int, string> name)
    {
        Directory.CreateDirectory(folder);
        foreach (var n in Enumerable.Range(0, 16).OrderBy(n => (n * 7) % 16))
        {
            File.Copy(Ucsd(n), Path.Combine(folder, name(n)));
        }
    }

    [Fact]
    public void Assemble_FolderOfPngs_OneUnitSeriesInNaturalOrder()
    {
        using var temp = TestData.CreateTempDirectory();
        CopyUcsd(temp.Path, n => $"{Prefix}{n}.png");

        using var series = SeriesAssembler.Assemble(temp.Path);

        Assert.Equal(TileKinds.Unit, series.ValueKind);
        Assert.Equal(AssemblyInputKinds.Images, series.Report.InputKind);
        Assert.Equal((287, 202, 16), (series.Columns, series.Rows, series.SliceCount));
        // Natural order: _2 before _10 (ordinal order would put _10 … _15 right after _1).
        Assert.Equal(Enumerable.Range(0, 16).Select(n => $"{Prefix}{n}.png"), series.Slices.Select(s => Path.GetFileName(s.SourceName)));
        Assert.Contains("natural file-name order", series.Report.SelectionReason, StringComparison.Ordinal);
        Assert.Contains("16 PNG slices of 287×202", series.Report.SelectionReason, StringComparison.Ordinal);
        Assert.Contains(series.Report.Issues, i => i.Kind == "no-geometry");
        Assert.Empty(series.Report.SkippedSources);
        Assert.Equal(202f / 255f, series.ReadUnit(0)[100, 150]); // RGB (202, 202, 202): luma
        Assert.Equal(204f / 255f, series.ReadUnit(10)[100, 150]); // grey
        Assert.Equal(222f / 255f, series.ReadWindowed(15, new WindowSettings(40, 400))[100, 150]); // the window is not applied again
        Assert.Equal(ImageLoader.Load(Ucsd(7)).Pixels, series.ReadUnit(7).Pixels);
        Assert.Throws<InvalidOperationException>(() => series.ReadHu(0));
    }

    [Fact]
    public void Assemble_ShuffledNumberedNames_NaturalSortNotOrdinal()
    {
        using var temp = TestData.CreateTempDirectory();
        // slice1 … slice16 without zero padding; one upper-case name and one zero-padded name to show case and zeros do not matter.
        CopyUcsd(temp.Path, n => n switch { 3 => "SLICE4.png", 8 => "slice09.png", _ => $"slice{n + 1}.png" });

        using var series = SeriesAssembler.Assemble(temp.Path);

        for (var k = 0; k < 16; k++)
        {
            Assert.Equal(ImageLoader.Load(Ucsd(k)).Pixels, series.ReadUnit(k).Pixels);
        }

        Assert.Equal("slice1.png", Path.GetFileName(series.Slices[0].SourceName));
        Assert.Equal("slice16.png", Path.GetFileName(series.Slices[^1].SourceName));
    }

    [Fact]
    public void Assemble_MixedSizes_RefusedByDefaultOrMostCommonSizeKept()
    {
        using var temp = TestData.CreateTempDirectory();
        CopyUcsd(temp.Path, n => $"{Prefix}{n}.png");
        File.Copy(TestData.Shared("cls", "ucsd-covid-ct", "COVID", "2020.03.04.20030395-p27-108_3.png"), Path.Combine(temp.Path, $"{Prefix}16.png")); // 172×124

        var ex = Assert.Throws<SeriesAssemblyException>(() => SeriesAssembler.Assemble(temp.Path));
        Assert.Equal("mixed-size", ex.Reason);
        Assert.Contains("287×202: 16", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"172×124: 1 (e.g. {Prefix}16.png)", ex.Message, StringComparison.Ordinal);

        using var series = SeriesAssembler.Assemble(temp.Path, new SeriesAssemblyOptions { MixedImageSizes = MixedImageSizePolicy.KeepMostCommonSize });
        Assert.Equal(16, series.SliceCount);
        var skipped = Assert.Single(series.Report.SkippedSources);
        Assert.Contains($"{Prefix}16.png: 2-D image of 172×124, not the series size 287×202", skipped, StringComparison.Ordinal);
        Assert.Contains(series.Report.Issues, i => i.Kind == "mixed-size" && i.Message.StartsWith("1 of 17 images", StringComparison.Ordinal));
        Assert.Equal($"{Prefix}15.png", Path.GetFileName(series.Slices[^1].SourceName));
    }

    [Fact]
    public async Task Assemble_ZipOfImages_WritesUnitTilesEqualToTheImages()
    {
        using var temp = TestData.CreateTempDirectory();
        var zipPath = Path.Combine(temp.Path, "upload.zip");
        using (var zip = ZipFile.Open(zipPath, ZipArchiveMode.Create))
        {
            foreach (var n in Enumerable.Range(0, 16).Reverse())
            {
                zip.CreateEntryFromFile(Ucsd(n), $"case-7/{n}.png");
            }

            using var notes = new StreamWriter(zip.CreateEntry("case-7/README.txt").Open());
            notes.Write("research export");
        }

        using var series = SeriesAssembler.Assemble(zipPath);
        var store = new FileSystemBlobStore(Path.Combine(temp.Path, "blobs"));
        var manifest = await SeriesTiles.WriteAsync(series, store, "studies/s/series/images", name => "2.25." + name.Length, 2, _timeout.Token);

        Assert.Equal(16, series.SliceCount);
        Assert.EndsWith("upload.zip!case-7/0.png", series.Slices[0].SourceName, StringComparison.Ordinal);
        Assert.Contains(series.Report.SkippedSources, s => s.Contains("README.txt: neither DICOM nor a PNG/JPEG/TIFF image", StringComparison.Ordinal));
        Assert.Equal(TileKinds.Unit, manifest.Kind);
        Assert.Equal((202, 287, 16), (manifest.Rows, manifest.Columns, manifest.SliceCount));
        Assert.Null(manifest.PixelSpacing);
        Assert.Null(manifest.SlicePositions);
        Assert.All(manifest.SliceIds!, id => Assert.StartsWith("2.25.", id, StringComparison.Ordinal));
        Assert.Equal("unit-00000.npy", manifest.Chunks[0].Path);
        var reader = await TileSeriesReader.OpenAsync(store, "studies/s/series/images", _timeout.Token);
        var k = 0;
        await foreach (var image in reader.ReadImagesAsync(_timeout.Token))
        {
            Assert.Equal(ImageLoader.Load(Ucsd(k)).Pixels, image.Pixels);
            k++;
        }

        Assert.Equal(16, k);
    }

    [Fact]
    public void Assemble_FolderMixingDicomAndPng_DicomWinsImagesListedAsSkipped()
    {
        using var temp = TestData.CreateTempDirectory();
        foreach (var file in Directory.GetFiles(TestData.Shared("dicom", "chest-ct", "lung-pet-ct-dx", "A0002-s2-b70f")))
        {
            File.Copy(file, Path.Combine(temp.Path, Path.GetFileName(file)));
        }

        File.Copy(Ucsd(0), Path.Combine(temp.Path, "screenshot-0.png"));
        File.Copy(SemiSeg("images", "16.jpg"), Path.Combine(temp.Path, "screenshot-1.jpg"));

        using var series = SeriesAssembler.Assemble(temp.Path);

        Assert.Equal(TileKinds.Hu, series.ValueKind);
        Assert.Equal(AssemblyInputKinds.Dicom, series.Report.InputKind);
        Assert.Equal(30, series.SliceCount);
        Assert.Equal(2, series.Report.SkippedSources.Count(s => s.Contains("2-D image not used, the input holds DICOM images", StringComparison.Ordinal)));
        Assert.Equal(-27, series.ReadHu(0)[(256 * 512) + 256]);
    }

    [Fact]
    public void Assemble_ImagesBesideMasks_MaskFolderNeverChosen()
    {
        using var temp = TestData.CreateTempDirectory();
        var images = Directory.CreateDirectory(Path.Combine(temp.Path, "train", "images")).FullName;
        var masks = Directory.CreateDirectory(Path.Combine(temp.Path, "train", "masks")).FullName;
        foreach (var name in new[] { "16", "17" })
        {
            File.Copy(SemiSeg("images", name + ".jpg"), Path.Combine(images, name + ".jpg"));
        }

        foreach (var name in new[] { "0", "16", "17" })
        {
            File.Copy(SemiSeg("masks", name + ".png"), Path.Combine(masks, name + ".png"));
        }

        using var series = SeriesAssembler.Assemble(temp.Path);

        Assert.Equal((427, 449, 2), (series.Columns, series.Rows, series.SliceCount));
        Assert.Equal("train/images", series.Report.Selected.Description);
        Assert.Equal("JPEG", series.Report.Selected.ImageType);
        var other = Assert.Single(series.Report.Others);
        Assert.Equal("train/masks", other.Description);
        Assert.False(other.Eligible);
        Assert.Contains("'masks' marks segmentation masks", other.ExclusionReason, StringComparison.Ordinal);
        Assert.Equal(ImageLoader.Load(SemiSeg("images", "17.jpg")).Pixels, series.ReadUnit(1).Pixels);

        series.Dispose();
        Directory.Delete(images, recursive: true);
        var onlyMasks = Assert.Throws<SeriesAssemblyException>(() => SeriesAssembler.Assemble(temp.Path));
        Assert.Equal("no-eligible-series", onlyMasks.Reason);
    }

    [Fact]
    public void Assemble_TwoFoldersOfImages_MostImagesChosenOtherRecorded()
    {
        using var temp = TestData.CreateTempDirectory();
        CopyUcsd(Path.Combine(temp.Path, "b"), n => $"{n}.png");
        Directory.CreateDirectory(Path.Combine(temp.Path, "a"));
        File.Copy(SemiSeg("images", "16.jpg"), Path.Combine(temp.Path, "a", "16.jpg"));

        using var series = SeriesAssembler.Assemble(temp.Path);

        Assert.Equal(16, series.SliceCount);
        Assert.Contains("chosen over folder a because it has the most images", series.Report.SelectionReason, StringComparison.Ordinal);
        var other = Assert.Single(series.Report.Others);
        Assert.True(other.Eligible);
        Assert.Equal(1, other.SliceCount);
    }
}
