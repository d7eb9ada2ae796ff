using System.Buffers.Binary;

namespace CovidFunctions.Dicom.Tests.Imaging.Codecs;

/// <summary>
/// A small PS3.5 Annex G encoder for tests: one PackBits segment per sample byte, most significant byte first,
/// rows encoded separately, so the codec is checked against the standard's layout rather than against itself.
/// </summary>
internal static class RleTestEncoder
{
    /// <summary>Encodes one native (little-endian, interleaved) frame.</summary>
    public static byte[] Encode(byte[] native, int rows, int columns, int samples, int bytesPerSample)
    {
        var segments = new List<byte[]>();
        for (var sample = 0; sample < samples; sample++)
        {
            for (var b = 0; b < bytesPerSample; b++)
            {
                var plane = new byte[rows * columns];
                for (var p = 0; p < plane.Length; p++)
                {
                    plane[p] = native[(((p * samples) + sample) * bytesPerSample) + (bytesPerSample - 1 - b)];
                }

                var encoded = new List<byte>();
                for (var r = 0; r < rows; r++)
                {
                    PackBits(plane.AsSpan(r * columns, columns), encoded);
                }

                if (encoded.Count % 2 == 1)
                {
                    encoded.Add(0x80); // no-op padding keeps segments even
                }

                segments.Add([.. encoded]);
            }
        }

        var header = new byte[64];
        BinaryPrimitives.WriteUInt32LittleEndian(header, (uint)segments.Count);
        var offset = 64;
        for (var i = 0; i < segments.Count; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4 + (4 * i)), (uint)offset);
            offset += segments[i].Length;
        }

        return [.. header, .. segments.SelectMany(s => s)];
    }

    private static void PackBits(ReadOnlySpan<byte> row, List<byte> output)
    {
        var i = 0;
        while (i < row.Length)
        {
            var run = 1;
            while (i + run < row.Length && run < 128 && row[i + run] == row[i])
            {
                run++;
            }

            if (run >= 2)
            {
                output.Add((byte)(sbyte)(1 - run));
                output.Add(row[i]);
                i += run;
                continue;
            }

            var start = i;
            while (i < row.Length && i - start < 128 && !(i + 1 < row.Length && row[i + 1] == row[i]))
            {
                i++;
            }

            if (i == start)
            {
                i++;
            }

            output.Add((byte)(i - start - 1));
            for (var k = start; k < i; k++)
            {
                output.Add(row[k]);
            }
        }
    }
}
