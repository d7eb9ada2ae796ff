using System.Text;
using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// A key bound to tenant A, asking for tenant B's study, report, FHIR document, file, usage, month close and webhooks
/// (by id, by <c>?tenant=</c>, by a tenant in the body, by a tenant in another case, by a second <c>?tenant=</c>), gets
/// the same answer from the Function app's HTTP functions (a stored key, <see cref="StoredApiKeyAuthorizer"/>) as from
/// the local server's mapping (<c>covidfn up</c>: a key in <c>api-keys.json</c>), status, headers and body alike, on
/// the same Azurite storage; none of them reads or changes B's data. A missing, unknown or revoked key is 401 with the
/// same body on both.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class TenantIsolationParityTests(AzuriteFixture azurite)
{
    private static readonly CancellationToken None = CancellationToken.None;

    /// <summary>One request: the function that serves it in Azure, its route values, query and body.</summary>
    private sealed record Probe(string Method, string Function, string Route, string Query = "", string? Body = null, string? Id = null, string? Path = null);

    [Fact]
    public async Task ATenantBoundKey_GetsTheSameAnswerFromTheFunctionAppAndTheLocalServer_AndNeverReachesAnotherTenant()
    {
        using var temp = TestData.CreateTempDirectory();
        await using var services = SampleApp.Build(azurite, temp.Path);
        var storage = services.GetRequiredService<PipelineStorage>();
        var functions = ActivatorUtilities.CreateInstance<ApiFunctions>(services);
        var api = services.GetRequiredService<ResultsApi>();
        var alpha = "pa-" + Guid.NewGuid().ToString("N")[..10];
        var beta = "pb-" + Guid.NewGuid().ToString("N")[..10];
        var alphaStudy = "s" + Guid.NewGuid().ToString("N")[..24];
        var betaStudy = "s" + Guid.NewGuid().ToString("N")[..24];
        var results = storage.BlobContainers.Get(PipelineNames.ResultsContainer);
        var now = DateTimeOffset.UtcNow;
        foreach (var (tenant, study) in new[] { (alpha, alphaStudy), (beta, betaStudy) })
        {
            Assert.True(await storage.Studies.TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = study, Status = StudyStatus.Completed, CreatedAt = now, CompletedAt = now, Label = "covid", SliceCount = 3 }, None));
            await results.WriteAsync($"{tenant}/{study}/montage.png", new MemoryStream(Encoding.UTF8.GetBytes("montage of " + tenant)), None);
            await storage.Usage.TryRecordAsync(new UsageRecord(tenant, study, "ingest", now, 3, 1.5, 0, 1000), None);
            await storage.Usage.TryRecordAsync(new UsageRecord(tenant, study, StudyOrchestration.UsageStage, now, 3, 0, 2.5, 0), None);
        }

        var betaHook = (await services.GetRequiredService<WebhookManager>().AddAsync(beta, "http://127.0.0.1:9/beta", null, null, None)).Subscription;
        var admin = services.GetRequiredService<ApiKeyAdmin>();
        var storedKey = (await admin.MintAsync([alpha], None)).Key;
        var localKeys = new LocalApiKeys(Path.Combine(temp.Path, "local"));
        var localKey = await localKeys.AddKeyAsync([alpha], None);

        // The local server as covidfn up builds it (ResultsApiEndpoints over Kestrel on 127.0.0.1), over the same ResultsApi.
        await using var app = ResultsApiEndpoints.BuildLoopbackHost(api, localKeys, 0);
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = ResultsApiEndpoints.ListeningAddress(app) };

        var lastMonth = UsageQueries.MonthOf(now.AddMonths(-1));
        Probe[] attacks =
        [
            new("GET", "GetStudy", $"studies/{betaStudy}", Id: betaStudy),
            new("GET", "GetStudy", $"studies/{betaStudy}", $"?tenant={beta}", Id: betaStudy),
            new("GET", "GetStudy", $"studies/{betaStudy}", $"?tenant={alpha}", Id: betaStudy),
            new("GET", "GetStudy", $"studies/{betaStudy}", $"?tenant={beta.ToUpperInvariant()}", Id: betaStudy),
            new("GET", "GetStudy", $"studies/{betaStudy}", $"?tenant={alpha}&tenant={beta}", Id: betaStudy),
            new("GET", "GetStudy", $"studies/{betaStudy.ToUpperInvariant()}", Id: betaStudy.ToUpperInvariant()),
            new("GET", "GetStudyReport", $"studies/{betaStudy}/report", $"?tenant={beta}", Id: betaStudy),
            new("GET", "GetStudyFhir", $"studies/{betaStudy}/fhir", Id: betaStudy),
            new("GET", "GetStudyFile", $"studies/{betaStudy}/files/montage.png", Id: betaStudy, Path: "montage.png"),
            new("GET", "GetStudyFile", $"studies/{betaStudy}/files/montage.png", $"?tenant={beta}", Id: betaStudy, Path: "montage.png"),
            new("GET", "ListStudies", "studies", $"?tenant={beta}"),
            new("GET", "ListStudies", "studies", $"?tenant={beta}&tenant={alpha}"),
            new("GET", "ListStudies", "studies", $"?tenant={beta}%0A"),
            new("GET", "GetUsage", "usage", $"?tenant={beta}"),
            new("GET", "GetUsage", "usage", $"?tenant={beta}&tenant={alpha}"),
            new("GET", "GetUsage", "usage", $"?tenant={beta.ToUpperInvariant()}"),
            new("POST", "CloseUsage", $"usage/{lastMonth}/close", Id: lastMonth),
            new("POST", "CloseUsage", $"usage/{lastMonth}/close", $"?tenant={beta}", Id: lastMonth),
            new("GET", "ListWebhooks", "webhooks", $"?tenant={beta}"),
            new("POST", "CreateWebhook", "webhooks", Body: $"{{\"url\":\"http://127.0.0.1:9/stolen\",\"tenant\":\"{beta}\"}}"),
            new("DELETE", "DeleteWebhook", $"webhooks/{betaHook.Id}", Id: betaHook.Id),
            new("DELETE", "DeleteWebhook", $"webhooks/{betaHook.Id}", $"?tenant={beta}", Id: betaHook.Id),
            new("POST", "TestWebhook", $"webhooks/{betaHook.Id}/test", $"?tenant={beta}", Id: betaHook.Id),
            new("POST", "RotateWebhookSecret", $"webhooks/{betaHook.Id}/rotate-secret", Body: "{\"overlapHours\":0}", Id: betaHook.Id),
        ];
        foreach (var probe in attacks)
        {
            var (azure, local) = await BothAsync(functions, http, probe, storedKey, localKey);
            Assert.True(azure.Status is 400 or 403 or 404, $"{probe.Method} {probe.Route}{probe.Query}: {azure.Status} {azure.Text}");
            AssertSame(probe, azure, local);
            Assert.DoesNotContain("montage of " + beta, azure.Text, StringComparison.Ordinal);
        }

        // The key's own data answers the same on both, and holds nothing of the other tenant.
        Probe[] own =
        [
            new("GET", "GetStudy", $"studies/{alphaStudy}", Id: alphaStudy),
            new("GET", "GetStudyFile", $"studies/{alphaStudy}/files/montage.png", Id: alphaStudy, Path: "montage.png"),
            new("GET", "ListStudies", "studies", $"?tenant={alpha}&tenant={beta}"),
            new("GET", "GetUsage", "usage", $"?tenant={alpha}&tenant={beta}"),
            new("GET", "ListWebhooks", "webhooks"),
        ];
        foreach (var probe in own)
        {
            var (azure, local) = await BothAsync(functions, http, probe, storedKey, localKey);
            Assert.True(azure.Status == 200, $"{probe.Method} {probe.Route}{probe.Query}: {azure.Status} {azure.Text}");
            AssertSame(probe, azure, local);
            Assert.DoesNotContain(beta, azure.Text, StringComparison.Ordinal);
            Assert.DoesNotContain(betaStudy, azure.Text, StringComparison.Ordinal);
        }

        // Nothing of the other tenant changed: its subscription, its (untested) deliveries, its open month.
        Assert.NotNull(await services.GetRequiredService<IWebhookSubscriptionStore>().GetAsync(beta, betaHook.Id, None));
        Assert.Single(await services.GetRequiredService<IWebhookSubscriptionStore>().ListAsync(beta, None));
        Assert.Empty(await services.GetRequiredService<IWebhookDeliveryLog>().ListAsync(beta, null, None));
        Assert.Null(await storage.Usage.GetClosedAsync(beta, lastMonth, None));
        var betaUsage = await new UsageQueries(storage.Usage, storage.Studies).MonthlyTotalsAsync(beta, UsageQueries.MonthOf(now), None);
        Assert.Equal((1, 3L, 1000L), (betaUsage.Studies, betaUsage.SlicesScreened, betaUsage.BytesStored));

        // Keys that are missing, unknown or revoked: 401 with one body on both.
        var probeOwn = new Probe("GET", "GetStudy", $"studies/{alphaStudy}", Id: alphaStudy);
        foreach (var (stored, local) in new[] { ((string?)null, (string?)null), (ApiKeyFormat.NewKey(), ApiKeyFormat.NewKey()) })
        {
            var (azure, loopback) = await BothAsync(functions, http, probeOwn, stored, local);
            Assert.Equal(401, azure.Status);
            AssertSame(probeOwn, azure, loopback);
        }

        var storedId = ApiKeyFormat.IdOf(ApiKeyFormat.Hash(storedKey));
        Assert.Equal(204, (await admin.RevokeAsync(storedId, None)).Status);
        var entries = System.Text.Json.Nodes.JsonNode.Parse(await File.ReadAllTextAsync(localKeys.FilePath))!.AsArray();
        entries.Remove(entries.Single(e => (string?)e!["key"] == localKey));
        await File.WriteAllTextAsync(localKeys.FilePath, entries.ToJsonString());
        var (revokedAzure, revokedLocal) = await BothAsync(functions, http, probeOwn, storedKey, localKey);
        Assert.Equal(401, revokedAzure.Status);
        AssertSame(probeOwn, revokedAzure, revokedLocal);
    }

    private static void AssertSame(Probe probe, FunctionAnswer azure, FunctionAnswer local)
    {
        var what = $"{probe.Method} {probe.Route}{probe.Query}";
        Assert.True(azure.Status == local.Status, $"{what}: Function app {azure.Status} {azure.Text}, local {local.Status} {local.Text}");
        Assert.True(azure.Text == local.Text, $"{what}: Function app {azure.Text}, local {local.Text}");
        Assert.Equal(azure.ContentType, local.ContentType);
        foreach (var header in new[] { "Cache-Control", "X-Content-Type-Options", "Retry-After" })
        {
            Assert.True(azure.Headers[header].ToString() == local.Headers[header].ToString(), $"{what}: {header} {azure.Headers[header]} vs {local.Headers[header]}");
        }
    }

    /// <summary>The probe sent to the Function app's function (with <paramref name="storedKey"/>) and over HTTP to the local server (with <paramref name="localKey"/>).</summary>
    private static async Task<(FunctionAnswer Azure, FunctionAnswer Local)> BothAsync(ApiFunctions functions, HttpClient http, Probe probe, string? storedKey, string? localKey)
    {
        var request = FunctionHttp.Request(probe.Method, storedKey, probe.Body, probe.Query);
        IActionResult result = probe.Function switch
        {
            "GetStudy" => await functions.GetStudy(request, probe.Id!),
            "GetStudyReport" => await functions.GetStudyReport(request, probe.Id!),
            "GetStudyFhir" => await functions.GetStudyFhir(request, probe.Id!),
            "GetStudyFile" => await functions.GetStudyFile(request, probe.Id!, probe.Path!),
            "ListStudies" => await functions.ListStudies(request),
            "GetUsage" => await functions.GetUsage(request),
            "CloseUsage" => await functions.CloseUsage(request, probe.Id!),
            "ListWebhooks" => await functions.ListWebhooks(request),
            "CreateWebhook" => await functions.CreateWebhook(request),
            "DeleteWebhook" => await functions.DeleteWebhook(request, probe.Id!),
            "TestWebhook" => await functions.TestWebhook(request, probe.Id!),
            "RotateWebhookSecret" => await functions.RotateWebhookSecret(request, probe.Id!),
            _ => throw new ArgumentException("no function " + probe.Function, nameof(probe)),
        };
        var azure = await FunctionHttp.Run(result);

        using var message = new HttpRequestMessage(new HttpMethod(probe.Method), new Uri("/api/" + probe.Route + probe.Query, UriKind.Relative));
        if (localKey is not null)
        {
            message.Headers.Add(LocalApiKeys.HeaderName, localKey);
        }

        if (probe.Body is not null)
        {
            message.Content = new StringContent(probe.Body, Encoding.UTF8, "application/json");
        }

        using var response = await http.SendAsync(message);
        var headers = new HeaderDictionary();
        foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
        {
            headers[name] = values.ToArray();
        }

        var local = new FunctionAnswer((int)response.StatusCode, response.Content.Headers.ContentType?.ToString() ?? "", await response.Content.ReadAsByteArrayAsync(), headers);
        return (azure, local);
    }
}
