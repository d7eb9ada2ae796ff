using System.Buffers.Binary;

namespace CovidFunctions.TestHelpers;

/// <summary>
/// Writes PNG chunks by hand, so tests can build PNG variants (bit depths, interlacing, split IDAT, cut files) that an
/// encoder library does not produce.
/// </summary>
public static class PngChunks
{
    /// <summary>The eight bytes every PNG file starts with.</summary>
    public static ReadOnlySpan<byte> Signature => [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>One chunk: length, type, data and the CRC-32 of type and data (PNG spec 5.3).</summary>
    public static void WriteChunk(Stream s, ReadOnlySpan<byte> type, ReadOnlySpan<byte> data)
    {
        ArgumentNullException.ThrowIfNull(s);
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        s.Write(word);
        s.Write(type);
        s.Write(data);
        var crc = 0xFFFFFFFFu;
        foreach (var b in (ReadOnlySpan<byte>)[.. type, .. data])
        {
            crc ^= b;
            for (var k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
            }
        }

        BinaryPrimitives.WriteUInt32BigEndian(word, crc ^ 0xFFFFFFFFu);
        s.Write(word);
    }
}
