using System.Net;
using CovidFunctions.Pipeline.Notifications;

namespace CovidFunctions.Pipeline.Tests.Notifications;

/// <summary>
/// The special-purpose address ranges the SSRF guard refuses besides the internal ones: documentation, benchmarking,
/// discard-only and retired anycast ranges are no public unicast, so no webhook receiver can be there.
/// </summary>
public sealed class WebhookSpecialPurposeRangeTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    /// <summary>A name that resolves to one address of each range, to check the resolved path as well as literals.</summary>
    private static readonly MapResolver Names = new((host, _) => host switch
    {
        "doc.example.test" => [IPAddress.Parse("203.0.113.7")],
        "discard.example.test" => [IPAddress.Parse("2606:4700::1111"), IPAddress.Parse("100::1")],
        _ => throw new System.Net.Sockets.SocketException((int)System.Net.Sockets.SocketError.HostNotFound),
    });

    [Theory]
    [InlineData("https://192.0.2.1/hook", "documentation")]
    [InlineData("https://198.51.100.20/hook", "documentation")]
    [InlineData("https://203.0.113.255/hook", "documentation")]
    [InlineData("https://[::ffff:198.51.100.20]/hook", "documentation")]
    [InlineData("https://192.88.99.1/hook", "reserved")]
    [InlineData("https://[100::1]/hook", "discard-only")]
    [InlineData("https://[2001:2::1]/hook", "benchmarking")]
    [InlineData("https://[3fff:123::1]/hook", "documentation")]
    [InlineData("https://[3fff:fff:ffff::1]/hook", "documentation")]
    [InlineData("https://[2002:c000:201::1]/hook", "documentation")]
    [InlineData("https://doc.example.test/hook", "documentation")]
    [InlineData("https://discard.example.test/hook", "discard-only")]
    public async Task Validate_RefusesSpecialPurposeRanges(string url, string reason)
    {
        // Before, these were accepted as public: the guard refused 2001:db8::/32 and 198.18/15 but not the IPv4
        // documentation nets, 2001:2::/48, 100::/64 or 3fff::/20.
        var guard = new WebhookTargetGuard(new WebhookOptions(), Names);
        var ex = await Assert.ThrowsAsync<WebhookTargetRefusedException>(() => guard.ValidateAsync(url, None));
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("https://[5f00::1]/hook", "SRv6 segment identifier")]
    [InlineData("https://[5f00:ffff:ffff::1]/hook", "SRv6 segment identifier")]
    [InlineData("https://[64:ff9b:1::a00:1]/hook", "reserved")]
    [InlineData("https://[64:ff9b:1:a00:1::]/hook", "reserved")]
    public async Task Validate_RefusesSrv6SegmentIdentifiers_AndTheNat64LocalUsePrefix(string url, string reason)
    {
        // Before, 5f00::/16 (RFC 9602: SRv6 segment identifiers, routed only inside an operator's segment-routing
        // domain; not globally reachable in the IANA special-purpose registry) passed as public. The NAT64 local-use
        // prefix 64:ff9b:1::/48 (RFC 8215), whose translator may map it to a private IPv4 address (64:ff9b:1::a00:1 to
        // 10.0.0.1), was and is refused as part of ::/8: pinned here.
        var guard = new WebhookTargetGuard(new WebhookOptions(), Names);
        var ex = await Assert.ThrowsAsync<WebhookTargetRefusedException>(() => guard.ValidateAsync(url, None));
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("5eff:ffff::1")]
    [InlineData("5f01::1")]
    [InlineData("192.0.3.1")]
    [InlineData("198.51.101.1")]
    [InlineData("203.0.112.1")]
    [InlineData("2001:3::1")]
    [InlineData("100:0:0:1::1")]
    [InlineData("3ffe::1")]
    [InlineData("3fff:1000::1")]
    [InlineData("2606:4700::1111")]
    public void NeighboursOfThoseRanges_AreStillPublic(string address)
    {
        Assert.Null(WebhookTargetGuard.RefusalReason(IPAddress.Parse(address), allowLoopback: false));
    }
}
