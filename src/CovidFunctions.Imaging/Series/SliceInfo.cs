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

    public bool IsOriginal => ImageType.Count > 0 && ImageType[0].Equals("ORIGINAL", StringComparison.OrdinalIgnoreCase);

    public bool IsLocalizer => ImageType.Any(t => t.Equals("LOCALIZER", StringComparison.OrdinalIgnoreCase));

    public Vec3? Normal => RowDirection is { } r && ColumnDirection is { } c ? r.Cross(c).Normalized() : null;
}
