namespace CovidFunctions.Dicom.Imaging.Codecs;

/// <summary>
/// The codec instances <see cref="PixelCodecs"/> serves, in preference order (the first codec claiming a UID wins).
/// Owned by the codec engineer: append instances here.
/// </summary>
internal static class CodecRegistrations
{
    internal static IPixelCodec[] All => [];
}
