using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.Imaging.Rendering;
using SkiaSharp;

namespace CovidFunctions.Imaging.Tests.Rendering;

public sealed class OverlayRendererTests
{
    private static (GreyImage Image, byte[] Mask) Square(int size = 40)
    {
        var image = new GreyImage(size, size, Enumerable.Repeat(0.5f, size * size).ToArray());
        var mask = new byte[size * size];
        for (var y = 10; y < 20; y++)
        {
            for (var x = 10; x < 20; x++)
            {
                mask[(y * size) + x] = 255;
            }
        }

        return (image, mask);
    }

    [Fact]
    public void RenderOverlayPng_SquareLesion_FillInsideOutlineOnEdgeGreyOutside()
    {
        var (image, mask) = Square();

        var png = OverlayRenderer.RenderOverlayPng(image, mask);
        using var bitmap = SKBitmap.Decode(png);

        Assert.Equal((40, 40), (bitmap.Width, bitmap.Height));
        Assert.Equal(new SKColor(128, 128, 128), bitmap.GetPixel(2, 2));
        Assert.Equal(new SKColor(255, 220, 0), bitmap.GetPixel(10, 15)); // boundary
        var inside = bitmap.GetPixel(15, 15);
        Assert.Equal(new SKColor(172, 97, 97), inside); // 128·0.65 + (255, 40, 40)·0.35
    }

    [Fact]
    public void ComposeRgba_MaskOfWrongSize_Throws()
    {
        var (image, _) = Square();
        Assert.Throws<ArgumentException>(() => OverlayRenderer.ComposeRgba(image, new byte[10]));
    }

    [Fact]
    public void Typeface_Headless_HasGlyphsForLabels()
    {
        using var font = new SKFont(OverlayRenderer.Typeface, 15);
        var glyphs = font.GetGlyphs("slice 12 · 3.4 %");
        Assert.DoesNotContain((ushort)0, glyphs);
    }

    [Fact]
    public void RenderMontagePng_ThreeTiles_GridWithLabels()
    {
        var (image, mask) = Square(64);
        MontageTile[] tiles = [new(image, mask, 3, 6.3), new(image, mask, 7, 12.5), new(image, mask, 9, 1.0)];

        var png = OverlayRenderer.RenderMontagePng(tiles, columns: 2, cellSize: 128, title: "study 1");
        using var bitmap = SKBitmap.Decode(png);

        Assert.Equal(256, bitmap.Width);
        Assert.Equal(30 + (2 * (128 + 22)), bitmap.Height);
        // Text was drawn in the first label strip (white-ish pixels), the empty fourth cell stays black.
        var labelPixels = 0;
        for (var y = 30 + 128; y < 30 + 150; y++)
        {
            for (var x = 0; x < 128; x++)
            {
                if (bitmap.GetPixel(x, y).Red > 128)
                {
                    labelPixels++;
                }
            }
        }

        Assert.True(labelPixels > 30, $"only {labelPixels} label pixels");
        Assert.Equal(SKColors.Black, bitmap.GetPixel(200, 30 + 150 + 60));
    }

    [Fact]
    public void MostAffected_PicksLargestInSliceOrder()
    {
        double[] percents = [0, 5, 0.5, 12, 0, 7, 7];
        Assert.Equal([3, 5, 6], OverlayRenderer.MostAffected(percents, 3));
        Assert.Equal([1, 2, 3, 5, 6], OverlayRenderer.MostAffected(percents, 10));
    }

    [Fact]
    public void LesionPercent_WithLungMask_IsShareOfLung()
    {
        byte[] mask = [255, 0, 255, 0];
        byte[] lung = [255, 255, 0, 0];
        Assert.Equal(50, OverlayRenderer.LesionPercent(mask, lung));
        Assert.Equal(50, OverlayRenderer.LesionPercent(mask));
    }
}
