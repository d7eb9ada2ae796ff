namespace CovidFunctions.Dicom.Imaging;

/// <summary>The Image Pixel module attributes that describe how pixel data is laid out (PS3.3 C.7.6.3).</summary>
public sealed record PixelFormat(int Rows, int Columns, int SamplesPerPixel, int BitsAllocated, int BitsStored, int HighBit,
    int PixelRepresentation, int PlanarConfiguration, string PhotometricInterpretation, int NumberOfFrames)
{
    /// <summary>True when samples are signed (Pixel Representation 1).</summary>
    public bool IsSigned => PixelRepresentation == 1;

    /// <summary>Bytes per sample in native (uncompressed) pixel data (1 for Bits Allocated 1, which is bit-packed).</summary>
    public int BytesPerSample => BitsAllocated <= 8 ? 1 : (BitsAllocated + 7) / 8;

    /// <summary>
    /// The size in bytes of one native frame: Rows × Columns × Samples × Bits Allocated / 8, with YBR_FULL_422 / YBR_PARTIAL_422
    /// counting 2 samples per pixel; for Bits Allocated 1 the bit-packed size rounded up to whole bytes.
    /// </summary>
    public long FrameLengthInBytes => (FrameLengthInBits + 7) / 8;

    /// <summary>The size in bits of one native frame (frames of Bits Allocated 1 are not byte-aligned).</summary>
    public long FrameLengthInBits
    {
        get
        {
            var samples = (long)Rows * Columns * SamplesPerPixel;
            if (SamplesPerPixel == 3 && PhotometricInterpretation is "YBR_FULL_422" or "YBR_PARTIAL_422")
            {
                samples = (long)Rows * Columns * 2;
            }

            return samples * BitsAllocated;
        }
    }

    /// <summary>
    /// Reads the pixel module from a dataset. Rows, Columns and Bits Allocated are required; the others default to
    /// Samples per Pixel 1, Bits Stored = Bits Allocated, High Bit = Bits Stored − 1, Pixel Representation 0,
    /// Planar Configuration 0, MONOCHROME2, 1 frame.
    /// </summary>
    /// <exception cref="DicomFormatException">A required attribute is missing or a value is out of range.</exception>
    public static PixelFormat FromDataset(DicomDataset dataset) => FromDataset(dataset, null);

    /// <summary>Reads the pixel module; errors name <paramref name="filePath"/>.</summary>
    internal static PixelFormat FromDataset(DicomDataset dataset, string? filePath)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        var rows = Required(dataset, DicomTags.Rows, filePath);
        var columns = Required(dataset, DicomTags.Columns, filePath);
        var bitsAllocated = Required(dataset, DicomTags.BitsAllocated, filePath);
        var samples = dataset.TryGetInt32(DicomTags.SamplesPerPixel, out var s) ? s : 1;
        var bitsStored = dataset.TryGetInt32(DicomTags.BitsStored, out var bs) && bs > 0 ? bs : bitsAllocated;
        var highBit = dataset.TryGetInt32(DicomTags.HighBit, out var hb) ? hb : bitsStored - 1;
        var representation = dataset.TryGetInt32(DicomTags.PixelRepresentation, out var pr) ? pr : 0;
        var planar = dataset.TryGetInt32(DicomTags.PlanarConfiguration, out var pc) ? pc : 0;
        var photometric = dataset.GetStrings(DicomTags.PhotometricInterpretation) is { Length: > 0 } p && p[0].Length > 0 ? p[0] : "MONOCHROME2";
        var frames = dataset.TryGetInt32(DicomTags.NumberOfFrames, out var nf) && nf > 0 ? nf : 1;

        if (rows <= 0 || columns <= 0 || rows > 65535 || columns > 65535)
        {
            throw Invalid(filePath, $"Invalid image size {rows}x{columns}");
        }

        if (bitsAllocated is not (1 or 8 or 16 or 32 or 64) && (bitsAllocated <= 0 || bitsAllocated > 64 || bitsAllocated % 8 != 0))
        {
            throw Invalid(filePath, $"Unsupported Bits Allocated {bitsAllocated}");
        }

        if (samples is < 1 or > 4)
        {
            throw Invalid(filePath, $"Unsupported Samples per Pixel {samples}");
        }

        if (bitsStored > bitsAllocated || highBit >= bitsAllocated || highBit < bitsStored - 1)
        {
            throw Invalid(filePath, $"Bits Stored {bitsStored} / High Bit {highBit} do not fit Bits Allocated {bitsAllocated}");
        }

        return new PixelFormat(rows, columns, samples, bitsAllocated, bitsStored, highBit, representation, planar, photometric, frames);
    }

    private static int Required(DicomDataset dataset, DicomTag tag, string? filePath) =>
        dataset.TryGetInt32(tag, out var value)
            ? value
            : throw Invalid(filePath, $"Pixel module attribute {tag} {tag.Keyword} is missing or not a number");

    // The pixel module is parsed from the dataset, not at a byte position: the offset is 0.
    private static DicomFormatException Invalid(string? filePath, string reason) => new(filePath, 0, reason);
}
