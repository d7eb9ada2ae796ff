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
/// <param name="Kind"><c>gap</c>, <c>duplicate-position</c>, <c>variable-spacing</c>, <c>gantry-tilt</c>, <c>flipped-in-plane</c>, <c>oblique</c>, <c>4-d</c> (a NIfTI image with several volumes: the first is used); for 2-D images <c>mixed-size</c> (images of another size left out) and <c>no-geometry</c> (no spacing or positions).</param>
/// <param name="Message">A sentence for people.</param>
public sealed record GeometryIssue(string Kind, string Message);

/// <summary>Why a source of the input was not used (<see cref="SkippedSource.Kind"/>): what counts and checks read, never the note's text.</summary>
public enum SkipKind
{
    /// <summary>A DICOM image left out of its series for its own image attributes, or its header or Pixel Data cannot be read.</summary>
    DefectiveImage,

    /// <summary>DICOM that holds no image: a DICOMDIR, no Rows/Columns, no Study/Series Instance UID.</summary>
    NoImage,

    /// <summary>Neither DICOM nor a PNG/JPEG/TIFF image.</summary>
    NotAnImage,

    /// <summary>A 2-D image whose size cannot be read.</summary>
    UnreadableImage,

    /// <summary>A 2-D image in an input that holds DICOM images (the DICOM is used).</summary>
    ImageBesideDicom,

    /// <summary>A 2-D image of another size than the stack (<see cref="MixedImageSizePolicy.KeepMostCommonSize"/>).</summary>
    OtherImageSize,

    /// <summary>
    /// A DICOM image whose patient (PatientID with its issuer, or PatientName where there is no ID; Patient's Birth Date
    /// and Sex where both have one) is not the patient of most instances of its series: not screened with them.
    /// </summary>
    AnotherPatient,
}

/// <summary>A source of the input that was not used: its name (as the input's notes name it), why in kind, and why in words.</summary>
public sealed record SkippedSource(string Source, SkipKind Kind, string Reason)
{
    /// <summary>The note for people: <c>SOURCE: REASON</c>.</summary>
    public string Note => $"{Source}: {Reason}";
}

/// <summary>What assembly found: the chosen series and why, the others, geometry findings and the sources not used.</summary>
public sealed record AssemblyReport(
    SeriesSummary Selected,
    string SelectionReason,
    IReadOnlyList<SeriesSummary> Others,
    IReadOnlyList<GeometryIssue> Issues,
    IReadOnlyList<SkippedSource> Skipped)
{
    /// <summary>The notes of <see cref="Skipped"/> (<see cref="SkippedSource.Note"/>), in the same order (read from it each time, so a copy made <c>with</c> another list says its own).</summary>
    public IReadOnlyList<string> SkippedSources => [.. Skipped.Select(s => s.Note)];

    /// <summary>What the input was: <see cref="AssemblyInputKinds.Dicom"/>, <see cref="AssemblyInputKinds.Nifti"/> or <see cref="AssemblyInputKinds.Images"/>.</summary>
    public string InputKind { get; init; } = AssemblyInputKinds.Dicom;

    /// <summary>The gantry tilt in degrees measured from the slice positions (0 when none).</summary>
    public double GantryTiltDegrees { get; init; }

    /// <summary>Whether spacing between slices varies (max − min) by more than 10 % of the median and more than 0.1 mm.</summary>
    public bool HasVariableSpacing => Issues.Any(i => i.Kind == "variable-spacing");

    public bool HasGaps => Issues.Any(i => i.Kind == "gap");
}

/// <summary>Values of <see cref="AssemblyReport.InputKind"/>.</summary>
public static class AssemblyInputKinds
{
    /// <summary>DICOM files (a file, a folder, a zip).</summary>
    public const string Dicom = "dicom";

    /// <summary>A NIfTI-1/-2 volume.</summary>
    public const string Nifti = "nifti";

    /// <summary>2-D PNG/JPEG/TIFF slices, already windowed (tiles of kind <c>unit</c>).</summary>
    public const string Images = "images";
}

/// <summary>What to do when the 2-D images of the chosen folder differ in size.</summary>
public enum MixedImageSizePolicy
{
    /// <summary>Refuse the input (<see cref="SeriesAssemblyException"/>, reason <c>mixed-size</c>) listing the sizes found.</summary>
    Refuse,

    /// <summary>Keep the images of the most common size (ties: the size of the first image in order); list the others as skipped.</summary>
    KeepMostCommonSize,
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

    /// <summary>2-D images whose sizes differ within the chosen folder: refused by default (a stack has one size).</summary>
    public MixedImageSizePolicy MixedImageSizes { get; init; } = MixedImageSizePolicy.Refuse;

    /// <summary>
    /// Folder names (whole path segments, case-insensitive) that mark 2-D images as segmentation masks or labels rather
    /// than CT slices; such folders are recorded, never screened (research sets ship images/ beside masks/).
    /// </summary>
    public IReadOnlyList<string> MaskFolderNames { get; init; } =
        ["mask", "masks", "label", "labels", "edge", "edges", "gt", "groundtruth", "ground_truth", "annotation", "annotations", "segmentation", "segmentations"];
}
