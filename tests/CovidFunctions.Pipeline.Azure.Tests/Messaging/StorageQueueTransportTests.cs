using System.Collections.Concurrent;
using CovidFunctions.Pipeline.Azure.Messaging;
using CovidFunctions.Pipeline.Messaging;

namespace CovidFunctions.Pipeline.Azure.Tests.Messaging;

[Collection(AzuriteCollection.Name)]
public sealed class StorageQueueTransportTests(AzuriteFixture azurite)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    private StorageQueueTransport NewTransport() => azurite.Storage.CreateQueueTransport(options: new StorageQueueTransportOptions { RetryBaseDelay = TimeSpan.FromMilliseconds(100) });

    private static ConsumerOptions Fast(int maxDeliveryCount = 5, int concurrency = 1) => new()
    {
        MaxDeliveryCount = maxDeliveryCount,
        MaxConcurrency = concurrency,
        PollInterval = TimeSpan.FromMilliseconds(100),
        VisibilityTimeout = TimeSpan.FromSeconds(10),
    };

    /// <summary>Runs the consumer until <paramref name="done"/> completes (or the patience runs out), then stops it.</summary>
    private static async Task RunUntilAsync(StorageQueueTransport transport, string queue, Func<ReceivedMessage, CancellationToken, Task<Settlement>> handler, ConsumerOptions options, Task done)
    {
        using var stop = new CancellationTokenSource();
        var consumer = transport.RunAsync(queue, handler, options, stop.Token);
        var finished = await Task.WhenAny(done, Task.Delay(Patience));
        await stop.CancelAsync();
        await consumer;
        Assert.True(finished == done, "the consumer did not reach the expected state in time");
        await done;
    }

    private async Task<int> QueueLengthAsync(string queue)
    {
        var properties = await azurite.Storage.Queues.GetQueueClient(queue).GetPropertiesAsync();
        return properties.Value.ApproximateMessagesCount;
    }

    [Fact]
    public async Task Sent_messages_are_received_with_their_id_and_body_and_completed()
    {
        var queue = AzuriteFixture.NewQueue();
        var transport = NewTransport();
        for (var i = 0; i < 5; i++)
        {
            await transport.SendAsync(queue, new QueueMessage($"m{i}", $"{{\"i\":{i}}}"), CancellationToken.None);
        }

        var received = new ConcurrentDictionary<string, ReceivedMessage>();
        var all = new TaskCompletionSource();
        await RunUntilAsync(transport, queue, (message, _) =>
        {
            received[message.MessageId] = message;
            if (received.Count == 5)
            {
                all.TrySetResult();
            }

            return Task.FromResult(Settlement.Complete);
        }, Fast(concurrency: 3), all.Task);

        Assert.Equal(Enumerable.Range(0, 5).Select(i => $"m{i}"), received.Keys.Order());
        Assert.All(received.Values, m => Assert.Equal(1, m.DeliveryCount));
        Assert.Equal("{\"i\":3}", received["m3"].Body);
        Assert.Equal(0, await QueueLengthAsync(queue));
    }

    [Fact]
    public async Task A_failing_handler_is_retried_then_dead_lettered_with_the_exception_message()
    {
        var queue = AzuriteFixture.NewQueue();
        var transport = NewTransport();
        await transport.SendAsync(queue, new QueueMessage("poison-1", "{\"bad\":true}"), CancellationToken.None);
        var deliveries = new ConcurrentQueue<int>();
        var deadLetters = azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.DeadLetterContainer);
        var path = DeadLetterRecord.PathOf(queue, "poison-1", 3);

        var deadLettered = Task.Run(async () =>
        {
            while (!await deadLetters.GetBlobClient(path).ExistsAsync())
            {
                await Task.Delay(100);
            }
        });
        await RunUntilAsync(transport, queue, (message, _) =>
        {
            deliveries.Enqueue(message.DeliveryCount);
            throw new InvalidDataException("tile chunk 7 is truncated");
        }, Fast(maxDeliveryCount: 3), deadLettered);

        Assert.Equal([1, 2, 3], deliveries);
        var content = await deadLetters.GetBlobClient(path).DownloadContentAsync();
        var record = PipelineJson.Deserialize<DeadLetterRecord>(content.Value.Content.ToString());
        Assert.Equal(queue, record.Queue);
        Assert.Equal("poison-1", record.MessageId);
        Assert.Equal(3, record.DeliveryCount);
        Assert.Equal("{\"bad\":true}", record.Body);
        Assert.Contains("tile chunk 7 is truncated", record.Reason, StringComparison.Ordinal);
        Assert.Equal(0, await QueueLengthAsync(queue));
    }

    [Fact]
    public async Task A_handler_can_dead_letter_at_once_with_its_reason()
    {
        var queue = AzuriteFixture.NewQueue();
        var transport = NewTransport();
        await transport.SendAsync(queue, new QueueMessage("reject/1", "{}"), CancellationToken.None);
        var handled = new TaskCompletionSource();
        var deadLetters = azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.DeadLetterContainer);

        await RunUntilAsync(transport, queue, (_, _) =>
        {
            handled.TrySetResult();
            return Task.FromResult(new Settlement(SettlementAction.DeadLetter, "not a chunk request"));
        }, Fast(), handled.Task);

        var path = DeadLetterRecord.PathOf(queue, "reject/1", 1);
        Assert.Equal($"{queue}/reject_1-1.json", path);
        var record = PipelineJson.Deserialize<DeadLetterRecord>((await deadLetters.GetBlobClient(path).DownloadContentAsync()).Value.Content.ToString());
        Assert.Equal("not a chunk request", record.Reason);
        Assert.Equal(0, await QueueLengthAsync(queue));
    }

    [Fact]
    public async Task A_message_held_by_a_crashed_consumer_is_redelivered_after_its_visibility_timeout()
    {
        var queue = AzuriteFixture.NewQueue();
        var transport = NewTransport();
        await transport.SendAsync(queue, new QueueMessage("chunk-1", "{\"chunk\":1}"), CancellationToken.None);

        // A consumer takes the message for 2 s and dies without settling it.
        var crashed = await azurite.Storage.Queues.GetQueueClient(queue).ReceiveMessagesAsync(1, TimeSpan.FromSeconds(2));
        Assert.Single(crashed.Value);

        var redelivered = new TaskCompletionSource<ReceivedMessage>();
        await RunUntilAsync(transport, queue, (message, _) =>
        {
            redelivered.TrySetResult(message);
            return Task.FromResult(Settlement.Complete);
        }, Fast(), redelivered.Task);

        var message = await redelivered.Task;
        Assert.Equal(("chunk-1", 2), (message.MessageId, message.DeliveryCount));
        Assert.Equal(0, await QueueLengthAsync(queue));
    }

    [Fact]
    public async Task A_message_over_its_delivery_count_is_dead_lettered_without_running_the_handler()
    {
        var queue = AzuriteFixture.NewQueue();
        var transport = NewTransport();
        await transport.SendAsync(queue, new QueueMessage("crasher", "{}"), CancellationToken.None);
        var raw = azurite.Storage.Queues.GetQueueClient(queue);
        for (var i = 0; i < 2; i++)
        {
            // Two consumers crash on it (each receive counts a delivery); the visibility lapses at once.
            var taken = await raw.ReceiveMessagesAsync(1, TimeSpan.FromSeconds(1));
            var single = Assert.Single(taken.Value);
            await raw.UpdateMessageAsync(single.MessageId, single.PopReceipt, visibilityTimeout: TimeSpan.Zero);
        }

        var deadLetters = azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.DeadLetterContainer);
        var path = DeadLetterRecord.PathOf(queue, "crasher", 3);
        var handlerRan = false;
        var deadLettered = Task.Run(async () =>
        {
            while (!await deadLetters.GetBlobClient(path).ExistsAsync())
            {
                await Task.Delay(100);
            }
        });
        await RunUntilAsync(transport, queue, (_, _) =>
        {
            handlerRan = true;
            return Task.FromResult(Settlement.Complete);
        }, Fast(maxDeliveryCount: 2), deadLettered);

        Assert.False(handlerRan);
        Assert.Equal(0, await QueueLengthAsync(queue));
    }

    [Fact]
    public async Task A_handler_still_running_after_the_consumer_stops_keeps_its_message_invisible_until_it_settles()
    {
        // The scorer's drain: receiving stops, the handler in flight finishes on its own token (Scorer:DrainTimeout,
        // 100 s). Before, the visibility renewal was tied to the consumer's token and ended at the stop, so the message
        // became visible again after its timeout and another replica scored it a second time while this one finished.
        var queue = AzuriteFixture.NewQueue();
        var transport = NewTransport();
        await transport.SendAsync(queue, new QueueMessage("draining", "{}"), CancellationToken.None);
        var started = new TaskCompletionSource();
        var finish = new TaskCompletionSource();
        var options = Fast() with { VisibilityTimeout = TimeSpan.FromSeconds(2) };
        using var stop = new CancellationTokenSource();
        var consumer = transport.RunAsync(queue, async (_, _) =>
        {
            started.TrySetResult();
            await finish.Task;
            return Settlement.Complete;
        }, options, stop.Token);

        await started.Task.WaitAsync(Patience);
        await stop.CancelAsync();

        // Three visibility timeouts while the handler drains: the message must never be visible to another consumer.
        var raw = azurite.Storage.Queues.GetQueueClient(queue);
        var seenVisible = false;
        var drainEnds = DateTime.UtcNow + TimeSpan.FromSeconds(6);
        while (DateTime.UtcNow < drainEnds && !seenVisible)
        {
            seenVisible = (await raw.PeekMessagesAsync(1)).Value.Length > 0;
            await Task.Delay(250);
        }

        finish.SetResult();
        await consumer.WaitAsync(Patience);

        Assert.False(seenVisible, "the message became visible while its handler was still draining");
        Assert.Equal(0, await QueueLengthAsync(queue));
    }

    [Fact]
    public async Task A_handler_still_running_at_the_visibility_renewal_bound_is_warned_about_as_a_possible_second_run()
    {
        // Past the bound the renewal ends and the message becomes visible after its timeout; the handler keeps running
        // (it may still finish in time), but the possible second run is logged, as the Service Bus transport does.
        var queue = AzuriteFixture.NewQueue();
        var logger = new ServiceBusTransportTests.RecordingLogger();
        var transport = azurite.Storage.CreateQueueTransport(logger, new StorageQueueTransportOptions { MaxVisibilityRenewal = TimeSpan.FromSeconds(1.5) });
        await transport.SendAsync(queue, new QueueMessage("long-chunk", "{}"), CancellationToken.None);
        var handled = new TaskCompletionSource();

        await RunUntilAsync(transport, queue, async (_, _) =>
        {
            await logger.FirstWarning.Task.WaitAsync(Patience, CancellationToken.None);
            handled.TrySetResult();
            return Settlement.Complete;
        }, Fast() with { VisibilityTimeout = TimeSpan.FromSeconds(2) }, handled.Task);

        var warning = Assert.Single(logger.Warnings);
        Assert.Contains("long-chunk", warning, StringComparison.Ordinal);
        Assert.Contains("a second time", warning, StringComparison.Ordinal);
    }

    [Fact]
    public async Task No_more_handlers_run_at_once_than_the_concurrency_allows()
    {
        var queue = AzuriteFixture.NewQueue();
        var transport = NewTransport();
        for (var i = 0; i < 8; i++)
        {
            await transport.SendAsync(queue, new QueueMessage($"m{i}", "{}"), CancellationToken.None);
        }

        var running = 0;
        var maxRunning = 0;
        var handled = 0;
        var all = new TaskCompletionSource();
        await RunUntilAsync(transport, queue, async (_, ct) =>
        {
            var now = Interlocked.Increment(ref running);
            InterlockedMax(ref maxRunning, now);
            await Task.Delay(200, ct);
            Interlocked.Decrement(ref running);
            if (Interlocked.Increment(ref handled) == 8)
            {
                all.TrySetResult();
            }

            return Settlement.Complete;
        }, Fast(concurrency: 3), all.Task);

        Assert.InRange(maxRunning, 1, 3);
        Assert.Equal(0, await QueueLengthAsync(queue));
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while (value > (current = Volatile.Read(ref target)) && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }
}
