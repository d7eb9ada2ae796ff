using System.Text.Json;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Orchestration.Activities;
using CovidFunctions.Pipeline.Reports;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.Pipeline.Tests.Orchestration;

namespace CovidFunctions.Pipeline.Tests.Notifications;

/// <summary>
/// A study the real orchestrator completed (in-memory Durable host, fake scorer), then the orchestrator's own
/// NotifyStudy activity run twice with the webhook notifier: one signed <c>study.completed</c> delivery carrying the
/// row's diagnosis; the report and FHIR document of that row render and parse.
/// </summary>
public sealed class NotifyActivityTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task OrchestratedStudy_NotifyActivityTwice_OneSignedCompletedDelivery()
    {
        await using var harness = await OrchestrationHarness.StartAsync(_ => FakeScorerAction.Answer);
        var input = await harness.CreateStudyAsync("s-notify", sliceCount: 6, chunkSize: 2);
        var outcome = await harness.RunAsync(input);
        Assert.Equal(StudyStatus.Completed, outcome.Status);
        var row = (await harness.Studies.GetAsync(OrchestrationHarness.Tenant, "s-notify", None))!;

        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(200));
        using var kit = new WebhookTestKit();
        await kit.Studies.TryCreateAsync(row with { ETag = null }, None);
        var created = await kit.Manager.AddAsync(OrchestrationHarness.Tenant, receiver.Url.ToString(), [StudyEventTypes.Completed], null, None);
        var activity = new NotifyStudyActivity(kit.Notifier);
        var notify = new NotifyStudyInput(OrchestrationHarness.Tenant, "s-notify", StudyEventTypes.Completed);

        Assert.True(await activity.RunAsync(null!, notify));
        Assert.True(await activity.RunAsync(null!, notify));

        var request = Assert.Single(receiver.Received);
        Assert.True(WebhookSignature.Verify(created.Secret, request.Headers[WebhookSignature.SignatureHeader], request.Body, DateTimeOffset.UtcNow, TimeSpan.FromMinutes(5)));
        using var payload = JsonDocument.Parse(request.Body);
        var diagnosis = payload.RootElement.GetProperty("diagnosis");
        Assert.Equal(outcome.Diagnosis!.Label, diagnosis.GetProperty("label").GetString());
        Assert.Equal(outcome.Diagnosis.LesionBurden, diagnosis.GetProperty("lesionBurden").GetDouble(), 9);
        Assert.Equal(6, diagnosis.GetProperty("slices").GetInt32());
        Assert.Equal(outcome.Diagnosis.TopSlices.Count, payload.RootElement.GetProperty("links").GetProperty("overlays").GetArrayLength());

        // The same row as a report (with the orchestrator's montage) and as FHIR.
        var html = await StudyReportRenderer.RenderAsync(row, harness.Containers.Get(PipelineNames.ResultsContainer), null, None);
        Assert.Contains("class=\"montage\"", html, StringComparison.Ordinal);
        Assert.Contains(StudyReportRenderer.DisplayLabel(outcome.Diagnosis.Label), html, StringComparison.Ordinal);
        var fhir = FhirDiagnosticReportBuilder.Parse(FhirDiagnosticReportBuilder.ToJson(FhirDiagnosticReportBuilder.Build(row, null)));
        Assert.Equal(4, fhir.Contained.Count);
        Assert.Equal(StudyViews.Diagnosis(row)!.Label, fhir.ConclusionCode.Count > 0 ? fhir.ConclusionCode[0].Text : row.Label);
    }
}
