namespace CovidFunctions.Imaging.Phantoms;

/// <summary>What the phantom's lungs show.</summary>
public enum PhantomFinding
{
    /// <summary>Clear lungs: parenchyma and vessels only.</summary>
    None,

    /// <summary>Peripheral, bilateral ground-glass opacities (-600..-300 HU), the typical COVID-19 pattern.</summary>
    GroundGlass,
}

/// <summary>
/// Geometry, content and header values of a synthetic chest CT series (<see cref="CtPhantom"/>). Anatomy is laid out
/// relative to the field of view and the scanned length, so any matrix size and slice count gives the same chest.
/// </summary>
public sealed record CtPhantomOptions
{
    /// <summary>Rows and columns of each slice.</summary>
    public int Matrix { get; init; } = 512;

    /// <summary>Number of axial slices (the chest from lung bases to apices is spread over them).</summary>
    public int Slices { get; init; } = 64;

    /// <summary>Distance between slice centres in mm; also the slice thickness.</summary>
    public double SliceSpacing { get; init; } = 2.5;

    /// <summary>Square reconstruction field of view in mm (pixel spacing = FOV / matrix).</summary>
    public double FieldOfView { get; init; } = 360;

    public PhantomFinding Finding { get; init; } = PhantomFinding.GroundGlass;

    /// <summary>Ground-glass opacities when <see cref="Finding"/> is <see cref="PhantomFinding.GroundGlass"/>.</summary>
    public int LesionCount { get; init; } = 8;

    /// <summary>Standard deviation of the added image noise in HU (0 for noise-free images).</summary>
    public double NoiseHu { get; init; } = 12;

    /// <summary>Seeds the anatomy variation, the vessels, the lesions and the noise: same seed, same pixels.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Seeds the Study/Series/SOP/Frame of Reference UIDs; null derives them from <see cref="Seed"/>.</summary>
    public string? UidSeed { get; init; }

    /// <summary>Planted identifying values: de-identification must remove or replace every one of them.</summary>
    public string PatientName { get; init; } = PlantedPhi.PatientName;

    public double PixelSpacing => FieldOfView / Matrix;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for values the phantom cannot render.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(Matrix, 32, nameof(Matrix));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(Matrix, 2048, nameof(Matrix));
        ArgumentOutOfRangeException.ThrowIfLessThan(Slices, 1, nameof(Slices));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(Slices, 2000, nameof(Slices));
        if (!(SliceSpacing is > 0 and <= 20))
        {
            throw new ArgumentOutOfRangeException(nameof(SliceSpacing), SliceSpacing, "slice spacing must be in (0, 20] mm");
        }

        if (!(FieldOfView is >= 300 and <= 600))
        {
            throw new ArgumentOutOfRangeException(nameof(FieldOfView), FieldOfView, "field of view must be in [300, 600] mm (the body is 320 mm wide)");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(LesionCount, nameof(LesionCount));
        ArgumentOutOfRangeException.ThrowIfNegative(NoiseHu, nameof(NoiseHu));
    }
}

/// <summary>
/// The identifying values the phantom plants in its headers so that de-identification is visible (and testable): none of
/// them may appear in anything the pipeline writes after ingest.
/// </summary>
public static class PlantedPhi
{
    public const string PatientName = "PHANTOM^PLANTED^PHI";
    public const string PatientId = "PHI-MRN-0042-PLANTED";
    public const string PatientBirthDate = "19570423";
    public const string AccessionNumber = "PHIACC77031";
    public const string InstitutionName = "Planted PHI General Hospital";
    public const string InstitutionAddress = "1 Planted Street, Phiville";
    public const string ReferringPhysicianName = "REFERRER^PLANTED^PHI";
    public const string OperatorsName = "OPERATOR^PLANTED";
    public const string StationName = "PHI-CT-STATION-7";
    public const string StudyId = "PHISTUDY9";
    public const string ImageComments = "planted PHI: patient Phantom Planted, MRN PHI-MRN-0042-PLANTED";

    /// <summary>Every planted string value (for scanning outputs).</summary>
    public static IReadOnlyList<string> All { get; } =
    [
        PatientName, "PHANTOM", PatientId, PatientBirthDate, AccessionNumber, InstitutionName, InstitutionAddress,
        ReferringPhysicianName, OperatorsName, StationName, StudyId, "PLANTED",
    ];
}
