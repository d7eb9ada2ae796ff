namespace CovidFunctions.Imaging;

/// <summary>
/// Root of every error raised by <c>CovidFunctions.Imaging</c>. Subtypes carry what a quarantine record needs:
/// the file (and archive entry) concerned and the reason, with no pixel or patient values.
/// </summary>
public class ImagingException : Exception
{
    public ImagingException()
    {
    }

    public ImagingException(string message)
        : base(message)
    {
    }

    public ImagingException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The file (or archive) the error concerns, when known.</summary>
    public string? FilePath { get; init; }

    /// <summary>The short machine-readable reason (for quarantine records), e.g. <c>path-traversal</c>.</summary>
    public string? Reason { get; init; }
}

/// <summary>An image or volume file that cannot be decoded: corrupt, truncated, or of an unsupported kind.</summary>
public sealed class ImageFormatException : ImagingException
{
    public ImageFormatException()
    {
    }

    public ImageFormatException(string message)
        : base(message)
    {
    }

    public ImageFormatException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Builds the exception with the message <c>"&lt;file&gt;: &lt;reason&gt;"</c>.</summary>
    public static ImageFormatException For(string? filePath, string reason, Exception? inner = null) =>
        new($"{filePath ?? "<stream>"}: {reason}", inner) { FilePath = filePath, Reason = reason };
}

/// <summary>An archive refused for safety: an unsafe entry name or type, or a resource limit exceeded.</summary>
public class ArchiveException : ImagingException
{
    public ArchiveException()
    {
    }

    public ArchiveException(string message)
        : base(message)
    {
    }

    public ArchiveException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The entry name as stored in the archive, when the error concerns one entry.</summary>
    public string? EntryName { get; init; }
}

/// <summary>An archive entry that must not be extracted: path traversal, absolute path, symbolic link, device.</summary>
public sealed class UnsafeArchiveEntryException : ArchiveException
{
    public UnsafeArchiveEntryException()
    {
    }

    public UnsafeArchiveEntryException(string message)
        : base(message)
    {
    }

    public UnsafeArchiveEntryException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>An archive over a configured limit (zip-bomb defence): total size, compression ratio or entry count.</summary>
public sealed class ArchiveLimitExceededException : ArchiveException
{
    public ArchiveLimitExceededException()
    {
    }

    public ArchiveLimitExceededException(string message)
        : base(message)
    {
    }

    public ArchiveLimitExceededException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The limit that was exceeded (its configured value).</summary>
    public long Limit { get; init; }
}

/// <summary>A study from which no screenable, well-ordered axial series can be assembled.</summary>
public sealed class SeriesAssemblyException : ImagingException
{
    public SeriesAssemblyException()
    {
    }

    public SeriesAssemblyException(string message)
        : base(message)
    {
    }

    public SeriesAssemblyException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
