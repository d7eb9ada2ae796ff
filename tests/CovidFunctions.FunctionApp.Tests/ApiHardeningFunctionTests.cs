using System.Text;
using System.Text.Json.Nodes;
using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.DependencyInjection;
using static CovidFunctions.FunctionApp.Tests.FunctionHttp;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// The API hardening of session 9 through the Function app's composition root on the test's Azurite: the webhook test
/// endpoint's per-tenant limit holds across app instances (two service providers on one storage account are two
/// instances), the tenants-per-key cap of the mint endpoint, and the webhook port policy from configuration.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class ApiHardeningFunctionTests(AzuriteFixture azurite)
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task TestWebhook_TheLimitHoldsAcrossInstances_429WithRetryAfter()
    {
        using var temp = TestData.CreateTempDirectory();
        // Both instances on one clock stopped in the middle of an hour: the windows are aligned to the clock's hours, so on
        // the wall clock a run across hh:00 restarted the count between the calls (seen once, at 13:59).
        var clock = new StoppedMidHour();
        await using var first = SampleApp.Build(azurite, temp.Path, clock, ("Webhooks:TestRequestsPerWindow", "3"), ("Webhooks:TestRateWindow", "01:00:00"));
        await using var second = SampleApp.Build(azurite, temp.Path, clock, ("Webhooks:TestRequestsPerWindow", "3"), ("Webhooks:TestRateWindow", "01:00:00"));
        var tenant = "rl-" + Guid.NewGuid().ToString("N")[..10];
        var key = (await first.GetRequiredService<ApiKeyAdmin>().MintAsync([tenant], None)).Key;

        // A loopback target nobody listens on (the sample settings allow loopback): each test is one refused connection.
        var created = await Run(await Api(first).CreateWebhook(Request("POST", key, $$"""{"url":"http://127.0.0.1:{{ClosedPort()}}/hook"}""")));
        Assert.Equal(201, created.Status);
        var id = (string)JsonNode.Parse(created.Body)!["webhook"]!["id"]!;

        // Without a vault each instance keeps secrets in its own memory: give the second one the secret too.
        var secretName = WebhookIds.SecretName(tenant, id);
        await second.GetRequiredService<IWebhookSecretStore>().SetAsync(secretName, (await first.GetRequiredService<IWebhookSecretStore>().GetAsync(secretName, None))!, None);

        var statuses = new List<int>();
        string? retryAfter = null;
        for (var i = 0; i < 5; i++)
        {
            var answer = await Run(await Api(i % 2 == 0 ? first : second).TestWebhook(Request("POST", key), id));
            statuses.Add(answer.Status);
            retryAfter ??= answer.Status == 429 ? answer.Headers.RetryAfter.ToString() : null;
        }

        // One window (the clock stands still): the count cannot restart between the calls. Per-process counts would allow 3 per instance.
        Assert.Equal([200, 200, 200, 429, 429], statuses);
        Assert.True(int.TryParse(retryAfter, out var seconds) && seconds is >= 1 and <= 3600, $"Retry-After '{retryAfter}'");
        var row = await new CovidFunctions.Pipeline.Azure.Webhooks.TableRateWindowStore(azurite.Storage.Tables).GetAsync(WebhookTestRateLimiter.Scope, tenant, None);
        Assert.Equal(3, row!.Count);
    }

    [Fact]
    public async Task TestWebhook_ConcurrentCallsOnTwoInstances_NeverPassTheLimit()
    {
        using var temp = TestData.CreateTempDirectory();
        var clock = new StoppedMidHour();
        await using var first = SampleApp.Build(azurite, temp.Path, clock, ("Webhooks:TestRateWindow", "01:00:00"));
        await using var second = SampleApp.Build(azurite, temp.Path, clock, ("Webhooks:TestRateWindow", "01:00:00"));
        var tenant = "rc-" + Guid.NewGuid().ToString("N")[..10];
        var limiters = new[] { first.GetRequiredService<WebhookTestRateLimiter>(), second.GetRequiredService<WebhookTestRateLimiter>() };

        var decisions = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => Task.Run(() => limiters[i % 2].TryAcquireAsync(tenant, None))));

        Assert.InRange(decisions.Count(d => d.Allowed), 1, 5);
        var row = await new CovidFunctions.Pipeline.Azure.Webhooks.TableRateWindowStore(azurite.Storage.Tables).GetAsync(WebhookTestRateLimiter.Scope, tenant, None);
        Assert.Equal(decisions.Count(d => d.Allowed), row!.Count);
    }

    [Fact]
    public async Task MintApiKey_MoreTenantsThanTheCap_Is400_WithTheCapInTheMessage()
    {
        using var temp = TestData.CreateTempDirectory();
        await using var services = Build(temp.Path, ("ApiKeys:MaxTenantsPerKey", "3"));
        var admin = ActivatorUtilities.CreateInstance<ApiKeyFunctions>(services);
        var before = (await services.GetRequiredService<IApiKeyStore>().ListAsync(None)).Count;

        var refused = await Run(await admin.MintApiKey(Request("POST", body: """{"tenants":["t1","t2","t3","t4"]}""")));
        Assert.Equal(400, refused.Status);
        Assert.Contains("at most 3 tenants, not 4 (ApiKeys:MaxTenantsPerKey)", Encoding.UTF8.GetString(refused.Body), StringComparison.Ordinal);
        Assert.Equal(before, (await services.GetRequiredService<IApiKeyStore>().ListAsync(None)).Count);

        // Repeated names count once; three distinct tenants are within the cap.
        Assert.Equal(201, (await Run(await admin.MintApiKey(Request("POST", body: """{"tenants":["t1","t2","t3","t1"]}""")))).Status);
    }

    [Fact]
    public async Task MintApiKey_TheDefaultCapIs25()
    {
        using var temp = TestData.CreateTempDirectory();
        await using var services = Build(temp.Path, ("ApiKeys:MaxTenantsPerKey", null));
        var admin = services.GetRequiredService<ApiKeyAdmin>();
        string[] Tenants(int n) => [.. Enumerable.Range(0, n).Select(i => $"cap-{i}")];

        Assert.Equal(25, (await admin.MintAsync(Tenants(25), None)).Tenants.Count);
        var ex = await Assert.ThrowsAsync<ArgumentException>(() => admin.MintAsync(Tenants(26), None));
        Assert.StartsWith("a key may be bound to at most 25 tenants, not 26", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CreateWebhook_PortPolicyComesFromConfiguration()
    {
        using var temp = TestData.CreateTempDirectory();
        await using var services = Build(temp.Path, ("Webhooks:AllowLoopbackWebhooks", "false"));
        var key = (await services.GetRequiredService<ApiKeyAdmin>().MintAsync(["pp-" + Guid.NewGuid().ToString("N")[..10]], None)).Key;

        // An IP literal: refused on its port before any lookup or connection.
        var refused = await Run(await Api(services).CreateWebhook(Request("POST", key, """{"url":"https://93.184.216.34:8443/hook"}""")));
        Assert.Equal(422, refused.Status);
        Assert.Contains("port 8443 is not allowed for webhook targets (allowed: 443)", Encoding.UTF8.GetString(refused.Body), StringComparison.Ordinal);

        // A setting that is no port list stops the app at start-up rather than refusing (or allowing) every target.
        var ex = Assert.Throws<FormatException>(() => Build(temp.Path, ("Webhooks:AllowedPorts", "443;8443")));
        Assert.Contains("Webhooks:AllowedPorts", ex.Message, StringComparison.Ordinal);
    }

    private static ApiFunctions Api(IServiceProvider services) => ActivatorUtilities.CreateInstance<ApiFunctions>(services);

    private static int ClosedPort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    private ServiceProvider Build(string keyDirectory, params (string Key, string? Value)[] overrides) => SampleApp.Build(azurite, keyDirectory, overrides);

    /// <summary>The wall clock's current hour at half past, standing still: every call falls in one hour-long window.</summary>
    private sealed class StoppedMidHour : TimeProvider
    {
        private readonly DateTimeOffset _now;

        public StoppedMidHour()
        {
            var wall = System.GetUtcNow();
            _now = new DateTimeOffset(wall.Year, wall.Month, wall.Day, wall.Hour, 30, 0, TimeSpan.Zero);
        }

        public override DateTimeOffset GetUtcNow() => _now;
    }
}
