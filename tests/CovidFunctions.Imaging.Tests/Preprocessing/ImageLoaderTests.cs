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
