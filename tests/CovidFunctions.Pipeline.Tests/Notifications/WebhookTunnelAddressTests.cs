using System.Net;
using CovidFunctions.Pipeline.Notifications;

namespace CovidFunctions.Pipeline.Tests.Notifications;

/// <summary>
/// IPv6 transition addresses that carry an IPv4 address: Teredo (2001::/32, refused whatever it embeds) and 6to4
/// (2002::/16, judged by the IPv4 address it embeds), at registration, before delivery and in the connect callback
/// (DNS rebinding). No test sends traffic to them.
/// </summary>
public sealed class WebhookTunnelAddressTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Theory]
    [InlineData("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook")] // RFC 4380's example: public server and client
    [InlineData("https://[2001:0:c000:201::f5ff:fff6]/hook")] // client 10.0.0.9 (inverted in the last 32 bits)
    [InlineData("https://[2001::1]/hook")]
    public async Task Validate_RefusesEveryTeredoAddress(string url)
    {
        var guard = new WebhookTargetGuard(new WebhookOptions(), new MapResolver((_, _) => throw new InvalidOperationException("a literal needs no lookup")));
        var ex = await Assert.ThrowsAsync<WebhookTargetRefusedException>(() => guard.ValidateAsync(url, None));
        Assert.Contains("Teredo tunnel", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("https://[2002:0a00:0009::1]/hook", "private")]
    [InlineData("https://[2002:7f00:0001::1]/hook", "loopback")]
    [InlineData("https://[2002:c0a8:0101::1]/hook", "private")]
    [InlineData("https://[2002:a9fe:a9fe::1]/hook", "cloud metadata")]
    public async Task Validate_Refuses6to4_EmbeddingAnInternalIPv4(string url, string reason)
    {
        var guard = new WebhookTargetGuard(new WebhookOptions(), new MapResolver((_, _) => throw new InvalidOperationException("a literal needs no lookup")));
        var ex = await Assert.ThrowsAsync<WebhookTargetRefusedException>(() => guard.ValidateAsync(url, None));
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_Accepts6to4_EmbeddingAPublicIPv4_AndANameResolvingToTeredoIsRefused()
    {
        var resolver = new MapResolver((host, _) => host == "tunnel.example.test" ? [IPAddress.Parse("2001:0:4136:e378:8000:63bf:3fff:fdd2")] : [IPAddress.Parse("2002:5db8:d822::1")]);
        var guard = new WebhookTargetGuard(new WebhookOptions(), resolver);
        Assert.Equal(new Uri("https://public6to4.example.test/hook"), await guard.ValidateAsync("https://public6to4.example.test/hook", None));
        var ex = await Assert.ThrowsAsync<WebhookTargetRefusedException>(() => guard.ValidateAsync("https://tunnel.example.test/hook", None));
        Assert.Contains("Teredo tunnel", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("2001:0", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Deliver_ANameThatNowResolvesToTeredo_IsDeadLetteredWithoutTraffic()
    {
        // Registration saw a public address; the pre-delivery check sees Teredo.
        var resolver = new MapResolver((_, call) => call == 1 ? [IPAddress.Parse("93.184.216.34")] : [IPAddress.Parse("2001:0:c000:201::f5ff:fff6")]);
        using var kit = new WebhookTestKit(WebhookTestKit.FastOptions() with { AllowLoopbackWebhooks = false }, resolver);
        await kit.SubscribeAsync(new Uri("https://hooks.example.test/in"));

        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);

        var delivery = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None));
        Assert.Equal(WebhookDeliveryStatus.DeadLettered, delivery.Status);
        Assert.Contains("Teredo tunnel", delivery.Error, StringComparison.Ordinal);
        Assert.Equal("refused", Assert.Single(await kit.Deliveries.GetAttemptsAsync(WebhookTestKit.Tenant, delivery.DeliveryId, None)).Outcome);
    }

    [Fact]
    public async Task Deliver_RebindingToTeredoBetweenCheckAndConnect_IsRefusedByTheConnectCallback()
    {
        // Calls 1 (registration) and 2 (the pre-delivery check) say public; call 3, in the connect callback, says Teredo.
        var resolver = new MapResolver((_, call) => call <= 2 ? [IPAddress.Parse("93.184.216.34")] : [IPAddress.Parse("2001:0:4136:e378:8000:63bf:3fff:fdd2")]);
        using var kit = new WebhookTestKit(WebhookTestKit.FastOptions() with { AllowLoopbackWebhooks = false }, resolver);
        await kit.SubscribeAsync(new Uri("https://rebind.example.test/in"));

        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);

        Assert.Equal(3, resolver.Calls);
        var delivery = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None));
        Assert.Equal(WebhookDeliveryStatus.DeadLettered, delivery.Status);
        Assert.Contains("Teredo tunnel", delivery.Error, StringComparison.Ordinal);
    }
}
