namespace CovidFunctions.Dicom.Imaging.Codecs;

/// <summary>
/// The compressed transfer syntax UIDs the codecs register (PS3.6 Table A-1), as constants for the codec tables.
/// </summary>
internal static class TransferSyntaxNames
{
    public const string RleLossless = "1.2.840.10008.1.2.5";
    public const string JpegBaseline8Bit = "1.2.840.10008.1.2.4.50";
    public const string JpegExtended12Bit = "1.2.840.10008.1.2.4.51";
    public const string JpegExtended35Retired = "1.2.840.10008.1.2.4.52";
    public const string JpegSpectralSelection68Retired = "1.2.840.10008.1.2.4.53";
    public const string JpegSpectralSelection79Retired = "1.2.840.10008.1.2.4.54";
    public const string JpegFullProgression1012Retired = "1.2.840.10008.1.2.4.55";
    public const string JpegFullProgression1113Retired = "1.2.840.10008.1.2.4.56";
    public const string JpegLossless = "1.2.840.10008.1.2.4.57";
    public const string JpegLossless15Retired = "1.2.840.10008.1.2.4.58";
    public const string JpegLosslessSV1 = "1.2.840.10008.1.2.4.70";
    public const string JpegLsLossless = "1.2.840.10008.1.2.4.80";
    public const string JpegLsNearLossless = "1.2.840.10008.1.2.4.81";
    public const string Jpeg2000Lossless = "1.2.840.10008.1.2.4.90";
    public const string Jpeg2000 = "1.2.840.10008.1.2.4.91";
    public const string Jpeg2000Part2McLossless = "1.2.840.10008.1.2.4.92";
    public const string Jpeg2000Part2Mc = "1.2.840.10008.1.2.4.93";
    public const string HtJ2kLossless = "1.2.840.10008.1.2.4.201";
    public const string HtJ2kLosslessRpcl = "1.2.840.10008.1.2.4.202";
    public const string HtJ2k = "1.2.840.10008.1.2.4.203";
    public const string JpegXlLossless = "1.2.840.10008.1.2.4.110";
    public const string JpegXlJpegRecompression = "1.2.840.10008.1.2.4.111";
    public const string JpegXl = "1.2.840.10008.1.2.4.112";
    public const string DeflatedImageFrameCompression = "1.2.840.10008.1.2.8.1";
    public const string EncapsulatedUncompressed = "1.2.840.10008.1.2.1.98";

    /// <summary>Video syntaxes (MPEG-2, MPEG-4 AVC/H.264, HEVC/H.265): a whole stream, not per-frame images.</summary>
    public static IEnumerable<string> VideoSyntaxes =>
        TransferSyntax.All.Where(ts => ts.Keyword.StartsWith("MPEG", StringComparison.Ordinal) || ts.Keyword.StartsWith("HEVC", StringComparison.Ordinal))
            .Select(ts => ts.Uid);

    /// <summary>"Name (UID)" from the transfer syntax table, or the UID alone for an unknown syntax.</summary>
    public static string Describe(string transferSyntaxUid) => TransferSyntax.Lookup(transferSyntaxUid).ToString();
}
