namespace CovidFunctions.Dicom.Imaging.Codecs;

/// <summary>
/// Encapsulated Uncompressed Explicit VR Little Endian (1.2.840.10008.1.2.1.98): each frame's fragments hold the
/// native frame bytes (plus at most a padding byte), so decoding is a bounds-checked copy.
/// </summary>
public sealed class EncapsulatedUncompressedCodec : IPixelCodec
{
    private static readonly string[] Uids = [TransferSyntaxNames.EncapsulatedUncompressed];

    public IReadOnlyCollection<string> TransferSyntaxUids => Uids;

    public DecodedFrame Decode(ReadOnlySpan<byte> encodedFrame, PixelFormat format)
    {
        const string uid = TransferSyntaxNames.EncapsulatedUncompressed;
        ArgumentNullException.ThrowIfNull(format);
        var frameBytes = format.FrameLengthInBytes;
        if (frameBytes <= 0 || frameBytes > FrameGeometry.MaxFrameBytes)
        {
            throw CodecErrors.Corrupt(uid, $"invalid frame size of {frameBytes} bytes");
        }

        if (encodedFrame.Length < frameBytes)
        {
            throw CodecErrors.Corrupt(uid, $"frame holds {encodedFrame.Length} bytes, the pixel format needs {frameBytes}");
        }

        return new DecodedFrame(encodedFrame[..(int)frameBytes].ToArray(), format.PhotometricInterpretation, format.PlanarConfiguration);
    }
}
