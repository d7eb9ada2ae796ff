using System.Net;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Notifications;

namespace CovidFunctions.Pipeline.Tests.Notifications;

/// <summary>
/// Ways of spelling an internal address that an SSRF guard can miss (decimal, octal, hex and short IPv4 forms,
/// IPv4-mapped and -compatible IPv6, Azure's platform address), and what a refusal tells the caller.
/// No test sends traffic: every target is refused before a connection.
/// </summary>
public sealed class WebhookSsrfBypassTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    private static readonly MapResolver Names = new((host, _) => host switch
    {
        "db.internal.example.test" => [IPAddress.Parse("192.168.1.10")],
        "wire.example.test" => [IPAddress.Parse("168.63.129.16")],
        _ => throw new System.Net.Sockets.SocketException((int)System.Net.Sockets.SocketError.HostNotFound),
    });

    [Theory]
    [InlineData("https://2130706433/hook", "loopback")]
    [InlineData("https://0177.0.0.1/hook", "loopback")]
    [InlineData("https://0x7f.0.0.1/hook", "loopback")]
    [InlineData("https://127.1/hook", "loopback")]
    [InlineData("https://0/hook", "unspecified")]
    [InlineData("https://[::ffff:127.0.0.1]/hook", "loopback")]
    [InlineData("https://[::ffff:7f00:1]/hook", "loopback")]
    [InlineData("https://[0:0:0:0:0:ffff:a9fe:a9fe]/hook", "cloud metadata")]
    [InlineData("https://[::127.0.0.1]/hook", "reserved")]
    [InlineData("https://[2002:a9fe:a9fe::1]/hook", "cloud metadata")]
    [InlineData("https://2852039166/latest/meta-data", "cloud metadata")]
    [InlineData("https://100.127.255.254/hook", "carrier-grade NAT")]
    [InlineData("https://168.63.129.16/machine", "Azure platform")]
    [InlineData("https://[::ffff:168.63.129.16]/machine", "Azure platform")]
    [InlineData("https://wire.example.test/machine", "Azure platform")]
    public async Task Validate_RefusesInternalAddressesInEverySpelling(string url, string reason)
    {
        var guard = new WebhookTargetGuard(new WebhookOptions(), Names);
        var ex = await Assert.ThrowsAsync<WebhookTargetRefusedException>(() => guard.ValidateAsync(url, None));
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Refusal_OfAName_DoesNotRevealWhatItResolvesTo()
    {
        // A caller could otherwise map internal DNS names to their private addresses through the 422 text.
        var guard = new WebhookTargetGuard(new WebhookOptions(), Names);
        var ex = await Assert.ThrowsAsync<WebhookTargetRefusedException>(() => guard.ValidateAsync("https://db.internal.example.test/hook", None));
        Assert.Contains("private", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("192.168", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Api_422ForAnInternalName_DoesNotRevealWhatItResolvesTo()
    {
        using var kit = new WebhookTestKit(WebhookTestKit.FastOptions() with { AllowLoopbackWebhooks = false }, Names);
        var api = new ResultsApi(kit.Studies, new CovidFunctions.Pipeline.Storage.FileSystemBlobContainers(Path.GetTempPath()), new CovidFunctions.Pipeline.Metering.UsageQueries(new CovidFunctions.Pipeline.Storage.InMemoryUsageStore(), kit.Studies), kit.Manager, new ResultsApiOptions());

        var response = await api.CreateWebhookAsync(ApiCaller.ForTenants("alpha"), new CreateWebhookRequest("https://db.internal.example.test/hook", null, null, null), None);

        Assert.Equal(422, response.Status);
        Assert.DoesNotContain("192.168", response.BodyText, StringComparison.Ordinal);
        Assert.Empty(await kit.Subscriptions.ListAsync(null, None));
    }
}
