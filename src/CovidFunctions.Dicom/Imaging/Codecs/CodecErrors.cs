namespace CovidFunctions.Dicom.Imaging.Codecs;

/// <summary>
/// The two errors a codec raises: a corrupt or inconsistent frame (<see cref="DicomFormatException"/>) and a syntax
/// this build cannot decode (<see cref="UnsupportedTransferSyntaxException"/>). Every message names the syntax.
/// </summary>
internal static class CodecErrors
{
    public static DicomFormatException Corrupt(string transferSyntaxUid, string reason) =>
        new(null, 0, $"{TransferSyntaxNames.Describe(transferSyntaxUid)} frame: {reason}");

    public static DicomFormatException Corrupt(string transferSyntaxUid, string reason, Exception inner) =>
        new(null, 0, $"{TransferSyntaxNames.Describe(transferSyntaxUid)} frame: {reason} ({inner.GetType().Name}: {inner.Message})", inner);

    public static UnsupportedTransferSyntaxException Unsupported(string transferSyntaxUid, string reason) =>
        new(transferSyntaxUid, $"Pixel data in {TransferSyntaxNames.Describe(transferSyntaxUid)} cannot be decoded: {reason}");
}
