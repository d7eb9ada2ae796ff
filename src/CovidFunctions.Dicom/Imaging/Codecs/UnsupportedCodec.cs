namespace CovidFunctions.Dicom.Imaging.Codecs;

/// <summary>
/// Stands in for syntaxes this build knows but does not decode (HTJ2K, JPEG XL, MPEG/HEVC video), so that asking
/// for a frame fails with an <see cref="UnsupportedTransferSyntaxException"/> that says why, not a generic miss.
/// </summary>
public sealed class UnsupportedCodec : IPixelCodec
{
    private readonly string[] _uids;
    private readonly string _reason;

    public UnsupportedCodec(string transferSyntaxUid, string reason)
    {
        ArgumentException.ThrowIfNullOrEmpty(transferSyntaxUid);
        ArgumentException.ThrowIfNullOrEmpty(reason);
        _uids = [transferSyntaxUid];
        _reason = reason;
    }

    public IReadOnlyCollection<string> TransferSyntaxUids => _uids;

    /// <summary>The codecs for every known-but-undecodable syntax, each with its reason.</summary>
    public static IEnumerable<UnsupportedCodec> All()
    {
        // libopenjp2 2.5.0 decodes HTJ2K, but Debian's build aborts the process on some corrupt HT code-blocks (an assert in
        // ht_dec.c mel_init, uclouvain/openjpeg#1500), which no DicomFormatException can contain; see docs/pixel-codecs.md.
        const string htj2k = "High-Throughput JPEG 2000 is not supported by this build (the system OpenJPEG 2.5.0 HT decoder "
            + "can abort the process on corrupt frames, uclouvain/openjpeg#1500)";
        yield return new UnsupportedCodec(TransferSyntaxNames.HtJ2kLossless, htj2k);
        yield return new UnsupportedCodec(TransferSyntaxNames.HtJ2kLosslessRpcl, htj2k);
        yield return new UnsupportedCodec(TransferSyntaxNames.HtJ2k, htj2k);
        const string jpegXl = "JPEG XL is not supported by this build (no libjxl binding)";
        yield return new UnsupportedCodec(TransferSyntaxNames.JpegXlLossless, jpegXl);
        yield return new UnsupportedCodec(TransferSyntaxNames.JpegXlJpegRecompression, jpegXl);
        yield return new UnsupportedCodec(TransferSyntaxNames.JpegXl, jpegXl);
        const string part2 = "JPEG 2000 Part 2 multi-component transforms are not supported by this build";
        yield return new UnsupportedCodec(TransferSyntaxNames.Jpeg2000Part2McLossless, part2);
        yield return new UnsupportedCodec(TransferSyntaxNames.Jpeg2000Part2Mc, part2);
        foreach (var video in TransferSyntaxNames.VideoSyntaxes)
        {
            yield return new UnsupportedCodec(video, "MPEG-2 / MPEG-4 / HEVC video is a stream, not per-frame images; no video decoder is bound");
        }
    }

    public DecodedFrame Decode(ReadOnlySpan<byte> encodedFrame, PixelFormat format) => throw CodecErrors.Unsupported(_uids[0], _reason);
}
