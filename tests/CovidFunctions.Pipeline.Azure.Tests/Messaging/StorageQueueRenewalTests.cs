using System.Collections.Concurrent;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Storage.Queues;
using CovidFunctions.Pipeline.Azure.Messaging;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Messaging;

namespace CovidFunctions.Pipeline.Azure.Tests.Messaging;

/// <summary>
/// Keeping a long chunk's message invisible on a Storage queue (Azurite) when a visibility renewal fails. The renewal
/// runs every half visibility timeout; before, a failed renewal waited a whole interval for the next try, which lands at
/// the very moment the message becomes visible again: one more failure there, and another consumer (here: the same
/// transport's free slot) received the chunk and scored it a second time while the first delivery still ran.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class StorageQueueRenewalTests(AzuriteFixture azurite)
{
    // Renewals at 4 s, 5 s and 6 s (every third of the timeout, then 1 s after a failure; the first two failing) against
    // a message visible again at 12 s: 6 s of margin for a loaded CI machine (at 6 s visibility the margin was 1 s, and
    // a whole-suite run on the loaded shared 2-core VM failed). Before the 1 s retry, the try after a failure waited a
    // whole interval (then half the timeout: 6 s, and 12 s, when the message turns visible). The handler outlasts the
    // visibility so a second delivery could happen.
    private static readonly TimeSpan Visibility = TimeSpan.FromSeconds(12);
    private static readonly TimeSpan HandlerTime = TimeSpan.FromSeconds(16);

    [Fact]
    public async Task A_failed_visibility_renewal_is_retried_soon_so_a_running_chunk_is_not_delivered_twice()
    {
        // The first two renewals fail (the service unreachable for a moment); the SDK does not retry them here, so the
        // transport's own schedule is what is tested.
        var faults = new FailingRenewals(failures: 2);
        var options = PipelineStorage.CreateQueueOptions(loopback: true);
        options.Retry.MaxRetries = 0;
        options.AddPolicy(faults, HttpPipelinePosition.PerRetry);
        var queues = new QueueServiceClient(azurite.Server.ConnectionString, options);
        var transport = new StorageQueueTransport(
            queues,
            azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.DeadLetterContainer),
            options: new StorageQueueTransportOptions { ErrorBackoff = TimeSpan.FromSeconds(1) });
        var queue = AzuriteFixture.NewQueue();
        await transport.SendAsync(queue, new QueueMessage("chunk-1", "{}"), CancellationToken.None);

        var deliveries = new ConcurrentQueue<int>();
        var firstDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var stop = new CancellationTokenSource();
        var consumer = transport.RunAsync(queue, async (message, _) =>
        {
            deliveries.Enqueue(message.DeliveryCount);
            if (message.DeliveryCount == 1)
            {
                await Task.Delay(HandlerTime, CancellationToken.None);
                firstDone.TrySetResult();
            }

            return Settlement.Complete;
        }, new ConsumerOptions { MaxConcurrency = 2, PollInterval = TimeSpan.FromMilliseconds(100), VisibilityTimeout = Visibility }, stop.Token);

        await firstDone.Task.WaitAsync(TimeSpan.FromMinutes(1));
        await Task.Delay(TimeSpan.FromSeconds(1));
        await stop.CancelAsync();
        await consumer;

        Assert.True(faults.Failed == 2, $"{faults.Failed} renewal(s) failed");
        Assert.True(deliveries.Count == 1, $"delivered {deliveries.Count} times ({string.Join(", ", deliveries)}) while the first delivery ran");
        Assert.Equal(0, (await queues.GetQueueClient(queue).GetPropertiesAsync()).Value.ApproximateMessagesCount);
    }

    [Fact]
    public async Task Once_the_message_is_no_longer_held_the_renewal_stops_instead_of_retrying_a_stale_receipt()
    {
        // Renewals every second (visibility 2 s) fail until the message has become visible and the second replica
        // has received it (and completes it, deleting it). The first delivery, still running, is refused its next
        // renewal (its receipt no longer holds the message): that is final, so it must not go on asking every second until
        // it ends. Failing until the second delivery, not a fixed number of times, keeps this independent of how fast a
        // loaded machine polls.
        var deliveries = new ConcurrentQueue<int>();
        var faults = new FailingRenewals(failures: int.MaxValue, failWhile: () => deliveries.Count < 2);
        var options = PipelineStorage.CreateQueueOptions(loopback: true);
        options.Retry.MaxRetries = 0;
        options.AddPolicy(faults, HttpPipelinePosition.PerRetry);
        var queues = new QueueServiceClient(azurite.Server.ConnectionString, options);
        var transport = new StorageQueueTransport(
            queues,
            azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.DeadLetterContainer),
            options: new StorageQueueTransportOptions { ErrorBackoff = TimeSpan.FromSeconds(1) });
        var queue = AzuriteFixture.NewQueue();
        await transport.SendAsync(queue, new QueueMessage("chunk-2", "{}"), CancellationToken.None);

        var firstDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var stop = new CancellationTokenSource();
        async Task<Settlement> HandleAsync(ReceivedMessage message, CancellationToken cancellationToken)
        {
            deliveries.Enqueue(message.DeliveryCount);
            if (message.DeliveryCount == 1)
            {
                await Task.Delay(TimeSpan.FromSeconds(9), CancellationToken.None);
                firstDone.TrySetResult();
            }

            return Settlement.Complete;
        }

        // Two replicas of one slot each: a redelivered message waits for the other handlers of its own replica
        // (DeliveryGate), so the second delivery runs beside the first only on the other one.
        var consumerOptions = new ConsumerOptions { MaxConcurrency = 1, PollInterval = TimeSpan.FromMilliseconds(100), VisibilityTimeout = TimeSpan.FromSeconds(2) };
        var consumers = new[]
        {
            transport.RunAsync(queue, HandleAsync, consumerOptions, stop.Token),
            transport.RunAsync(queue, HandleAsync, consumerOptions, stop.Token),
        };

        await firstDone.Task.WaitAsync(TimeSpan.FromMinutes(1));
        await stop.CancelAsync();
        await Task.WhenAll(consumers);

        Assert.Equal([1, 2], deliveries);
        Assert.True(faults.Refused == 1, $"{faults.Refused} renewal(s) refused by the service after the message was gone");
    }

    [Theory]
    [InlineData(30, 10)] // the scorer's default lock: renewed every 10 s, 20 s of failed renewals tolerated
    [InlineData(12, 4)]
    [InlineData(2, 1)] // never more often than every second
    public void A_running_message_is_renewed_every_third_of_its_visibility_timeout(int visibilitySeconds, int intervalSeconds)
    {
        // A third, not a half: a renewal failing from the moment one is due has two thirds of the timeout to get through
        // (at a half, 15 s of a 30 s timeout), while a dead consumer's message still comes back within one timeout.
        Assert.Equal(TimeSpan.FromSeconds(intervalSeconds), StorageQueueTransport.RenewalInterval(TimeSpan.FromSeconds(visibilitySeconds)));
    }

    /// <summary>
    /// Fails the first <c>failures</c> visibility updates (PUT …/messages/{id}?popreceipt=…) as a dropped connection, and
    /// with <c>failWhile</c> only while it holds.
    /// </summary>
    private sealed class FailingRenewals(int failures, Func<bool>? failWhile = null) : HttpPipelinePolicy
    {
        private int _updates;
        private int _failed;
        private int _refused;

        public int Failed => Volatile.Read(ref _failed);

        /// <summary>Visibility updates the service answered 400 or 404 (the pop receipt no longer holds the message).</summary>
        public int Refused => Volatile.Read(ref _refused);

        public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            var update = Fail(message);
            ProcessNext(message, pipeline);
            CountRefusal(message, update);
        }

        public override async ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            var update = Fail(message);
            await ProcessNextAsync(message, pipeline);
            CountRefusal(message, update);
        }

        private bool Fail(HttpMessage message)
        {
            if (message.Request.Method != RequestMethod.Put || !message.Request.Uri.Query.Contains("popreceipt=", StringComparison.OrdinalIgnoreCase))
            {
                return false;
            }

            if ((failWhile?.Invoke() ?? true) && Interlocked.Increment(ref _updates) <= failures)
            {
                Interlocked.Increment(ref _failed);
                throw new IOException("injected: the connection was reset during a visibility renewal");
            }

            return true;
        }

        private void CountRefusal(HttpMessage message, bool update)
        {
            if (update && message.HasResponse && message.Response.Status is 400 or 404)
            {
                Interlocked.Increment(ref _refused);
            }
        }
    }
}
