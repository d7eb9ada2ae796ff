using System.Collections.Concurrent;
using System.Diagnostics;
using CovidFunctions.Pipeline.Azure.Messaging;
using CovidFunctions.Pipeline.Messaging;
using Xunit.Abstractions;

namespace CovidFunctions.Pipeline.Azure.Tests.Messaging;

/// <summary>
/// A poison chunk (its handling kills the scorer process every time) and a healthy chunk of another study on one queue,
/// consumed by replicas with two concurrent calls (the scorer's Scorer:MaxConcurrentCalls 2) on a real Azurite queue.
/// Each "replica" is one <see cref="StorageQueueTransport.RunAsync"/>; its process "dies" a second into the poison chunk:
/// from then on none of its handlers returns or settles and nothing renews (MaxVisibilityRenewal 0), which is what the
/// queue sees of a killed process, and the next replica starts once the messages are visible again. (A transport-level
/// stand-in for ScorerProcessTests' real processes, whose kill cannot tell which chunk is running.)
/// Before, the healthy chunk landed beside the poison one on every replica and paid a failed delivery each time, so it
/// was dead-lettered with it (its study failed) on the delivery after the last allowed one. Now a redelivered message
/// runs alone (DeliveryGate): killed once beside the poison chunk, the healthy one succeeds on its redelivery, and only
/// the poison chunk is dead-lettered.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class RedeliveredMessageRunsAloneTests(AzuriteFixture azurite, ITestOutputHelper output)
{
    private const string Poison = "study-a-c0000-a1";
    private const string Healthy = "study-b-c0000-a1";
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task A_healthy_chunk_killed_once_beside_a_poison_chunk_succeeds_on_its_redelivery_and_only_the_poison_chunk_is_dead_lettered()
    {
        var queue = AzuriteFixture.NewQueue();
        var transport = azurite.Storage.CreateQueueTransport(options: new StorageQueueTransportOptions { MaxVisibilityRenewal = TimeSpan.Zero });
        var raw = azurite.Storage.Queues.GetQueueClient(queue);
        await transport.SendAsync(queue, new QueueMessage(Poison, "{}"), CancellationToken.None);
        await transport.SendAsync(queue, new QueueMessage(Healthy, "{}"), CancellationToken.None);

        var clock = Stopwatch.StartNew();
        var hook = new RecordingHook(clock);
        var deliveries = new ConcurrentQueue<(int Replica, string MessageId, int DeliveryCount)>();
        var healthyScored = new ConcurrentQueue<(int DeliveryCount, TimeSpan At)>();
        var afterTheTest = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously); // the dead stay dead until then
        var replicas = new List<(CancellationTokenSource Life, Task Run)>();
        using var patience = new CancellationTokenSource(Patience);
        bool Done() => hook.Told.Any(t => t.Message.MessageId == Poison) && (!healthyScored.IsEmpty || hook.Told.Any(t => t.Message.MessageId == Healthy));
        try
        {
            for (var replica = 1; replica <= 6 && !Done(); replica++)
            {
                // A restarted replica polls once both messages are back (the first one finds them as sent).
                var expected = (hook.Told.Any(t => t.Message.MessageId == Poison) ? 0 : 1) + (healthyScored.IsEmpty ? 1 : 0);
                while ((await raw.PeekMessagesAsync(32, patience.Token)).Value.Length < expected)
                {
                    await Task.Delay(100, patience.Token);
                }

                var life = new CancellationTokenSource();
                var number = replica;

                // A dead replica's handler never returns during the test; after it, it ends as if stopped (the transport
                // gives the message back, stale pop receipt and all), so it dead-letters nothing and tells nobody.
                async Task<Settlement> DeadAsync()
                {
                    await afterTheTest.Task;
                    throw new OperationCanceledException(life.Token);
                }

                var run = transport.RunAsync(queue, async (message, _) =>
                {
                    deliveries.Enqueue((number, message.MessageId, message.DeliveryCount));
                    if (message.MessageId == Poison)
                    {
                        // A second in, the process dies: nothing of this replica returns any more.
                        await Task.Delay(TimeSpan.FromSeconds(1), CancellationToken.None);
                        await life.CancelAsync();
                        return await DeadAsync();
                    }

                    // Two seconds of scoring, unless the process dies meanwhile.
                    await Task.WhenAny(Task.Delay(TimeSpan.FromSeconds(2), CancellationToken.None), Task.Delay(Timeout.Infinite, life.Token));
                    if (life.IsCancellationRequested)
                    {
                        return await DeadAsync();
                    }

                    healthyScored.Enqueue((message.DeliveryCount, clock.Elapsed));
                    return Settlement.Complete;
                }, new ConsumerOptions
                {
                    MaxConcurrency = 2,
                    MaxDeliveryCount = 2,
                    PollInterval = TimeSpan.FromMilliseconds(100),
                    VisibilityTimeout = TimeSpan.FromSeconds(5),
                    DeadLetterHook = hook,
                }, life.Token);
                replicas.Add((life, run));
                while (!life.IsCancellationRequested && !Done())
                {
                    await Task.Delay(100, patience.Token);
                }

                output.WriteLine($"replica {number} {(life.IsCancellationRequested ? "died" : "lived")} at {clock.Elapsed.TotalSeconds:0.0} s");
            }
        }
        finally
        {
            foreach (var (life, _) in replicas)
            {
                await life.CancelAsync();
            }

            afterTheTest.TrySetResult();
            await Task.WhenAll(replicas.Select(r => r.Run));
            foreach (var (life, _) in replicas)
            {
                life.Dispose();
            }
        }

        foreach (var (replica, id, count) in deliveries)
        {
            output.WriteLine($"replica {replica}: {(id == Poison ? "poison" : "healthy")} delivery {count}");
        }

        foreach (var told in hook.Told)
        {
            output.WriteLine($"dead-lettered {(told.Message.MessageId == Poison ? "poison" : "healthy")} at delivery {told.Message.DeliveryCount} ({told.Cause}) at {told.At.TotalSeconds:0.0} s");
        }

        foreach (var (count, at) in healthyScored)
        {
            output.WriteLine($"healthy chunk scored on delivery {count} at {at.TotalSeconds:0.0} s");
        }

        Assert.True(Done(), "gave up before both chunks were answered");
        Assert.DoesNotContain(hook.Told, t => t.Message.MessageId == Healthy); // its study is not failed
        var scored = Assert.Single(healthyScored);
        Assert.Equal(2, scored.DeliveryCount); // killed once beside the poison chunk, then alone
        var poison = Assert.Single(hook.Told);
        Assert.Equal((Poison, 3, DeadLetterCause.OverDelivered), (poison.Message.MessageId, poison.Message.DeliveryCount, poison.Cause));
        Assert.Equal(0, (await raw.GetPropertiesAsync()).Value.ApproximateMessagesCount);

        // Each redelivery of either ran with nothing else started on its replica: the poison chunk's second delivery
        // did not take the healthy one down with it.
        Assert.Equal([1, 2], deliveries.Where(d => d.MessageId == Healthy).Select(d => d.DeliveryCount));
    }

    /// <summary>Each dead-letter the consumer decided, with when (on the test's clock).</summary>
    private sealed class RecordingHook(Stopwatch clock) : IDeadLetterHook
    {
        private readonly ConcurrentQueue<(ReceivedMessage Message, DeadLetterCause Cause, TimeSpan At)> _told = new();

        public IEnumerable<(ReceivedMessage Message, DeadLetterCause Cause, TimeSpan At)> Told => _told;

        public Task OnDeadLetteredAsync(DeadLetteredMessage deadLettered, CancellationToken cancellationToken)
        {
            _told.Enqueue((deadLettered.Message, deadLettered.Cause, clock.Elapsed));
            return Task.CompletedTask;
        }
    }
}
