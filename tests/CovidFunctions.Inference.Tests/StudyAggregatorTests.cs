namespace CovidFunctions.Inference.Tests;

public sealed class StudyAggregatorTests
{
    private static readonly string[] Classes = ["covid", "cap", "normal"];

    private static SlicePrediction Slice(float lesion, float covid) =>
        new(Enumerable.Repeat(lesion, 100).ToArray(), [covid, 0f, 1f - covid], covid >= 0.5f ? "covid" : "normal");

    [Fact]
    public void Aggregate_TenSlices_AveragesTopThreeByLesionBurden()
    {
        var slices = Enumerable.Range(0, 10).Select(i => Slice(i / 10f, i >= 7 ? 0.9f : 0.1f)).ToList();

        var study = StudyAggregator.Aggregate(slices, Classes);

        Assert.Equal(3, study.SlicesUsed);
        Assert.Equal("covid", study.Label);
        Assert.Equal(0.9f, study.ClassProbabilities[0], 5);
        Assert.Equal(0.5f, study.LesionFraction, 5); // slices 5..9 have lesion probability >= 0.5
    }

    [Fact]
    public void Aggregate_Empty_Throws()
    {
        Assert.Throws<InferenceException>(() => StudyAggregator.Aggregate([], Classes));
    }
}
