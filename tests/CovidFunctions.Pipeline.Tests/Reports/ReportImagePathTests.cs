using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Reports;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.Pipeline.Tests.Api;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Tests.Reports;

/// <summary>
/// The report embeds only images of its own study: a record whose montage or overlay path names another tenant's
/// study (or climbs out of its own with '..') gets no bytes of it, a note on the page and a logged reason.
/// </summary>
public sealed class ReportImagePathTests
{
    private const string Own = "s0000000000000000000000a1";
    private const string Foreign = "s0000000000000000000000b1";
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task AnImagePathOutsideTheStudysPrefix_IsNotEmbedded_AndTheReasonIsLogged()
    {
        using var kit = new ApiTestKit();
        var own = await kit.AddCompletedStudyAsync("alpha", Own);
        var results = kit.Containers.Get(PipelineNames.ResultsContainer);

        // Another tenant's study with images of its own (a different CT slice, so its bytes are recognisable).
        var foreignPng = ApiTestKit.RealOverlayPng(1);
        await results.WriteAsync($"beta/{Foreign}/montage.png", new MemoryStream(foreignPng), None);
        await results.WriteAsync($"beta/{Foreign}/overlays/0007.png", new MemoryStream(foreignPng), None);

        var tampered = own with
        {
            MontagePath = $"beta/{Foreign}/montage.png",
            TopSlicesJson = $$"""
                [{"sliceIndex":7,"lesionPercent":30.0,"overlayPath":"beta/{{Foreign}}/overlays/0007.png"},
                 {"sliceIndex":8,"lesionPercent":25.0,"overlayPath":"alpha/{{Own}}/../../beta/{{Foreign}}/overlays/0007.png"},
                 {"sliceIndex":31,"lesionPercent":22.5,"overlayPath":"alpha/{{Own}}/overlays/0031.png"}]
                """,
        };
        var logger = new RecordingLogger();

        var html = await StudyReportRenderer.RenderAsync(tampered, results, null, logger, None);

        var foreignBase64 = Convert.ToBase64String(foreignPng);
        Assert.DoesNotContain(foreignBase64, html, StringComparison.Ordinal);
        Assert.Contains("The montage image is not shown: its stored path is outside this study's results.", html, StringComparison.Ordinal);
        Assert.Equal(2, CountOf(html, "Overlay not shown: its stored path is outside this study's results."));
        Assert.DoesNotContain("beta/", html, StringComparison.Ordinal);

        // The study's own overlay is still embedded.
        Assert.Contains(Convert.ToBase64String(ApiTestKit.RealOverlayPng()), html, StringComparison.Ordinal);
        Assert.Equal(1, CountOf(html, "class=\"overlay\""));

        var warnings = logger.Messages.Where(m => m.Level == LogLevel.Warning).Select(m => m.Text).ToList();
        Assert.Equal(3, warnings.Count);
        Assert.Contains(warnings, w => w.Contains("montage", StringComparison.Ordinal) && w.Contains($"'beta/{Foreign}/montage.png'", StringComparison.Ordinal) && w.Contains($"not under alpha/{Own}/", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.Contains("overlay of slice 7", StringComparison.Ordinal) && w.Contains($"not under alpha/{Own}/", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.Contains("overlay of slice 8", StringComparison.Ordinal) && w.Contains("'..' segment", StringComparison.Ordinal));

        // The API's report (the production path) embeds none of it either.
        await kit.Studies.UpdateAsync("alpha", Own, _ => tampered, None);
        var served = (await kit.Api.GetReportAsync(ApiCaller.ForTenants("alpha"), Own, null, None)).BodyText;
        Assert.DoesNotContain(foreignBase64, served, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheApisReport_LogsARefusedImagePath_ThroughItsOwnLogger()
    {
        // The production path: ResultsApi renders the report, and its refusal must reach the host's log, not only the
        // page (before, the API called the logger-less overload, so the reason went nowhere).
        using var kit = new ApiTestKit();
        var own = await kit.AddCompletedStudyAsync("alpha", Own);
        var results = kit.Containers.Get(PipelineNames.ResultsContainer);
        await results.WriteAsync($"beta/{Foreign}/montage.png", new MemoryStream(ApiTestKit.RealOverlayPng(1)), None);
        await kit.Studies.UpdateAsync("alpha", Own, _ => own with { MontagePath = $"beta/{Foreign}/montage.png" }, None);
        var logger = new RecordingLogger<ResultsApi>();
        var api = new ResultsApi(kit.Studies, kit.Containers, new CovidFunctions.Pipeline.Metering.UsageQueries(kit.Usage, kit.Studies), kit.Webhooks.Manager, new ResultsApiOptions(), logger: logger);

        var served = await api.GetReportAsync(ApiCaller.ForTenants("alpha"), Own, null, None);

        Assert.Equal(200, served.Status);
        Assert.Contains("The montage image is not shown", served.BodyText, StringComparison.Ordinal);
        var warning = Assert.Single(logger.Messages, m => m.Level == LogLevel.Warning);
        Assert.Contains($"'beta/{Foreign}/montage.png'", warning.Text, StringComparison.Ordinal);
    }

    private static int CountOf(string text, string value)
    {
        var count = 0;
        for (var at = text.IndexOf(value, StringComparison.Ordinal); at >= 0; at = text.IndexOf(value, at + value.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }
}
