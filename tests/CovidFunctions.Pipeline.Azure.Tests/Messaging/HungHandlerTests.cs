using System.Diagnostics;
using Azure.Messaging.ServiceBus;
using CovidFunctions.Pipeline.Azure.Messaging;
using CovidFunctions.Pipeline.Messaging;
using Xunit.Abstractions;

namespace CovidFunctions.Pipeline.Azure.Tests.Messaging;

/// <summary>
/// A redelivered chunk (delivery 2: its last replica died holding it) reaches a replica whose other slot holds a hung
/// chunk, on a real Azurite queue with the transport's own gate and its default bound
/// (<see cref="DeliveryGate.DefaultHungAfter"/>, 2 min). Before, the redelivered chunk waited for the hung one to end: up
/// to the 30-min lock renewal in production, holding its own message and the replica's receiving, past the orchestrator's
/// chunk timeout. Now the hung handler holds it back for the bound only; then it is scored beside it, on the same
/// delivery (no delivery given back to count toward dead-lettering), and the hung chunk keeps its message.
/// Takes a little over 2 min (the default bound, on purpose: it is the value the scorer runs with).
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class HungHandlerTests(AzuriteFixture azurite, ITestOutputHelper output)
{
    private const string HungChunk = "study-a-c0000-a1";
    private const string Redelivered = "study-b-c0000-a1";

    [Fact]
    public async Task A_redelivered_chunk_behind_a_hung_one_is_scored_beside_it_on_the_same_delivery_once_the_hung_one_has_run_the_bound()
    {
        var queue = AzuriteFixture.NewQueue();
        var transport = azurite.Storage.CreateQueueTransport();
        var raw = azurite.Storage.Queues.GetQueueClient(queue);

        // The redelivered chunk: sent, then taken once by a "replica" that dies with it (received, never settled), kept
        // hidden until the test hands it back below; its next receive is delivery 2.
        await transport.SendAsync(queue, new QueueMessage(Redelivered, "{}"), CancellationToken.None);
        var taken = Assert.Single((await raw.ReceiveMessagesAsync(1, TimeSpan.FromMinutes(10))).Value);
        await transport.SendAsync(queue, new QueueMessage(HungChunk, "{}"), CancellationToken.None);

        var clock = Stopwatch.StartNew();
        var hungStarted = new TaskCompletionSource<TimeSpan>(TaskCreationOptions.RunContinuationsAsynchronously);
        var redeliveredScored = new TaskCompletionSource<(int DeliveryCount, TimeSpan Started, bool HungStillRunning)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var releaseHung = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var hungReturned = false;
        using var stop = new CancellationTokenSource();
        var run = transport.RunAsync(queue, async (message, _) =>
        {
            if (message.MessageId == HungChunk)
            {
                hungStarted.TrySetResult(clock.Elapsed);
                await releaseHung.Task; // hung: returns only when the test lets it
                hungReturned = true;
                return Settlement.Complete;
            }

            var started = clock.Elapsed;
            await Task.Delay(TimeSpan.FromMilliseconds(200), CancellationToken.None); // scoring
            redeliveredScored.TrySetResult((message.DeliveryCount, started, !hungReturned));
            return Settlement.Complete;
        }, new ConsumerOptions
        {
            MaxConcurrency = 2, // the scorer's Scorer:MaxConcurrentCalls
            MaxDeliveryCount = 5,
            PollInterval = TimeSpan.FromMilliseconds(100),
            VisibilityTimeout = TimeSpan.FromSeconds(30),
        }, stop.Token);

        try
        {
            var hungAt = await hungStarted.Task.WaitAsync(TimeSpan.FromMinutes(1));

            // Back on the queue while the hung chunk runs: the replica's free slot receives it as delivery 2.
            await raw.UpdateMessageAsync(taken.MessageId, taken.PopReceipt, visibilityTimeout: TimeSpan.Zero);

            // Before the fix it waits for the hung chunk, which the test releases only after this wait.
            var scored = await redeliveredScored.Task.WaitAsync(DeliveryGate.DefaultHungAfter + TimeSpan.FromMinutes(2));
            output.WriteLine($"hung chunk started at {hungAt.TotalSeconds:0.0} s; redelivered chunk started at {scored.Started.TotalSeconds:0.0} s, delivery {scored.DeliveryCount}");

            Assert.Equal(2, scored.DeliveryCount); // run on the delivery it came with, not given back
            Assert.True(scored.HungStillRunning);

            // The gate held it back while the hung handler was within its bound (a lower bound: a timer cannot fire early;
            // a second of slack for the two clocks).
            Assert.True(scored.Started - hungAt >= DeliveryGate.DefaultHungAfter - TimeSpan.FromSeconds(1), $"started {(scored.Started - hungAt).TotalSeconds:0.0} s after the hung one");

            // Settled: deleted, not back on the queue; the hung chunk's message is still held by its handler.
            await WaitUntilAsync(async () => (await raw.PeekMessagesAsync(32)).Value.Length == 0 && (await raw.GetPropertiesAsync()).Value.ApproximateMessagesCount == 1);
        }
        finally
        {
            releaseHung.TrySetResult();
            await stop.CancelAsync();
            await run.WaitAsync(TimeSpan.FromMinutes(1));
        }

        Assert.Equal(0, (await raw.GetPropertiesAsync()).Value.ApproximateMessagesCount); // the hung one settled too once it returned
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (!await condition())
        {
            await Task.Delay(200, patience.Token);
        }
    }
}

/// <summary>
/// The same on Service Bus, at the transport's message callback (<see cref="ServiceBusTransport.ProcessAsync"/>, no
/// broker here), with a short bound: a redelivered message handed over while a first delivery hangs is handled and
/// completed on its delivery once the hung one has run the bound, while the hung one still runs. Before, it waited
/// (lock renewed) until the hung handler ended.
/// </summary>
public sealed class HungHandlerServiceBusTests
{
    private static readonly TimeSpan Soon = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_redelivered_message_behind_a_hung_handler_is_completed_on_its_delivery_while_the_hung_one_still_runs()
    {
        var gate = new DeliveryGate(TimeSpan.FromMilliseconds(300));
        var (hungStarted, releaseHung) = (new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        var (hungReceiver, suspectReceiver) = (new RecordingReceiver(), new RecordingReceiver());
        var hung = ServiceBusTransport.ProcessAsync(new ProcessMessageEventArgs(Received("hung", 1), hungReceiver, CancellationToken.None), async (_, _) =>
        {
            hungStarted.TrySetResult();
            await releaseHung.Task;
            return Settlement.Complete;
        }, maxDeliveryCount: 5, gate: gate);
        await hungStarted.Task.WaitAsync(Soon);

        var handledAs = 0;
        var settlement = await ServiceBusTransport.ProcessAsync(new ProcessMessageEventArgs(Received("suspect", 2), suspectReceiver, CancellationToken.None), (m, _) =>
        {
            handledAs = m.DeliveryCount;
            return Task.FromResult(Settlement.Complete);
        }, maxDeliveryCount: 5, gate: gate).WaitAsync(Soon);

        Assert.Equal((SettlementAction.Complete, 2), (settlement.Action, handledAs));
        Assert.Equal(["complete"], suspectReceiver.Calls);
        Assert.False(hung.IsCompleted);
        Assert.Empty(hungReceiver.Calls);

        releaseHung.TrySetResult();
        await hung.WaitAsync(Soon);
        Assert.Equal(["complete"], hungReceiver.Calls);
        Assert.Equal(0, gate.Running);
    }

    private static ServiceBusReceivedMessage Received(string id, int deliveryCount) =>
        ServiceBusModelFactory.ServiceBusReceivedMessage(body: BinaryData.FromString("{}"), messageId: id, deliveryCount: deliveryCount, lockTokenGuid: Guid.NewGuid());

    private sealed class RecordingReceiver : ServiceBusReceiver
    {
        public List<string> Calls { get; } = [];

        public override Task CompleteMessageAsync(ServiceBusReceivedMessage message, CancellationToken cancellationToken = default)
        {
            Calls.Add("complete");
            return Task.CompletedTask;
        }

        public override Task AbandonMessageAsync(ServiceBusReceivedMessage message, IDictionary<string, object>? propertiesToModify = null, CancellationToken cancellationToken = default)
        {
            Calls.Add("abandon");
            return Task.CompletedTask;
        }
    }
}
