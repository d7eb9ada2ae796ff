using CovidFunctions.Imaging.Nifti;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Imaging.Tests.Nifti;

/// <summary>Fixtures written field by field from the standards in Python (tests/data/imaging/make_fixtures.py).</summary>
public sealed class NiftiFixtureTests
{
    private static float Expected(int i, int j, int k) => i + (10 * j) + (100 * k);

    [Fact]
    public void Read_Nifti2WithSformAndScaling_FieldsAndScaledVoxels()
    {
        var image = NiftiFile.Read(TestData.Local("imaging", "nifti2_f32_4x3x2.nii"));
        var h = image.Header;

        Assert.Equal(2, h.Version);
        Assert.Equal([3L, 4, 3, 2, 1, 1, 1, 1], h.Dim);
        Assert.Equal(NiftiDataType.Float32, h.DataType);
        Assert.Equal((2.0, -5.0), (h.SclSlope, h.SclInter));
        Assert.Equal((0, 2), (h.QformCode, h.SformCode));
        Assert.Equal([0.0, 0.0, 2.5, -10.0, 0.0, -1.5, 0.0, 20.0, 0.75, 0.0, 0.0, -30.0], h.SRow);
        Assert.Equal("fixture-2", h.Description);
        var values = image.ToSingle();
        Assert.Equal((2 * Expected(3, 2, 1)) - 5, values[3 + (4 * 2) + (12 * 1)]);
    }

    [Fact]
    public void ToAxialVolume_Nifti2Sform_PermutesAndFlipsPerAffine()
    {
        // RAS: x = 2.5k − 10, y = −1.5j + 20, z = 0.75i − 30 → LPS: x = −2.5k + 10 (columns ← k flipped),
        // y = 1.5j − 20 (rows ← j), z = 0.75i − 30 (slices ← i).
        var volume = NiftiOrientation.ToAxialVolume(NiftiFile.Read(TestData.Local("imaging", "nifti2_f32_4x3x2.nii")), out var how);

        Assert.Equal([2, 1, 0], how.SourceAxisForOutput);
        Assert.Equal([true, false, false], how.Flipped);
        var g = volume.Geometry;
        Assert.Equal((2, 3, 4), (g.Columns, g.Rows, g.Slices));
        Assert.Equal((2.5, 1.5), (g.ColumnSpacing, g.RowSpacing));
        Assert.Equal(0.75, g.SliceSpacing, 9);
        Assert.Equal(10 - 2.5, g.Origin.X, 9);
        Assert.Equal(-20, g.Origin.Y, 9);
        Assert.Equal(-30, g.Origin.Z, 9);
        // Output (slice s = i, row r = j, column c → k = 1 − c).
        Assert.Equal((2 * Expected(2, 1, 1)) - 5, volume[2, 1, 0]);
        Assert.Equal((2 * Expected(3, 2, 0)) - 5, volume[3, 2, 1]);
    }

    [Fact]
    public void Read_BigEndianNifti1WithQform_SwapsBytesAndUsesQuaternion()
    {
        var image = NiftiFile.Read(TestData.Local("imaging", "nifti1_be_i16_4x3x2.nii"));
        var h = image.Header;

        Assert.Equal(NiftiDataType.Int16, h.DataType);
        Assert.Equal(Expected(3, 2, 1), image.ToSingle()[23]);
        // Quaternion (b, c, d) = (0, 1, 0): R = diag(−1, 1, −1); qfac −1 negates the k column → diag(−1, 1, 1).
        var a = h.Affine();
        Assert.Equal([-0.75, 0, 0, 5, 0, 1.5, 0, 6, 0, 0, 2.5, 7], a.Select(v => Math.Round(v, 6)).ToArray());
    }
}
