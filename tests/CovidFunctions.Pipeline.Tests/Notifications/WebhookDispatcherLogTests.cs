using System.Net;
using System.Net.Sockets;
using CovidFunctions.Pipeline.Notifications;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Tests.Notifications;

/// <summary>
/// What the dispatcher's log lines tell an operator (docs/operations.md, entries 7-9), against a real receiver on
/// 127.0.0.1. A dead-lettered event is never sent again, and its delivery id is a hash, so the warning must say whose
/// event it was (tenant, study, subscription) for the operator to tell the receiver's owner which study it missed. An
/// attempt that got no HTTP answer said "(HTTP (null))" (found in the session-22 incident drill).
/// </summary>
public sealed class WebhookDispatcherLogTests
{
    [Fact]
    public async Task A_dead_lettered_delivery_is_logged_with_its_tenant_study_and_subscription()
    {
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(401));
        using var kit = new WebhookTestKit();
        var logger = new RecordingLogger<WebhookDispatcher>();
        using var dispatcher = new WebhookDispatcher(kit.Guard, kit.Deliveries, kit.Options, kit.Clock, logger);
        var notifier = new WebhookNotifier(kit.Studies, kit.Subscriptions, kit.Secrets, kit.Deliveries, dispatcher, kit.Options, kit.Clock, NullLogger<WebhookNotifier>.Instance);
        var created = await kit.SubscribeAsync(receiver.Url);

        await notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, CancellationToken.None);

        var deadLetter = Assert.Single(logger.Messages, m => m.Text.Contains("dead-lettered", StringComparison.Ordinal));
        Assert.Equal(LogLevel.Warning, deadLetter.Level);
        Assert.Contains($"study {WebhookTestKit.Tenant}/{WebhookTestKit.StudyId}", deadLetter.Text, StringComparison.Ordinal);
        Assert.Contains($"subscription {created.Subscription.Id}", deadLetter.Text, StringComparison.Ordinal);
        Assert.Contains("HTTP 401: not retried", deadLetter.Text, StringComparison.Ordinal);
        Assert.DoesNotContain("Doe", deadLetter.Text, StringComparison.Ordinal); // the upload path stays out
        var attempt = Assert.Single(logger.Messages, m => m.Text.Contains("attempt 1:", StringComparison.Ordinal));
        Assert.EndsWith("rejected-status (HTTP 401)", attempt.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_attempt_that_got_no_HTTP_answer_says_so()
    {
        // A loopback port nothing listens on: taken, then released, so the connection is refused.
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        using var kit = new WebhookTestKit();
        var logger = new RecordingLogger<WebhookDispatcher>();
        using var dispatcher = new WebhookDispatcher(kit.Guard, kit.Deliveries, kit.Options, kit.Clock, logger);
        var notifier = new WebhookNotifier(kit.Studies, kit.Subscriptions, kit.Secrets, kit.Deliveries, dispatcher, kit.Options, kit.Clock, NullLogger<WebhookNotifier>.Instance);
        await kit.SubscribeAsync(new Uri($"http://127.0.0.1:{port}/hook"));

        await notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, CancellationToken.None);

        var attempt = Assert.Single(logger.Messages, m => m.Text.Contains("attempt 1:", StringComparison.Ordinal));
        Assert.EndsWith("connection-error (no HTTP answer)", attempt.Text, StringComparison.Ordinal);
        Assert.DoesNotContain("null", attempt.Text, StringComparison.Ordinal);
        Assert.Equal(WebhookDeliveryStatus.Pending, Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, CancellationToken.None)).Status);
    }
}
