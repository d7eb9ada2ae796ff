using System.Buffers.Binary;
using System.IO.Compression;
using System.Text.Json;
using CovidFunctions.Cli.Commands;
using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.TestHelpers;
using SkiaSharp;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// The held-out evaluation calls <c>covidfn segment INPUT --out-dir D</c> and <c>covidfn classify INPUT --json F</c> on
/// folders like COVID-SemiSeg's and UCSD COVID-CT's (grey/RGB/RGBA/palette PNG, grey/RGB JPEG, JPEG bytes under a .png
/// name, names with several dots). These tests feed the commands synthetic files of each kind plus the junk a real
/// folder holds, and check the contract: one 0/255 mask per image of the stored pixel grid's size named
/// <c>&lt;stem&gt;.png</c>, JSON paths relative with '/', exit 2 naming the file on bad input.
/// </summary>
public sealed class ScreeningInputVarietyTests
{
    private static string Models => Path.Combine(TestData.RepoRoot, "models");

    /// <summary>Grey level of a synthetic "chest": a bright ellipse on a dark background.</summary>
    private static byte Level(int x, int y, int width, int height)
    {
        var dx = (x - (width / 2.0)) / (width * 0.45);
        var dy = (y - (height / 2.0)) / (height * 0.35);
        return (byte)((dx * dx) + (dy * dy) <= 1 ? 140 : 10);
    }

    /// <summary>Writes a PNG of any colour type / bit depth (no filter); the samples are made from <see cref="Level"/>.</summary>
    private static void WritePng(string path, int width, int height, byte colourType, byte bitDepth)
    {
        var channels = colourType switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, 6 => 4, _ => throw new ArgumentOutOfRangeException(nameof(colourType)) };
        var bytesPerSample = bitDepth / 8;
        using var raw = new MemoryStream();
        using (var z = new ZLibStream(raw, CompressionLevel.Fastest, leaveOpen: true))
        {
            for (var y = 0; y < height; y++)
            {
                z.WriteByte(0);
                for (var x = 0; x < width; x++)
                {
                    var g = Level(x, y, width, height);
                    for (var c = 0; c < channels; c++)
                    {
                        // Palette: index = grey level (the palette maps index i to (i, i, i)); alpha: half transparent.
                        var sample = colourType is 4 or 6 && c == channels - 1 ? (byte)128 : g;
                        for (var b = 0; b < bytesPerSample; b++)
                        {
                            z.WriteByte(sample);
                        }
                    }
                }
            }
        }

        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var file = File.Create(path);
        file.Write(PngChunks.Signature);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = bitDepth;
        ihdr[9] = colourType;
        PngChunks.WriteChunk(file, "IHDR"u8, ihdr);
        if (colourType == 3)
        {
            PngChunks.WriteChunk(file, "PLTE"u8, Enumerable.Range(0, 256).SelectMany(i => new[] { (byte)i, (byte)i, (byte)i }).ToArray());
        }

        PngChunks.WriteChunk(file, "IDAT"u8, raw.ToArray());
        PngChunks.WriteChunk(file, "IEND"u8, []);
    }

    /// <summary>An RGB JPEG (Skia), optionally with an EXIF APP1 segment whose orientation tag says "rotate 90°" (6).</summary>
    private static byte[] Jpeg(int width, int height, bool exifRotate90 = false)
    {
        using var bitmap = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                var g = Level(x, y, width, height);
                bitmap.SetPixel(x, y, new SKColor(g, g, g));
            }
        }

        using var data = bitmap.Encode(SKEncodedImageFormat.Jpeg, 90);
        var jpeg = data.ToArray();
        if (!exifRotate90)
        {
            return jpeg;
        }

        // APP1 "Exif\0\0" + big-endian TIFF header + one IFD entry: Orientation (0x0112), SHORT, 1, value 6.
        byte[] tiff = [(byte)'M', (byte)'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0];
        byte[] app1 = [0xFF, 0xE1, 0, (byte)(2 + 6 + tiff.Length), (byte)'E', (byte)'x', (byte)'i', (byte)'f', 0, 0, .. tiff];
        return [.. jpeg.AsSpan(0, 2), .. app1, .. jpeg.AsSpan(2)];
    }

    private static (int Width, int Height) ReadMaskSize(string path)
    {
        var (width, height, _) = ReadMask(path);
        return (width, height);
    }

    private static (int Width, int Height, byte[] Levels) ReadMask(string path)
    {
        using var bitmap = SKBitmap.Decode(path);
        Assert.NotNull(bitmap);
        var levels = new byte[bitmap.Width * bitmap.Height];
        for (var y = 0; y < bitmap.Height; y++)
        {
            for (var x = 0; x < bitmap.Width; x++)
            {
                levels[(y * bitmap.Width) + x] = bitmap.GetPixel(x, y).Red;
            }
        }

        return (bitmap.Width, bitmap.Height, levels);
    }

    /// <summary>Image files of every kind the two public sets hold (and a few more), relative name → stored width × height.</summary>
    private static Dictionary<string, (int Width, int Height)> WriteVariety(string folder)
    {
        WritePng(Path.Combine(folder, "grey8.png"), 64, 48, 0, 8);
        WritePng(Path.Combine(folder, "grey16.png"), 64, 48, 0, 16);
        WritePng(Path.Combine(folder, "rgb.png"), 64, 48, 2, 8);
        WritePng(Path.Combine(folder, "palette.png"), 64, 48, 3, 8);
        WritePng(Path.Combine(folder, "grey-alpha.png"), 64, 48, 4, 8);
        WritePng(Path.Combine(folder, "rgba.png"), 64, 48, 6, 8);
        WritePng(Path.Combine(folder, "one-pixel.png"), 1, 1, 0, 8);
        WritePng(Path.Combine(folder, "UPPER.PNG"), 30, 20, 0, 8);
        WritePng(Path.Combine(folder, "2020.03.16.20035105-p6-64-1.png"), 50, 40, 2, 8);
        WritePng(Path.Combine(folder, "with space ünï 52%0.png"), 40, 30, 0, 8);
        WritePng(Path.Combine(folder, "nested", "deeper", "inner.png"), 33, 17, 0, 8);
        File.WriteAllBytes(Path.Combine(folder, "rgb-photo.jpg"), Jpeg(64, 48));
        File.WriteAllBytes(Path.Combine(folder, "long.jpeg"), Jpeg(20, 30));
        File.WriteAllBytes(Path.Combine(folder, "CAPS.JPG"), Jpeg(24, 24));
        File.WriteAllBytes(Path.Combine(folder, "jpeg-bytes-under-png-name.png"), Jpeg(40, 32));
        File.WriteAllBytes(Path.Combine(folder, "exif-rotated.jpg"), Jpeg(60, 36, exifRotate90: true));
        return new Dictionary<string, (int, int)>(StringComparer.Ordinal)
        {
            ["grey8.png"] = (64, 48), ["grey16.png"] = (64, 48), ["rgb.png"] = (64, 48), ["palette.png"] = (64, 48),
            ["grey-alpha.png"] = (64, 48), ["rgba.png"] = (64, 48), ["one-pixel.png"] = (1, 1), ["UPPER.PNG"] = (30, 20),
            ["2020.03.16.20035105-p6-64-1.png"] = (50, 40), ["with space ünï 52%0.png"] = (40, 30),
            ["nested/deeper/inner.png"] = (33, 17), ["rgb-photo.jpg"] = (64, 48), ["long.jpeg"] = (20, 30), ["CAPS.JPG"] = (24, 24),
            ["jpeg-bytes-under-png-name.png"] = (40, 32),

            // The stored grid (60 wide, 36 high), not the EXIF-rotated display: ground-truth masks are drawn on the
            // stored pixels, and PIL / numpy readers (the evaluation's) do not apply EXIF orientation either.
            ["exif-rotated.jpg"] = (60, 36),
        };
    }

    /// <summary>What a real folder holds besides the images: OS droppings, notes, AppleDouble twins, a zip's __MACOSX.</summary>
    private static void WriteJunk(string folder)
    {
        File.WriteAllBytes(Path.Combine(folder, ".DS_Store"), [0, 0, 0, 1, 0x42, 0x75, 0x64, 0x31]);
        File.WriteAllBytes(Path.Combine(folder, "Thumbs.db"), [0xD0, 0xCF, 0x11, 0xE0]);
        File.WriteAllText(Path.Combine(folder, "README.txt"), "test split");
        File.WriteAllText(Path.Combine(folder, "labels.csv"), "name,label\n");
        byte[] appleDouble = [0x00, 0x05, 0x16, 0x07, 0x00, 0x02, 0x00, 0x00];
        File.WriteAllBytes(Path.Combine(folder, "._grey8.png"), appleDouble);
        Directory.CreateDirectory(Path.Combine(folder, "__MACOSX"));
        File.WriteAllBytes(Path.Combine(folder, "__MACOSX", "._rgb.png"), appleDouble);
    }

    [Fact]
    public void Segment_FolderOfEveryImageKindWithJunk_WritesOneBinaryMaskPerImageOfItsStoredSizeAndSkipsTheJunk()
    {
        using var dir = TestData.CreateTempDirectory();
        var input = Path.Combine(dir.Path, "in");
        var expected = WriteVariety(input);
        WriteJunk(input);
        var outDir = Path.Combine(dir.Path, "out");
        var error = new StringWriter();

        var rc = SegmentCommand.Run(input, outDir, Models, 0, TextWriter.Null, error);

        Assert.True(rc == ExitCodes.Success, error.ToString());
        var expectedMasks = expected.Keys.Select(k => Path.GetFileNameWithoutExtension(k) + ".png").Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(expectedMasks, Directory.GetFiles(outDir).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray());
        foreach (var (name, size) in expected)
        {
            var mask = ReadMask(Path.Combine(outDir, Path.GetFileNameWithoutExtension(name) + ".png"));
            Assert.True((size.Width, size.Height) == (mask.Width, mask.Height), $"{name}: mask {mask.Width}×{mask.Height}, image {size.Width}×{size.Height}");
            Assert.All(mask.Levels, v => Assert.True(v is 0 or 255, $"{name}: level {v}"));
        }

        var warning = Assert.Single(error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("warning: skipped 6 entries", warning, StringComparison.Ordinal);
        Assert.Contains(".DS_Store", warning, StringComparison.Ordinal);
        Assert.Contains("__MACOSX/", warning, StringComparison.Ordinal);
    }

    [Fact]
    public void Classify_FolderOfEveryImageKindWithJunk_ListsEachImageOnceByItsRelativeSlashPath()
    {
        using var dir = TestData.CreateTempDirectory();
        var input = Path.Combine(dir.Path, "in");
        var expected = WriteVariety(input);
        WriteJunk(input);
        var json = Path.Combine(dir.Path, "r.json");
        var error = new StringWriter();

        var rc = ClassifyCommand.Run(input, json, Models, 0, TextWriter.Null, error);

        Assert.True(rc == ExitCodes.Success, error.ToString());
        using var doc = JsonDocument.Parse(File.ReadAllBytes(json));
        var paths = doc.RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("path").GetString()!).ToList();
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), paths.Order(StringComparer.Ordinal));
        Assert.Contains("warning: skipped 6 entries", error.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("x/scan.png", "y/scan.png")]
    [InlineData("scan.png", "scan.jpg")]
    [InlineData("Scan.png", "sub/scan.PNG")]
    public void Segment_TwoImagesWithTheSameMaskName_WritesTheOthersFlat_AndBothUnderTheirRelativePath_ExitsBadInputNamingBoth(string first, string second)
    {
        // Before: exit 2 and nothing written at all, not even other.png; an evaluator handed a folder with one
        // shared stem got no masks. Now no image gets the flat name over the other, none is lost, and stderr says where each went.
        using var dir = TestData.CreateTempDirectory();
        var input = Path.Combine(dir.Path, "in");
        WritePng(Path.Combine(input, first), 32, 32, 0, 8);
        WritePng(Path.Combine(input, second), 48, 40, 0, 8);
        WritePng(Path.Combine(input, "other.png"), 24, 24, 0, 8);
        var outDir = Path.Combine(dir.Path, "out");
        var error = new StringWriter();

        var rc = SegmentCommand.Run(input, outDir, Models, 0, TextWriter.Null, error);

        Assert.Equal(ExitCodes.BadInput, rc);
        var written = Directory.GetFiles(outDir, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(outDir, f).Replace('\\', '/')).Order(StringComparer.Ordinal);
        Assert.Equal(new[] { first + ".png", second + ".png", "other.png" }.Order(StringComparer.Ordinal), written);
        Assert.Equal((32, 32), ReadMaskSize(Path.Combine(outDir, first + ".png")));
        Assert.Equal((48, 40), ReadMaskSize(Path.Combine(outDir, second + ".png")));
        Assert.Contains($"mask written as {first}.png, not {Path.GetFileNameWithoutExtension(first)}.png: {second} has the same name stem", error.ToString(), StringComparison.Ordinal);
        Assert.Contains($"mask written as {second}.png, not {Path.GetFileNameWithoutExtension(second)}.png: {first} has the same name stem", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Classify_TwoImagesWithTheSameStem_AreBothScored()
    {
        // classify names items by relative path, so the same stem is no clash there.
        using var dir = TestData.CreateTempDirectory();
        var input = Path.Combine(dir.Path, "in");
        WritePng(Path.Combine(input, "x", "scan.png"), 32, 32, 0, 8);
        WritePng(Path.Combine(input, "scan.png"), 32, 32, 0, 8);
        File.WriteAllBytes(Path.Combine(input, "scan.jpg"), Jpeg(32, 32));
        var json = Path.Combine(dir.Path, "r.json");

        var rc = ClassifyCommand.Run(input, json, Models, 0, TextWriter.Null, TextWriter.Null);

        Assert.Equal(ExitCodes.Success, rc);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(json));
        Assert.Equal(
            new[] { "scan.jpg", "scan.png", "x/scan.png" },
            doc.RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("path").GetString()).ToArray());
    }

    [Fact]
    public void Segment_OutDirInsideTheInputFolder_RunTwice_DoesNotTakeItsOwnMasksAsInput()
    {
        using var dir = TestData.CreateTempDirectory();
        WritePng(Path.Combine(dir.Path, "a.png"), 40, 40, 0, 8);
        File.WriteAllBytes(Path.Combine(dir.Path, "b.jpg"), Jpeg(40, 40));
        var outDir = Path.Combine(dir.Path, "masks");

        var first = SegmentCommand.Run(dir.Path, outDir, Models, 0, TextWriter.Null, TextWriter.Null);
        var error = new StringWriter();
        var second = SegmentCommand.Run(dir.Path, outDir, Models, 0, TextWriter.Null, error);

        Assert.Equal((ExitCodes.Success, ExitCodes.Success), (first, second));
        Assert.Equal(new[] { "a.png", "b.png" }, Directory.GetFiles(outDir).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray());
        Assert.Contains("masks/", error.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0, "the file is empty (0 bytes)")]
    [InlineData(1, "not a PNG, JPEG or TIFF image")]
    [InlineData(2, "truncated")]
    public void Segment_BadImageInAFolder_NamesTheFileOnceWithTheReasonAndWritesTheOthers(int kind, string reason)
    {
        using var dir = TestData.CreateTempDirectory();
        var input = Path.Combine(dir.Path, "in");
        WritePng(Path.Combine(input, "good.png"), 40, 40, 0, 8);
        var bad = Path.Combine(input, "bad.png");
        switch (kind)
        {
            case 0:
                File.WriteAllBytes(bad, []);
                break;
            case 1:
                File.WriteAllText(bad, "<html>not found</html>");
                break;
            default:
                WritePng(bad, 200, 200, 0, 8);
                var whole = File.ReadAllBytes(bad);
                File.WriteAllBytes(bad, whole[..(whole.Length - 30)]);
                break;
        }

        var outDir = Path.Combine(dir.Path, "out");
        var error = new StringWriter();

        var rc = SegmentCommand.Run(input, outDir, Models, 0, TextWriter.Null, error);

        Assert.Equal(ExitCodes.BadInput, rc);
        Assert.True(File.Exists(Path.Combine(outDir, "good.png")));
        var line = Assert.Single(error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"segment: {bad}: ", line, StringComparison.Ordinal);
        Assert.Contains(reason, line, StringComparison.Ordinal);
        Assert.Equal(1, line.Split("bad.png").Length - 1);
    }

    [Fact]
    public void Segment_MaskWouldReplaceTheInputImage_WritesItAsItsFileNamePlusPng_ExitsBadInputAndLeavesTheImage()
    {
        // "covidfn segment scan.png --out-dir ." from the image's folder: the mask would also be named scan.png.
        using var dir = TestData.CreateTempDirectory();
        var image = Path.Combine(dir.Path, "scan.png");
        WritePng(image, 32, 32, 2, 8);
        var before = File.ReadAllBytes(image);
        var error = new StringWriter();

        var rc = SegmentCommand.Run(image, dir.Path, Models, 0, TextWriter.Null, error);

        Assert.Equal(ExitCodes.BadInput, rc);
        Assert.Contains("mask written as scan.png.png, not scan.png: scan.png would replace the input image", error.ToString(), StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(image));
        Assert.Equal((32, 32), ReadMaskSize(Path.Combine(dir.Path, "scan.png.png")));
    }

    [Fact]
    public void Classify_FolderWithALinkLoop_ScoresEachImageOnce()
    {
        // a/up -> .. and self -> the input: the recursive walk used to follow them without end (the run never finished).
        using var dir = TestData.CreateTempDirectory();
        var input = Path.Combine(dir.Path, "in");
        WritePng(Path.Combine(input, "a", "scan.png"), 32, 32, 0, 8);
        Directory.CreateSymbolicLink(Path.Combine(input, "a", "up"), "..");
        Directory.CreateSymbolicLink(Path.Combine(input, "self"), input);
        var json = Path.Combine(dir.Path, "r.json");

        var rc = ClassifyCommand.Run(input, json, Models, 0, TextWriter.Null, TextWriter.Null);

        Assert.Equal(ExitCodes.Success, rc);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(json));
        Assert.Equal(new[] { "a/scan.png" }, doc.RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("path").GetString()).ToArray());
    }

    [Fact]
    public void Segment_OverlaysInTheOutDir_ExitsBadInput()
    {
        using var dir = TestData.CreateTempDirectory();
        var image = Path.Combine(dir.Path, "a.png");
        WritePng(image, 32, 32, 0, 8);
        var outDir = Path.Combine(dir.Path, "out");
        var error = new StringWriter();

        var rc = SegmentCommand.Run(image, outDir, Models, 0, new SegmentExtras(outDir + "/", null, null), TextWriter.Null, error);

        Assert.Equal(ExitCodes.BadInput, rc);
        Assert.Contains("is the --out-dir", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Segment_OutDirIsAnExistingFile_ExitsBadInputNamingIt()
    {
        using var dir = TestData.CreateTempDirectory();
        var image = Path.Combine(dir.Path, "a.png");
        WritePng(image, 32, 32, 0, 8);
        var notAFolder = Path.Combine(dir.Path, "taken");
        File.WriteAllText(notAFolder, "x");
        var error = new StringWriter();

        var rc = SegmentCommand.Run(image, notAFolder, Models, 0, TextWriter.Null, error);

        Assert.Equal(ExitCodes.BadInput, rc);
        Assert.Contains(notAFolder, error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Classify_JsonPathIsAFolder_ExitsBadInputNamingIt()
    {
        using var dir = TestData.CreateTempDirectory();
        var image = Path.Combine(dir.Path, "a.png");
        WritePng(image, 32, 32, 0, 8);
        var folder = Path.Combine(dir.Path, "results");
        Directory.CreateDirectory(folder);
        var error = new StringWriter();

        var rc = ClassifyCommand.Run(image, folder, Models, 0, TextWriter.Null, error);

        Assert.Equal(ExitCodes.BadInput, rc);
        Assert.Contains(folder, error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Classify_SingleImageFile_PathIsItsFileName()
    {
        using var dir = TestData.CreateTempDirectory();
        var image = Path.Combine(dir.Path, "sub", "2020.02.10.20021584-p6-52%0.png");
        WritePng(image, 40, 30, 6, 8);
        var json = Path.Combine(dir.Path, "r.json");

        var rc = ClassifyCommand.Run(image, json, Models, 0, TextWriter.Null, TextWriter.Null);

        Assert.Equal(ExitCodes.Success, rc);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(json));
        var item = Assert.Single(doc.RootElement.GetProperty("items").EnumerateArray().ToList());
        Assert.Equal("2020.02.10.20021584-p6-52%0.png", item.GetProperty("path").GetString());
    }
}
