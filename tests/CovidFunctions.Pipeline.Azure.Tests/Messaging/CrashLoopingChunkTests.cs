using System.Collections.Concurrent;
using CovidFunctions.Inference;
using CovidFunctions.Pipeline.Azure.Messaging;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Scoring;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace CovidFunctions.Pipeline.Azure.Tests.Messaging;

/// <summary>
/// A chunk the scorer process dies on at every delivery (a native ONNX Runtime crash, an out-of-memory kill), on a real
/// Azurite queue with the real scorer handler and tiles of a real chest CT. No delivery is settled, so the handler's own
/// last-delivery answer (PoisonChunkTests) never runs; the consumer dead-letters the message when it comes once more
/// than allowed. Before, nobody was told: the study waited out MaxChunkAttempts × ChunkTimeout (30 min) and each
/// re-dispatch crash-looped the scorer again. Now the consumer's hook answers the study with an error result naming the
/// chunk and the dead-letter record, so the orchestrator fails it at once (CrashLoopingChunkOrchestrationTests).
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class CrashLoopingChunkTests(AzuriteFixture azurite)
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task A_chunk_the_scorer_dies_on_at_every_delivery_is_answered_with_an_error_result_naming_the_dead_letter_record()
    {
        var tenant = AzuriteFixture.NewTenant();
        const string StudyId = "s-crash";
        var tilesPrefix = $"{tenant}/{StudyId}/tiles";
        await ChestCtTiles.WriteAsync(azurite, tilesPrefix);
        var (requests, results) = (AzuriteFixture.NewQueue(), AzuriteFixture.NewQueue());

        // No visibility renewal: a delivery whose handler never returns is what the queue sees of a process that died
        // mid-chunk (nobody renews, nobody settles), and the message is visible again after its 5 s. (Not shorter: the
        // fourth delivery's dead-letter path, three storage calls, must end within it on a loaded machine, or a fifth
        // delivery dead-letters it and answers once more, harmless but not what is counted here.) Each delivery is taken
        // by a replica of its own (one RunAsync), stopped from receiving once it "died": a live consumer would hold the
        // redelivered chunk behind its own hung one, since a redelivered message runs alone (DeliveryGate).
        var transport = azurite.Storage.CreateQueueTransport(options: new StorageQueueTransportOptions { MaxVisibilityRenewal = TimeSpan.Zero });
        var sender = new RedirectingSender(transport, PipelineNames.SliceResultsQueue, results);
        var models = ScreeningModels.Load();

        // The scorer "dies" when it stores the chunk's rows, after scoring it: the call never returns.
        using var afterTheTest = new CancellationTokenSource();
        var dying = new DyingSliceResults(afterTheTest.Token);
        var handler = new ScoringHandler(azurite.Storage.BlobContainers, dying, sender, models,
            Options.Create(new ScoringOptions { MaxDeliveryCount = 3 }), NullLogger<ScoringHandler>.Instance);
        var hook = new ChunkDeadLetterHook(sender, NullLogger<ChunkDeadLetterHook>.Instance, azurite.Storage.Studies, models.Provider);
        var request = new ChunkRequest(tenant, StudyId, StudyIds.OrchestrationId(tenant, StudyId), tilesPrefix, 0, 0, 2, 1);
        await transport.SendAsync(requests, new QueueMessage(request.MessageId, PipelineJson.Serialize(request)), CancellationToken.None);

        var deliveries = new ConcurrentQueue<int>();
        var answers = azurite.Storage.Queues.GetQueueClient(results);
        var replicas = new List<(CancellationTokenSource Life, Task Run)>();
        using (var patience = new CancellationTokenSource(Patience))
        {
            try
            {
                async Task<bool> AnsweredAsync() => (await answers.ExistsAsync()).Value && (await answers.PeekMessagesAsync(1)).Value.Length > 0;
                while (!patience.IsCancellationRequested && !await AnsweredAsync())
                {
                    var life = new CancellationTokenSource();
                    var died = dying.Calls;
                    replicas.Add((life, transport.RunAsync(requests, (message, ct) =>
                    {
                        deliveries.Enqueue(message.DeliveryCount);
                        return handler.HandleAsync(message, ct);
                    }, new ConsumerOptions
                    {
                        MaxDeliveryCount = 3,
                        PollInterval = TimeSpan.FromMilliseconds(100),
                        VisibilityTimeout = TimeSpan.FromSeconds(5),
                        DeadLetterHook = hook,
                    }, life.Token)));
                    while (!patience.IsCancellationRequested && dying.Calls == died && !await AnsweredAsync())
                    {
                        await Task.Delay(100);
                    }

                    await life.CancelAsync(); // died (or answered): it takes nothing more
                }
            }
            finally
            {
                await afterTheTest.CancelAsync(); // the dead replicas' handlers end now, as if stopped
                await Task.WhenAll(replicas.Select(r => r.Run));
                foreach (var (life, _) in replicas)
                {
                    life.Dispose();
                }
            }
        }

        Assert.Equal([1, 2, 3], deliveries); // the fourth delivery is dead-lettered, not scored again
        Assert.True(dying.Calls >= 1, "no delivery reached the rows it dies on");

        var path = DeadLetterRecord.PathOf(requests, request.MessageId, 4);
        var deadLetters = azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.DeadLetterContainer);
        var record = PipelineJson.Deserialize<DeadLetterRecord>((await deadLetters.GetBlobClient(path).DownloadContentAsync()).Value.Content.ToString());
        Assert.Equal((request.MessageId, 4), (record.MessageId, record.DeliveryCount));
        Assert.StartsWith("delivered 4 times (max 3) without being settled", record.Reason, StringComparison.Ordinal);
        Assert.Equal(0, (await azurite.Storage.Queues.GetQueueClient(requests).GetPropertiesAsync()).Value.ApproximateMessagesCount);

        // The study's answer: one error result for this chunk and attempt, saying what happened and where the request is.
        var answer = Assert.Single(await ReceiveAllAsync(results));
        Assert.Equal((tenant, StudyId, request.OrchestrationId, 0, 1, 2, (string?)null), (answer.Tenant, answer.StudyId, answer.OrchestrationId, answer.ChunkIndex, answer.Attempt, answer.SliceCount, answer.ResultPath));
        Assert.Equal(
            $"delivered 3 times without the scorer finishing it (at most 3): the scorer crashed or was killed while scoring it (for example a native ONNX Runtime crash or an out-of-memory kill); the request is dead-lettered at dead-letters/{path}",
            answer.Error);
    }

    [Fact]
    public async Task A_consumer_that_dies_after_telling_the_hook_and_before_the_delete_dead_letters_and_tells_again_on_the_next_delivery()
    {
        var queue = AzuriteFixture.NewQueue();
        var transport = azurite.Storage.CreateQueueTransport(options: new StorageQueueTransportOptions { MaxVisibilityRenewal = TimeSpan.Zero });
        await transport.SendAsync(queue, new QueueMessage("crasher", "{}"), CancellationToken.None);
        var raw = azurite.Storage.Queues.GetQueueClient(queue);
        for (var i = 0; i < 2; i++)
        {
            // Two deliveries whose process died (each receive counts one); the visibility lapses at once.
            var taken = Assert.Single((await raw.ReceiveMessagesAsync(1, TimeSpan.FromSeconds(1))).Value);
            await raw.UpdateMessageAsync(taken.MessageId, taken.PopReceipt, visibilityTimeout: TimeSpan.Zero);
        }

        // The first time it is told, the consumer "dies" right after the hook returns: the message is not deleted and
        // comes back after its visibility timeout (2 s), one delivery later.
        var hook = new DyingOnceHook();
        using (var stop = new CancellationTokenSource(Patience))
        {
            var consumer = transport.RunAsync(queue, (_, _) => throw new InvalidOperationException("the handler must not run"), new ConsumerOptions
            {
                MaxDeliveryCount = 2,
                MaxConcurrency = 2,
                PollInterval = TimeSpan.FromMilliseconds(100),
                VisibilityTimeout = TimeSpan.FromSeconds(2),
                DeadLetterHook = hook,
            }, stop.Token);
            while (!stop.IsCancellationRequested && hook.Told.Count < 2)
            {
                await Task.Delay(100);
            }

            hook.Revive();
            await stop.CancelAsync();
            await consumer;
        }

        // (A loaded machine may let a fifth delivery in before the consumer stops: the same again, so only two are read.)
        Assert.Equal([(3, DeadLetterCause.OverDelivered), (4, DeadLetterCause.OverDelivered)], hook.Told.Take(2).Select(t => (t.Message.DeliveryCount, t.Cause)));
        Assert.Equal(
            [$"dead-letters/{DeadLetterRecord.PathOf(queue, "crasher", 3)}", $"dead-letters/{DeadLetterRecord.PathOf(queue, "crasher", 4)}"],
            hook.Told.Take(2).Select(t => t.Location));
        var deadLetters = azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.DeadLetterContainer);
        Assert.True((await deadLetters.GetBlobClient(DeadLetterRecord.PathOf(queue, "crasher", 3)).ExistsAsync()).Value);
        Assert.True((await deadLetters.GetBlobClient(DeadLetterRecord.PathOf(queue, "crasher", 4)).ExistsAsync()).Value);
        Assert.Equal(0, (await raw.GetPropertiesAsync()).Value.ApproximateMessagesCount);
    }

    [Fact]
    public async Task A_dead_letter_the_handler_asks_for_tells_nobody_and_a_failing_hook_still_dead_letters()
    {
        var queue = AzuriteFixture.NewQueue();
        var transport = azurite.Storage.CreateQueueTransport(options: new StorageQueueTransportOptions { RetryBaseDelay = TimeSpan.FromMilliseconds(100) });
        await transport.SendAsync(queue, new QueueMessage("refused", "{}"), CancellationToken.None);
        await transport.SendAsync(queue, new QueueMessage("failing", "{}"), CancellationToken.None);
        var hook = new ThrowingHook();
        var deadLetters = azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.DeadLetterContainer);
        using (var stop = new CancellationTokenSource(Patience))
        {
            var consumer = transport.RunAsync(queue, (message, _) => message.MessageId == "refused"
                ? Task.FromResult(new Settlement(SettlementAction.DeadLetter, "invalid chunk request: studyId is missing"))
                : throw new IOException("the results queue is unreachable"), new ConsumerOptions
            {
                MaxDeliveryCount = 2,
                PollInterval = TimeSpan.FromMilliseconds(100),
                VisibilityTimeout = TimeSpan.FromSeconds(10),
                DeadLetterHook = hook,
            }, stop.Token);
            while (!stop.IsCancellationRequested && (await azurite.Storage.Queues.GetQueueClient(queue).GetPropertiesAsync()).Value.ApproximateMessagesCount > 0)
            {
                await Task.Delay(100);
            }

            await stop.CancelAsync();
            await consumer;
        }

        // The handler's own dead-letter is its answer: not told. The consumer's (the last delivery threw) is, and the
        // hook failing does not keep the message back.
        var told = Assert.Single(hook.Told);
        Assert.Equal(("failing", 2, DeadLetterCause.FailedOnLastDelivery), (told.Message.MessageId, told.Message.DeliveryCount, told.Cause));
        Assert.StartsWith("gave up after 2 deliveries (max 2): IOException: the results queue is unreachable", told.Reason, StringComparison.Ordinal);
        Assert.True((await deadLetters.GetBlobClient(DeadLetterRecord.PathOf(queue, "refused", 1)).ExistsAsync()).Value);
        Assert.True((await deadLetters.GetBlobClient(DeadLetterRecord.PathOf(queue, "failing", 2)).ExistsAsync()).Value);
    }

    private async Task<List<ChunkResult>> ReceiveAllAsync(string queue)
    {
        var client = azurite.Storage.Queues.GetQueueClient(queue);
        var found = new List<ChunkResult>();
        foreach (var message in (await client.ReceiveMessagesAsync(32)).Value)
        {
            found.Add(PipelineJson.Deserialize<ChunkResult>(StorageQueueEnvelope.TryParse(message.MessageText)!.Body));
        }

        return found;
    }

    /// <summary>Never returns from storing the rows until the test ends: the process "died" there.</summary>
    private sealed class DyingSliceResults(CancellationToken afterTheTest) : ISliceResultStore
    {
        private int _calls;

        public int Calls => Volatile.Read(ref _calls);

        public async Task UpsertAsync(IReadOnlyList<SliceResultRecord> records, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _calls);
            await Task.Delay(Timeout.Infinite, afterTheTest);
        }

        public Task<IReadOnlyList<SliceResultRecord>> GetAsync(string tenant, string studyId, CancellationToken cancellationToken) =>
            Task.FromResult<IReadOnlyList<SliceResultRecord>>([]);
    }

    /// <summary>Records each call; the first one then never returns (until revived), as if the process died after it.</summary>
    private sealed class DyingOnceHook : IDeadLetterHook
    {
        private readonly TaskCompletionSource _revived = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ConcurrentQueue<DeadLetteredMessage> Told { get; } = new();

        public void Revive() => _revived.TrySetResult();

        public async Task OnDeadLetteredAsync(DeadLetteredMessage deadLettered, CancellationToken cancellationToken)
        {
            Told.Enqueue(deadLettered);
            if (Told.Count == 1)
            {
                await _revived.Task;
            }
        }
    }

    private sealed class ThrowingHook : IDeadLetterHook
    {
        public ConcurrentQueue<DeadLetteredMessage> Told { get; } = new();

        public Task OnDeadLetteredAsync(DeadLetteredMessage deadLettered, CancellationToken cancellationToken)
        {
            Told.Enqueue(deadLettered);
            throw new IOException("the results queue is unreachable");
        }
    }

    /// <summary>Sends to the real queue, with one queue name swapped for this test's own.</summary>
    private sealed class RedirectingSender(IMessageSender inner, string from, string to) : IMessageSender
    {
        public Task SendAsync(string queue, QueueMessage message, CancellationToken cancellationToken) =>
            inner.SendAsync(queue == from ? to : queue, message, cancellationToken);
    }
}
