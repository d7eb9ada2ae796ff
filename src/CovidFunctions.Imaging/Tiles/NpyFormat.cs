using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace CovidFunctions.Imaging.Tiles;

/// <summary>An n-dimensional array read from a NumPy <c>.npy</c> file: its dtype, shape and little-endian C-order bytes.</summary>
public sealed class NpyArray
{
    public NpyArray(string descr, int[] shape, byte[] data)
    {
        Descr = descr;
        Shape = shape;
        Data = data;
    }

    /// <summary>The NumPy dtype string, e.g. <c>&lt;f4</c>, <c>&lt;f2</c>, <c>|u1</c>, <c>&lt;i2</c>.</summary>
    public string Descr { get; }

    public int[] Shape { get; }

    /// <summary>The raw element bytes, little-endian, C order.</summary>
    public byte[] Data { get; }

    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>The elements converted to float32 (from f2, f4, f8, u1, i1, i2, u2, i4, u4).</summary>
    public float[] ToSingle()
    {
        var n = checked((int)ElementCount);
        var result = new float[n];
        var bytes = Data.AsSpan();
        switch (Descr)
        {
            case "<f4":
                MemoryMarshal.Cast<byte, float>(bytes).CopyTo(result);
                break;
            case "<f2":
                var halves = MemoryMarshal.Cast<byte, Half>(bytes);
                for (var i = 0; i < n; i++)
                {
                    result[i] = (float)halves[i];
                }

                break;
            case "<f8":
                var doubles = MemoryMarshal.Cast<byte, double>(bytes);
                for (var i = 0; i < n; i++)
                {
                    result[i] = (float)doubles[i];
                }

                break;
            case "|u1":
                for (var i = 0; i < n; i++)
                {
                    result[i] = bytes[i];
                }

                break;
            case "|i1":
                for (var i = 0; i < n; i++)
                {
                    result[i] = (sbyte)bytes[i];
                }

                break;
            case "<i2":
                var shorts = MemoryMarshal.Cast<byte, short>(bytes);
                for (var i = 0; i < n; i++)
                {
                    result[i] = shorts[i];
                }

                break;
            case "<u2":
                var ushorts = MemoryMarshal.Cast<byte, ushort>(bytes);
                for (var i = 0; i < n; i++)
                {
                    result[i] = ushorts[i];
                }

                break;
            case "<i4":
                var ints = MemoryMarshal.Cast<byte, int>(bytes);
                for (var i = 0; i < n; i++)
                {
                    result[i] = ints[i];
                }

                break;
            case "<u4":
                var uints = MemoryMarshal.Cast<byte, uint>(bytes);
                for (var i = 0; i < n; i++)
                {
                    result[i] = uints[i];
                }

                break;
            default:
                throw new ImageFormatException($"npy dtype '{Descr}' cannot be converted to float32") { Reason = "npy-dtype" };
        }

        return result;
    }

    /// <summary>The elements reinterpreted as <typeparamref name="T"/> (the dtype must match).</summary>
    public ReadOnlySpan<T> As<T>()
        where T : unmanaged
    {
        var expected = NpyFormat.DescrOf<T>();
        if (expected != Descr)
        {
            throw new ImageFormatException($"npy dtype is '{Descr}', not '{expected}'") { Reason = "npy-dtype" };
        }

        return MemoryMarshal.Cast<byte, T>(Data);
    }
}

/// <summary>
/// Reads and writes the NumPy <c>.npy</c> format (version 1.0 written; 1.0, 2.0 and 3.0 read), C order, little-endian.
/// See https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html.
/// </summary>
public static class NpyFormat
{
    private static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>The NumPy dtype string of an element type.</summary>
    public static string DescrOf<T>()
        where T : unmanaged =>
        typeof(T) switch
        {
            var t when t == typeof(float) => "<f4",
            var t when t == typeof(Half) => "<f2",
            var t when t == typeof(double) => "<f8",
            var t when t == typeof(byte) => "|u1",
            var t when t == typeof(sbyte) => "|i1",
            var t when t == typeof(short) => "<i2",
            var t when t == typeof(ushort) => "<u2",
            var t when t == typeof(int) => "<i4",
            var t when t == typeof(uint) => "<u4",
            _ => throw new NotSupportedException($"No npy dtype for {typeof(T)}."),
        };

    /// <summary>Writes a C-order array as .npy version 1.0 (header padded to a multiple of 64 bytes, as NumPy does).</summary>
    public static void Write<T>(Stream stream, ReadOnlySpan<T> values, params int[] shape)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(shape);
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("npy writing assumes a little-endian machine.");
        }

        var count = shape.Aggregate(1L, (a, b) => a * b);
        if (count != values.Length)
        {
            throw new ArgumentException($"Shape ({string.Join(", ", shape)}) holds {count} values, got {values.Length}.", nameof(shape));
        }

        var shapeText = shape.Length == 1
            ? shape[0].ToString(CultureInfo.InvariantCulture) + ","
            : string.Join(", ", shape.Select(s => s.ToString(CultureInfo.InvariantCulture)));
        var dict = $"{{'descr': '{DescrOf<T>()}', 'fortran_order': False, 'shape': ({shapeText}), }}";
        var unpadded = Magic.Length + 2 + 2 + dict.Length + 1;
        var padded = (unpadded + 63) / 64 * 64;
        var header = dict + new string(' ', padded - unpadded) + "\n";
        var headerBytes = Encoding.ASCII.GetBytes(header);
        Span<byte> preamble = stackalloc byte[10];
        Magic.CopyTo(preamble);
        preamble[6] = 1;
        preamble[7] = 0;
        preamble[8] = (byte)(headerBytes.Length & 0xFF);
        preamble[9] = (byte)(headerBytes.Length >> 8);
        stream.Write(preamble);
        stream.Write(headerBytes);
        stream.Write(MemoryMarshal.AsBytes(values));
    }

    /// <summary>Reads a .npy file.</summary>
    public static NpyArray Read(string path)
    {
        using var stream = File.OpenRead(path);
        return Read(stream, path);
    }

    /// <summary>Reads a .npy stream; <paramref name="sourceName"/> is used in messages.</summary>
    public static NpyArray Read(Stream stream, string? sourceName = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Span<byte> preamble = stackalloc byte[8];
        ReadExactly(stream, preamble, sourceName);
        if (!preamble[..6].SequenceEqual(Magic))
        {
            throw Fail(sourceName, "not a .npy file (bad magic)");
        }

        var major = preamble[6];
        int headerLength;
        if (major == 1)
        {
            Span<byte> len = stackalloc byte[2];
            ReadExactly(stream, len, sourceName);
            headerLength = len[0] | (len[1] << 8);
        }
        else if (major is 2 or 3)
        {
            Span<byte> len = stackalloc byte[4];
            ReadExactly(stream, len, sourceName);
            headerLength = BitConverter.ToInt32(len);
            if (headerLength is < 0 or > 1 << 20)
            {
                throw Fail(sourceName, $"header length {headerLength} is implausible");
            }
        }
        else
        {
            throw Fail(sourceName, $"npy version {major} is not supported");
        }

        var headerBytes = new byte[headerLength];
        ReadExactly(stream, headerBytes, sourceName);
        var header = (major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetString(headerBytes);
        var descr = DictValue(header, "descr", sourceName).Trim().Trim('\'', '"');
        if (DictValue(header, "fortran_order", sourceName).Trim() != "False")
        {
            throw Fail(sourceName, "Fortran-order arrays are not supported");
        }

        var shapeText = DictValue(header, "shape", sourceName).Trim().TrimStart('(').TrimEnd(')');
        var shape = shapeText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => int.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture)).ToArray();
        var itemSize = descr.Length >= 3 && int.TryParse(descr.AsSpan(2), NumberStyles.Integer, CultureInfo.InvariantCulture, out var size) ? size : 0;
        if (itemSize == 0 || descr[0] == '>')
        {
            throw Fail(sourceName, $"dtype '{descr}' is not supported (little-endian numeric types only)");
        }

        var count = shape.Aggregate(1L, (a, b) => a * b);
        var byteCount = count * itemSize;
        if (byteCount > int.MaxValue)
        {
            throw Fail(sourceName, "array is too large");
        }

        var data = new byte[byteCount];
        ReadExactly(stream, data, sourceName);
        return new NpyArray(descr, shape, data);
    }

    private static string DictValue(string header, string key, string? sourceName)
    {
        var k = header.IndexOf("'" + key + "'", StringComparison.Ordinal);
        if (k < 0)
        {
            throw Fail(sourceName, $"header has no '{key}'");
        }

        var colon = header.IndexOf(':', k);
        var start = colon + 1;
        var end = start;
        var depth = 0;
        while (end < header.Length)
        {
            var c = header[end];
            if (c == '(')
            {
                depth++;
            }
            else if (c == ')')
            {
                depth--;
            }
            else if ((c == ',' || c == '}') && depth == 0)
            {
                break;
            }

            end++;
        }

        return header[start..end];
    }

    private static void ReadExactly(Stream stream, Span<byte> buffer, string? sourceName)
    {
        try
        {
            stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException ex)
        {
            throw ImageFormatException.For(sourceName, "npy file is truncated", ex);
        }
    }

    private static ImageFormatException Fail(string? sourceName, string reason) => ImageFormatException.For(sourceName, reason);
}
