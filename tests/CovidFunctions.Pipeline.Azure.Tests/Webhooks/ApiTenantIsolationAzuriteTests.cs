using System.Net;
using System.Text;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Azure.Webhooks;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Azure.Tests.Webhooks;

/// <summary>
/// A tenant-bound key attacking another tenant's data through the results API on real storage (Azurite's blobs and
/// tables behind Kestrel on 127.0.0.1): encoded, doubly encoded, overlong-UTF-8 and backslash path tricks on the files
/// route, and another tenant's study and subscription by id. The blob service and the storage SDK each decode and
/// normalise names their own way, so what the in-memory stores show is checked here on the real ones.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class ApiTenantIsolationAzuriteTests(AzuriteFixture azurite)
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task ATenantBoundKey_ReachesNoOtherTenantsFileStudyOrSubscription_OnRealStorage()
    {
        var storage = azurite.Storage;
        var alpha = AzuriteFixture.NewTenant();
        var beta = AzuriteFixture.NewTenant();
        var alphaStudy = "s" + Guid.NewGuid().ToString("N")[..24];
        var betaStudy = "s" + Guid.NewGuid().ToString("N")[..24];
        var results = storage.BlobContainers.Get(PipelineNames.ResultsContainer);
        foreach (var (tenant, study) in new[] { (alpha, alphaStudy), (beta, betaStudy) })
        {
            await storage.Studies.TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = study, Status = StudyStatus.Completed, CreatedAt = DateTimeOffset.UtcNow, UploadPath = "upload.zip" }, None);
            await results.WriteAsync($"{tenant}/{study}/montage.png", new MemoryStream(Encoding.UTF8.GetBytes("montage of " + tenant)), None);
        }

        var webhookStorage = new WebhookStorage(storage.Tables);
        await webhookStorage.EnsureCreatedAsync(None);
        var options = new WebhookOptions { AllowLoopbackWebhooks = true };
        var guard = new WebhookTargetGuard(options);
        using var dispatcher = new WebhookDispatcher(guard, webhookStorage.Deliveries, options, TimeProvider.System, NullLogger<WebhookDispatcher>.Instance);
        var manager = new WebhookManager(webhookStorage.Subscriptions, new InMemoryWebhookSecretStore(), webhookStorage.Deliveries, guard, dispatcher, options, TimeProvider.System);
        var betaHook = (await manager.AddAsync(beta, "http://127.0.0.1:9/beta", null, null, None)).Subscription;
        var api = new ResultsApi(storage.Studies, storage.BlobContainers, new UsageQueries(storage.Usage, storage.Studies), manager, new ResultsApiOptions());
        using var temp = TestData.CreateTempDirectory();
        var keys = new LocalApiKeys(temp.Path);
        var alphaKey = await keys.AddKeyAsync([alpha], None);

        await using var app = ResultsApiEndpoints.BuildLoopbackHost(api, keys, 0);
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = ResultsApiEndpoints.ListeningAddress(app) };

        var (ownStatus, ownBody) = await SendAsync(http, HttpMethod.Get, $"/api/studies/{alphaStudy}/files/montage.png", alphaKey);
        Assert.Equal(HttpStatusCode.OK, ownStatus);
        Assert.Equal("montage of " + alpha, ownBody);

        var files = $"/api/studies/{alphaStudy}/files/";
        var target = $"{beta}/{betaStudy}/montage.png";
        string[] attacks =
        [
            files + "../../" + target,
            files + Uri.EscapeDataString("../../" + target),
            files + Uri.EscapeDataString("../../" + target).Replace("%", "%25", StringComparison.Ordinal),
            files + "x" + Uri.EscapeDataString("/../../../" + target),
            files + "%2e%2e/%2e%2e/" + target,
            files + ".%2E/.%2E/" + target,
            files + ("../../" + target).Replace("/", "%5C", StringComparison.Ordinal),
            files + "%C0%AE%C0%AE/%C0%AE%C0%AE/" + target,
            files + "..;/..;/" + target,
            files + "%2F" + target,
            files + "/" + target,
            $"/api/studies/{alphaStudy}%2F..%2F..%2F{beta}%2F{betaStudy}/files/montage.png",
            $"/api/studies/{betaStudy}/files/montage.png",
            $"/api/studies/{betaStudy}/files/montage.png?tenant={beta}",
            $"/api/studies/{betaStudy}?tenant={beta}",
            $"/api/studies/{betaStudy}/report",
            $"/api/studies/{betaStudy}/fhir",
        ];
        foreach (var path in attacks)
        {
            var (status, body) = await SendAsync(http, HttpMethod.Get, path, alphaKey);
            Assert.True(status is HttpStatusCode.NotFound or HttpStatusCode.BadRequest, $"{path}: {(int)status} {body}");
            Assert.DoesNotContain("montage of " + beta, body, StringComparison.Ordinal);
        }

        // Another tenant's subscription, by id alone or naming its tenant: 404, and it is still there.
        foreach (var (method, path) in new[]
        {
            (HttpMethod.Delete, $"/api/webhooks/{betaHook.Id}"),
            (HttpMethod.Delete, $"/api/webhooks/{betaHook.Id}?tenant={beta}"),
            (HttpMethod.Post, $"/api/webhooks/{betaHook.Id}/test"),
            (HttpMethod.Post, $"/api/webhooks/{betaHook.Id}/test?tenant={beta}"),
        })
        {
            var (status, body) = await SendAsync(http, method, path, alphaKey);
            Assert.True(status == HttpStatusCode.NotFound, $"{method} {path}: {(int)status} {body}");
        }

        Assert.NotNull(await webhookStorage.Subscriptions.GetAsync(beta, betaHook.Id, None));
        Assert.Empty(await webhookStorage.Deliveries.ListAsync(beta, null, None));
    }

    private static async Task<(HttpStatusCode Status, string Body)> SendAsync(HttpClient http, HttpMethod method, string path, string key)
    {
        using var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative));
        request.Headers.Add(LocalApiKeys.HeaderName, key);
        using var response = await http.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }
}
