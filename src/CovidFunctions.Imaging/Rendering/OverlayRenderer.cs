using CovidFunctions.Imaging.Preprocessing;
using SkiaSharp;

namespace CovidFunctions.Imaging.Rendering;

/// <summary>Colours and opacity of lesion overlays.</summary>
public sealed record OverlayStyle
{
    public static OverlayStyle Default { get; } = new();

    /// <summary>Fill colour (RGB) blended over lesion pixels.</summary>
    public (byte R, byte G, byte B) Fill { get; init; } = (255, 40, 40);

    /// <summary>Fill opacity in [0, 1].</summary>
    public float FillOpacity { get; init; } = 0.35f;

    /// <summary>Outline colour (RGB), drawn opaque on the lesion's boundary pixels.</summary>
    public (byte R, byte G, byte B) Outline { get; init; } = (255, 220, 0);
}

/// <summary>One slice of a montage: the windowed image, its lesion mask and the label to print.</summary>
public sealed record MontageTile(GreyImage Image, byte[] Mask, int SliceIndex, double LesionPercent);

/// <summary>
/// Pictures people can read: a PNG per slice with the lesion mask drawn over the windowed image (translucent fill
/// and outline), and a study montage of the most affected slices with lesion percentages. Pixels are composed in
/// managed code; SkiaSharp scales, draws text and encodes PNG. Text uses DejaVu Sans from the system font folder
/// (fonts-dejavu-core, installed by infra/scripts/prepare.sh) because SkiaSharp's NoDependencies build has no
/// fontconfig and its default typeface has no glyphs here.
/// </summary>
public static class OverlayRenderer
{
    private static readonly string[] FontCandidates =
    [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
        "/usr/share/fonts/truetype/droid/DroidSans.ttf",
    ];

    private static readonly Lazy<SKTypeface> TypefaceLazy = new(LoadTypeface);

    /// <summary>The typeface used for labels (the first of the known system fonts present, else Skia's default).</summary>
    public static SKTypeface Typeface => TypefaceLazy.Value;

    /// <summary>The RGBA pixels (row-major, 4 bytes per pixel, opaque) of a windowed image with its mask drawn over.</summary>
    public static byte[] ComposeRgba(GreyImage image, ReadOnlySpan<byte> mask, OverlayStyle? style = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        int w = image.Width, h = image.Height;
        if (mask.Length != w * h)
        {
            throw new ArgumentException($"Mask must hold {w}×{h} values, got {mask.Length}.", nameof(mask));
        }

        style ??= OverlayStyle.Default;
        var rgba = new byte[w * h * 4];
        var a = style.FillOpacity;
        for (var y = 0; y < h; y++)
        {
            for (var x = 0; x < w; x++)
            {
                var i = (y * w) + x;
                var g = (byte)Math.Clamp(MathF.Round(image.Pixels[i] * 255f), 0, 255);
                byte r = g, gg = g, b = g;
                if (mask[i] != 0)
                {
                    var boundary = x == 0 || y == 0 || x == w - 1 || y == h - 1 ||
                                   mask[i - 1] == 0 || mask[i + 1] == 0 || mask[i - w] == 0 || mask[i + w] == 0;
                    if (boundary)
                    {
                        (r, gg, b) = style.Outline;
                    }
                    else
                    {
                        r = Blend(g, style.Fill.R, a);
                        gg = Blend(g, style.Fill.G, a);
                        b = Blend(g, style.Fill.B, a);
                    }
                }

                var o = i * 4;
                rgba[o] = r;
                rgba[o + 1] = gg;
                rgba[o + 2] = b;
                rgba[o + 3] = 255;
            }
        }

        return rgba;
    }

    /// <summary>A PNG of one slice with its lesion mask (0 = background, non-zero = lesion) drawn over.</summary>
    public static byte[] RenderOverlayPng(GreyImage image, ReadOnlySpan<byte> mask, OverlayStyle? style = null)
    {
        var rgba = ComposeRgba(image, mask, style);
        using var bitmap = ToBitmap(rgba, image.Width, image.Height);
        return EncodePng(bitmap);
    }

    /// <summary>The lesion share of a slice in percent: lesion pixels over lung pixels (or over the whole slice).</summary>
    public static double LesionPercent(ReadOnlySpan<byte> mask, ReadOnlySpan<byte> lungMask = default)
    {
        long lesion = 0, area = 0;
        for (var i = 0; i < mask.Length; i++)
        {
            var inLung = lungMask.IsEmpty || lungMask[i] != 0;
            if (inLung)
            {
                area++;
                if (mask[i] != 0)
                {
                    lesion++;
                }
            }
        }

        return area == 0 ? 0 : 100.0 * lesion / area;
    }

    /// <summary>Indexes of the <paramref name="count"/> slices with the largest lesion share (ties: lower index), in slice order; slices without lesion are left out.</summary>
    public static int[] MostAffected(IReadOnlyList<double> lesionPercents, int count)
    {
        ArgumentNullException.ThrowIfNull(lesionPercents);
        return Enumerable.Range(0, lesionPercents.Count)
            .Where(i => lesionPercents[i] > 0)
            .OrderByDescending(i => lesionPercents[i])
            .ThenBy(i => i)
            .Take(count)
            .Order()
            .ToArray();
    }

    /// <summary>
    /// A PNG montage: tiles in a grid of <paramref name="columns"/> cells of <paramref name="cellSize"/> pixels, each
    /// the overlay scaled to fit, labelled "slice N · P %". A title line is printed on top when given.
    /// </summary>
    public static byte[] RenderMontagePng(IReadOnlyList<MontageTile> tiles, int columns = 4, int cellSize = 256, string? title = null, OverlayStyle? style = null)
    {
        ArgumentNullException.ThrowIfNull(tiles);
        ArgumentOutOfRangeException.ThrowIfLessThan(columns, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(cellSize, 32);
        var cols = Math.Max(1, Math.Min(columns, tiles.Count));
        var rows = Math.Max(1, (tiles.Count + cols - 1) / cols);
        const int labelHeight = 22;
        var titleHeight = title is null ? 0 : 30;
        var width = cols * cellSize;
        var height = titleHeight + (rows * (cellSize + labelHeight));
        using var surface = SKSurface.Create(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.Black);
        using var font = new SKFont(Typeface, 15);
        using var textPaint = new SKPaint { Color = SKColors.White, IsAntialias = true };
        using var imagePaint = new SKPaint();
        if (title is not null)
        {
            using var titleFont = new SKFont(Typeface, 18);
            canvas.DrawText(title, 8, 22, SKTextAlign.Left, titleFont, textPaint);
        }

        if (tiles.Count == 0)
        {
            canvas.DrawText("no lesion found", 8, titleHeight + (cellSize / 2f), SKTextAlign.Left, font, textPaint);
        }

        for (var t = 0; t < tiles.Count; t++)
        {
            var tile = tiles[t];
            var rgba = ComposeRgba(tile.Image, tile.Mask, style);
            using var bitmap = ToBitmap(rgba, tile.Image.Width, tile.Image.Height);
            using var image = SKImage.FromBitmap(bitmap);
            var scale = Math.Min((float)cellSize / tile.Image.Width, (float)cellSize / tile.Image.Height);
            var dw = tile.Image.Width * scale;
            var dh = tile.Image.Height * scale;
            var cx = (t % cols) * cellSize;
            var cy = titleHeight + ((t / cols) * (cellSize + labelHeight));
            var dest = SKRect.Create(cx + ((cellSize - dw) / 2), cy + ((cellSize - dh) / 2), dw, dh);
            canvas.DrawImage(image, dest, new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear), imagePaint);
            var label = FormattableString.Invariant($"slice {tile.SliceIndex + 1} · {tile.LesionPercent:0.0} %");
            canvas.DrawText(label, cx + 6, cy + cellSize + 16, SKTextAlign.Left, font, textPaint);
        }

        using var snapshot = surface.Snapshot();
        using var data = snapshot.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    private static byte Blend(byte under, byte over, float alpha) => (byte)Math.Clamp(MathF.Round((under * (1 - alpha)) + (over * alpha)), 0, 255);

    private static SKBitmap ToBitmap(byte[] rgba, int width, int height)
    {
        var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        return bitmap;
    }

    private static byte[] EncodePng(SKBitmap bitmap)
    {
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    private static SKTypeface LoadTypeface()
    {
        foreach (var path in FontCandidates)
        {
            if (File.Exists(path) && SKTypeface.FromFile(path) is { } typeface)
            {
                return typeface;
            }
        }

        return SKTypeface.Default;
    }
}
