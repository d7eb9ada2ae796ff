using System.Net;
using System.Text.Json;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Tests.Notifications;

namespace CovidFunctions.Pipeline.Tests.Api;

/// <summary>
/// The webhook routes as a tenant-bound key would attack them: another tenant's subscription by id (DELETE, test),
/// and a tenant filling the table with subscriptions. Over real HTTP (Kestrel on 127.0.0.1, local keys).
/// </summary>
public sealed class WebhookTenantIsolationTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task ATenantBoundKey_FindsASubscriptionById_InItsOwnTenantsOnly_NeverReadingOtherTenantsRows()
    {
        // Before, DELETE /api/webhooks/{id} and POST /api/webhooks/{id}/test without ?tenant= read every tenant's
        // subscriptions (the whole table) for a tenant-bound key and dropped the other tenants' in memory: another
        // tenant's rows were read for it, and each guessed id cost a scan of the table.
        using var kit = new ApiTestKit();
        var w = kit.Webhooks;
        var own = await w.Manager.AddAsync("alpha", "http://127.0.0.1:9/alpha", null, null, None);
        var foreign = await w.Manager.AddAsync("beta", "http://127.0.0.1:9/beta", null, null, None);
        var subscriptions = new SubscriptionReadLog(w.Subscriptions);
        var manager = new WebhookManager(subscriptions, w.Secrets, w.Deliveries, w.Guard, w.Dispatcher, w.Options, TimeProvider.System);
        var api = new ResultsApi(kit.Studies, kit.Containers, new CovidFunctions.Pipeline.Metering.UsageQueries(kit.Usage, kit.Studies), manager, new ResultsApiOptions());
        var keys = new LocalApiKeys(kit.Temp.Path);
        var alphaKey = await keys.AddKeyAsync(["alpha", "gamma"], None);
        await using var server = await ApiHttpServer.StartAsync(api, keys);
        var http = server.Http;

        using var foreignTest = await ApiHttpServer.Send(http, HttpMethod.Post, $"/api/webhooks/{foreign.Subscription.Id}/test", alphaKey);
        using var foreignDelete = await ApiHttpServer.Send(http, HttpMethod.Delete, $"/api/webhooks/{foreign.Subscription.Id}", alphaKey);
        Assert.Equal(HttpStatusCode.NotFound, foreignTest.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, foreignDelete.StatusCode);
        Assert.NotNull(await w.Subscriptions.GetAsync("beta", foreign.Subscription.Id, None));

        using var ownDelete = await ApiHttpServer.Send(http, HttpMethod.Delete, $"/api/webhooks/{own.Subscription.Id}", alphaKey);
        Assert.Equal(HttpStatusCode.NoContent, ownDelete.StatusCode);
        Assert.Null(await w.Subscriptions.GetAsync("alpha", own.Subscription.Id, None));

        // Point reads in the key's tenants only: no list of every tenant, and nothing of beta's read at all.
        Assert.Empty(subscriptions.Lists);
        Assert.DoesNotContain("beta", subscriptions.Reads);
        Assert.Contains("gamma", subscriptions.Reads);
    }

    [Fact]
    public async Task ATenant_MayHoldAtMostMaxSubscriptions_TheNextIs409_AndNothingIsStored()
    {
        // Before, a tenant could add subscriptions without end: each study event then fans out to every one of them (one
        // outbound request each, all at once in the notify activity), and each stores a secret in Key Vault.
        using var kit = new ApiTestKit();
        var keys = new LocalApiKeys(kit.Temp.Path);
        var alphaKey = await keys.AddKeyAsync(["alpha"], None);
        var operatorKey = await keys.GetOrCreateOperatorKeyAsync(None);
        await using var server = await ApiHttpServer.StartAsync(kit.Api, keys);
        var http = server.Http;
        using (var viaApi = await ApiHttpServer.Send(http, HttpMethod.Post, "/api/webhooks", alphaKey, new { url = "http://127.0.0.1:9/hook0" }))
        {
            Assert.Equal(HttpStatusCode.Created, viaApi.StatusCode);
        }

        // The rest added by the operator's CLI path (the API limits how many are created per minute: the next test).
        for (var i = 1; i < ResultsApi.MaxWebhooksPerTenant; i++)
        {
            await kit.Webhooks.Manager.AddAsync("alpha", $"http://127.0.0.1:9/hook{i}", null, null, None);
        }

        using var refused = await ApiHttpServer.Send(http, HttpMethod.Post, "/api/webhooks", alphaKey, new { url = "http://127.0.0.1:9/one-more" });
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        using var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
        Assert.Equal(
            $"tenant 'alpha' already has {ResultsApi.MaxWebhooksPerTenant} webhook subscriptions (the most a tenant may have): remove one first (DELETE /api/webhooks/{{id}})",
            error.RootElement.GetProperty("error").GetString());
        Assert.Equal(ResultsApi.MaxWebhooksPerTenant, (await kit.Webhooks.Subscriptions.ListAsync("alpha", None)).Count);

        // The cap is per tenant, whichever key asks; another tenant is not affected, and a removal makes room again.
        using var operatorRefused = await ApiHttpServer.Send(http, HttpMethod.Post, "/api/webhooks", operatorKey, new { url = "http://127.0.0.1:9/op", tenant = "alpha" });
        Assert.Equal(HttpStatusCode.Conflict, operatorRefused.StatusCode);
        using var beta = await ApiHttpServer.Send(http, HttpMethod.Post, "/api/webhooks", operatorKey, new { url = "http://127.0.0.1:9/beta", tenant = "beta" });
        Assert.Equal(HttpStatusCode.Created, beta.StatusCode);
        var first = (await kit.Webhooks.Subscriptions.ListAsync("alpha", None))[0];
        using var removed = await ApiHttpServer.Send(http, HttpMethod.Delete, $"/api/webhooks/{first.Id}", alphaKey);
        Assert.Equal(HttpStatusCode.NoContent, removed.StatusCode);
        using var again = await ApiHttpServer.Send(http, HttpMethod.Post, "/api/webhooks", alphaKey, new { url = "http://127.0.0.1:9/again" });
        Assert.Equal(HttpStatusCode.Created, again.StatusCode);
    }

    [Fact]
    public async Task Creates_AreLimitedPerTenantAndWindow_429WithRetryAfter_AnotherTenantUnaffected()
    {
        // Before, the bound on what a tenant holds (MaxWebhooksPerTenant) did not bound how fast it deletes and re-creates:
        // each create and delete writes a secret to the one Key Vault every tenant's deliveries read from, and each
        // create resolves a host name the tenant chose, as often as the key can send requests.
        using var kit = new ApiTestKit();
        var clock = new SkippableClock();
        var api = new ResultsApi(kit.Studies, kit.Containers, new CovidFunctions.Pipeline.Metering.UsageQueries(kit.Usage, kit.Studies), kit.Webhooks.Manager, new ResultsApiOptions(), WebhookTestRateLimiter.InMemory(new WebhookOptions(), clock));
        var keys = new LocalApiKeys(kit.Temp.Path);
        var alphaKey = await keys.AddKeyAsync(["alpha"], None);
        var betaKey = await keys.AddKeyAsync(["beta"], None);
        await using var server = await ApiHttpServer.StartAsync(api, keys);
        var http = server.Http;

        // Created and deleted at once: what is counted is the creates, not the subscriptions held.
        clock.AdvanceTo(new DateTimeOffset(clock.GetUtcNow().UtcDateTime.Date.AddDays(1), TimeSpan.Zero));
        for (var i = 0; i < ResultsApi.MaxWebhookCreatesPerWindow; i++)
        {
            using var created = await ApiHttpServer.Send(http, HttpMethod.Post, "/api/webhooks", alphaKey, new { url = $"http://127.0.0.1:9/churn{i}" });
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            using var json = JsonDocument.Parse(await created.Content.ReadAsStringAsync());
            using var deleted = await ApiHttpServer.Send(http, HttpMethod.Delete, $"/api/webhooks/{json.RootElement.GetProperty("webhook").GetProperty("id").GetString()}", alphaKey);
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        using var refused = await ApiHttpServer.Send(http, HttpMethod.Post, "/api/webhooks", alphaKey, new { url = "http://127.0.0.1:9/one-more" });
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        var retryAfter = refused.Headers.RetryAfter!.Delta!.Value;
        Assert.InRange(retryAfter, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(60));
        using var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
        Assert.Equal(
            $"at most {ResultsApi.MaxWebhookCreatesPerWindow} webhook subscriptions created per 60 s per tenant; retry after {retryAfter.TotalSeconds:0} s",
            error.RootElement.GetProperty("error").GetString());
        Assert.Empty(await kit.Webhooks.Subscriptions.ListAsync("alpha", None));

        using var beta = await ApiHttpServer.Send(http, HttpMethod.Post, "/api/webhooks", betaKey, new { url = "http://127.0.0.1:9/beta" });
        Assert.Equal(HttpStatusCode.Created, beta.StatusCode);

        // The next window allows creates again.
        clock.Advance(TimeSpan.FromMinutes(1));
        using var again = await ApiHttpServer.Send(http, HttpMethod.Post, "/api/webhooks", alphaKey, new { url = "http://127.0.0.1:9/again" });
        Assert.Equal(HttpStatusCode.Created, again.StatusCode);
    }

    /// <summary>Records which tenants' subscriptions are read (point reads and lists) and passes everything through.</summary>
    private sealed class SubscriptionReadLog(IWebhookSubscriptionStore inner) : IWebhookSubscriptionStore
    {
        public List<string> Reads { get; } = [];

        public List<string?> Lists { get; } = [];

        public Task CreateAsync(WebhookSubscription subscription, CancellationToken cancellationToken) => inner.CreateAsync(subscription, cancellationToken);

        public Task<bool> TryCreateWithinLimitAsync(WebhookSubscription subscription, int maxPerTenant, CancellationToken cancellationToken) =>
            inner.TryCreateWithinLimitAsync(subscription, maxPerTenant, cancellationToken);

        public Task<WebhookSubscription?> GetAsync(string tenant, string id, CancellationToken cancellationToken)
        {
            lock (Reads)
            {
                Reads.Add(tenant);
            }

            return inner.GetAsync(tenant, id, cancellationToken);
        }

        public Task<IReadOnlyList<WebhookSubscription>> ListAsync(string? tenant, CancellationToken cancellationToken)
        {
            lock (Lists)
            {
                Lists.Add(tenant);
            }

            return inner.ListAsync(tenant, cancellationToken);
        }

        public Task<bool> DeleteAsync(string tenant, string id, CancellationToken cancellationToken) => inner.DeleteAsync(tenant, id, cancellationToken);

        public Task<WebhookSubscription?> TryReplaceAsync(WebhookSubscription subscription, CancellationToken cancellationToken) => inner.TryReplaceAsync(subscription, cancellationToken);
    }
}
