using CovidFunctions.Imaging.Volumes;

namespace CovidFunctions.Imaging.Tests.Volumes;

/// <summary><see cref="SliceGrid.Plan"/>: where a stack's slices go on the one-step grid NIfTI stores.</summary>
public sealed class SliceGridTests
{
    private static VolumeGeometry Stack(params double[] positions) =>
        new(4, 4, positions.Length, 0.7, 0.7, new Vec3(0, 0, positions[0]), new Vec3(1, 0, 0), new Vec3(0, 1, 0), positions);

    [Fact]
    public void Plan_EvenStack_OneGridSlicePerSliceAlongTheNormal()
    {
        var grid = SliceGrid.Plan(Stack(0, 8, 16));

        Assert.Equal([0, 1, 2], grid.GridIndex);
        Assert.Equal((3, true, null), (grid.GridSlices, grid.Uniform, grid.Note));
        Assert.True((grid.Step - new Vec3(0, 0, 8)).Length < 1e-9);
    }

    [Fact]
    public void Plan_OneSlice_StepIsItsThicknessElseOneMillimetre()
    {
        Assert.True((SliceGrid.Plan(Stack(40), null, 8).Step - new Vec3(0, 0, 8)).Length < 1e-9);
        Assert.True((SliceGrid.Plan(Stack(40)).Step - new Vec3(0, 0, 1)).Length < 1e-9);
    }

    [Theory]
    [InlineData(new double[] { 0, 8, 24 }, new[] { 0, 1, 3 })] // median gap 16: the smallest gap is the step
    [InlineData(new double[] { 0, 8, 16, 40, 48 }, new[] { 0, 1, 2, 5, 6 })]
    [InlineData(new double[] { 0, 5.01, 14.98, 20 }, new[] { 0, 1, 3, 4 })] // position jitter of a real scanner
    public void Plan_MissingSlices_LeavesEmptyGridSlicesAtTheirPositions(double[] positions, int[] expected)
    {
        var grid = SliceGrid.Plan(Stack(positions));

        Assert.Equal(expected, grid.GridIndex);
        Assert.Equal(expected[^1] + 1, grid.GridSlices);
        Assert.True(grid.Uniform);
        Assert.Contains("missing slice position(s) filled with empty slices", grid.Note, StringComparison.Ordinal);
        Assert.Equal(positions[^1] / expected[^1], grid.Step.Z, 9);
    }

    [Fact]
    public void Plan_SpacingNotAWholeMultiple_KeepsEverySliceAndSaysHowFarOff()
    {
        // The GE head CT mixes 4 mm and 7 mm slices: no even grid holds them.
        var grid = SliceGrid.Plan(Stack(0, 4, 11, 15));

        Assert.Equal([0, 1, 2, 3], grid.GridIndex);
        Assert.False(grid.Uniform);
        Assert.Contains("off by up to 1 mm", grid.Note, StringComparison.Ordinal);
    }

    [Fact]
    public void Plan_ShearedStack_StepFollowsTheSlicePositions()
    {
        // Gantry tilt: each slice 2 mm further along y as it goes 8 mm along z.
        Vec3[] corners = [new(0, 0, 0), new(0, -2, 8), new(0, -4, 16)];

        var grid = SliceGrid.Plan(Stack(0, 8, 16), corners);

        Assert.True((grid.Step - new Vec3(0, -2, 8)).Length < 1e-9, grid.Step.ToString());
    }
}
