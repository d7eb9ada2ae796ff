namespace CovidFunctions.Imaging.Nifti;

/// <summary>NIfTI data types this library reads and writes.</summary>
public enum NiftiDataType : short
{
    UInt8 = 2,
    Int16 = 4,
    Int32 = 8,
    Float32 = 16,
    Float64 = 64,
    Int8 = 256,
    UInt16 = 512,
    UInt32 = 768,
}

/// <summary>
/// The fields of a NIfTI-1 or NIfTI-2 header that matter for image volumes, held in the wider NIfTI-2 types.
/// Spatial fields follow the NIfTI convention: world coordinates are RAS+ millimetres.
/// </summary>
public sealed class NiftiHeader
{
    /// <summary>1 or 2.</summary>
    public int Version { get; set; } = 1;

    /// <summary><c>dim[0..7]</c>: <c>dim[0]</c> is the number of dimensions.</summary>
    public long[] Dim { get; init; } = [3, 1, 1, 1, 1, 1, 1, 1];

    public NiftiDataType DataType { get; set; } = NiftiDataType.Int16;

    public int BitPix => BytesPerVoxel(DataType) * 8;

    /// <summary><c>pixdim[0..7]</c>: <c>pixdim[0]</c> is qfac (±1), 1–3 the voxel sizes.</summary>
    public double[] PixDim { get; init; } = [1, 1, 1, 1, 0, 0, 0, 0];

    public long VoxOffset { get; set; }

    public double SclSlope { get; set; } = 1;

    public double SclInter { get; set; }

    public double CalMin { get; set; }

    public double CalMax { get; set; }

    public int QformCode { get; set; }

    public int SformCode { get; set; }

    public double QuaternB { get; set; }

    public double QuaternC { get; set; }

    public double QuaternD { get; set; }

    public double QOffsetX { get; set; }

    public double QOffsetY { get; set; }

    public double QOffsetZ { get; set; }

    /// <summary>The sform rows (3×4, row-major): <c>x = SRow[0]·(i, j, k, 1)</c> etc.</summary>
    public double[] SRow { get; init; } = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0];

    /// <summary><c>xyzt_units</c>: spatial unit in bits 0–2 (2 = mm), time in 3–5.</summary>
    public int XyztUnits { get; set; } = 2;

    public int IntentCode { get; set; }

    public string Description { get; set; } = string.Empty;

    public long Width => Dim[1];

    public long Height => Dim[0] >= 2 ? Dim[2] : 1;

    public long Depth => Dim[0] >= 3 ? Dim[3] : 1;

    /// <summary>The number of voxels over all dimensions in use.</summary>
    public long VoxelCount
    {
        get
        {
            long n = 1;
            for (var i = 1; i <= Math.Clamp(Dim[0], 1, 7); i++)
            {
                n = checked(n * Math.Max(1, Dim[i]));
            }

            return n;
        }
    }

    /// <summary>Whether <c>scl_slope</c> asks for scaling (a slope of 0 means "no scaling" per the standard).</summary>
    public bool HasScaling => SclSlope != 0 && (SclSlope != 1 || SclInter != 0);

    public static int BytesPerVoxel(NiftiDataType type) => type switch
    {
        NiftiDataType.UInt8 or NiftiDataType.Int8 => 1,
        NiftiDataType.Int16 or NiftiDataType.UInt16 => 2,
        NiftiDataType.Int32 or NiftiDataType.UInt32 or NiftiDataType.Float32 => 4,
        NiftiDataType.Float64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unsupported NIfTI data type."),
    };

    /// <summary>
    /// The voxel-to-world affine (RAS+, mm) as 3×4 row-major: the sform when <c>sform_code &gt; 0</c>, else the
    /// qform when <c>qform_code &gt; 0</c>, else NIfTI "method 1" (pixdim scaling only).
    /// </summary>
    public double[] Affine()
    {
        if (SformCode > 0)
        {
            return (double[])SRow.Clone();
        }

        if (QformCode > 0)
        {
            return QformAffine();
        }

        return [PixDim[1], 0, 0, 0, 0, PixDim[2], 0, 0, 0, 0, PixDim[3], 0];
    }

    /// <summary>The reason code of an image refused because its voxel-to-world transform cannot place it.</summary>
    public const string GeometryReason = "nifti-geometry";

    /// <summary>The transform <see cref="Affine"/> uses, with the code that chose it, as messages name it.</summary>
    public string TransformDescription =>
        SformCode > 0 ? FormattableString.Invariant($"sform (sform_code {SformCode})")
        : QformCode > 0 ? FormattableString.Invariant($"qform (qform_code {QformCode})")
        : "pixdim (sform_code and qform_code 0)";

    /// <summary>
    /// Refuses a header whose chosen transform (see <see cref="Affine"/>) cannot place the volume in the world, with
    /// <see cref="ImageFormatException"/> (<see cref="GeometryReason"/>) naming <paramref name="source"/> and the field.
    /// Only what the chosen transform uses is looked at (NIfTI-1 rules): the twelve srow values for the sform; the
    /// quaternion b, c, d, the qoffsets and pixdim[1..3] for the qform; pixdim[1..3] alone otherwise. Files in the wild
    /// often carry a garbage qform beside a good sform, so an unused transform is not judged. Refused: a value that is
    /// not a finite number, a voxel size (pixdim, where used) that is not positive, an affine that is singular (a voxel
    /// axis of length 0, or axes in one plane) or so large that the volume's corners are not finite. Before, such a
    /// volume was reoriented with NaN slice positions and spacing and passed every later check until a JSON write.
    /// </summary>
    public void RequireUsableGeometry(string? source)
    {
        if (GeometryProblem() is { } problem)
        {
            throw new ImageFormatException(
                $"{source ?? "<stream>"}: the voxel-to-world transform ({TransformDescription}) cannot place the volume: {problem}; slice positions and spacing need a finite, invertible transform")
            {
                FilePath = source,
                Reason = GeometryReason,
            };
        }
    }

    /// <summary>Why the chosen transform cannot place the volume, or null when it can (see <see cref="RequireUsableGeometry"/>).</summary>
    public string? GeometryProblem()
    {
        var used = new List<(string Name, double Value)>();
        if (SformCode > 0)
        {
            for (var i = 0; i < 12; i++)
            {
                used.Add(($"srow_{"xyz"[i / 4]}[{i % 4}]", SRow[i]));
            }
        }
        else
        {
            if (QformCode > 0)
            {
                used.AddRange([("quatern_b", QuaternB), ("quatern_c", QuaternC), ("quatern_d", QuaternD), ("qoffset_x", QOffsetX), ("qoffset_y", QOffsetY), ("qoffset_z", QOffsetZ)]);
            }

            used.AddRange([("pixdim[1]", PixDim[1]), ("pixdim[2]", PixDim[2]), ("pixdim[3]", PixDim[3])]);
        }

        var nonFinite = used.Where(f => !double.IsFinite(f.Value)).Select(f => $"{f.Name} = {Show(f.Value)}").ToList();
        if (nonFinite.Count > 0)
        {
            return string.Join(", ", nonFinite) + (nonFinite.Count == 1 ? " is not a finite number" : " are not finite numbers");
        }

        if (SformCode <= 0)
        {
            // nifti1_io takes a pixdim of 0 or less as 1 in the qform, nibabel refuses a negative one: neither is a voxel size.
            for (var i = 1; i <= 3; i++)
            {
                if (PixDim[i] <= 0)
                {
                    return $"pixdim[{i}] = {Show(PixDim[i])} is not a positive voxel size";
                }
            }
        }

        var affine = Affine();
        if (affine.Any(v => !double.IsFinite(v)))
        {
            return "the affine computed from it is not finite";
        }

        var lengths = new double[3];
        for (var a = 0; a < 3; a++)
        {
            lengths[a] = Math.Sqrt((affine[a] * affine[a]) + (affine[4 + a] * affine[4 + a]) + (affine[8 + a] * affine[8 + a]));
            if (!double.IsFinite(lengths[a]))
            {
                return $"voxel axis {"ijk"[a]} has a length that is not finite";
            }

            if (lengths[a] == 0)
            {
                return $"voxel axis {"ijk"[a]} has length 0 (the affine is singular)";
            }
        }

        // The determinant of the unit axes: ±1 for orthogonal axes, 0 when they lie in one plane.
        double U(int row, int a) => affine[(4 * row) + a] / lengths[a];
        var det = (U(0, 0) * ((U(1, 1) * U(2, 2)) - (U(1, 2) * U(2, 1))))
            - (U(0, 1) * ((U(1, 0) * U(2, 2)) - (U(1, 2) * U(2, 0))))
            + (U(0, 2) * ((U(1, 0) * U(2, 1)) - (U(1, 1) * U(2, 0))));
        if (!(Math.Abs(det) >= 1e-6))
        {
            return FormattableString.Invariant($"the affine is singular (its voxel axes lie in one plane: determinant of the unit axes {det:G3})");
        }

        long[] last = [Math.Max(0, Width - 1), Math.Max(0, Height - 1), Math.Max(0, Depth - 1)];
        for (var corner = 0; corner < 8; corner++)
        {
            for (var row = 0; row < 3; row++)
            {
                var world = affine[(4 * row) + 3];
                for (var a = 0; a < 3; a++)
                {
                    world += affine[(4 * row) + a] * (((corner >> a) & 1) * last[a]);
                }

                if (!double.IsFinite(world))
                {
                    return FormattableString.Invariant($"the corners of the {Width}×{Height}×{Depth} grid are not finite in world coordinates ({"xyz"[row]} = {Show(world)})");
                }
            }
        }

        return null;
    }

    private static string Show(double value) =>
        double.IsNaN(value) ? "NaN" : double.IsPositiveInfinity(value) ? "+Inf" : double.IsNegativeInfinity(value) ? "-Inf" : value.ToString("G7", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The qform affine (NIfTI method 2): quaternion rotation, qfac and voxel sizes.</summary>
    public double[] QformAffine()
    {
        double b = QuaternB, c = QuaternC, d = QuaternD;
        var a = 1.0 - ((b * b) + (c * c) + (d * d));
        if (a < 1e-7)
        {
            // Per nifti1_io: a 180° rotation; renormalise b, c, d.
            a = 1.0 / Math.Sqrt((b * b) + (c * c) + (d * d));
            b *= a;
            c *= a;
            d *= a;
            a = 0;
        }
        else
        {
            a = Math.Sqrt(a);
        }

        var qfac = PixDim[0] < 0 ? -1.0 : 1.0;
        double dx = Math.Abs(PixDim[1]) > 0 ? PixDim[1] : 1, dy = Math.Abs(PixDim[2]) > 0 ? PixDim[2] : 1, dz = (Math.Abs(PixDim[3]) > 0 ? PixDim[3] : 1) * qfac;
        double[] r =
        [
            (a * a) + (b * b) - (c * c) - (d * d), 2 * ((b * c) - (a * d)), 2 * ((b * d) + (a * c)),
            2 * ((b * c) + (a * d)), (a * a) + (c * c) - (b * b) - (d * d), 2 * ((c * d) - (a * b)),
            2 * ((b * d) - (a * c)), 2 * ((c * d) + (a * b)), (a * a) + (d * d) - (c * c) - (b * b),
        ];
        return
        [
            r[0] * dx, r[1] * dy, r[2] * dz, QOffsetX,
            r[3] * dx, r[4] * dy, r[5] * dz, QOffsetY,
            r[6] * dx, r[7] * dy, r[8] * dz, QOffsetZ,
        ];
    }

    public NiftiHeader Clone() => new()
    {
        Version = Version,
        Dim = (long[])Dim.Clone(),
        DataType = DataType,
        PixDim = (double[])PixDim.Clone(),
        VoxOffset = VoxOffset,
        SclSlope = SclSlope,
        SclInter = SclInter,
        CalMin = CalMin,
        CalMax = CalMax,
        QformCode = QformCode,
        SformCode = SformCode,
        QuaternB = QuaternB,
        QuaternC = QuaternC,
        QuaternD = QuaternD,
        QOffsetX = QOffsetX,
        QOffsetY = QOffsetY,
        QOffsetZ = QOffsetZ,
        SRow = (double[])SRow.Clone(),
        XyztUnits = XyztUnits,
        IntentCode = IntentCode,
        Description = Description,
    };
}
