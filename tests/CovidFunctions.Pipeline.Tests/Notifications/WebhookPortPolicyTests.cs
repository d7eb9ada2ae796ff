using System.Net;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Notifications;

namespace CovidFunctions.Pipeline.Tests.Notifications;

/// <summary>
/// The webhook port policy: https targets on 443 only unless <see cref="WebhookOptions.AllowedPorts"/> lists more;
/// loopback receivers under the local allowance on any port. Checked at registration, before each attempt and in the
/// connect callback. No test sends traffic anywhere: names are mapped by a resolver that counts its calls, and a
/// refused port is refused before any lookup.
/// </summary>
public sealed class WebhookPortPolicyTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    private static MapResolver PublicNames() => new((_, _) => [IPAddress.Parse("93.184.216.34")]);

    [Theory]
    [InlineData("https://public.example.test:8443/hook", 8443)]
    [InlineData("https://public.example.test:22/hook", 22)]
    [InlineData("https://public.example.test:80/hook", 80)]
    [InlineData("https://public.example.test:25/hook", 25)]
    [InlineData("https://93.184.216.34:6379/hook", 6379)]
    public async Task Register_ByDefault_RefusesAnyPortBut443_BeforeResolvingTheHost(string url, int port)
    {
        var resolver = PublicNames();
        var guard = new WebhookTargetGuard(new WebhookOptions(), resolver);

        var ex = await Assert.ThrowsAsync<WebhookTargetRefusedException>(() => guard.ValidateAsync(url, None));

        Assert.Equal($"port {port} is not allowed for webhook targets (allowed: 443)", ex.Message);
        Assert.Equal(0, resolver.Calls);
    }

    [Theory]
    [InlineData("https://public.example.test/hook")]
    [InlineData("https://public.example.test:443/hook")]
    public async Task Register_ByDefault_AcceptsHttpsOn443(string url)
    {
        var guard = new WebhookTargetGuard(new WebhookOptions(), PublicNames());
        Assert.Equal(443, (await guard.ValidateAsync(url, None)).Port);
    }

    [Fact]
    public async Task AllowedPorts_AddsPorts_AndTheListIsExact()
    {
        var guard = new WebhookTargetGuard(new WebhookOptions { AllowedPorts = " 443, 8443 " }, PublicNames());

        Assert.Equal(8443, (await guard.ValidateAsync("https://public.example.test:8443/hook", None)).Port);
        Assert.Equal(443, (await guard.ValidateAsync("https://public.example.test/hook", None)).Port);
        var ex = await Assert.ThrowsAsync<WebhookTargetRefusedException>(() => guard.ValidateAsync("https://public.example.test:8080/hook", None));
        Assert.Equal("port 8080 is not allowed for webhook targets (allowed: 443, 8443)", ex.Message);
    }

    [Fact]
    public async Task AllowedPorts_WithoutThe443Default_Refuses443()
    {
        var guard = new WebhookTargetGuard(new WebhookOptions { AllowedPorts = "8443" }, PublicNames());
        await Assert.ThrowsAsync<WebhookTargetRefusedException>(() => guard.ValidateAsync("https://public.example.test/hook", None));
    }

    [Theory]
    [InlineData("")]
    [InlineData(" , ")]
    [InlineData("443;8443")]
    [InlineData("0")]
    [InlineData("65536")]
    [InlineData("-1")]
    [InlineData("https")]
    public void AllowedPorts_ThatIsNoPortList_FailsWhereTheGuardIsBuilt(string value)
    {
        var ex = Assert.Throws<FormatException>(() => new WebhookTargetGuard(new WebhookOptions { AllowedPorts = value }));
        Assert.Contains("Webhooks:AllowedPorts", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://127.0.0.1:9000/hook")]
    [InlineData("https://127.0.0.1:9443/hook")]
    [InlineData("http://localhost:1/hook")]
    [InlineData("http://[::1]:65000/hook")]
    public async Task LoopbackAllowance_AcceptsAnyPort_OnLoopbackOnly(string url)
    {
        // The system resolver: localhost resolves to loopback. Local receivers (tests, covidfn up) listen on free ports.
        var guard = new WebhookTargetGuard(new WebhookOptions { AllowLoopbackWebhooks = true });
        await guard.ValidateAsync(url, None);
    }

    [Fact]
    public async Task LoopbackAllowance_DoesNotOpenOtherPortsOnPublicHosts()
    {
        var guard = new WebhookTargetGuard(new WebhookOptions { AllowLoopbackWebhooks = true }, PublicNames());
        var ex = await Assert.ThrowsAsync<WebhookTargetRefusedException>(() => guard.ValidateAsync("https://public.example.test:9000/hook", None));
        Assert.Contains("port 9000", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Deliver_ToAStoredSubscriptionOnAPortNoLongerAllowed_IsDeadLetteredWithoutLookupOrTraffic()
    {
        // A subscription stored before the policy (or under a wider AllowedPorts): the send-time check refuses it.
        var resolver = PublicNames();
        using var kit = new WebhookTestKit(WebhookTestKit.FastOptions() with { AllowLoopbackWebhooks = false }, resolver);
        await kit.Studies.TryCreateAsync(WebhookTestKit.CompletedStudy(), None);
        await kit.Secrets.SetAsync("webhook-alpha-wh0123456789abcdef0123", "whsec_test_secret_0123456789", None);
        await kit.Subscriptions.CreateAsync(
            new WebhookSubscription
            {
                Tenant = WebhookTestKit.Tenant,
                Id = "wh0123456789abcdef0123",
                Url = new Uri("https://hooks.example.test:8443/in"),
                EventTypes = [.. StudyEventTypes.All],
                SecretName = "webhook-alpha-wh0123456789abcdef0123",
                Active = true,
                CreatedAt = DateTimeOffset.UtcNow,
            },
            None);

        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);

        var delivery = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None));
        Assert.Equal(WebhookDeliveryStatus.DeadLettered, delivery.Status);
        Assert.Contains("port 8443 is not allowed", delivery.Error, StringComparison.Ordinal);
        var attempt = Assert.Single(await kit.Deliveries.GetAttemptsAsync(WebhookTestKit.Tenant, delivery.DeliveryId, None));
        Assert.Equal("refused", attempt.Outcome);
        Assert.Equal(0, resolver.Calls);
    }

    [Fact]
    public async Task ConnectCallback_RefusesAPortNotAllowed_EvenWhenTheUrlWasNotChecked()
    {
        // The delivery client's own handler: a request that skipped CheckForm still cannot connect to another port.
        var resolver = PublicNames();
        var guard = new WebhookTargetGuard(new WebhookOptions(), resolver);
        using var client = new HttpClient(guard.CreateHandler());

        var ex = await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync(new Uri("https://public.example.test:8443/"), None));

        var refusal = Assert.IsType<WebhookTargetRefusedException>(ex.InnerException);
        Assert.Contains("port 8443", refusal.Message, StringComparison.Ordinal);
        Assert.Equal(0, resolver.Calls);
    }

    [Fact]
    public async Task ApiCreateWebhook_OnAPortNotAllowed_Is422_AndStoresNothing()
    {
        using var kit = new WebhookTestKit(WebhookTestKit.FastOptions() with { AllowLoopbackWebhooks = false }, PublicNames());
        using var temp = CovidFunctions.TestHelpers.TestData.CreateTempDirectory();
        var api = new ResultsApi(kit.Studies, new CovidFunctions.Pipeline.Storage.FileSystemBlobContainers(temp.Path), new CovidFunctions.Pipeline.Metering.UsageQueries(new CovidFunctions.Pipeline.Storage.InMemoryUsageStore(), kit.Studies), kit.Manager, new ResultsApiOptions());

        var response = await api.CreateWebhookAsync(ApiCaller.ForTenants(WebhookTestKit.Tenant), new CreateWebhookRequest("https://hooks.example.test:2375/in", null, null, null), None);

        Assert.Equal(422, response.Status);
        Assert.Contains("port 2375 is not allowed", response.BodyText, StringComparison.Ordinal);
        Assert.Empty(await kit.Subscriptions.ListAsync(null, None));
    }
}
