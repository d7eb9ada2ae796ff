using CovidFunctions.Dicom.IO;

namespace CovidFunctions.Dicom;

/// <summary>
/// A DICOM file: preamble, file meta information (group 0002) and dataset, with the transfer syntax the dataset is
/// encoded in.
/// </summary>
public sealed class DicomFile
{
    /// <summary>A new file around a dataset; meta information is generated on write when absent.</summary>
    public DicomFile(DicomDataset dataset, TransferSyntax? transferSyntax = null)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        Dataset = dataset;
        FileMetaInformation = new DicomDataset();
        TransferSyntax = transferSyntax ?? TransferSyntax.ExplicitVRLittleEndian;
        Preamble = new byte[128];
        Format = DicomFileFormat.Part10;
    }

    internal DicomFile(ReadOnlyMemory<byte> preamble, DicomDataset meta, DicomDataset dataset, TransferSyntax transferSyntax,
        string? filePath, DicomFileFormat format)
    {
        Preamble = preamble;
        FileMetaInformation = meta;
        Dataset = dataset;
        TransferSyntax = transferSyntax;
        FilePath = filePath;
        Format = format;
    }

    /// <summary>The 128-byte preamble as read (or zeros for new files); empty when the input had none.</summary>
    public ReadOnlyMemory<byte> Preamble { get; set; }

    /// <summary>The file meta information group (0002,xxxx); empty when the input had none.</summary>
    public DicomDataset FileMetaInformation { get; }

    /// <summary>The dataset.</summary>
    public DicomDataset Dataset { get; }

    /// <summary>
    /// The transfer syntax of the dataset: from (0002,0010), or sniffed for bare datasets. For unknown UIDs, an
    /// <see cref="TransferSyntax.Unknown"/> syntax (explicit VR little endian, encapsulated).
    /// </summary>
    public TransferSyntax TransferSyntax { get; set; }

    /// <summary>The path the file was opened from, or the source name given to <see cref="Read"/>; null otherwise.</summary>
    public string? FilePath { get; }

    /// <summary>The byte layout the input had (Part 10, meta without preamble, bare dataset).</summary>
    public DicomFileFormat Format { get; }

    /// <summary>
    /// True when the dataset's bytes did not match the declared transfer syntax and were read in another (for example
    /// implicit VR data in a file that declares explicit VR); <see cref="ReadTransferSyntax"/> names what was used.
    /// </summary>
    public bool DatasetEncodingMismatch => !ReferenceEquals(ReadTransferSyntax, TransferSyntax) && ReadTransferSyntax is not null
        && (ReadTransferSyntax.IsExplicitVR != TransferSyntax.IsExplicitVR || ReadTransferSyntax.IsBigEndian != TransferSyntax.IsBigEndian);

    /// <summary>The encoding the dataset was actually parsed with (equals <see cref="TransferSyntax"/> unless it had to be sniffed).</summary>
    public TransferSyntax? ReadTransferSyntax { get; internal set; }

    /// <summary>True when reading stopped early (StopAtTag / StopAfterPixelData) and the dataset is incomplete.</summary>
    public bool IsPartial { get; internal set; }

    /// <summary>
    /// The byte offset (in the dataset's byte stream) where bytes after the top-level Pixel Data stopped parsing as elements
    /// and were ignored (trailing garbage); -1 when the whole input was read.
    /// </summary>
    public long TrailingDataOffset { get; internal set; } = -1;

    /// <summary>Opens a file. Large values and Pixel Data stay in the file as bulk references.</summary>
    /// <exception cref="DicomFormatException">Malformed content; names the file and the byte offset.</exception>
    public static DicomFile Open(string path, DicomReadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        var fullPath = Path.GetFullPath(path);
        using var stream = new FileStream(fullPath, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.None);
        return DicomReader.ReadFile(stream, options ?? DicomReadOptions.Default, fullPath, fullPath);
    }

    /// <summary>
    /// Reads a file from a stream. Bulk references are used only for a <see cref="FileStream"/> (they point into its
    /// file); other streams are read into memory.
    /// </summary>
    /// <exception cref="DicomFormatException">Malformed content; names <paramref name="sourceName"/> and the byte offset.</exception>
    public static DicomFile Read(Stream stream, DicomReadOptions? options = null, string? sourceName = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var bulkPath = stream is FileStream fs && fs.CanSeek ? fs.Name : null;
        return DicomReader.ReadFile(stream, options ?? DicomReadOptions.Default, sourceName ?? bulkPath, bulkPath);
    }

    /// <summary>
    /// Writes the file (atomically: a temporary file in the same folder is renamed over <paramref name="path"/>, so
    /// saving over the source file is safe while its bulk data is still referenced).
    /// </summary>
    public void Save(string path, DicomWriteOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full) ?? ".";
        var temp = Path.Combine(dir, "." + Path.GetFileName(full) + "." + Guid.NewGuid().ToString("N") + ".tmp");
        var moved = false; // no stat of the temporary file after a successful rename
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1))
            {
                Write(stream, options);
            }

            File.Move(temp, full, overwrite: true);
            moved = true;
        }
        finally
        {
            if (!moved && File.Exists(temp))
            {
                File.Delete(temp);
            }
        }
    }

    /// <summary>Writes the file to a stream.</summary>
    public void Write(Stream stream, DicomWriteOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        DicomWriter.WriteFile(this, stream, options ?? DicomWriteOptions.Default);
    }

    public override string ToString() => $"{FilePath ?? "<new>"} {TransferSyntax}";
}
