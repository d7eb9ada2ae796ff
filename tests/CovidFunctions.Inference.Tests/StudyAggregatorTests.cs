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

    [Theory]
    [InlineData(0.40f, 0.35f, "covid")] // the most probable class, even below one half: no covid threshold
    [InlineData(0.30f, 0.45f, "normal")]
    [InlineData(0.30f, 0.20f, "cap")]
    public void Aggregate_LabelIsTheMostProbableClassOfTheTopKMean(float covid, float normal, string expected)
    {
        var slices = Enumerable.Range(0, 5).Select(i => new SliceSummary(i, 0.2f, 0.1f, [covid, 1 - covid - normal, normal])).ToList();

        var study = StudyAggregator.Aggregate(slices, Classes);

        Assert.Equal(expected, study.Label);
        Assert.Equal(covid, study.ClassProbabilities[0], 5);
    }

    [Fact]
    public void Aggregate_SummariesAndFullPredictions_GiveTheSameStudy()
    {
        var predictions = Enumerable.Range(0, 12).Select(i => Slice(i % 4 / 4f, i % 3 == 0 ? 0.8f : 0.3f)).ToList();

        var fromPredictions = StudyAggregator.Aggregate(predictions, Classes);
        var fromSummaries = StudyAggregator.Aggregate(predictions.Select((p, i) => SliceSummary.From(i, p, 0.5f)).ToList(), Classes);

        Assert.Equal(fromPredictions.Label, fromSummaries.Label);
        Assert.Equal(fromPredictions.ClassProbabilities, fromSummaries.ClassProbabilities);
        Assert.Equal(fromPredictions.SlicesUsed, fromSummaries.SlicesUsed);
    }

    [Fact]
    public void Aggregate_Empty_Throws()
    {
        Assert.Throws<InferenceException>(() => StudyAggregator.Aggregate([], Classes));
    }

    [Fact]
    public void Aggregate_OneSlice_IsThatSlice()
    {
        var study = StudyAggregator.Aggregate([new SliceSummary(4, 0.1f, 0.02f, [0.2f, 0.7f, 0.1f])], Classes);

        Assert.Equal(1, study.SlicesUsed);
        Assert.Equal("cap", study.Label);
        Assert.Equal([0.2f, 0.7f, 0.1f], study.ClassProbabilities);
        Assert.Equal(0.02f, study.LesionFraction);
    }

    [Fact]
    public void Aggregate_NoLesionOnAnySlice_TakesTheFirstKByIndexWithoutNaN()
    {
        // Every map zeroed (all slices outside the lung restriction): ties in lesion burden go to the lower slice index.
        var slices = Enumerable.Range(0, 40).Select(i => new SliceSummary(i, 0f, 0f, i < 4 ? [0.1f, 0.1f, 0.8f] : [0.8f, 0.1f, 0.1f])).Reverse().ToList();

        var study = StudyAggregator.Aggregate(slices, Classes);

        Assert.Equal(4, study.SlicesUsed); // max(3, ceil(10 % of 40))
        Assert.Equal("normal", study.Label);
        Assert.Equal(0f, study.LesionFraction);
        Assert.All(study.ClassProbabilities, p => Assert.True(float.IsFinite(p)));
    }

    [Fact]
    public void Aggregate_NaNProbability_ThrowsNamingTheSliceInsteadOfLabellingCovid()
    {
        var slices = new List<SliceSummary> { new(0, 0.3f, 0.1f, [0.1f, 0.1f, 0.8f]), new(7, 0.2f, 0.1f, [float.NaN, 0.1f, 0.8f]) };

        var ex = Assert.Throws<InferenceException>(() => StudyAggregator.Aggregate(slices, Classes));

        Assert.Contains("Slice 7", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Aggregate_SliceWithTooFewClassProbabilities_ThrowsNamingTheSlice()
    {
        var slices = new List<SliceSummary> { new(0, 0.3f, 0.1f, [0.1f, 0.1f, 0.8f]), new(2, 0.2f, 0.1f, [0.1f, 0.9f]) };

        var ex = Assert.Throws<InferenceException>(() => StudyAggregator.Aggregate(slices, Classes));

        Assert.Contains("Slice 2 has 2 class probabilities; the study has 3 classes", ex.Message, StringComparison.Ordinal);
    }
}
