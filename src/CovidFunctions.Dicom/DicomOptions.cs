namespace CovidFunctions.Dicom;

/// <summary>How a file is read. Defaults are stated once, here.</summary>
public sealed record DicomReadOptions
{
    /// <summary>The defaults: 64 KiB bulk data threshold, depth 64, whole file.</summary>
    public static DicomReadOptions Default { get; } = new();

    /// <summary>Header only: stops before Pixel Data (7FE0,0010); the cost is the header, not the file.</summary>
    public static DicomReadOptions HeaderOnly { get; } = new() { StopAtTag = new DicomTag(0x7FE0, 0x0010) };

    /// <summary>
    /// Values longer than this many bytes, and all Pixel Data (native and each fragment), are kept as bulk data
    /// references (offset and length into the file) instead of being loaded, when reading a seekable file. Default 64 KiB.
    /// </summary>
    public long BulkDataThreshold { get; init; } = 64 * 1024;

    /// <summary>Maximum nesting of sequences; deeper input is a <see cref="DicomFormatException"/>. Default 64, at most 1000.</summary>
    public int MaxSequenceDepth { get; init; } = 64;

    /// <summary>When true, reading stops after the top-level Pixel Data element (trailing elements are not read).</summary>
    public bool StopAfterPixelData { get; init; }

    /// <summary>When set, reading stops before the first top-level element whose tag is ≥ this one (it is not read).</summary>
    public DicomTag? StopAtTag { get; init; }
}

/// <summary>How a file is written.</summary>
public sealed record DicomWriteOptions
{
    /// <summary>The defaults: the file's own transfer syntax, Part 10 output, group lengths kept.</summary>
    public static DicomWriteOptions Default { get; } = new();

    /// <summary>Target transfer syntax; null keeps the file's own (new files: explicit VR little endian).</summary>
    public TransferSyntax? TransferSyntax { get; init; }

    /// <summary>
    /// When true (default) group length elements present in the dataset are written, with their values recomputed; when
    /// false they are dropped (except (0002,0000), which Part 10 requires).
    /// </summary>
    public bool KeepGroupLengths { get; init; } = true;

    /// <summary>
    /// The layout of the output: null (default) writes Part 10 (preamble, "DICM", file meta information);
    /// <see cref="DicomFileFormat.DatasetOnly"/> writes the dataset alone; <see cref="DicomFileFormat.MetaWithoutPreamble"/>
    /// writes the meta group and dataset without preamble and prefix (as some old files are laid out). Pass the read
    /// file's <see cref="DicomFile.Format"/> to reproduce its layout.
    /// </summary>
    public DicomFileFormat? Format { get; init; }

    /// <summary>Compression level for deflated transfer syntaxes.</summary>
    public System.IO.Compression.CompressionLevel DeflateLevel { get; init; } = System.IO.Compression.CompressionLevel.Optimal;
}

/// <summary>The byte layout a file was read in.</summary>
public enum DicomFileFormat
{
    /// <summary>128-byte preamble, "DICM", file meta information group, dataset (PS3.10).</summary>
    Part10,

    /// <summary>File meta information group at byte 0, without preamble and "DICM" prefix.</summary>
    MetaWithoutPreamble,

    /// <summary>A bare dataset: no preamble, no meta information.</summary>
    DatasetOnly,
}
