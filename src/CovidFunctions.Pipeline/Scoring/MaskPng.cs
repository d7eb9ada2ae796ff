using CovidFunctions.Imaging.Preprocessing;
using SkiaSharp;

namespace CovidFunctions.Pipeline.Scoring;

/// <summary>Lesion masks as 8-bit grey PNG (0 background, 255 lesion) on the original slice grid.</summary>
public static class MaskPng
{
    public static byte[] Encode(ReadOnlySpan<byte> mask, int width, int height)
    {
        if (mask.Length != width * height)
        {
            throw new ArgumentException($"Mask must hold {width}×{height} values, got {mask.Length}.", nameof(mask));
        }

        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Gray8, SKAlphaType.Opaque));
        System.Runtime.InteropServices.Marshal.Copy(mask.ToArray(), 0, bitmap.GetPixels(), mask.Length);

        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>Decodes a mask PNG: non-zero (≥ 50 % grey) pixels become 255.</summary>
    public static (byte[] Mask, int Width, int Height) Decode(ReadOnlySpan<byte> png, string? sourceName = null)
    {
        var image = ImageLoader.Decode(png, sourceName);
        var mask = new byte[image.Pixels.Length];
        for (var i = 0; i < mask.Length; i++)
        {
            mask[i] = image.Pixels[i] >= 0.5f ? (byte)255 : (byte)0;
        }

        return (mask, image.Width, image.Height);
    }
}
