namespace CovidFunctions.Imaging.Archives;

/// <summary>
/// Zip-bomb and resource limits for <see cref="SafeZipArchive"/>. Declared sizes are checked when the archive is
/// opened, and the actual decompressed bytes again while entries are read (headers can lie).
/// </summary>
public sealed record ZipSafetyLimits
{
    /// <summary>The defaults: 4 GiB in total, ratio 200, 50 000 entries.</summary>
    public static ZipSafetyLimits Default { get; } = new();

    /// <summary>Most bytes all entries may expand to, together (default 4 GiB).</summary>
    public long MaxTotalUncompressedBytes { get; init; } = 4L * 1024 * 1024 * 1024;

    /// <summary>Most bytes one entry may expand to (default 2 GiB).</summary>
    public long MaxEntryUncompressedBytes { get; init; } = 2L * 1024 * 1024 * 1024;

    /// <summary>Largest uncompressed/compressed ratio of an entry (default 200; DICOM CT zips are about 2–4).</summary>
    public double MaxCompressionRatio { get; init; } = 200;

    /// <summary>Entries smaller than this are exempt from the ratio check (tiny files of zeros compress very well).</summary>
    public long RatioCheckThresholdBytes { get; init; } = 1024 * 1024;

    /// <summary>Most entries (files and directories) an archive may hold (default 50 000).</summary>
    public int MaxEntries { get; init; } = 50_000;

    /// <summary>Longest entry name in bytes (default 1024).</summary>
    public int MaxNameLength { get; init; } = 1024;
}
