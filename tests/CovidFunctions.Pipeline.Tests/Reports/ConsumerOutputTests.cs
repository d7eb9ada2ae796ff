using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using CovidFunctions.Inference;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Reports;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.Pipeline.Tests.Api;
using CovidFunctions.Pipeline.Tests.Notifications;
using CovidFunctions.TestHelpers;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;

namespace CovidFunctions.Pipeline.Tests.Reports;

/// <summary>
/// What reaches the clinician and the hospital's systems, read from the consumer's side: the FHIR R4 DiagnosticReport
/// and the HTML report as the results API serves them, and the webhook payload as a receiver gets it over HTTP, held to
/// what docs/api.md and docs/webhooks.md promise.
/// </summary>
public sealed partial class ConsumerOutputTests
{
    private const string StudyId = "s0000000000000000000000a1";
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async System.Threading.Tasks.Task Fhir_states_research_use_only_in_machine_readable_labels()
    {
        var (report, _) = await FhirAsync();

        // HL7 purpose-of-use security label (v3-ActReason HRESCH "healthcare research"): a receiving system that honours
        // security labels restricts the resource to research; the tag says the same in the pipeline's own terms.
        Assert.Contains(report.Meta?.Security ?? [], c => c.System == "http://terminology.hl7.org/CodeSystem/v3-ActReason" && c.Code == "HRESCH");
        Assert.Contains(report.Meta?.Tag ?? [], c => c.System == FhirDiagnosticReportBuilder.IntendedUseSystem && c.Code == "research-use-only");

        // A failed study's document carries the labels too.
        var failed = new StudyRecord { Tenant = "alpha", StudyId = "s1", Status = StudyStatus.Failed, CreatedAt = DateTimeOffset.UtcNow };
        var cancelled = FhirDiagnosticReportBuilder.Build(failed, null);
        Assert.Contains(cancelled.Meta?.Security ?? [], c => c.Code == "HRESCH");
    }

    [Fact]
    public async System.Threading.Tasks.Task Fhir_conclusion_code_asserts_no_disorder_from_a_research_model()
    {
        var (report, _) = await FhirAsync();

        // SNOMED CT 840539006 is "Disease caused by SARS-CoV-2 (disorder)", 385093006 "Community acquired pneumonia
        // (disorder)", 17621005 "Normal (qualifier value)": a receiving EHR may file a coded conclusion as a diagnosis,
        // which a research model's CT pattern is not.
        var conclusion = Assert.Single(report.ConclusionCode);
        Assert.DoesNotContain(conclusion.Coding, c => c.System == "http://snomed.info/sct");
        Assert.Contains(conclusion.Coding, c => c.System == FhirDiagnosticReportBuilder.LabelSystem && c.Code == "covid" && c.Display == "COVID-19 pneumonia pattern");
        Assert.Contains("not a diagnosis", report.Conclusion, StringComparison.Ordinal);
    }

    [Fact]
    public async System.Threading.Tasks.Task Fhir_names_the_model_version_and_what_the_model_saw_in_structured_elements_and_round_trips()
    {
        var (report, json) = await FhirAsync();

        var observations = report.Contained.OfType<Observation>().ToList();
        Assert.Equal(4, observations.Count);
        Assert.All(observations, o =>
        {
            Assert.Equal(FhirDiagnosticReportBuilder.ModelVersionSystem, o.Device?.Identifier?.System);
            Assert.Equal("dfsn-dtcn-1.0", o.Device?.Identifier?.Value);
        });

        var lesion = Assert.Single(observations, o => o.Id == "lesion-burden");
        var slices = Assert.Single(lesion.Component, c => c.Code.Coding.Any(k => k.System == FhirDiagnosticReportBuilder.ObservationSystem && k.Code == "slices-screened"));
        Assert.Equal(64, Assert.IsType<Integer>(slices.Value).Value);
        Assert.All(observations.Where(o => o.Id!.StartsWith("probability-", StringComparison.Ordinal)),
            o => Assert.Contains("the 7 of 64 slices with the highest mean lesion probability", o.Method?.Text, StringComparison.Ordinal));
        Assert.Contains("of the lung estimate", lesion.Code.Text, StringComparison.Ordinal);

        // The identifiers say what they are, so a sender can map the report back to what it uploaded.
        Assert.All(report.Identifier, i => Assert.False(string.IsNullOrEmpty(i.Type?.Text)));

        // Round trip: the library's strict deserializer reads it, and serialising that again gives the same document.
        var strict = new FhirJsonDeserializer(new DeserializerSettings()).Deserialize<DiagnosticReport>(json);
        Assert.Equal(json, JsonSerializer.Serialize(strict, FhirDiagnosticReportBuilder.JsonOptions));
        Assert.DoesNotContain("Doe^Jane", json, StringComparison.Ordinal);
        Assert.DoesNotContain("chest.zip", json, StringComparison.Ordinal);
    }

    [Fact]
    public async System.Threading.Tasks.Task Report_says_which_slices_set_the_label_how_far_to_trust_the_probabilities_and_what_the_model_version_is()
    {
        using var kit = new ApiTestKit();
        await kit.AddCompletedStudyAsync("alpha", StudyId);
        var html = (await kit.Api.GetReportAsync(ApiCaller.ForTenants("alpha"), StudyId, null, None)).BodyText;

        Assert.Contains("Slices screened: <b>64</b>", html, StringComparison.Ordinal);
        Assert.Contains("set by the 7 of 64 slices with the highest mean lesion probability", html, StringComparison.Ordinal);
        Assert.Contains("not necessarily the slices that set the label", html, StringComparison.Ordinal);
        Assert.Contains($"ECE {ModelCardEce()}", html, StringComparison.Ordinal);
        Assert.Contains("not the chance that this patient has the disease", html, StringComparison.Ordinal);
        Assert.Contains("<b>13.4 %</b> of the lung estimate", html, StringComparison.Ordinal);
        Assert.Contains("lesion 22.5 % of its lung estimate", html, StringComparison.Ordinal);
        Assert.Contains("first 12 hex digits of the sha256 of the graph file", html, StringComparison.Ordinal);
        Assert.Matches(ReceivedRow(), html);
        Assert.DoesNotContain("Doe^Jane", html, StringComparison.Ordinal);
        Assert.DoesNotContain("chest.zip", html, StringComparison.Ordinal);
    }

    [Fact]
    public void The_count_of_slices_that_set_the_label_is_the_aggregator_s()
    {
        foreach (var n in new[] { 1, 2, 3, 4, 29, 30, 31, 64, 65, 300 })
        {
            var slices = Enumerable.Range(0, n).Select(i => new SliceSummary(i, i / (float)n, 0, [0.5f, 0.3f, 0.2f])).ToList();
            Assert.Equal(StudyAggregator.Aggregate(slices, ["covid", "cap", "normal"]).SlicesUsed, StudyReportRenderer.LabelSlices(n));
        }
    }

    [Fact]
    public async System.Threading.Tasks.Task Webhook_payloads_carry_exactly_the_fields_docs_webhooks_md_documents()
    {
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(200));
        using var kit = new WebhookTestKit();
        await kit.SubscribeAsync(receiver.Url);
        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);
        await kit.Studies.TryCreateAsync(new StudyRecord { Tenant = WebhookTestKit.Tenant, StudyId = "s00000000000000000000fail", Status = StudyStatus.Failed, Reason = "chunk 3 could not be scored", UploadPath = "Doe^Jane/x.zip", CreatedAt = DateTimeOffset.UtcNow, CompletedAt = DateTimeOffset.UtcNow }, None);
        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, "s00000000000000000000fail", StudyEventTypes.Failed, None);
        Assert.Equal(2, receiver.Received.Count);

        var documented = DocumentedPayloads();
        Assert.Equal(2, documented.Count);
        foreach (var (sent, doc) in receiver.Received.Select(r => r.Body).Zip(documented))
        {
            using var s = JsonDocument.Parse(sent);
            using var d = JsonDocument.Parse(doc);
            Assert.Equal(Shape(d.RootElement), Shape(s.RootElement));
        }

        Assert.DoesNotContain("Doe", receiver.Received[1].Body, StringComparison.Ordinal);
        Assert.DoesNotContain("chunk 3", receiver.Received[1].Body, StringComparison.Ordinal);
    }

    /// <summary>The property paths of a JSON document, sorted (array items as <c>[]</c>).</summary>
    private static string Shape(JsonElement element)
    {
        var paths = new SortedSet<string>(StringComparer.Ordinal);
        Walk(element, "$");
        return string.Join("\n", paths);

        void Walk(JsonElement e, string path)
        {
            switch (e.ValueKind)
            {
                case JsonValueKind.Object:
                    foreach (var p in e.EnumerateObject())
                    {
                        // The class names under probabilities are the model's classes, checked elsewhere.
                        paths.Add(path + "." + p.Name);
                        if (p.Name != "probabilities")
                        {
                            Walk(p.Value, path + "." + p.Name);
                        }
                    }

                    break;
                case JsonValueKind.Array:
                    paths.Add(path + "[]");
                    break;
            }
        }
    }

    /// <summary>The JSON examples of docs/webhooks.md's "The request" section, in order.</summary>
    private static List<string> DocumentedPayloads()
    {
        var text = File.ReadAllText(Path.Combine(TestData.RepoRoot, "docs", "webhooks.md"));
        var start = text.IndexOf("## The request", StringComparison.Ordinal);
        var end = text.IndexOf("\n## ", start + 5, StringComparison.Ordinal);
        return [.. JsonBlock().Matches(text[start..end]).Select(m => m.Groups[1].Value)];
    }

    /// <summary>The shipped graph's slice-level ECE from docs/model-card.md's validation table ("shipped (argmax)").</summary>
    private static string ModelCardEce()
    {
        var card = File.ReadAllText(Path.Combine(TestData.RepoRoot, "docs", "model-card.md"));
        var row = ShippedRow().Match(card);
        Assert.True(row.Success, "no 'shipped (argmax)' row in docs/model-card.md");
        return row.Groups[1].Value;
    }

    private static async Task<(DiagnosticReport Report, string Json)> FhirAsync()
    {
        using var kit = new ApiTestKit();
        await kit.AddCompletedStudyAsync("alpha", StudyId);
        var response = await kit.Api.GetFhirAsync(ApiCaller.ForTenants("alpha"), StudyId, null, None);
        Assert.Equal(200, response.Status);
        return (FhirDiagnosticReportBuilder.Parse(response.BodyText), response.BodyText);
    }

    [GeneratedRegex("```json\\n(.*?)\\n```", RegexOptions.Singleline)]
    private static partial Regex JsonBlock();

    [GeneratedRegex(@"\| shipped \(argmax\) \|[^|]*\|[^|]*\|[^|]*\|[^|]*\| ([0-9.]+) \|")]
    private static partial Regex ShippedRow();

    [GeneratedRegex(@"<tr><th>Received</th><td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</td></tr>")]
    private static partial Regex ReceivedRow();
}
