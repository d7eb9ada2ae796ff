using System.Collections.Concurrent;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Storage.Queues;
using CovidFunctions.Pipeline.Azure.Messaging;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Messaging;

namespace CovidFunctions.Pipeline.Azure.Tests.Messaging;

/// <summary>
/// A visibility renewal still in flight when its handler finishes. The service may already have applied it (a new pop
/// receipt) when the transport stops the renewal; before, stopping it cancelled the request, so the transport never read
/// the new receipt, its delete with the old one was refused (PopReceiptMismatch) and the finished chunk came back after
/// its visibility timeout to be scored a second time.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class StorageQueueRenewalRaceTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task A_renewal_in_flight_when_the_handler_finishes_is_waited_for_so_the_message_is_deleted_not_delivered_again()
    {
        // Visibility 4 s: the renewal goes out at 1.3 s (a third of it); the service applies it, and its answer is held
        // 3 s. The handler ends at 3 s, while the answer is held.
        var held = new HeldRenewalAnswer(TimeSpan.FromSeconds(3));
        var options = PipelineStorage.CreateQueueOptions(loopback: true);
        options.Retry.MaxRetries = 0;
        options.AddPolicy(held, HttpPipelinePosition.PerRetry);
        var queues = new QueueServiceClient(azurite.Server.ConnectionString, options);
        var transport = new StorageQueueTransport(queues, azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.DeadLetterContainer));
        var queue = AzuriteFixture.NewQueue();
        await transport.SendAsync(queue, new QueueMessage("chunk-race", "{}"), CancellationToken.None);

        var deliveries = new ConcurrentQueue<int>();
        using var stop = new CancellationTokenSource();
        var consumer = transport.RunAsync(queue, async (message, _) =>
        {
            deliveries.Enqueue(message.DeliveryCount);
            if (message.DeliveryCount == 1)
            {
                await Task.Delay(TimeSpan.FromSeconds(3), CancellationToken.None);
            }

            return Settlement.Complete;
        }, new ConsumerOptions { MaxConcurrency = 2, PollInterval = TimeSpan.FromMilliseconds(100), VisibilityTimeout = TimeSpan.FromSeconds(4) }, stop.Token);

        // Long enough for the message, were it not deleted, to be visible again (4 s after the applied renewal) and taken.
        await Task.Delay(TimeSpan.FromSeconds(14));
        await stop.CancelAsync();
        await consumer;

        Assert.True(held.Held >= 1, "no renewal was held");
        Assert.Equal([1], deliveries);
        Assert.Equal(0, (await queues.GetQueueClient(queue).GetPropertiesAsync()).Value.ApproximateMessagesCount);
    }

    /// <summary>Lets the first visibility renewal (PUT with a pop receipt and a timeout above 0) reach the service, then holds its answer.</summary>
    private sealed class HeldRenewalAnswer(TimeSpan hold) : HttpPipelinePolicy
    {
        private int _held;

        public int Held => Volatile.Read(ref _held);

        public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline) =>
            ProcessAsync(message, pipeline).AsTask().GetAwaiter().GetResult();

        public override async ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            await ProcessNextAsync(message, pipeline);
            var query = message.Request.Uri.Query;
            if (message.Request.Method == RequestMethod.Put
                && query.Contains("popreceipt=", StringComparison.OrdinalIgnoreCase)
                && !query.Contains("visibilitytimeout=0", StringComparison.OrdinalIgnoreCase)
                && Interlocked.Increment(ref _held) == 1)
            {
                await Task.Delay(hold, message.CancellationToken);
            }
        }
    }
}
