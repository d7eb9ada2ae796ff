using CovidFunctions.Imaging.Nifti;
using CovidFunctions.Imaging.Volumes;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Imaging.Tests.Nifti;

public sealed class NiftiOrientationTests
{
    private static string Mask(int study) => TestData.Shared("seg", "mosmed-masks", "masks", $"study_{study:0000}_mask.nii.gz");

    [Fact]
    public void ToAxialVolume_MosmedMask_FlipsRowsToLpsAndKeepsSlices()
    {
        // sform: x_RAS = −0.923·i + 222.194, y_RAS = 0.923·j − 235.786, z = 8·k − 961.7.
        // In LPS: x = 0.923·i − 222.194 (columns already +x), y = −0.923·j + 235.786 (rows flipped), z = 8·k − 961.7.
        var image = NiftiFile.Read(Mask(255));
        var raw = image.ToSingle();

        var volume = NiftiOrientation.ToAxialVolume(image, out var how);

        Assert.Equal("sform", how.Source);
        Assert.Equal([0, 1, 2], how.SourceAxisForOutput);
        Assert.Equal([false, true, false], how.Flipped);
        Assert.True(how.ObliquityDegrees < 1e-4, $"obliquity {how.ObliquityDegrees}");
        var g = volume.Geometry;
        Assert.Equal((512, 512, 38), (g.Columns, g.Rows, g.Slices));
        Assert.Equal(0.923, g.ColumnSpacing, 5);
        Assert.Equal(8.0, g.SliceSpacing, 5);
        Assert.True((g.RowDirection - new Vec3(1, 0, 0)).Length < 1e-9);
        Assert.True((g.ColumnDirection - new Vec3(0, 1, 0)).Length < 1e-9);
        Assert.Equal(-222.194, g.Origin.X, 3);
        Assert.Equal(235.786 - (511 * 0.923), g.Origin.Y, 2); // row 0 is j = 511
        Assert.Equal(-961.7, g.Origin.Z, 3);
        Assert.Equal(-961.7 + 8, g.SlicePositions[1], 3);
        for (var k = 0; k < 38; k += 7)
        {
            for (var r = 0; r < 512; r += 3)
            {
                for (var c = 0; c < 512; c += 5)
                {
                    Assert.Equal(raw[(((k * 512) + (511 - r)) * 512) + c], volume[k, r, c]);
                }
            }
        }
    }

    [Fact]
    public void FromAxialVolume_WriteReadReorient_RoundTripsVoxelsAndGeometry()
    {
        using var temp = TestData.CreateTempDirectory();
        var volume = NiftiOrientation.ToAxialVolume(NiftiFile.Read(Mask(260)));
        var path = Path.Combine(temp.Path, "axial.nii.gz");

        NiftiFile.Write(path, NiftiOrientation.FromAxialVolume(volume, NiftiDataType.Int16));
        var back = NiftiOrientation.ToAxialVolume(NiftiFile.Read(path), out var how);

        Assert.Equal([false, false, false], how.Flipped);
        Assert.Equal(volume.Voxels, back.Voxels);
        var (a, b) = (volume.Geometry, back.Geometry);
        Assert.Equal((a.Columns, a.Rows, a.Slices), (b.Columns, b.Rows, b.Slices));
        Assert.Equal(a.ColumnSpacing, b.ColumnSpacing, 4);
        Assert.Equal(a.SliceSpacing, b.SliceSpacing, 4);
        Assert.True((a.Origin - b.Origin).Length < 1e-3);
        Assert.True(a.Normal.AngleTo(b.Normal) < 1e-3);
    }

    [Fact]
    public void ToAxialVolume_QformOnlySagittalLayout_PermutesAxesToAxial()
    {
        // Voxel axes: i → anterior→posterior? Use qform identity with pixdim; then swap via sform: i→z, j→x, k→y (RAS).
        var header = new NiftiHeader
        {
            Dim = [3, 4, 3, 2, 1, 1, 1, 1],
            DataType = NiftiDataType.Float32,
            SformCode = 2,
            SRow = [0, 1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0],
        };
        var values = Enumerable.Range(0, 24).Select(v => (float)v).ToArray();
        var data = new byte[96];
        Buffer.BlockCopy(values, 0, data, 0, 96);

        var volume = NiftiOrientation.ToAxialVolume(new NiftiImage(header, data), out var how);

        // x_RAS = j → x_LPS = −j (columns from j, flipped); y_RAS = k → y_LPS = −k (rows from k, flipped); z = i.
        Assert.Equal([1, 2, 0], how.SourceAxisForOutput);
        Assert.Equal([true, true, false], how.Flipped);
        Assert.Equal((3, 2, 4), (volume.Geometry.Columns, volume.Geometry.Rows, volume.Geometry.Slices));
        // Output (slice s=i, row r → k = 1−r, column c → j = 2−c): value = i + 4·j + 12·k.
        Assert.Equal(1 + (4 * 2) + (12 * 1), volume[1, 0, 0]);
        Assert.Equal(3 + (4 * 0) + (12 * 0), volume[3, 1, 2]);
    }
}
