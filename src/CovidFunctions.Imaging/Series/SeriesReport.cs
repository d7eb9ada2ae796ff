namespace CovidFunctions.Imaging.Series;

/// <summary>A series seen in the input, with whether it could be screened and why (not).</summary>
public sealed record SeriesSummary(
    string StudyInstanceUid,
    string SeriesInstanceUid,
    int? SeriesNumber,
    string? Description,
    string? Modality,
    string ImageType,
    string? ConvolutionKernel,
    double? SliceThickness,
    int SliceCount,
    string Orientation,
    bool Eligible,
    string? ExclusionReason);

/// <summary>A geometry finding about the chosen series.</summary>
/// <param name="Kind"><c>gap</c>, <c>duplicate-position</c>, <c>variable-spacing</c>, <c>gantry-tilt</c>, <c>flipped-in-plane</c>, <c>oblique</c>.</param>
/// <param name="Message">A sentence for people.</param>
public sealed record GeometryIssue(string Kind, string Message);

/// <summary>What assembly found: the chosen series and why, the others, and geometry findings.</summary>
public sealed record AssemblyReport(
    SeriesSummary Selected,
    string SelectionReason,
    IReadOnlyList<SeriesSummary> Others,
    IReadOnlyList<GeometryIssue> Issues,
    IReadOnlyList<string> SkippedSources)
{
    /// <summary>The gantry tilt in degrees measured from the slice positions (0 when none).</summary>
    public double GantryTiltDegrees { get; init; }

    /// <summary>Whether spacing between slices varies by more than 10 % (or 0.1 mm).</summary>
    public bool HasVariableSpacing => Issues.Any(i => i.Kind == "variable-spacing");

    public bool HasGaps => Issues.Any(i => i.Kind == "gap");
}

/// <summary>Knobs of series assembly; defaults are the documented behaviour.</summary>
public sealed record SeriesAssemblyOptions
{
    public static SeriesAssemblyOptions Default { get; } = new();

    /// <summary>Zip limits for archive inputs.</summary>
    public Archives.ZipSafetyLimits ZipLimits { get; init; } = Archives.ZipSafetyLimits.Default;

    /// <summary>Largest angle (degrees) between the slice normal and the patient's head–feet axis for a series to count as axial.</summary>
    public double MaxAxialAngleDegrees { get; init; } = 45;

    /// <summary>HU written for padding pixels (PixelPaddingValue / range): air.</summary>
    public short PaddingHu { get; init; } = -1024;

    /// <summary>Tilt (degrees, from positions) above which gantry tilt is reported.</summary>
    public double TiltReportDegrees { get; init; } = 0.5;

    /// <summary>Fewest slices a series needs to be screened.</summary>
    public int MinSlices { get; init; } = 1;

    /// <summary>Kernel names (case-insensitive substrings) preferred as lung kernels when series otherwise tie.</summary>
    public IReadOnlyList<string> LungKernelHints { get; init; } =
        ["LUNG", "B70", "B60", "B80", "BR60", "BL57", "BL64", "I70", "HR64", "FC51", "FC52", "FC53", "FC55", "FC56", "FC86", "YA", "YB", "BONEPLUS", "L"];
}
