using SkiaSharp;

namespace CovidFunctions.Imaging.Preprocessing;

/// <summary>
/// Loads 2-D research images (PNG, JPEG, baseline TIFF) as <see cref="GreyImage"/> in [0, 1] per step 1 of
/// preprocessing "lung2d-v1": 8-bit grey <c>g/255</c>; colour <c>(0.299R + 0.587G + 0.114B)/255</c> in float32,
/// alpha ignored, palette expanded; 16-bit grey <c>g/65535</c>. The format is recognised by its signature, not the
/// file name.
/// </summary>
/// <remarks>
/// PNG/JPEG go through SkiaSharp, asked for unpremultiplied RGBA8888 (or Gray8) with no colour-space conversion, so
/// the stored samples come back unchanged. Skia reduces 16-bit PNG to 8 bits, so 16-bit PNGs are decoded by
/// <see cref="Png16Decoder"/>; Skia does not decode TIFF, so baseline TIFF is read by <see cref="TiffDecoder"/>.
/// </remarks>
public static class ImageLoader
{
    /// <summary>Largest accepted image side, a guard against decompression bombs in headers.</summary>
    public const int MaxSide = 16384;

    /// <summary>Loads an image file.</summary>
    public static GreyImage Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (IOException ex)
        {
            throw ImageFormatException.For(path, "cannot read the file: " + ex.Message, ex);
        }

        return Decode(bytes, path);
    }

    /// <summary>Decodes an image held in memory; <paramref name="sourceName"/> is used in messages.</summary>
    public static GreyImage Decode(ReadOnlySpan<byte> data, string? sourceName = null)
    {
        var format = DetectFormat(data);
        return format switch
        {
            ImageFileFormat.Png when Png16Decoder.IsSixteenBit(data) => Png16Decoder.Decode(data, sourceName),
            ImageFileFormat.Png => DecodeWithSkia(data, sourceName),
            ImageFileFormat.Jpeg when !JpegMarkers.ReachesEndOfImage(data) => throw ImageFormatException.For(sourceName, "the image data is truncated (the JPEG ends before its end-of-image marker)"),
            ImageFileFormat.Jpeg => DecodeWithSkia(data, sourceName),
            ImageFileFormat.Tiff => TiffDecoder.Decode(data, sourceName),
            _ => throw ImageFormatException.For(sourceName, "not a PNG, JPEG or TIFF image (unrecognised signature)"),
        };
    }

    /// <summary>
    /// The width and height of an image without decoding its pixels (PNG: the IHDR chunk; JPEG: the frame header via
    /// Skia; TIFF: decoded, the baseline reader has no header-only path).
    /// </summary>
    public static (int Width, int Height) ReadSize(ReadOnlySpan<byte> data, string? sourceName = null)
    {
        int width;
        int height;
        switch (DetectFormat(data))
        {
            case ImageFileFormat.Png:
                if (data.Length < 24 || !data.Slice(12, 4).SequenceEqual("IHDR"u8))
                {
                    throw ImageFormatException.For(sourceName, "PNG without an IHDR chunk");
                }

                width = (int)Math.Min(System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(data.Slice(16, 4)), int.MaxValue);
                height = (int)Math.Min(System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(data.Slice(20, 4)), int.MaxValue);
                break;
            case ImageFileFormat.Jpeg:
                using (var skData = SKData.CreateCopy(data))
                using (var codec = SKCodec.Create(skData) ?? throw ImageFormatException.For(sourceName, "the image decoder rejected the file (corrupt or unsupported)"))
                {
                    (width, height) = (codec.Info.Width, codec.Info.Height);
                }

                break;
            case ImageFileFormat.Tiff:
                var tiff = TiffDecoder.Decode(data, sourceName);
                (width, height) = (tiff.Width, tiff.Height);
                break;
            default:
                throw ImageFormatException.For(sourceName, "not a PNG, JPEG or TIFF image (unrecognised signature)");
        }

        if (width < 1 || height < 1 || width > MaxSide || height > MaxSide)
        {
            throw ImageFormatException.For(sourceName, $"image size {width}×{height} is outside 1…{MaxSide}");
        }

        return (width, height);
    }

    /// <summary>Recognises PNG, JPEG and TIFF by their first bytes.</summary>
    public static ImageFileFormat DetectFormat(ReadOnlySpan<byte> data)
    {
        if (data.Length >= 8 && data[..8].SequenceEqual(PngSignature))
        {
            return ImageFileFormat.Png;
        }

        if (data.Length >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
        {
            return ImageFileFormat.Jpeg;
        }

        if (data.Length >= 4 && ((data[0] == (byte)'I' && data[1] == (byte)'I' && data[2] == 42 && data[3] == 0) ||
                                 (data[0] == (byte)'M' && data[1] == (byte)'M' && data[2] == 0 && data[3] == 42)))
        {
            return ImageFileFormat.Tiff;
        }

        return ImageFileFormat.Unknown;
    }

    /// <summary>Whether a file name has an extension this loader reads (.png, .jpg, .jpeg, .tif, .tiff).</summary>
    public static bool HasImageExtension(string path)
    {
        var ext = Path.GetExtension(path).ToUpperInvariant();
        return ext is ".PNG" or ".JPG" or ".JPEG" or ".TIF" or ".TIFF";
    }

    /// <summary>The PNG signature.</summary>
    private static ReadOnlySpan<byte> PngSignature => [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>Grey from 8-bit RGB per the spec, in float32 (no rounding).</summary>
    internal static float Luma(byte r, byte g, byte b) => ((0.299f * r) + (0.587f * g) + (0.114f * b)) / 255f;

    private static GreyImage DecodeWithSkia(ReadOnlySpan<byte> data, string? sourceName)
    {
        using var skData = SKData.CreateCopy(data);
        using var codec = SKCodec.Create(skData) ?? throw ImageFormatException.For(sourceName, "the image decoder rejected the file (corrupt or unsupported)");
        var info = codec.Info;
        if (info.Width < 1 || info.Height < 1 || info.Width > MaxSide || info.Height > MaxSide)
        {
            throw ImageFormatException.For(sourceName, $"image size {info.Width}×{info.Height} is outside 1…{MaxSide}");
        }

        var grey = info.ColorType == SKColorType.Gray8;
        var target = new SKImageInfo(info.Width, info.Height, grey ? SKColorType.Gray8 : SKColorType.Rgba8888, SKAlphaType.Unpremul, null);
        var buffer = new byte[target.BytesSize];
        SKCodecResult result;
        var handle = System.Runtime.InteropServices.GCHandle.Alloc(buffer, System.Runtime.InteropServices.GCHandleType.Pinned);
        try
        {
            result = codec.GetPixels(target, handle.AddrOfPinnedObject());
        }
        finally
        {
            handle.Free();
        }

        if (result is not (SKCodecResult.Success or SKCodecResult.IncompleteInput))
        {
            throw ImageFormatException.For(sourceName, $"decoding failed ({result})");
        }

        if (result == SKCodecResult.IncompleteInput)
        {
            throw ImageFormatException.For(sourceName, "the image data is truncated");
        }

        var pixels = new float[info.Width * info.Height];
        var rowBytes = target.RowBytes;
        for (var y = 0; y < info.Height; y++)
        {
            var row = buffer.AsSpan(y * rowBytes, rowBytes);
            var outRow = pixels.AsSpan(y * info.Width, info.Width);
            if (grey)
            {
                for (var x = 0; x < outRow.Length; x++)
                {
                    outRow[x] = row[x] / 255f;
                }
            }
            else
            {
                for (var x = 0; x < outRow.Length; x++)
                {
                    outRow[x] = Luma(row[4 * x], row[(4 * x) + 1], row[(4 * x) + 2]);
                }
            }
        }

        return new GreyImage(info.Width, info.Height, pixels, sourceName);
    }
}

/// <summary>Image container formats recognised by <see cref="ImageLoader.DetectFormat"/>.</summary>
public enum ImageFileFormat
{
    Unknown,
    Png,
    Jpeg,
    Tiff,
}
