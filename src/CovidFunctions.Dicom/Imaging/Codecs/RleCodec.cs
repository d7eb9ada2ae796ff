using System.Buffers.Binary;

namespace CovidFunctions.Dicom.Imaging.Codecs;

/// <summary>
/// RLE Lossless (PS3.5 Annex G). A frame is a 64-byte header (segment count and up to 15 offsets, little-endian)
/// followed by PackBits segments: one per byte of each sample, samples in order, and within a sample the most
/// significant byte first. The output is interleaved (Planar Configuration 0) little-endian native data.
/// </summary>
public sealed class RleCodec : IPixelCodec
{
    private const int HeaderBytes = 64;
    private const int MaxSegments = 15;

    private static readonly string[] Uids = [TransferSyntaxNames.RleLossless];

    public IReadOnlyCollection<string> TransferSyntaxUids => Uids;

    public DecodedFrame Decode(ReadOnlySpan<byte> encodedFrame, PixelFormat format)
    {
        const string uid = TransferSyntaxNames.RleLossless;
        var geometry = FrameGeometry.From(format, uid);
        // Bits Allocated 1: one segment holding the bit-packed frame.
        var bytesPerSample = Math.Max(geometry.BytesPerSample, 1);
        var segmentsExpected = geometry.SamplesPerPixel * bytesPerSample;
        if (segmentsExpected > MaxSegments)
        {
            throw CodecErrors.Corrupt(uid, $"{segmentsExpected} segments needed, RLE allows at most {MaxSegments}");
        }

        if (encodedFrame.Length < HeaderBytes)
        {
            throw CodecErrors.Corrupt(uid, $"frame of {encodedFrame.Length} bytes is shorter than the 64-byte RLE header");
        }

        var segmentCount = BinaryPrimitives.ReadUInt32LittleEndian(encodedFrame);
        if (segmentCount != segmentsExpected)
        {
            throw CodecErrors.Corrupt(uid, $"header declares {segmentCount} segments, the pixel format needs {segmentsExpected}");
        }

        Span<int> offsets = stackalloc int[MaxSegments + 1];
        for (var i = 0; i < segmentsExpected; i++)
        {
            var offset = BinaryPrimitives.ReadUInt32LittleEndian(encodedFrame[(4 + (4 * i))..]);
            if (offset < HeaderBytes || offset > encodedFrame.Length || (i > 0 && offset < offsets[i - 1]))
            {
                throw CodecErrors.Corrupt(uid, $"segment {i} offset {offset} is outside the frame of {encodedFrame.Length} bytes");
            }

            offsets[i] = (int)offset;
        }

        offsets[segmentsExpected] = encodedFrame.Length;

        var pixels = geometry.PixelCount;
        var stride = segmentsExpected;
        var output = new byte[geometry.FrameBytes];
        var segmentBuffer = segmentsExpected == 1 ? null : new byte[pixels];
        for (var sample = 0; sample < geometry.SamplesPerPixel; sample++)
        {
            for (var byteIndex = 0; byteIndex < bytesPerSample; byteIndex++)
            {
                var segment = (sample * bytesPerSample) + byteIndex;
                var source = encodedFrame[offsets[segment]..offsets[segment + 1]];
                if (segmentBuffer is null)
                {
                    DecodeSegment(source, output, uid, segment);
                    continue;
                }

                DecodeSegment(source, segmentBuffer, uid, segment);

                // Segment byteIndex 0 is the most significant byte; native data is little-endian.
                var position = (sample * bytesPerSample) + (bytesPerSample - 1 - byteIndex);
                for (var p = 0; p < pixels; p++, position += stride)
                {
                    output[position] = segmentBuffer[p];
                }
            }
        }

        return new DecodedFrame(output, format.PhotometricInterpretation, 0);
    }

    /// <summary>PackBits: n in 0..127 copies n+1 literal bytes, n in -127..-1 repeats the next byte 1-n times, -128 is a no-op.</summary>
    private static void DecodeSegment(ReadOnlySpan<byte> source, Span<byte> destination, string uid, int segment)
    {
        var written = 0;
        var read = 0;
        while (written < destination.Length && read < source.Length)
        {
            var control = (sbyte)source[read++];
            if (control >= 0)
            {
                var count = control + 1;
                if (read + count > source.Length || written + count > destination.Length)
                {
                    throw CodecErrors.Corrupt(uid, $"segment {segment}: literal run of {count} bytes overruns the segment or the frame");
                }

                source.Slice(read, count).CopyTo(destination[written..]);
                read += count;
                written += count;
            }
            else if (control != -128)
            {
                var count = 1 - control;
                if (read >= source.Length || written + count > destination.Length)
                {
                    throw CodecErrors.Corrupt(uid, $"segment {segment}: replicate run of {count} bytes overruns the segment or the frame");
                }

                destination.Slice(written, count).Fill(source[read++]);
                written += count;
            }
        }

        if (written != destination.Length)
        {
            throw CodecErrors.Corrupt(uid, $"segment {segment} decodes to {written} bytes, the frame needs {destination.Length}");
        }
    }
}
