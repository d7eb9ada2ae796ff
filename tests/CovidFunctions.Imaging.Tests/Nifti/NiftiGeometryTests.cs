using CovidFunctions.Imaging.Nifti;
using CovidFunctions.Imaging.Series;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Imaging.Tests.Nifti;

/// <summary>
/// The reader refuses a NIfTI volume whose voxel-to-world transform cannot place it: a non-finite value in the fields
/// the chosen transform uses (sform when sform_code &gt; 0, else qform when qform_code &gt; 0, else pixdim), a voxel
/// size that is not a positive finite number, a singular affine. Before, such a volume was read and reoriented with
/// NaN slice positions and spacing (the HU and lung checks pass: they look at voxels and areas), and only a later JSON
/// write failed. Fields the chosen transform does not use are not looked at: a garbage qform beside a good sform is
/// common in the wild and stays accepted. Headers are synthetic, built here.
/// </summary>
public sealed class NiftiGeometryTests
{
    private const string Name = "chest.nii";

    private const string GeometryReason = "nifti-geometry";

    public static TheoryData<string, string, string> Refused => new()
    {
        // case, expected field in the message, expected wording
        { "sform origin x +inf", "srow_x[3] = +Inf", "sform (sform_code 1)" },
        { "sform srow_y[1] NaN", "srow_y[1] = NaN", "sform (sform_code 1)" },
        { "sform srow_z[2] -inf", "srow_z[2] = -Inf", "sform (sform_code 1)" },
        { "sform k axis zero", "voxel axis k has length 0", "sform (sform_code 1)" },
        { "sform j equals i", "singular", "sform (sform_code 1)" },
        { "qform quatern_b NaN", "quatern_b = NaN", "qform (qform_code 1)" },
        { "qform qoffset_z -inf", "qoffset_z = -Inf", "qform (qform_code 1)" },
        { "qform pixdim[1] NaN", "pixdim[1] = NaN", "qform (qform_code 1)" },
        { "qform pixdim[3] zero", "pixdim[3] = 0 is not a positive voxel size", "qform (qform_code 1)" },
        { "qform pixdim[2] negative", "pixdim[2] = -1.5 is not a positive voxel size", "qform (qform_code 1)" },
        { "pixdim[1] +inf", "pixdim[1] = +Inf", "pixdim (sform_code and qform_code 0)" },
        { "pixdim[3] zero", "pixdim[3] = 0 is not a positive voxel size", "pixdim (sform_code and qform_code 0)" },
        { "nifti2 sform overflows", "not finite", "sform (sform_code 1)" },
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public void Read_TransformInUseNotFiniteOrSingular_RefusedNamingTheFileAndTheField(string @case, string field, string transform)
    {
        var bytes = Encode(Header(@case));

        var ex = Assert.Throws<ImageFormatException>(() => NiftiFile.Read(new MemoryStream(bytes), Name));

        Assert.Equal(Name, ex.FilePath);
        Assert.Equal(GeometryReason, ex.Reason);
        Assert.StartsWith($"{Name}: the voxel-to-world transform (", ex.Message, StringComparison.Ordinal);
        Assert.Contains(transform, ex.Message, StringComparison.Ordinal);
        Assert.Contains(field, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("garbage qform beside a good sform")]
    [InlineData("garbage sform with code 0 beside a good qform")]
    [InlineData("garbage sform and qform with codes 0, pixdim only")]
    [InlineData("good sform, pixdim zero")]
    [InlineData("qform with qfac -1")]
    public void Read_UnusedFieldsNotFinite_AcceptedWithFiniteGeometry(string @case)
    {
        var image = NiftiFile.Read(new MemoryStream(Encode(Header(@case))), Name);
        var volume = NiftiOrientation.ToAxialVolume(image);

        var g = volume.Geometry;
        Assert.All(g.SlicePositions, p => Assert.True(double.IsFinite(p)));
        Assert.True(double.IsFinite(g.SliceSpacing) && g.SliceSpacing > 0);
        Assert.True(double.IsFinite(g.ColumnSpacing) && g.ColumnSpacing > 0);
        Assert.True(double.IsFinite(g.Origin.X) && double.IsFinite(g.Origin.Y) && double.IsFinite(g.Origin.Z));
    }

    [Fact]
    public void ToAxialVolume_HeaderBuiltInMemoryWithNonFiniteSform_RefusedNamingTheSource()
    {
        // The reader is the front door; an image built in code (no file) is refused where its transform is used.
        var header = Header("sform origin x +inf");
        var image = new NiftiImage(header, new byte[header.VoxelCount * 4]) { SourcePath = "built.nii" };

        var ex = Assert.Throws<ImageFormatException>(() => NiftiOrientation.ToAxialVolume(image));

        Assert.Equal(("built.nii", GeometryReason), (ex.FilePath, ex.Reason));
        Assert.Contains("srow_x[3] = +Inf", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Assemble_NiftiFileWithNonFiniteOrigin_RefusedAsAnImagingErrorNamingTheFile()
    {
        // What ingest (a reject, not a failure) and covidfn segment/classify (exit 2) catch: an ImagingException whose
        // message names the file.
        using var temp = TestData.CreateTempDirectory();
        var path = Path.Combine(temp.Path, "chest.nii.gz");
        var header = Header("sform origin x +inf");
        NiftiFile.Write(path, new NiftiImage(header, new byte[header.VoxelCount * 4]));

        var ex = Assert.Throws<ImageFormatException>(() => SeriesAssembler.Assemble(path));

        Assert.Equal(path, ex.FilePath);
        Assert.StartsWith($"{path}: the voxel-to-world transform (sform (sform_code 1)) cannot place the volume: srow_x[3] = +Inf", ex.Message, StringComparison.Ordinal);
    }

    private static byte[] Encode(NiftiHeader header)
    {
        using var stream = new MemoryStream();
        NiftiFile.Write(stream, new NiftiImage(header, new byte[header.VoxelCount * NiftiHeader.BytesPerVoxel(header.DataType)]));
        return stream.ToArray();
    }

    /// <summary>A float32 8 × 8 × 4 volume at 0.8 × 0.8 × 2.5 mm, with the transform fields of <paramref name="case"/>.</summary>
    private static NiftiHeader Header(string @case)
    {
        var h = new NiftiHeader
        {
            Dim = [3, 8, 8, 4, 1, 1, 1, 1],
            DataType = NiftiDataType.Float32,
            PixDim = [1, 0.8, 0.8, 2.5, 0, 0, 0, 0],
            SformCode = 1,
            QformCode = 0,
            SRow = [-0.8, 0, 0, 100, 0, -0.8, 0, 120, 0, 0, 2.5, -300],
        };

        void Qform()
        {
            h.SformCode = 0;
            h.QformCode = 1;
            h.QuaternB = 0;
            h.QuaternC = 0;
            h.QuaternD = 1; // 180° about z: LPS-like axes, as dcm2niix writes
            h.QOffsetX = 100;
            h.QOffsetY = 120;
            h.QOffsetZ = -300;
        }

        void PixdimOnly()
        {
            h.SformCode = 0;
            h.QformCode = 0;
        }

        switch (@case)
        {
            case "sform origin x +inf":
                h.SRow[3] = double.PositiveInfinity;
                break;
            case "sform srow_y[1] NaN":
                h.SRow[5] = double.NaN;
                break;
            case "sform srow_z[2] -inf":
                h.SRow[10] = double.NegativeInfinity;
                break;
            case "sform k axis zero":
                h.SRow[10] = 0;
                break;
            case "sform j equals i":
                h.SRow[1] = -0.8;
                h.SRow[5] = 0;
                break;
            case "qform quatern_b NaN":
                Qform();
                h.QuaternB = double.NaN;
                break;
            case "qform qoffset_z -inf":
                Qform();
                h.QOffsetZ = double.NegativeInfinity;
                break;
            case "qform pixdim[1] NaN":
                Qform();
                h.PixDim[1] = double.NaN;
                break;
            case "qform pixdim[3] zero":
                Qform();
                h.PixDim[3] = 0;
                break;
            case "qform pixdim[2] negative":
                Qform();
                h.PixDim[2] = -1.5;
                break;
            case "pixdim[1] +inf":
                PixdimOnly();
                h.PixDim[1] = double.PositiveInfinity;
                break;
            case "pixdim[3] zero":
                PixdimOnly();
                h.PixDim[3] = 0;
                break;
            case "nifti2 sform overflows":
                // Every field finite (NIfTI-2 holds doubles), but the axes are so long the volume's corners are not.
                h.Version = 2;
                h.SRow[0] = 1e308;
                h.SRow[5] = 1e308;
                break;
            case "garbage qform beside a good sform":
                h.QformCode = 1;
                h.QuaternB = double.NaN;
                h.QuaternC = double.PositiveInfinity;
                h.QOffsetX = double.NegativeInfinity;
                break;
            case "garbage sform with code 0 beside a good qform":
                Qform();
                h.SRow[3] = double.PositiveInfinity;
                h.SRow[5] = double.NaN;
                break;
            case "garbage sform and qform with codes 0, pixdim only":
                PixdimOnly();
                h.SRow[3] = double.NaN;
                h.QuaternB = double.NaN;
                h.QOffsetZ = double.PositiveInfinity;
                break;
            case "good sform, pixdim zero":
                h.PixDim[1] = 0;
                h.PixDim[2] = 0;
                h.PixDim[3] = 0;
                break;
            case "qform with qfac -1":
                Qform();
                h.PixDim[0] = -1;
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(@case), @case, "unknown case");
        }

        return h;
    }
}
