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
/// A poison chunk (one that fails on every delivery) on a real Azurite queue with the real scorer handler and tiles of
/// a real chest CT: after the last delivery the study must hear why (an error chunk result, which fails it at once,
/// StudyOrchestratorTests.AChunkResultWithAnErrorFailsTheStudyAtOnce) rather than wait out every re-dispatch timeout,
/// and the message is dead-lettered with the same reason.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class PoisonChunkTests(AzuriteFixture azurite)
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task AChunkFailingOnEveryDelivery_IsAnsweredWithAnErrorResultOnTheLast_AndDeadLettered()
    {
        var tenant = AzuriteFixture.NewTenant();
        const string StudyId = "s-poison";
        var tilesPrefix = $"{tenant}/{StudyId}/tiles";
        await ChestCtTiles.WriteAsync(azurite, tilesPrefix);
        var requests = AzuriteFixture.NewQueue();
        var results = AzuriteFixture.NewQueue();
        var transport = azurite.Storage.CreateQueueTransport(options: new StorageQueueTransportOptions { RetryBaseDelay = TimeSpan.FromMilliseconds(100) });

        // The SliceResults table refuses this chunk's rows every time (a permanent fault, e.g. an entity too large).
        var failingRows = new FailingSliceResults();
        var handler = new ScoringHandler(
            azurite.Storage.BlobContainers,
            failingRows,
            new RedirectingSender(transport, PipelineNames.SliceResultsQueue, results),
            ScreeningModels.Load(),
            Options.Create(new ScoringOptions { MaxDeliveryCount = 3 }),
            NullLogger<ScoringHandler>.Instance);
        var request = new ChunkRequest(tenant, StudyId, StudyIds.OrchestrationId(tenant, StudyId), tilesPrefix, 0, 0, 2, 1);
        await transport.SendAsync(requests, new QueueMessage(request.MessageId, PipelineJson.Serialize(request)), CancellationToken.None);

        var deliveries = new ConcurrentQueue<int>();
        var deadLetters = azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.DeadLetterContainer);
        var deadLetterPath = DeadLetterRecord.PathOf(requests, request.MessageId, 3);
        using (var stop = new CancellationTokenSource(Patience))
        {
            var consumer = transport.RunAsync(requests, async (message, ct) =>
            {
                deliveries.Enqueue(message.DeliveryCount);
                return await handler.HandleAsync(message, ct);
            }, new ConsumerOptions { MaxDeliveryCount = 3, PollInterval = TimeSpan.FromMilliseconds(100), VisibilityTimeout = TimeSpan.FromSeconds(30) }, stop.Token);
            while (!await deadLetters.GetBlobClient(deadLetterPath).ExistsAsync() && !stop.IsCancellationRequested)
            {
                await Task.Delay(100);
            }

            await stop.CancelAsync();
            await consumer;
        }

        Assert.Equal([1, 2, 3], deliveries);
        Assert.Equal(3, failingRows.Calls);

        // The orchestration's answer: one error result, naming the cause, for this chunk and attempt.
        var answers = new ConcurrentQueue<ChunkResult>();
        using (var stop = new CancellationTokenSource(Patience))
        {
            var relay = transport.RunAsync(results, (message, _) =>
            {
                answers.Enqueue(PipelineJson.Deserialize<ChunkResult>(message.Body));
                stop.Cancel();
                return Task.FromResult(Settlement.Complete);
            }, new ConsumerOptions { PollInterval = TimeSpan.FromMilliseconds(100) }, stop.Token);
            await relay;
        }

        var answer = Assert.Single(answers);
        Assert.Equal((tenant, StudyId, 0, 1, (string?)null), (answer.Tenant, answer.StudyId, answer.ChunkIndex, answer.Attempt, answer.ResultPath));
        Assert.Equal("scoring failed on each of 3 deliveries; the last: InvalidOperationException: the table refused the entity batch", answer.Error);

        var record = PipelineJson.Deserialize<DeadLetterRecord>((await deadLetters.GetBlobClient(deadLetterPath).DownloadContentAsync()).Value.Content.ToString());
        Assert.Equal(answer.Error, record.Reason);
    }

    private sealed class FailingSliceResults : ISliceResultStore
    {
        private int _calls;

        public int Calls => _calls;

        public Task UpsertAsync(IReadOnlyList<SliceResultRecord> records, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _calls);
            throw new InvalidOperationException("the table refused the entity batch");
        }

        public Task<IReadOnlyList<SliceResultRecord>> GetAsync(string tenant, string studyId, CancellationToken cancellationToken) =>
            Task.FromResult<IReadOnlyList<SliceResultRecord>>([]);
    }

    /// <summary>Sends to the real queue, with one queue name swapped for this test's own.</summary>
    private sealed class RedirectingSender(IMessageSender inner, string from, string to) : IMessageSender
    {
        public Task SendAsync(string queue, QueueMessage message, CancellationToken cancellationToken) =>
            inner.SendAsync(queue == from ? to : queue, message, cancellationToken);
    }
}
