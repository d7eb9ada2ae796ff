using System.Buffers.Binary;

namespace CovidFunctions.Dicom.Imaging.Codecs;

/// <summary>
/// What the JPEG codec needs to know before decoding: the frame type (SOFn), precision, size and components, the
/// first scan's predictor and point transform, and the colour hints (JFIF, Adobe APP14). Parsed from the marker
/// segments up to the first SOS; entropy-coded data is not touched.
/// </summary>
internal sealed record JpegStreamInfo(
    int StartOfFrame,
    int Precision,
    int Width,
    int Height,
    byte[] ComponentIds,
    byte[] ComponentSampling,
    int MaxHorizontalSampling,
    int MaxVerticalSampling,
    int FirstScanPredictor,
    int FirstScanPointTransform,
    bool HasJfif,
    int AdobeTransform)
{
    public int ComponentCount => ComponentIds.Length;

    /// <summary>SOF3 (Huffman lossless, process 14) or SOF11 (arithmetic lossless).</summary>
    public bool IsLossless => StartOfFrame is 3 or 11;

    public bool IsSubsampled => MaxHorizontalSampling > 1 || MaxVerticalSampling > 1;

    /// <summary>How many full-resolution samples one sample of component <paramref name="index"/> covers across and down.</summary>
    public (int X, int Y) SubsamplingOf(int index)
    {
        var h = Math.Max(ComponentSampling[index] >> 4, 1);
        var v = Math.Max(ComponentSampling[index] & 0x0F, 1);
        return (MaxHorizontalSampling / h, MaxVerticalSampling / v);
    }

    /// <summary>Parses the markers; throws a codec error naming <paramref name="uid"/> when the stream is not JPEG.</summary>
    public static JpegStreamInfo Parse(ReadOnlySpan<byte> data, string uid)
    {
        if (data.Length < 4 || data[0] != 0xFF || data[1] != 0xD8)
        {
            throw CodecErrors.Corrupt(uid, "no JPEG start-of-image marker (FFD8)");
        }

        int sof = -1, precision = 0, width = 0, height = 0, maxH = 1, maxV = 1, adobe = -1;
        byte[] ids = [], sampling = [];
        var jfif = false;
        var pos = 2;
        while (pos + 4 <= data.Length)
        {
            if (data[pos] != 0xFF)
            {
                throw CodecErrors.Corrupt(uid, $"expected a JPEG marker at byte {pos}");
            }

            var marker = data[pos + 1];
            if (marker == 0xFF)
            {
                pos++; // fill byte
                continue;
            }

            if (marker is 0x01 or (>= 0xD0 and <= 0xD7))
            {
                pos += 2;
                continue;
            }

            var length = BinaryPrimitives.ReadUInt16BigEndian(data[(pos + 2)..]);
            if (length < 2 || pos + 2 + length > data.Length)
            {
                throw CodecErrors.Corrupt(uid, $"marker FF{marker:X2} segment of {length} bytes runs past the end of the frame");
            }

            var segment = data.Slice(pos + 4, length - 2);
            switch (marker)
            {
                case >= 0xC0 and <= 0xCF when marker is not (0xC4 or 0xC8 or 0xCC):
                    if (segment.Length < 6)
                    {
                        throw CodecErrors.Corrupt(uid, "truncated SOF segment");
                    }

                    sof = marker - 0xC0;
                    precision = segment[0];
                    height = BinaryPrimitives.ReadUInt16BigEndian(segment[1..]);
                    width = BinaryPrimitives.ReadUInt16BigEndian(segment[3..]);
                    int count = segment[5];
                    if (count == 0 || segment.Length < 6 + (3 * count))
                    {
                        throw CodecErrors.Corrupt(uid, $"SOF declares {count} components in a {segment.Length}-byte segment");
                    }

                    ids = new byte[count];
                    sampling = new byte[count];
                    for (var c = 0; c < count; c++)
                    {
                        ids[c] = segment[6 + (3 * c)];
                        sampling[c] = segment[7 + (3 * c)];
                        if (sampling[c] >> 4 is < 1 or > 4 || (sampling[c] & 0x0F) is < 1 or > 4)
                        {
                            throw CodecErrors.Corrupt(uid, $"component {c} has sampling factors {sampling[c] >> 4}x{sampling[c] & 0x0F} (T.81 allows 1 to 4)");
                        }

                        maxH = Math.Max(maxH, sampling[c] >> 4);
                        maxV = Math.Max(maxV, sampling[c] & 0x0F);
                    }

                    break;
                case 0xE0 when segment.Length >= 5 && segment[..5].SequenceEqual("JFIF\0"u8):
                    jfif = true;
                    break;
                case 0xEE when segment.Length >= 12 && segment[..5].SequenceEqual("Adobe"u8):
                    adobe = segment[11];
                    break;
                case 0xDA:
                    if (sof < 0)
                    {
                        throw CodecErrors.Corrupt(uid, "scan (SOS) before the frame header (SOF)");
                    }

                    int ns = segment.Length > 0 ? segment[0] : 0;
                    if (segment.Length < 4 + (2 * ns))
                    {
                        throw CodecErrors.Corrupt(uid, "truncated SOS segment");
                    }

                    return new JpegStreamInfo(sof, precision, width, height, ids, sampling, maxH, maxV,
                        segment[1 + (2 * ns)], segment[3 + (2 * ns)] & 0x0F, jfif, adobe);
                default:
                    break;
            }

            pos += 2 + length;
        }

        throw CodecErrors.Corrupt(uid, sof < 0 ? "no JPEG frame header (SOF) found" : "no JPEG scan (SOS) found");
    }
}
