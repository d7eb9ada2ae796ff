using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using CovidFunctions.Cli.Commands;
using CovidFunctions.Imaging.Phantoms;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// Two lesion measures, named apart wherever they are printed. <c>covidfn segment</c> printed the study's
/// "lesion X % of the slice area" while <c>up</c> and <c>status</c> printed "lesion burden X %": different measures (the
/// study rule's mean lesion fraction of the model input, classify's <c>lesion_fraction</c>; and all slices' lesion pixels
/// over all slices' lung estimate) with names a reader takes for one. Now segment says "lesion fraction", what it is and
/// that it is classify's <c>lesion_fraction</c> (checked against classify's JSON on the same series), and up and status
/// say "lesion burden" of the lung estimate; the per-slice percentages say "of its lung estimate" in both.
/// </summary>
public sealed partial class LesionMeasureNamesTests
{
    [GeneratedRegex(@"study \w+ \(lesion fraction (\d+\.\d\d) %: the mean over slices of the model input's share at lesion probability ≥ [\d.]+, classify's lesion_fraction; not the lesion burden of up and status\)")]
    private static partial Regex StudyMeasure();

    [Fact]
    public void Segment_names_its_study_measure_lesion_fraction_and_it_is_classifys_lesion_fraction()
    {
        using var dir = TestData.CreateTempDirectory();
        var input = Path.Combine(dir.Path, "phantom");
        new CtPhantom(new CtPhantomOptions { Matrix = 256, Slices = 12, SliceSpacing = 10, Seed = 7, UidSeed = "lesion-measure-names" }).WriteFolder(input);
        var models = Path.Combine(TestData.RepoRoot, "models");
        using var output = new StringWriter();
        using var error = new StringWriter();

        Assert.True(SegmentCommand.Run(input, Path.Combine(dir.Path, "out"), models, 0, output, error) == ExitCodes.Success, error.ToString());
        var json = Path.Combine(dir.Path, "classify.json");
        Assert.True(ClassifyCommand.Run(input, json, models, 0, TextWriter.Null, error) == ExitCodes.Success, error.ToString());

        var printed = output.ToString();
        Assert.DoesNotContain("slice area", printed, StringComparison.Ordinal);
        var match = StudyMeasure().Match(printed);
        Assert.True(match.Success, printed);
        using var classify = JsonDocument.Parse(File.ReadAllText(json));
        var lesionFraction = classify.RootElement.GetProperty("study").GetProperty("lesion_fraction").GetDouble();
        Assert.Equal((100 * lesionFraction).ToString("0.00", CultureInfo.InvariantCulture), match.Groups[1].Value);
        var sliceLines = printed.Split('\n').Where(l => l.Contains(": slice ", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(sliceLines);
        Assert.All(sliceLines, l => Assert.EndsWith(" % of its lung estimate", l.TrimEnd('\r'), StringComparison.Ordinal));
    }

    [Fact]
    public void Up_and_status_name_the_lesion_burden_by_its_denominator()
    {
        using var temp = TestData.CreateTempDirectory();
        var containers = new FileSystemBlobContainers(temp.Path);
        var study = new StudyRecord
        {
            Tenant = "lab-a",
            StudyId = "s0000000000000000000000b1",
            Status = StudyStatus.Completed,
            CreatedAt = new DateTimeOffset(2026, 11, 28, 14, 0, 0, TimeSpan.Zero),
            CompletedAt = new DateTimeOffset(2026, 11, 28, 14, 1, 0, TimeSpan.Zero),
            SliceCount = 30,
            Label = "covid",
            ProbabilityCovid = 0.8,
            ProbabilityCap = 0.1,
            ProbabilityNormal = 0.1,
            LesionBurden = 0.1234,
            TopSlicesJson = PipelineJson.Serialize(new List<TopSlice> { new(12, 25.5, null) }),
        };

        Assert.Contains("lesion burden 12.3 % of the lung estimate,", UpCommand.Describe(study, containers), StringComparison.Ordinal);

        using var output = new StringWriter();
        StatusCommand.WriteStudy(study, containers, output);
        var rows = StatusRowsWithoutTimeTests.Cells(output.ToString());
        Assert.Contains(("lesion burden", "12.34 % of the lung estimate (all slices)"), rows);
        Assert.Contains(("slice 12", "lesion 25.5 % of its lung estimate"), rows);
    }
}
