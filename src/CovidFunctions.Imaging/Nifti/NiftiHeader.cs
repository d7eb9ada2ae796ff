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
