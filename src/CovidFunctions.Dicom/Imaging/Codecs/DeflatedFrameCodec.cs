using System.IO.Compression;

namespace CovidFunctions.Dicom.Imaging.Codecs;

/// <summary>
/// Deflated Image Frame Compression (1.2.840.10008.1.2.8.1, PS3.5 A.4.11): each frame is the native frame
/// compressed with raw deflate (RFC 1951, no zlib header). The inflated size must equal the native frame size.
/// </summary>
public sealed class DeflatedFrameCodec : IPixelCodec
{
    private static readonly string[] Uids = [TransferSyntaxNames.DeflatedImageFrameCompression];

    public IReadOnlyCollection<string> TransferSyntaxUids => Uids;

    public DecodedFrame Decode(ReadOnlySpan<byte> encodedFrame, PixelFormat format)
    {
        const string uid = TransferSyntaxNames.DeflatedImageFrameCompression;
        ArgumentNullException.ThrowIfNull(format);
        if (format.Rows <= 0 || format.Columns <= 0 || format.SamplesPerPixel <= 0 || format.BitsAllocated <= 0)
        {
            throw CodecErrors.Corrupt(uid, $"invalid pixel format {format.Rows}x{format.Columns}x{format.SamplesPerPixel}, {format.BitsAllocated} bits");
        }

        var bits = (long)format.Rows * format.Columns * format.SamplesPerPixel * format.BitsAllocated;
        var frameBytes = (bits + 7) / 8;
        if (frameBytes > FrameGeometry.MaxFrameBytes)
        {
            throw CodecErrors.Corrupt(uid, $"frame of {frameBytes} bytes exceeds the {FrameGeometry.MaxFrameBytes}-byte limit");
        }

        var output = new byte[frameBytes];
        int total;
        try
        {
            using var input = new MemoryStream(encodedFrame.ToArray(), writable: false);
            using var inflater = new DeflateStream(input, CompressionMode.Decompress);
            total = 0;
            int read;
            while (total < output.Length && (read = inflater.Read(output, total, output.Length - total)) > 0)
            {
                total += read;
            }
        }
        catch (InvalidDataException ex)
        {
            throw CodecErrors.Corrupt(uid, "invalid deflate data", ex);
        }

        if (total != output.Length)
        {
            throw CodecErrors.Corrupt(uid, $"inflated to {total} bytes, the frame needs {output.Length}");
        }

        return new DecodedFrame(output, format.PhotometricInterpretation, format.PlanarConfiguration);
    }
}
