using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace CovidFunctions.Imaging.Tests.Archives;

/// <summary>
/// Builds a zip whose single deflate entry expands to a large run of zeros, streaming: one 1 MiB chunk of zeros is
/// compressed with sync flushes, and because every later chunk sees the same all-zero window its compressed bytes
/// repeat exactly; the file is the first segment, the repeated segment N−1 times, and the final block. About 1 KB
/// per MiB on disk, built in milliseconds without holding the expanded data.
/// </summary>
internal static class ZeroBomb
{
    public const int ChunkBytes = 1 << 20;

    /// <summary>Writes the zip; returns the compressed size of the entry. The declared CRC is 0 (never reached).</summary>
    public static long Write(string path, string entryName, int chunks, long? declaredUncompressed = null)
    {
        var (head, repeat, tail) = Segments();
        var compressed = head.Length + ((long)repeat.Length * (chunks - 1)) + tail.Length;
        var uncompressed = declaredUncompressed ?? (long)chunks * ChunkBytes;
        var name = Encoding.ASCII.GetBytes(entryName);
        using var file = File.Create(path);
        Span<byte> local = stackalloc byte[30];
        BinaryPrimitives.WriteUInt32LittleEndian(local, 0x04034b50);
        BinaryPrimitives.WriteUInt16LittleEndian(local[4..], 20);
        BinaryPrimitives.WriteUInt16LittleEndian(local[8..], 8);
        BinaryPrimitives.WriteUInt32LittleEndian(local[18..], (uint)compressed);
        BinaryPrimitives.WriteUInt32LittleEndian(local[22..], (uint)uncompressed);
        BinaryPrimitives.WriteUInt16LittleEndian(local[26..], (ushort)name.Length);
        file.Write(local);
        file.Write(name);
        file.Write(head);
        for (var i = 1; i < chunks; i++)
        {
            file.Write(repeat);
        }

        file.Write(tail);
        var centralOffset = file.Position;
        Span<byte> central = stackalloc byte[46];
        BinaryPrimitives.WriteUInt32LittleEndian(central, 0x02014b50);
        BinaryPrimitives.WriteUInt16LittleEndian(central[4..], 20);
        BinaryPrimitives.WriteUInt16LittleEndian(central[6..], 20);
        BinaryPrimitives.WriteUInt16LittleEndian(central[10..], 8);
        BinaryPrimitives.WriteUInt32LittleEndian(central[20..], (uint)compressed);
        BinaryPrimitives.WriteUInt32LittleEndian(central[24..], (uint)uncompressed);
        BinaryPrimitives.WriteUInt16LittleEndian(central[28..], (ushort)name.Length);
        file.Write(central);
        file.Write(name);
        var centralSize = file.Position - centralOffset;
        Span<byte> end = stackalloc byte[22];
        BinaryPrimitives.WriteUInt32LittleEndian(end, 0x06054b50);
        BinaryPrimitives.WriteUInt16LittleEndian(end[8..], 1);
        BinaryPrimitives.WriteUInt16LittleEndian(end[10..], 1);
        BinaryPrimitives.WriteUInt32LittleEndian(end[12..], (uint)centralSize);
        BinaryPrimitives.WriteUInt32LittleEndian(end[16..], (uint)centralOffset);
        file.Write(end);
        return compressed;
    }

    private static (byte[] Head, byte[] Repeat, byte[] Tail) Segments()
    {
        var zeros = new byte[ChunkBytes];
        using var output = new MemoryStream();
        byte[] head, first, second;
        using (var deflate = new DeflateStream(output, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            deflate.Write(zeros);
            deflate.Flush();
            head = output.ToArray();
            deflate.Write(zeros);
            deflate.Flush();
            first = output.ToArray()[head.Length..];
            deflate.Write(zeros);
            deflate.Flush();
            second = output.ToArray()[(head.Length + first.Length)..];
        }

        if (!first.AsSpan().SequenceEqual(second))
        {
            throw new InvalidOperationException("Compressed zero chunks do not repeat; cannot build the bomb this way.");
        }

        var tail = output.ToArray()[(head.Length + first.Length + second.Length)..];
        return (head, first, tail);
    }
}
