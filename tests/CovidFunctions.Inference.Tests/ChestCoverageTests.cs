using CovidFunctions.Imaging.Phantoms;
using CovidFunctions.Imaging.Series;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Inference.Tests;

/// <summary><see cref="ChestCoverage"/> on real chest and head CT, the phantom and a 2-D image series.</summary>
public sealed class ChestCoverageTests
{
    private static string Dicom(params string[] parts) => TestData.Shared(["dicom", .. parts]);

    [Fact]
    public void RealChestCt_ShowsLungs_LargestSliceInTheAdultRange()
    {
        using var series = SeriesAssembler.Assemble(Dicom("chest-ct", "lung-pet-ct-dx", "A0002-s3-b40f"));

        var coverage = ChestCoverage.Measure(series)!;

        Assert.True(coverage.ShowsLungs);
        Assert.Equal(30, coverage.SlicesExamined);
        Assert.InRange(coverage.LargestLungAreaCm2, 120, 300); // 193 cm² measured: both lungs at their widest
    }

    [Fact]
    public void HeadCt_ShowsNoLungs_AndSaysWhy()
    {
        // GE head CT with gantry tilt: the only enclosed air is the paranasal sinuses (2.6 cm² at most).
        using var series = SeriesAssembler.Assemble(Dicom("edge", "ge-head-tilt"));

        var coverage = ChestCoverage.Measure(series)!;

        Assert.False(coverage.ShowsLungs);
        Assert.InRange(coverage.LargestLungAreaCm2, 0, 5);
        Assert.StartsWith("no lungs on any of the 10 slice(s) examined of 10", coverage.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void LongSeries_ExaminesAtMost32EvenlySpacedSlices()
    {
        using var temp = TestData.CreateTempDirectory();
        new CtPhantom(new CtPhantomOptions { Slices = 40, Matrix = 128 }).WriteFolder(temp.Path);
        using var series = SeriesAssembler.Assemble(temp.Path);

        var coverage = ChestCoverage.Measure(series)!;

        Assert.True(coverage.ShowsLungs);
        Assert.Equal(ChestCoverage.MaxSampledSlices, coverage.SlicesExamined);
        Assert.Equal(40, coverage.SliceCount);
    }

    [Fact]
    public void TwoDimensionalImageSeries_IsNotMeasured()
    {
        using var temp = TestData.CreateTempDirectory();
        var image = Directory.GetFiles(TestData.Shared("seg", "covid-semiseg", "train", "images")).Order(StringComparer.Ordinal).First();
        for (var i = 1; i <= 3; i++)
        {
            File.Copy(image, Path.Combine(temp.Path, $"slice{i}.jpg"));
        }

        using var series = SeriesAssembler.Assemble(temp.Path);

        Assert.Null(ChestCoverage.Measure(series));
    }
}
