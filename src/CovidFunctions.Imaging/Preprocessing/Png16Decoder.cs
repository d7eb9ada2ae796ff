using System.Buffers.Binary;
using System.IO.Compression;

namespace CovidFunctions.Imaging.Preprocessing;

/// <summary>
/// A minimal decoder for 16-bit PNG (grey, grey+alpha, RGB, RGBA; plain or Adam7-interlaced), because SkiaSharp
/// reduces 16-bit samples to 8 bits. Grey: <c>g/65535</c>; colour: <c>(0.299R + 0.587G + 0.114B)/65535</c> in float32.
/// </summary>
/// <remarks>
/// Interlaced files were refused until session 17 ("interlaced 16-bit PNG is not supported", exit 2 from
/// <c>covidfn segment</c> / <c>classify</c>) although PIL, which the evaluation and training read images with, opens
/// them.
/// </remarks>
internal static class Png16Decoder
{
    public static bool IsSixteenBit(ReadOnlySpan<byte> data) =>
        data.Length >= 29 && data[12..16].SequenceEqual("IHDR"u8) && data[24] == 16;

    public static GreyImage Decode(ReadOnlySpan<byte> data, string? source)
    {
        var width = (int)BinaryPrimitives.ReadUInt32BigEndian(data[16..]);
        var height = (int)BinaryPrimitives.ReadUInt32BigEndian(data[20..]);
        var colourType = data[25];
        var interlace = data[28];
        if (width < 1 || height < 1 || width > ImageLoader.MaxSide || height > ImageLoader.MaxSide)
        {
            throw ImageFormatException.For(source, $"PNG size {width}×{height} is outside 1…{ImageLoader.MaxSide}");
        }

        if (interlace > 1)
        {
            throw ImageFormatException.For(source, $"PNG interlace method {interlace} is not valid");
        }

        var channels = colourType switch
        {
            0 => 1,
            4 => 2,
            2 => 3,
            6 => 4,
            _ => throw ImageFormatException.For(source, $"16-bit PNG colour type {colourType} is not valid"),
        };

        using var idat = new MemoryStream();
        var pos = 8;
        while (pos + 12 <= data.Length)
        {
            var length = (int)BinaryPrimitives.ReadUInt32BigEndian(data[pos..]);
            if (length < 0 || pos + 12L + length > data.Length)
            {
                throw ImageFormatException.For(source, $"PNG chunk at byte {pos} runs past the end of the file");
            }

            var type = data.Slice(pos + 4, 4);
            if (type.SequenceEqual("IDAT"u8))
            {
                idat.Write(data.Slice(pos + 8, length));
            }
            else if (type.SequenceEqual("IEND"u8))
            {
                break;
            }

            pos += 12 + length;
        }

        var bpp = channels * 2;

        // The reduced images in file order: the whole image, or Adam7's seven passes (PNG spec 8.2), each filtered on
        // its own from a zero prior row; a pass with no column or no row has no bytes at all.
        var passes = (interlace == 0 ? NotInterlaced : Adam7)
            .Select(p => (p.X0, p.Y0, p.Dx, p.Dy, Width: (width - p.X0 + p.Dx - 1) / p.Dx, Height: (height - p.Y0 + p.Dy - 1) / p.Dy))
            .Where(p => p.Width > 0 && p.Height > 0)
            .ToList();
        var raw = new byte[passes.Sum(p => (long)p.Height * ((p.Width * bpp) + 1))];
        idat.Position = 0;
        using (var z = new ZLibStream(idat, CompressionMode.Decompress))
        {
            var read = 0;
            while (read < raw.Length)
            {
                int n;
                try
                {
                    n = z.Read(raw, read, raw.Length - read);
                }
                catch (InvalidDataException ex)
                {
                    throw ImageFormatException.For(source, "PNG image data is corrupt: " + ex.Message, ex);
                }

                if (n == 0)
                {
                    throw ImageFormatException.For(source, "PNG image data is truncated");
                }

                read += n;
            }
        }

        var pixels = new float[width * height];
        var rowStart = 0;
        foreach (var pass in passes)
        {
            var stride = pass.Width * bpp;
            var previous = new byte[stride];
            var current = new byte[stride];
            for (var j = 0; j < pass.Height; j++)
            {
                var filter = raw[rowStart];
                raw.AsSpan(rowStart + 1, stride).CopyTo(current);
                rowStart += stride + 1;
                Unfilter(filter, current, previous, bpp, source);
                var y = pass.Y0 + (j * pass.Dy);
                for (var i = 0; i < pass.Width; i++)
                {
                    var o = i * bpp;
                    var x = pass.X0 + (i * pass.Dx);
                    if (channels <= 2)
                    {
                        pixels[(y * width) + x] = BinaryPrimitives.ReadUInt16BigEndian(current.AsSpan(o)) / 65535f;
                    }
                    else
                    {
                        float r = BinaryPrimitives.ReadUInt16BigEndian(current.AsSpan(o));
                        float g = BinaryPrimitives.ReadUInt16BigEndian(current.AsSpan(o + 2));
                        float b = BinaryPrimitives.ReadUInt16BigEndian(current.AsSpan(o + 4));
                        pixels[(y * width) + x] = ((0.299f * r) + (0.587f * g) + (0.114f * b)) / 65535f;
                    }
                }

                (previous, current) = (current, previous);
            }
        }

        return new GreyImage(width, height, pixels, source);
    }

    /// <summary>One reduced image: first column and row, column and row step.</summary>
    private static readonly (int X0, int Y0, int Dx, int Dy)[] NotInterlaced = [(0, 0, 1, 1)];

    /// <summary>Adam7's seven passes (PNG spec 8.2).</summary>
    private static readonly (int X0, int Y0, int Dx, int Dy)[] Adam7 =
        [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];

    private static void Unfilter(byte filter, Span<byte> row, ReadOnlySpan<byte> prior, int bpp, string? source)
    {
        switch (filter)
        {
            case 0:
                break;
            case 1:
                for (var i = bpp; i < row.Length; i++)
                {
                    row[i] = (byte)(row[i] + row[i - bpp]);
                }

                break;
            case 2:
                for (var i = 0; i < row.Length; i++)
                {
                    row[i] = (byte)(row[i] + prior[i]);
                }

                break;
            case 3:
                for (var i = 0; i < row.Length; i++)
                {
                    var left = i >= bpp ? row[i - bpp] : 0;
                    row[i] = (byte)(row[i] + ((left + prior[i]) >> 1));
                }

                break;
            case 4:
                for (var i = 0; i < row.Length; i++)
                {
                    int a = i >= bpp ? row[i - bpp] : 0;
                    int b = prior[i];
                    int c = i >= bpp ? prior[i - bpp] : 0;
                    var p = a + b - c;
                    var pa = Math.Abs(p - a);
                    var pb = Math.Abs(p - b);
                    var pc = Math.Abs(p - c);
                    var predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
                    row[i] = (byte)(row[i] + predictor);
                }

                break;
            default:
                throw ImageFormatException.For(source, $"PNG row filter {filter} is not valid");
        }
    }
}
