namespace CovidFunctions.Dicom.Imaging.Codecs;

/// <summary>
/// The codec instances <see cref="PixelCodecs"/> serves, in preference order (the first codec claiming a UID wins).
/// Codecs with several syntaxes are registered once per syntax so that their errors name the syntax of the frame.
/// The native codecs (JPEG 2000, JPEG-LS) are always registered: their library is loaded at the first decode, and a
/// missing library surfaces then as an <see cref="UnsupportedTransferSyntaxException"/> that names it.
/// </summary>
internal static class CodecRegistrations
{
    private static readonly Lazy<IPixelCodec[]> Instances = new(Create);

    internal static IPixelCodec[] All => Instances.Value;

    private static IPixelCodec[] Create() =>
    [
        new RleCodec(),
        .. JpegCodec.SupportedUids.Select(JpegCodec.ForSyntax),
        .. JpegLsCodec.SupportedUids.Select(JpegLsCodec.ForSyntax),
        .. Jpeg2000Codec.SupportedUids.Select(Jpeg2000Codec.ForSyntax),
        new DeflatedFrameCodec(),
        new EncapsulatedUncompressedCodec(),
        .. UnsupportedCodec.All(),
    ];
}
