using CovidFunctions.Pipeline.Notifications;

namespace CovidFunctions.Pipeline.Tests.Notifications;

/// <summary>
/// A retry run takes up to <see cref="WebhookRetryHandler.BatchSize"/> due deliveries, <see cref="WebhookRetryHandler.Parallelism"/>
/// at a time, each attempt up to the attempt timeout: a delivery reached late in a long run is leased from when it is
/// claimed, so no other worker finds it due (and sends the same attempt again) while its attempt is in flight.
/// </summary>
public sealed class WebhookRetryLeaseTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task Retry_ClaimedLateInALongRun_IsLeasedFromItsClaim_NotFromTheRunsStart()
    {
        WebhookTestKit? kitRef = null;
        int? dueDuringAttempt = null;
        await using var receiver = await WebhookReceiver.StartAsync(i =>
        {
            if (i == 1)
            {
                // The retry is in flight: what another worker's run would find due now.
                var kit = kitRef!;
                dueDuringAttempt = kit.Deliveries.ListDueAsync(kit.Clock.GetUtcNow(), 10, None).GetAwaiter().GetResult().Count;
            }

            return new ReceiverReply(i == 0 ? 503 : 200);
        });
        using var kit = new WebhookTestKit();
        kitRef = kit;
        await kit.SubscribeAsync(receiver.Url);
        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);
        var due = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None));
        Assert.Equal(WebhookDeliveryStatus.Pending, due.Status);

        // The run started when the delivery was due; slow receivers ahead of it in the batch took longer than a lease.
        var runStart = due.NextAttemptAt!.Value;
        kit.Clock.AdvanceTo(runStart + kit.Options.AttemptLease + TimeSpan.FromMinutes(1));
        var after = await kit.Retries.RetryAsync(due, runStart, None);

        Assert.NotNull(after);
        Assert.Equal(WebhookDeliveryStatus.Delivered, after.Status);
        Assert.Equal(2, receiver.Received.Count);
        Assert.Equal(0, dueDuringAttempt);
    }
}
