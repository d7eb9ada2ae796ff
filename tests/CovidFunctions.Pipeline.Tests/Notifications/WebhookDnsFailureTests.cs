using System.Net;
using System.Net.Sockets;
using CovidFunctions.Pipeline.Notifications;

namespace CovidFunctions.Pipeline.Tests.Notifications;

/// <summary>
/// A DNS failure at delivery time (the resolver timing out, SERVFAIL, the receiver's zone briefly gone) is an outage
/// like a refused connection: the attempt is retried on the schedule, not dead-lettered at once. An address the guard
/// refuses stays a permanent refusal.
/// </summary>
public sealed class WebhookDnsFailureTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Theory]
    [InlineData(2, SocketError.TryAgain)]
    [InlineData(2, SocketError.HostNotFound)]
    [InlineData(3, SocketError.TryAgain)]
    public async Task ResolutionFailingOnce_AtTheCheckOrInTheConnect_IsRetried_AndTheEventIsDelivered(int failingCall, SocketError error)
    {
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(200));

        // Call 1 is the registration's check, 2 the first attempt's check, 3 its connect callback.
        var resolver = new MapResolver((host, call) => call == failingCall
            ? throw new SocketException((int)error)
            : host == "localhost" ? [IPAddress.Loopback] : throw new SocketException((int)SocketError.HostNotFound));
        using var kit = new WebhookTestKit(resolver: resolver);
        await kit.SubscribeAsync(new UriBuilder(receiver.Url) { Host = "localhost" }.Uri);

        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);

        var first = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None));
        Assert.Equal(WebhookDeliveryStatus.Pending, first.Status);
        Assert.Empty(receiver.Received);
        var attempt = Assert.Single(await kit.Deliveries.GetAttemptsAsync(WebhookTestKit.Tenant, first.DeliveryId, None));
        Assert.Equal("dns-error", attempt.Outcome);
        Assert.Contains("does not resolve", attempt.Error, StringComparison.Ordinal);

        Assert.Equal(1, await kit.RunRetriesUntilSettledAsync());
        Assert.Single(receiver.Received);
        Assert.Equal(WebhookDeliveryStatus.Delivered, Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None)).Status);
    }

    [Fact]
    public async Task ResolutionFailingEveryTime_IsDeadLetteredAfterTheLastRetry()
    {
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(200));
        var resolver = new MapResolver((_, call) => call == 1 ? [IPAddress.Loopback] : throw new SocketException((int)SocketError.TryAgain));
        using var kit = new WebhookTestKit(resolver: resolver);
        await kit.SubscribeAsync(new UriBuilder(receiver.Url) { Host = "localhost" }.Uri);

        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);
        await kit.RunRetriesUntilSettledAsync();

        var delivery = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None));
        Assert.Equal(WebhookDeliveryStatus.DeadLettered, delivery.Status);
        Assert.Equal(kit.Options.MaxRetries + 1, delivery.Attempts);
        Assert.Contains("does not resolve", delivery.Error, StringComparison.Ordinal);
        Assert.Empty(receiver.Received);
    }

    [Fact]
    public async Task ANameThatNowResolvesToAPrivateAddress_IsStillRefusedAtOnce()
    {
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(200));
        var resolver = new MapResolver((_, call) => call == 1 ? [IPAddress.Loopback] : [IPAddress.Parse("10.0.0.7")]);
        using var kit = new WebhookTestKit(resolver: resolver);
        await kit.SubscribeAsync(new UriBuilder(receiver.Url) { Host = "localhost" }.Uri);

        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);

        var delivery = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None));
        Assert.Equal(WebhookDeliveryStatus.DeadLettered, delivery.Status);
        Assert.Equal(1, delivery.Attempts);
        Assert.Contains("private", delivery.Error, StringComparison.Ordinal);
        Assert.Empty(receiver.Received);
    }
}
