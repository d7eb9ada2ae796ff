using System.Text.RegularExpressions;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Reports;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.Pipeline.Tests.Api;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;

namespace CovidFunctions.Pipeline.Tests.Reports;

public sealed partial class ReportAndFhirTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async System.Threading.Tasks.Task Report_ShowsTheDiagnosisBurdenNoticeAndARealOverlayImage()
    {
        using var kit = new ApiTestKit();
        await kit.AddCompletedStudyAsync("alpha", "s0000000000000000000000a1");

        var response = await kit.Api.GetReportAsync(ApiCaller.ForTenants("alpha"), "s0000000000000000000000a1", null, None);

        Assert.Equal(200, response.Status);
        Assert.StartsWith("text/html", response.ContentType, StringComparison.Ordinal);
        var html = response.BodyText;
        Assert.Contains("COVID-19 pneumonia pattern", html, StringComparison.Ordinal);
        Assert.Contains("id=\"diagnosis-label\"", html, StringComparison.Ordinal);
        Assert.Contains("Lesion burden: <b>13.4 %</b>", html, StringComparison.Ordinal);
        Assert.Contains("Research use only — not a medical device", html, StringComparison.Ordinal);
        Assert.Contains("Model card summary", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("Doe^Jane", html, StringComparison.Ordinal);

        var overlay = OverlayImage().Match(html);
        Assert.True(overlay.Success, "no embedded overlay image");
        var png = Convert.FromBase64String(overlay.Groups[1].Value);
        Assert.Equal(ApiTestKit.RealOverlayPng(), png);
        Assert.Contains("class=\"montage\"", html, StringComparison.Ordinal);
    }

    [Fact]
    public async System.Threading.Tasks.Task Report_OfAFailedStudy_SaysSo_WithoutImages()
    {
        using var kit = new ApiTestKit();
        await kit.Studies.TryCreateAsync(new StudyRecord { Tenant = "alpha", StudyId = "s00000000000000000000fail", Status = StudyStatus.Failed, Reason = "chunk 3 could not be scored", CreatedAt = DateTimeOffset.UtcNow }, None);

        var html = (await kit.Api.GetReportAsync(ApiCaller.AllTenants, "s00000000000000000000fail", "alpha", None)).BodyText;

        Assert.Contains("No diagnosis", html, StringComparison.Ordinal);
        Assert.Contains("chunk 3 could not be scored", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<img", html, StringComparison.Ordinal);
    }

    [Fact]
    public async System.Threading.Tasks.Task Fhir_IsAValidR4DiagnosticReport_ParsedBackByTheFhirParsers()
    {
        using var kit = new ApiTestKit();
        await kit.AddCompletedStudyAsync("alpha", "s0000000000000000000000a1");

        var response = await kit.Api.GetFhirAsync(ApiCaller.ForTenants("alpha"), "s0000000000000000000000a1", null, None);

        Assert.Equal(200, response.Status);
        Assert.StartsWith("application/fhir+json", response.ContentType, StringComparison.Ordinal);
        var json = response.BodyText;

        // The strict System.Text.Json-based deserializer of Hl7.Fhir.R4 (throws on anything not valid R4)...
        var report = FhirDiagnosticReportBuilder.Parse(json);
        // ...and the library's own strict FhirJsonDeserializer (the successor of FhirJsonParser) agree.
        var strict = new FhirJsonDeserializer(new DeserializerSettings()).Deserialize<DiagnosticReport>(json);
        Assert.True(report.IsExactly(strict));

        Assert.Equal("s0000000000000000000000a1", report.Id);
        Assert.Equal(DiagnosticReport.DiagnosticReportStatus.Final, report.Status);
        Assert.Equal("24627-2", report.Code.Coding[0].Code);
        Assert.Equal(FhirDiagnosticReportBuilder.LabelSystem, report.ConclusionCode[0].Coding[0].System);
        Assert.Equal("covid", report.ConclusionCode[0].Coding[0].Code);
        Assert.Equal(4, report.Contained.Count);
        Assert.Equal(4, report.Result.Count);
        var observations = report.Contained.OfType<Observation>().ToDictionary(o => o.Id!, o => Assert.IsType<Quantity>(o.Value));
        Assert.Equal(0.81m, observations["probability-covid"].Value);
        Assert.Equal(0.12m, observations["probability-cap"].Value);
        Assert.Equal(0.07m, observations["probability-normal"].Value);
        Assert.Equal(13.4m, observations["lesion-burden"].Value);
        Assert.Equal("%", observations["lesion-burden"].Code);
        Assert.All(report.Result, r => Assert.True(observations.ContainsKey(r.Reference!.TrimStart('#'))));
        Assert.Contains(report.Identifier, i => i.System == FhirDiagnosticReportBuilder.StudyPseudonymSystem && i.Value == "2.25.123456789");
        Assert.Null(report.Subject);
        Assert.Equal("http://127.0.0.1:7071/api/studies/s0000000000000000000000a1/report", report.PresentedForm[0].Url);
        Assert.DoesNotContain("Doe^Jane", json, StringComparison.Ordinal);
    }

    [Fact]
    public void Fhir_OfAFailedStudy_IsCancelledWithoutObservations()
    {
        var study = new StudyRecord { Tenant = "alpha", StudyId = "s1", Status = StudyStatus.Rejected, Reason = "not a CT", CreatedAt = DateTimeOffset.UtcNow };
        var report = FhirDiagnosticReportBuilder.Parse(FhirDiagnosticReportBuilder.ToJson(FhirDiagnosticReportBuilder.Build(study, null)));
        Assert.Equal(DiagnosticReport.DiagnosticReportStatus.Cancelled, report.Status);
        Assert.Empty(report.Contained);
        Assert.Contains("rejected", report.Conclusion, StringComparison.Ordinal);
    }

    [GeneratedRegex("<img class=\"overlay\"[^>]*src=\"data:image/png;base64,([A-Za-z0-9+/=]+)\"")]
    private static partial Regex OverlayImage();
}
