using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Tests.Api;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Pipeline.Tests.Reports;

/// <summary>
/// The report's model card summary quotes the shipped model's validation figures. The Function app that renders it has
/// no models folder, so the figures are text in the renderer; this test ties them to <c>models/manifest.json</c>, the
/// record of the graph that scores the studies. Before, the summary still quoted round 1's graph (accuracy 0.82, F1
/// 0.84, AUC 0.90, "uncalibrated") after round 2's (0.873 / 0.882 / 0.925, two members, calibrated patient rule)
/// shipped: every report a clinician opened described another model than the one named in its Model row.
/// </summary>
public sealed partial class ReportModelCardTests
{
    [Fact]
    public async Task Model_card_summary_quotes_the_shipped_manifest_s_validation_figures()
    {
        using var manifest = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(TestData.RepoRoot, "models", "manifest.json")));
        var root = manifest.RootElement;
        var validation = root.GetProperty("validation");
        var covid = validation.GetProperty("classification_val").GetProperty("ucsd_val_covid_vs_rest");
        var dice = validation.GetProperty("segmentation_val").GetProperty("dice@0.5").GetDouble();
        var graph = root.GetProperty("models").GetProperty(root.GetProperty("default_models").GetProperty("classify").GetString()!);
        var members = graph.TryGetProperty("members", out var list) ? list.GetArrayLength() : 1;

        using var kit = new ApiTestKit();
        await kit.AddCompletedStudyAsync("alpha", "s0000000000000000000000a1");
        var html = (await kit.Api.GetReportAsync(ApiCaller.ForTenants("alpha"), "s0000000000000000000000a1", null, CancellationToken.None)).BodyText;
        var card = ModelCardSection().Match(html);
        Assert.True(card.Success, "no model card section in the report");
        var summary = card.Value;

        static string F(double value) => value.ToString("0.00", CultureInfo.InvariantCulture);
        Assert.Contains($"accuracy {F(covid.GetProperty("accuracy").GetDouble())}, F1 {F(covid.GetProperty("f1").GetDouble())}, AUC {F(covid.GetProperty("auc").GetDouble())}", summary, StringComparison.Ordinal);
        Assert.Contains($"Dice about {F(dice)}", summary, StringComparison.Ordinal);
        Assert.Contains(members == 1 ? "one ONNX graph" : $"the mean of {members} fine-tuned members", summary, StringComparison.Ordinal);

        // The patient rule is the calibrated one of docs/model-card.md ("Patient-level rule (calibrated)").
        Assert.DoesNotContain("uncalibrated", summary, StringComparison.OrdinalIgnoreCase);
    }

    [GeneratedRegex("<section id=\"model-card\">.*?</section>", RegexOptions.Singleline)]
    private static partial Regex ModelCardSection();
}
