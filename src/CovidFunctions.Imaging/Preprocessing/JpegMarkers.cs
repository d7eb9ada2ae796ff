using System.Buffers.Binary;

namespace CovidFunctions.Imaging.Preprocessing;

/// <summary>
/// Walks a JPEG's marker structure (ITU T.81 annex B) to tell a complete file from a cut one. Skia reports a truncated
/// baseline JPEG (<c>IncompleteInput</c>), but decodes a progressive one cut anywhere after its first scan as if it were
/// whole: the scans that are missing just leave the picture coarse or grey, and the networks scored it. PIL, which the
/// evaluation and training read images with, refuses both ("image file is truncated"); so does this check.
/// </summary>
internal static class JpegMarkers
{
    /// <summary>
    /// Whether the marker segments from SOI on lead to an EOI marker: segments are skipped by their length (an EXIF
    /// thumbnail's own EOI inside APP1 does not count), entropy-coded data after each SOS up to the next marker (a
    /// 0xFF there is followed by 0x00 or a restart marker). Bytes after EOI are not looked at.
    /// </summary>
    public static bool ReachesEndOfImage(ReadOnlySpan<byte> data)
    {
        var pos = 2;
        while (pos < data.Length)
        {
            if (data[pos] != 0xFF)
            {
                // Not at a marker (stray bytes after a segment): decoders skip to the next 0xFF, and so does this.
                pos++;
                continue;
            }

            // Fill bytes: any number of 0xFF may precede a marker.
            while (pos < data.Length && data[pos] == 0xFF)
            {
                pos++;
            }

            if (pos >= data.Length)
            {
                return false;
            }

            var marker = data[pos++];
            if (marker == 0xD9)
            {
                return true;
            }

            if (marker is 0x00 or 0x01 or (>= 0xD0 and <= 0xD8))
            {
                // Stuffed zero, TEM, restart markers and SOI stand alone.
                continue;
            }

            if (pos + 2 > data.Length)
            {
                return false;
            }

            pos += BinaryPrimitives.ReadUInt16BigEndian(data[pos..]);
            if (marker == 0xDA)
            {
                // Entropy-coded data runs until a 0xFF followed by neither 0x00 nor a restart marker.
                while (pos + 1 < data.Length && !(data[pos] == 0xFF && data[pos + 1] is not 0x00 and not (>= 0xD0 and <= 0xD7)))
                {
                    pos++;
                }
            }
        }

        return false;
    }
}
