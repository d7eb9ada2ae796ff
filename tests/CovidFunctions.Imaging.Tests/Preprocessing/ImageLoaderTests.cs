using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Imaging.Tests.Preprocessing;

public sealed class ImageLoaderTests
{
    private static float[] Expected(string name, Func<float[], int, float> pick, int channels)
    {
        var raw = NpyFormat.Read(TestData.Local("imaging", name)).ToSingle();
        return Enumerable.Range(0, raw.Length / channels).Select(i => pick(raw, i * channels)).ToArray();
    }

    private static float Luma(float[] a, int o) => ((0.299f * a[o]) + (0.587f * a[o + 1]) + (0.114f * a[o + 2])) / 255f;

    private static void AssertClose(float[] expected, GreyImage actual)
    {
        Assert.Equal(6, actual.Width);
        Assert.Equal(4, actual.Height);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual.Pixels[i]) <= 1e-7f, $"pixel {i}: expected {expected[i]}, got {actual.Pixels[i]}");
        }
    }

    [Fact]
    public void Load_Grey8Png_DividesBy255()
    {
        AssertClose(Expected("decode_expected_grey8.npy", (a, o) => a[o] / 255f, 1), ImageLoader.Load(TestData.Local("imaging", "decode_grey8.png")));
    }

    [Fact]
    public void Load_Grey16Png_DividesBy65535WithoutLosingBits()
    {
        AssertClose(Expected("decode_expected_grey16.npy", (a, o) => a[o] / 65535f, 1), ImageLoader.Load(TestData.Local("imaging", "decode_grey16.png")));
    }

    [Fact]
    public void Load_RgbaPngWithLowAlpha_UsesUnpremultipliedLumaIgnoringAlpha()
    {
        AssertClose(Expected("decode_expected_rgb.npy", Luma, 3), ImageLoader.Load(TestData.Local("imaging", "decode_rgba.png")));
    }

    [Fact]
    public void Load_PalettePng_ExpandsToRgbThenLuma()
    {
        AssertClose(Expected("decode_expected_palette_rgb.npy", Luma, 3), ImageLoader.Load(TestData.Local("imaging", "decode_palette.png")));
    }

    [Fact]
    public void Load_RgbTiff_UsesLuma()
    {
        AssertClose(Expected("decode_expected_rgb.npy", Luma, 3), ImageLoader.Load(TestData.Local("imaging", "decode_rgb.tif")));
    }

    [Fact]
    public void Load_PackBitsGreyTiff_DividesBy255()
    {
        AssertClose(Expected("decode_expected_grey8.npy", (a, o) => a[o] / 255f, 1), ImageLoader.Load(TestData.Local("imaging", "decode_grey8_packbits.tif")));
    }

    [Fact]
    public void Load_Grey16Tiff_DividesBy65535()
    {
        AssertClose(Expected("decode_expected_grey16.npy", (a, o) => a[o] / 65535f, 1), ImageLoader.Load(TestData.Local("imaging", "decode_grey16.tif")));
    }

    /// <summary>The closed form make_fixtures.py wrote the 257×131 compressed TIFFs with.</summary>
    private static int Pattern(int x, int y) => ((x * x) + (3 * y * y) + (x * y)) % 251;

    private static void AssertPattern(GreyImage actual, Func<int, int, float> expected)
    {
        Assert.Equal(257, actual.Width);
        Assert.Equal(131, actual.Height);
        for (var y = 0; y < 131; y++)
        {
            for (var x = 0; x < 257; x++)
            {
                var e = expected(x, y);
                var a = actual.Pixels[(y * 257) + x];
                Assert.True(Math.Abs(e - a) <= 1e-6f, $"pixel ({x}, {y}): expected {e}, got {a}");
            }
        }
    }

    [Fact]
    public void Load_LzwGreyTiffWithPredictor_DecodesEveryPixel()
    {
        AssertPattern(ImageLoader.Load(TestData.Local("imaging", "decode_grey8_lzw_predictor.tif")), (x, y) => Pattern(x, y) / 255f);
    }

    [Fact]
    public void Load_DeflateGrey16TiffWithPredictorOverTwoStrips_DecodesEveryPixel()
    {
        AssertPattern(
            ImageLoader.Load(TestData.Local("imaging", "decode_grey16_deflate_predictor.tif")),
            (x, y) => (((Pattern(x, y) * 257) + (x * 11)) % 65536) / 65535f);
    }

    [Fact]
    public void Load_LzwRgbTiffWithPredictorOverTwoStrips_UsesLuma()
    {
        AssertPattern(
            ImageLoader.Load(TestData.Local("imaging", "decode_rgb_lzw_predictor.tif")),
            (x, y) =>
            {
                var v = Pattern(x, y);
                return ((0.299f * v) + (0.587f * (255 - v)) + (0.114f * (v * 3 % 256))) / 255f;
            });
    }

    [Fact]
    public void Decode_LzwStripStartingWithANonLiteralCode_ThrowsNamingTheStrip()
    {
        var bytes = File.ReadAllBytes(TestData.Local("imaging", "decode_grey8_lzw_predictor.tif"));
        var offset = BitConverter.ToUInt32(bytes, FindStripOffsetEntry(bytes) + 8);
        bytes.AsSpan((int)offset, 4).Fill(0xFF); // first 9-bit code 511: not a literal, and nothing precedes it

        var ex = Assert.Throws<ImageFormatException>(() => ImageLoader.Decode(bytes, "bad-lzw.tif"));

        Assert.Contains("bad-lzw.tif", ex.Message, StringComparison.Ordinal);
        Assert.Contains("strip 0", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>The byte offset of the StripOffsets (273) entry of the first IFD of a little-endian TIFF.</summary>
    private static int FindStripOffsetEntry(byte[] tiff)
    {
        var ifd = (int)BitConverter.ToUInt32(tiff, 4);
        int count = BitConverter.ToUInt16(tiff, ifd);
        for (var i = 0; i < count; i++)
        {
            var e = ifd + 2 + (12 * i);
            if (BitConverter.ToUInt16(tiff, e) == 273)
            {
                return e;
            }
        }

        throw new InvalidOperationException("no StripOffsets tag");
    }

    [Fact]
    public void Load_RealLzwTiffsUnderJpgNames_MatchPilPixelForPixel()
    {
        // 17 neg-unknown slices are LZW + Predictor 2 TIFFs named .jpg; training read them through PIL, so the serving
        // decoder must give PIL's pixels. PIL (libtiff) is the independent decoder here.
        var dir = TestData.Shared("cls", "neg-unknown");
        var tiffs = Directory.EnumerateFiles(dir, "*.jpg").Order(StringComparer.Ordinal)
            .Where(f =>
            {
                var head = new byte[4];
                using var stream = File.OpenRead(f);
                stream.ReadExactly(head);
                return head.AsSpan().SequenceEqual("II*\0"u8) || head.AsSpan().SequenceEqual("MM\0*"u8);
            })
            .ToList();
        Assert.True(tiffs.Count >= 10, $"expected the LZW TIFFs of neg-unknown, found {tiffs.Count}");

        var psi = new System.Diagnostics.ProcessStartInfo("/usr/bin/python3")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("import sys, hashlib, numpy as np\nfrom PIL import Image\nfor line in sys.stdin:\n    im = Image.open(line.strip())\n    print(im.format, im.info.get('compression'), hashlib.sha256(np.asarray(im.convert('L'), dtype=np.uint8).tobytes()).hexdigest())");
        using var python = System.Diagnostics.Process.Start(psi)!;
        python.StandardInput.Write(string.Join("\n", tiffs) + "\n");
        python.StandardInput.Close();
        var lines = python.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        python.WaitForExit();
        Assert.True(python.ExitCode == 0, python.StandardError.ReadToEnd());
        Assert.Equal(tiffs.Count, lines.Length);

        for (var i = 0; i < tiffs.Count; i++)
        {
            var image = ImageLoader.Load(tiffs[i]);
            var bytes = image.Pixels.Select(v => (byte)Math.Round(v * 255f)).ToArray();
            var parts = lines[i].Split(' ');
            Assert.Equal("TIFF", parts[0]);
            Assert.Equal("tiff_lzw", parts[1]);
            Assert.Equal(parts[2], Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes)));
        }
    }

    [Fact]
    public void Load_RealJpegFromResearchSet_DecodesToUnitRange()
    {
        var dir = TestData.Shared("seg", "covid-semiseg", "train", "images");
        var file = Directory.EnumerateFiles(dir, "*.jpg").Order(StringComparer.Ordinal).First();

        var image = ImageLoader.Load(file);

        Assert.InRange(image.Width, 100, 600);
        Assert.All(image.Pixels, v => Assert.InRange(v, 0f, 1f));
        Assert.True(image.Pixels.Max() > 0.5f);
    }

    [Fact]
    public void Decode_NotAnImage_ThrowsImageFormatExceptionNamingSource()
    {
        var ex = Assert.Throws<ImageFormatException>(() => ImageLoader.Decode("hello world"u8, "notes.txt"));
        Assert.Equal("notes.txt", ex.FilePath);
        Assert.Contains("notes.txt", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_TruncatedPng_Throws()
    {
        var bytes = File.ReadAllBytes(TestData.Local("imaging", "decode_grey8.png"));
        Assert.Throws<ImageFormatException>(() => ImageLoader.Decode(bytes.AsSpan(0, 40), "cut.png"));
    }
}
