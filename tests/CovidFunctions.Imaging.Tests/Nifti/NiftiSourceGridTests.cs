using System.Runtime.InteropServices;
using CovidFunctions.Imaging.Nifti;
using CovidFunctions.Imaging.Series;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Imaging.Tests.Nifti;

/// <summary>
/// <see cref="NiftiOrientation.ToSourceGrid"/> undoes <see cref="NiftiOrientation.ToAxialVolume(NiftiImage, out NiftiReorientation)"/>:
/// a result computed on the axial volume goes back onto the NIfTI input's own voxel grid and header geometry.
/// Volumes whose voxel value is its own index show any flip or transpose on the way back.
/// </summary>
public sealed class NiftiSourceGridTests
{
    /// <summary>An int16 image of size nx×ny×nz(×nt) whose voxel value is its index (mod 30000), with the given sform.</summary>
    private static NiftiImage Indexed(long[] dim, double[] sform, int qformCode = 0, int version = 1)
    {
        var count = dim.Skip(1).Take((int)dim[0]).Aggregate(1L, (a, b) => a * b);
        var values = new short[count];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = (short)((i % 30000) - 15000);
        }

        var header = new NiftiHeader
        {
            Version = version,
            Dim = dim,
            DataType = NiftiDataType.Int16,
            PixDim = [-1, 0.7, 0.8, 5, 2, 0, 0, 0],
            SformCode = 2,
            QformCode = qformCode,
            QuaternB = 0.1,
            QuaternC = 0.2,
            QuaternD = 0.3,
            QOffsetX = 11,
            QOffsetY = 12,
            QOffsetZ = 13,
            SRow = sform,
            XyztUnits = 10,
            SclSlope = 2,
            SclInter = -1000,
            Description = "source",
        };
        return new NiftiImage(header, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
    }

    public static TheoryData<string, double[]> Orientations => new()
    {
        // name, sform rows (RAS): each a different axis order and direction of the voxel axes.
        { "ras", [0.7, 0, 0, -10, 0, 0.8, 0, -20, 0, 0, 5, 30] },
        { "las (dcm2niix, MosMed)", [-0.7, 0, 0, 10, 0, 0.8, 0, -20, 0, 0, 5, 30] },
        { "lps, head first", [-0.7, 0, 0, 10, 0, -0.8, 0, 20, 0, 0, -5, 30] },
        { "k is left-right, i is head-feet", [0, 0, 5, 0, 0, 0.8, 0, 0, 0.7, 0, 0, 0] },
        { "i is anterior, j is left", [0, -0.8, 0, 0, 0.7, 0, 0, 0, 0, 0, 5, 0] },
    };

    [Theory]
    [MemberData(nameof(Orientations))]
    public void ToSourceGrid_OfTheAxialVolume_GivesBackTheSourceVoxelsAndGeometry(string name, double[] sform)
    {
        var source = Indexed([3, 5, 4, 3, 1, 1, 1, 1], sform);
        var axial = NiftiOrientation.ToAxialVolume(source, out var how);
        var unscaled = axial.Voxels.Select(v => (float)((v + 1000) / 2)).ToArray(); // the stored values, not HU

        var back = NiftiOrientation.ToSourceGrid(new(axial.Geometry, unscaled), source.Header, how);

        Assert.True(source.Data.AsSpan().SequenceEqual(back.Data), name);
        var (a, b) = (source.Header, back.Header);
        Assert.Equal(a.Dim, b.Dim);
        Assert.Equal(a.PixDim, b.PixDim);
        Assert.Equal((a.SformCode, a.QformCode, a.QuaternB, a.QuaternC, a.QuaternD), (b.SformCode, b.QformCode, b.QuaternB, b.QuaternC, b.QuaternD));
        Assert.Equal((a.QOffsetX, a.QOffsetY, a.QOffsetZ, a.XyztUnits, a.Version), (b.QOffsetX, b.QOffsetY, b.QOffsetZ, b.XyztUnits, b.Version));
        Assert.Equal(a.SRow, b.SRow);
        Assert.Equal((1.0, 0.0, NiftiDataType.Int16), (b.SclSlope, b.SclInter, b.DataType));
    }

    [Fact]
    public void ToSourceGrid_FourDimensionalSource_TimeOneKeepsTheShapeSeveralVolumesGiveThreeD()
    {
        double[] sform = [-0.7, 0, 0, 10, 0, 0.8, 0, -20, 0, 0, 5, 30];
        foreach (var (t, expectedDims) in new[] { (1L, 4L), (3L, 3L) })
        {
            var source = Indexed([4, 5, 4, 3, t, 1, 1, 1], sform, version: 2);
            var axial = NiftiOrientation.ToAxialVolume(source, out var how);

            var back = NiftiOrientation.ToSourceGrid(axial, source.Header, how, NiftiDataType.UInt8);

            Assert.Equal(new long[] { expectedDims, 5, 4, 3, 1, 1, 1, 1 }, back.Header.Dim);
            Assert.Equal(5 * 4 * 3, back.Data.Length);
            Assert.Equal(2, back.Header.Version);
        }
    }

    [Fact]
    public void Assemble_NiftiInput_KeepsItsGridForMasks()
    {
        // A real MosMed header (LAS: rows stored posterior to anterior) with a synthetic chest.
        using var dir = TestData.CreateTempDirectory();
        var nii = NiftiTestVolumes.ChestOnMaskGeometry(TestData.Shared("seg", "mosmed-masks", "masks", "study_0277_mask.nii.gz"), dir.Path);
        var source = NiftiFile.Read(nii);

        using var series = SeriesAssembler.Assemble(nii);

        var grid = Assert.IsType<NiftiSourceGrid>(series.NiftiSource);
        Assert.Equal([false, true, false], grid.Reorientation.Flipped);
        Assert.Equal(source.Header.SRow, grid.Header.SRow);
        var hu = new float[series.Columns * series.Rows * series.SliceCount];
        for (var k = 0; k < series.SliceCount; k++)
        {
            series.ReadHu(k).CopyTo(hu, k * series.Columns * series.Rows);
        }

        var back = NiftiOrientation.ToSourceGrid(new(series.Geometry, hu), grid.Header, grid.Reorientation);
        Assert.True(source.Data.AsSpan().SequenceEqual(back.Data), "HU written back onto the source grid differ from the source voxels");
    }
}
