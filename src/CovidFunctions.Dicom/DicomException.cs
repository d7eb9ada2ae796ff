namespace CovidFunctions.Dicom;

/// <summary>The root of every exception this library throws on purpose.</summary>
public class DicomException : Exception
{
    public DicomException()
    {
    }

    public DicomException(string message)
        : base(message)
    {
    }

    public DicomException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// Malformed DICOM bytes: truncated, lying lengths, nesting too deep, garbage VRs. Carries the file (or source name)
/// and the byte offset where the problem was found; the message reads <c>"&lt;file&gt;: &lt;reason&gt; at byte &lt;offset&gt;"</c>.
/// </summary>
public sealed class DicomFormatException : DicomException
{
    public DicomFormatException(string? filePath, long offset, string reason)
        : base(Format(filePath, offset, reason))
    {
        FilePath = filePath;
        Offset = offset;
        Reason = reason;
    }

    public DicomFormatException(string? filePath, long offset, string reason, Exception innerException)
        : base(Format(filePath, offset, reason), innerException)
    {
        FilePath = filePath;
        Offset = offset;
        Reason = reason;
    }

    /// <summary>The file path or source name; null when the bytes came from an unnamed stream.</summary>
    public string? FilePath { get; }

    /// <summary>The byte offset in the file (for deflated datasets: in the inflated dataset stream) of the problem.</summary>
    public long Offset { get; }

    /// <summary>The reason alone, without file and offset.</summary>
    public string Reason { get; }

    private static string Format(string? filePath, long offset, string reason) =>
        $"{filePath ?? "<stream>"}: {reason} at byte {offset}";
}

/// <summary>Pixel data of a transfer syntax that this build cannot decode (or encode). Names the UID and its name.</summary>
public sealed class UnsupportedTransferSyntaxException : DicomException
{
    public UnsupportedTransferSyntaxException(string transferSyntaxUid)
        : this(transferSyntaxUid, $"Transfer syntax {Describe(transferSyntaxUid)} is not supported")
    {
    }

    public UnsupportedTransferSyntaxException(string transferSyntaxUid, string message)
        : base(message)
    {
        TransferSyntaxUid = transferSyntaxUid;
    }

    public UnsupportedTransferSyntaxException(string transferSyntaxUid, string message, Exception innerException)
        : base(message, innerException)
    {
        TransferSyntaxUid = transferSyntaxUid;
    }

    /// <summary>The transfer syntax UID.</summary>
    public string TransferSyntaxUid { get; }

    private static string Describe(string uid) => TransferSyntax.Lookup(uid).ToString();
}
