using CovidFunctions.Imaging.Volumes;

namespace CovidFunctions.Imaging.Series;

/// <summary>Where one slice's pixels come from: a source (file or archive entry) and a frame of it.</summary>
public sealed record SliceInfo
{
    /// <summary>The file path or <c>archive!entry</c> name, for messages.</summary>
    public required string SourceName { get; init; }

    /// <summary>The index of the source in the scan (to reopen it).</summary>
    public required int SourceIndex { get; init; }

    public int FrameIndex { get; init; }

    public required string StudyInstanceUid { get; init; }

    public required string SeriesInstanceUid { get; init; }

    public string? SopInstanceUid { get; init; }

    public string? Modality { get; init; }

    public string? SeriesDescription { get; init; }

    public int? SeriesNumber { get; init; }

    public int? InstanceNumber { get; init; }

    /// <summary>Image Type (or Frame Type for enhanced frames), e.g. ORIGINAL\PRIMARY\AXIAL.</summary>
    public IReadOnlyList<string> ImageType { get; init; } = [];

    public string? ConvolutionKernel { get; init; }

    public double? SliceThickness { get; init; }

    public int Rows { get; init; }

    public int Columns { get; init; }

    public int SamplesPerPixel { get; init; } = 1;

    /// <summary>ImagePositionPatient (LPS, mm), or null when absent.</summary>
    public Vec3? Position { get; init; }

    /// <summary>ImageOrientationPatient row direction, or null when absent.</summary>
    public Vec3? RowDirection { get; init; }

    public Vec3? ColumnDirection { get; init; }

    /// <summary>PixelSpacing: distance between rows (mm).</summary>
    public double RowSpacing { get; init; } = 1;

    /// <summary>PixelSpacing: distance between columns (mm).</summary>
    public double ColumnSpacing { get; init; } = 1;

    public double RescaleSlope { get; init; } = 1;

    public double RescaleIntercept { get; init; }

    /// <summary>PixelPaddingValue (stored value), when present.</summary>
    public int? PaddingValue { get; init; }

    /// <summary>PixelPaddingRangeLimit: with <see cref="PaddingValue"/>, the inclusive range of padding values.</summary>
    public int? PaddingRangeLimit { get; init; }

    /// <summary>GantryDetectorTilt (degrees), when present.</summary>
    public double? GantryTilt { get; init; }

    /// <summary>
    /// Image attributes this single-frame instance lacks that decoding or geometry would default (ImagePositionPatient,
    /// RescaleIntercept, ...), each as "Name (gggg,eeee)": the assembler leaves the instance out when other instances
    /// of its series have them. Empty for frames of multi-frame files.
    /// </summary>
    public IReadOnlyList<string> AbsentAttributes { get; init; } = [];

    /// <summary>
    /// Who the instance's patient is, to compare with the other instances of its series (never shown: internal, and its
    /// text is not the values).
    /// </summary>
    internal PatientIdentity Patient { get; init; } = PatientIdentity.Unknown;

    public bool IsOriginal => ImageType.Count > 0 && ImageType[0].Equals("ORIGINAL", StringComparison.OrdinalIgnoreCase);

    public bool IsLocalizer => ImageType.Any(t => t.Equals("LOCALIZER", StringComparison.OrdinalIgnoreCase));

    public Vec3? Normal => RowDirection is { } r && ColumnDirection is { } c ? r.Cross(c).Normalized() : null;
}

/// <summary>
/// The patient of an instance as the de-identification keys its pseudonym (<c>KeyedMappings.Pseudonym</c>): PatientID with
/// IssuerOfPatientID when there is an ID, otherwise PatientName; with Patient's Birth Date and Sex when present. The same
/// partition before de-identification (the values) and after (the pseudonym, keyed on the same values), so offline
/// assembly of raw DICOM and ingest of de-identified DICOM set aside the same instances. Its text never holds the values.
/// </summary>
internal sealed record PatientIdentity(string Key, string? BirthDate, string? Sex)
{
    /// <summary>No patient attributes at all (the key the pseudonym gets from an empty name).</summary>
    public static PatientIdentity Unknown { get; } = new("name:", null, null);

    public override string ToString() => "(patient identity, not shown)";
}
