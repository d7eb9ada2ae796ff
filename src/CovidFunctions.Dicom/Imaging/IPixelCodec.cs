namespace CovidFunctions.Dicom.Imaging;

/// <summary>Decodes the frames of one or more encapsulated transfer syntaxes.</summary>
public interface IPixelCodec
{
    /// <summary>The transfer syntax UIDs this codec decodes.</summary>
    IReadOnlyCollection<string> TransferSyntaxUids { get; }

    /// <summary>
    /// Decodes one encoded frame (the concatenated fragments of the frame) into native pixel data.
    /// </summary>
    /// <exception cref="DicomFormatException">The frame is corrupt or does not match <paramref name="format"/>.</exception>
    /// <exception cref="UnsupportedTransferSyntaxException">The codec cannot decode this frame here (e.g. native library missing).</exception>
    DecodedFrame Decode(ReadOnlySpan<byte> encodedFrame, PixelFormat format);
}

/// <summary>
/// One decoded frame: <see cref="Data"/> holds the samples laid out exactly as native (uncompressed, little-endian)
/// pixel data would hold this frame, with the photometric interpretation and planar configuration of that layout
/// (a JPEG codec that converts YBR to RGB reports RGB).
/// </summary>
public sealed record DecodedFrame(byte[] Data, string PhotometricInterpretation, int PlanarConfiguration);
