using System.Net;
using CovidFunctions.Pipeline.Notifications;

namespace CovidFunctions.Pipeline.Tests.Notifications;

/// <summary>
/// The SSRF guard. No test sends traffic anywhere but 127.0.0.1: refused targets are refused before any connection,
/// and names are mapped by a test resolver.
/// </summary>
public sealed class WebhookTargetGuardTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    private static readonly MapResolver Names = new((host, _) => host switch
    {
        "internal.example.test" => [IPAddress.Parse("192.168.1.10")],
        "mixed.example.test" => [IPAddress.Parse("93.184.216.34"), IPAddress.Parse("10.0.0.7")],
        "metadata.example.test" => [IPAddress.Parse("169.254.169.254")],
        "public.example.test" => [IPAddress.Parse("93.184.216.34")],
        _ => throw new System.Net.Sockets.SocketException((int)System.Net.Sockets.SocketError.HostNotFound),
    });

    [Theory]
    [InlineData("http://127.0.0.1:8080/hook", "only https")]
    [InlineData("https://127.0.0.1/hook", "loopback")]
    [InlineData("https://127.8.9.10/hook", "loopback")]
    [InlineData("https://10.1.2.3/hook", "private")]
    [InlineData("https://172.16.0.5/hook", "private")]
    [InlineData("https://192.168.0.1/hook", "private")]
    [InlineData("https://100.64.0.1/hook", "carrier-grade NAT")]
    [InlineData("https://169.254.169.254/latest/meta-data", "cloud metadata")]
    [InlineData("https://169.254.10.1/hook", "link-local")]
    [InlineData("https://0.0.0.0/hook", "unspecified")]
    [InlineData("https://224.0.0.1/hook", "multicast")]
    [InlineData("https://[::1]/hook", "loopback")]
    [InlineData("https://[::]/hook", "unspecified")]
    [InlineData("https://[fe80::1]/hook", "link-local")]
    [InlineData("https://[fc00::1]/hook", "unique-local")]
    [InlineData("https://[fd00:ec2::254]/hook", "cloud metadata")]
    [InlineData("https://[::ffff:10.0.0.1]/hook", "private")]
    [InlineData("https://[::ffff:169.254.169.254]/hook", "cloud metadata")]
    [InlineData("https://[64:ff9b::a00:1]/hook", "private")]
    [InlineData("https://internal.example.test/hook", "private")]
    [InlineData("https://mixed.example.test/hook", "private")]
    [InlineData("https://metadata.example.test/hook", "cloud metadata")]
    [InlineData("https://user:pw@public.example.test/hook", "credentials")]
    [InlineData("ftp://public.example.test/hook", "only https")]
    [InlineData("http://public.example.test/hook", "only https")]
    [InlineData("https://nowhere.example.test/hook", "does not resolve")]
    public async Task Validate_RefusesInternalTargets(string url, string reason)
    {
        var guard = new WebhookTargetGuard(new WebhookOptions(), Names);
        var ex = await Assert.ThrowsAsync<WebhookTargetRefusedException>(() => guard.ValidateAsync(url, None));
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_RefusesLocalhost_ByItsRealResolution()
    {
        // The system resolver: localhost resolves to loopback addresses.
        var guard = new WebhookTargetGuard(new WebhookOptions());
        var ex = await Assert.ThrowsAsync<WebhookTargetRefusedException>(() => guard.ValidateAsync("https://localhost/hook", None));
        Assert.Contains("loopback", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_AcceptsAPublicHttpsTarget()
    {
        var guard = new WebhookTargetGuard(new WebhookOptions(), Names);
        var uri = await guard.ValidateAsync("https://public.example.test/hook", None);
        Assert.Equal("public.example.test", uri.Host);
    }

    [Theory]
    [InlineData("http://127.0.0.1:9000/hook")]
    [InlineData("http://localhost:9000/hook")]
    [InlineData("http://[::1]:9000/hook")]
    public async Task Validate_WithTheLoopbackAllowance_AcceptsHttpLoopback(string url)
    {
        // The system resolver: localhost really resolves (to loopback only).
        var guard = new WebhookTargetGuard(new WebhookOptions { AllowLoopbackWebhooks = true });
        await guard.ValidateAsync(url, None);
    }

    [Theory]
    [InlineData("http://10.0.0.1/hook", "only https")]
    [InlineData("https://10.0.0.1/hook", "private")]
    [InlineData("http://public.example.test/hook", "only https")]
    [InlineData("https://169.254.169.254/hook", "cloud metadata")]
    [InlineData("http://internal.example.test/hook", "only https")]
    public async Task Validate_WithTheLoopbackAllowance_StillRefusesEverythingElse(string url, string reason)
    {
        var guard = new WebhookTargetGuard(new WebhookOptions { AllowLoopbackWebhooks = true }, Names);
        var ex = await Assert.ThrowsAsync<WebhookTargetRefusedException>(() => guard.ValidateAsync(url, None));
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Register_RefusesA127Target_WithoutTheAllowance()
    {
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(200));
        using var kit = new WebhookTestKit(WebhookTestKit.FastOptions() with { AllowLoopbackWebhooks = false });
        await Assert.ThrowsAsync<WebhookTargetRefusedException>(() => kit.Manager.AddAsync(WebhookTestKit.Tenant, receiver.Url.ToString(), null, null, None));
        Assert.Empty(await kit.Subscriptions.ListAsync(null, None));
        Assert.Empty(receiver.Received);
    }

    [Fact]
    public async Task Deliver_ChecksAgain_ATargetThatNowResolvesPrivately_IsDeadLetteredWithoutTraffic()
    {
        // Registered while the name resolved publicly; by delivery time it resolves to 10.0.0.9.
        var resolver = new MapResolver((_, call) => call == 1 ? [IPAddress.Parse("93.184.216.34")] : [IPAddress.Parse("10.0.0.9")]);
        using var kit = new WebhookTestKit(WebhookTestKit.FastOptions() with { AllowLoopbackWebhooks = false }, resolver);
        await kit.SubscribeAsync(new Uri("https://hooks.example.test/in"));

        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);

        var delivery = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None));
        Assert.Equal(WebhookDeliveryStatus.DeadLettered, delivery.Status);
        Assert.Contains("a private address", delivery.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("10.0.0.9", delivery.Error, StringComparison.Ordinal);
        var attempt = Assert.Single(await kit.Deliveries.GetAttemptsAsync(WebhookTestKit.Tenant, delivery.DeliveryId, None));
        Assert.Equal("refused", attempt.Outcome);
    }

    [Fact]
    public async Task Deliver_DnsRebindingBetweenCheckAndConnect_IsRefusedByTheConnectCallback()
    {
        // Call 1 (registration) and 2 (the pre-delivery check) say public; call 3, in the connect callback, says metadata.
        var resolver = new MapResolver((_, call) => call <= 2 ? [IPAddress.Parse("93.184.216.34")] : [IPAddress.Parse("169.254.169.254")]);
        using var kit = new WebhookTestKit(WebhookTestKit.FastOptions() with { AllowLoopbackWebhooks = false }, resolver);
        await kit.SubscribeAsync(new Uri("https://rebind.example.test/in"));

        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);

        Assert.Equal(3, resolver.Calls);
        var delivery = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None));
        Assert.Equal(WebhookDeliveryStatus.DeadLettered, delivery.Status);
        Assert.Contains("cloud metadata", delivery.Error, StringComparison.Ordinal);
        Assert.Equal(1, delivery.Attempts);
    }

    [Fact]
    public async Task FileSecretStore_KeepsSecretsInA0600File()
    {
        using var dir = CovidFunctions.TestHelpers.TestData.CreateTempDirectory();
        var store = new FileWebhookSecretStore(dir.Path);
        await store.SetAsync("webhook-alpha-wh1", "whsec_first_secret_value", None);
        await store.SetAsync("webhook-alpha-wh2", "whsec_second_secret_value", None);
        await store.DeleteAsync("webhook-alpha-wh1", None);

        Assert.Null(await new FileWebhookSecretStore(dir.Path).GetAsync("webhook-alpha-wh1", None));
        Assert.Equal("whsec_second_secret_value", await new FileWebhookSecretStore(dir.Path).GetAsync("webhook-alpha-wh2", None));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(store.FilePath));
        }
    }
}
