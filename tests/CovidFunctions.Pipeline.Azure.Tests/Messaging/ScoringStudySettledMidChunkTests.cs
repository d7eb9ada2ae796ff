using Azure.Storage.Blobs.Models;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Inference;
using CovidFunctions.Pipeline.Azure.Messaging;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Scoring;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace CovidFunctions.Pipeline.Azure.Tests.Messaging;

/// <summary>
/// A chunk whose study fails while the chunk is being scored, on Azurite: the real Storage-queue transport, the Studies
/// and SliceResults tables, the tiles of a real chest CT and the committed models. The study is failed in its Studies
/// row (as FailStudy writes it) while the scorer reads the chunk's tiles, or at a chosen read of the row by the scorer:
/// before the chunk's second model batch, or after its last batch, just before it stores anything. Before the fix the
/// scorer read the row once, before scoring, and then ran every batch, wrote the masks, overlays, chunk document and
/// SliceResults rows of the failed study and sent an answer no orchestration waits for (the results API serves such
/// files for the failed study).
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class ScoringStudySettledMidChunkTests(AzuriteFixture azurite)
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(3);

    // 8 slices in batches of 2: 4 model batches. With a recheck interval of 0 the scorer reads the row before scoring
    // (read 1), before each batch (reads 2-5) and before storing (read 6).
    private const int Slices = 8;
    private const int BatchSize = 2;

    [Theory]
    [InlineData(0, 2, "while its tiles are read: stopped before the first model batch")]
    [InlineData(3, 3, "on the read before the second model batch")]
    [InlineData(6, 6, "on the read after the last batch, before anything is stored")]
    public async Task A_chunk_whose_study_fails_while_it_is_scored_stops_stores_nothing_answers_nothing_and_is_completed(int failOnRead, int expectedReads, string when)
    {
        var run = await RunChunkAsync(failOnRead);

        Assert.True(run.Answers == 0, $"study failed {when}: {run.Answers} answer(s) sent");
        Assert.True(run.ResultBlobs.Count == 0, $"study failed {when}: written {string.Join(", ", run.ResultBlobs)}");
        Assert.True(run.SliceResultRows == 0, $"study failed {when}: {run.SliceResultRows} SliceResults rows");
        Assert.Equal(expectedReads, run.StatusReads);
        Assert.Equal(SettlementAction.Complete, run.Settlement);
        Assert.Equal(0, run.RequestsLeft);
        Assert.Empty(run.DeadLetters);
        Assert.Equal(StudyStatus.Failed, run.FinalStatus);
    }

    [Fact]
    public async Task A_chunk_of_a_running_study_is_scored_stored_and_answered_with_a_read_per_batch_at_interval_zero()
    {
        var run = await RunChunkAsync(failOnRead: -1);

        Assert.Equal(SettlementAction.Complete, run.Settlement);
        Assert.Equal(2 + (Slices / BatchSize), run.StatusReads);
        Assert.Equal(0, run.RequestsLeft);
        Assert.Empty(run.DeadLetters);
        Assert.Equal(1, run.Answers);
        Assert.Contains(run.ResultBlobs, b => b.EndsWith("/chunks/0000.json", StringComparison.Ordinal));
        Assert.Equal(Slices, run.SliceResultRows);
        Assert.Equal(StudyStatus.Processing, run.FinalStatus);
    }

    /// <summary>Scores the chunk; <paramref name="failOnRead"/>: 0 fails the study as its first tile is read, n &gt; 0 on the scorer's n-th read of the row, -1 never.</summary>
    private async Task<ChunkRun> RunChunkAsync(int failOnRead)
    {
        var tenant = AzuriteFixture.NewTenant();
        const string StudyId = "s-fails-mid-chunk";
        var tilesPrefix = $"{tenant}/{StudyId}/tiles";
        await ChestCtTiles.WriteAsync(azurite, tilesPrefix, Slices);
        await azurite.Storage.Studies.TryCreateAsync(
            new StudyRecord { Tenant = tenant, StudyId = StudyId, Status = StudyStatus.Processing, CreatedAt = DateTimeOffset.UtcNow, IngestedAt = DateTimeOffset.UtcNow },
            CancellationToken.None);

        var requests = AzuriteFixture.NewQueue();
        var results = AzuriteFixture.NewQueue();
        var transport = azurite.Storage.CreateQueueTransport(options: new StorageQueueTransportOptions { RetryBaseDelay = TimeSpan.FromMilliseconds(100) });
        var studies = new FailingAtReadStudies(azurite.Storage.Studies, failOnRead, tenant, StudyId);
        var handler = new ScoringHandler(
            failOnRead == 0 ? new FailingOnTileReadContainers(azurite.Storage.BlobContainers, studies.FailAsync) : azurite.Storage.BlobContainers,
            azurite.Storage.SliceResults,
            new RedirectingSender(transport, PipelineNames.SliceResultsQueue, results),
            ScreeningModels.Load(),
            Options.Create(new ScoringOptions { BatchSize = BatchSize, MaxDeliveryCount = 3 }),
            NullLogger<ScoringHandler>.Instance,
            studies,
            studyRecheckInterval: TimeSpan.Zero);
        var request = new ChunkRequest(tenant, StudyId, StudyIds.OrchestrationId(tenant, StudyId), tilesPrefix, 0, 0, Slices, 1);
        await transport.SendAsync(requests, new QueueMessage(request.MessageId, PipelineJson.Serialize(request)), CancellationToken.None);

        var settled = new TaskCompletionSource<SettlementAction>(TaskCreationOptions.RunContinuationsAsynchronously);
        using (var stop = new CancellationTokenSource(Patience))
        {
            var consumer = transport.RunAsync(requests, async (message, ct) =>
            {
                var settlement = await handler.HandleAsync(message, ct);
                settled.TrySetResult(settlement.Action);
                return settlement;
            }, new ConsumerOptions { MaxDeliveryCount = 3, PollInterval = TimeSpan.FromMilliseconds(100), VisibilityTimeout = TimeSpan.FromSeconds(30) }, stop.Token);
            await settled.Task.WaitAsync(Patience);

            // Let the transport apply the settlement (delete the message) before stopping it.
            var queue = azurite.Storage.Queues.GetQueueClient(requests);
            while ((await queue.GetPropertiesAsync()).Value.ApproximateMessagesCount > 0 && !stop.IsCancellationRequested)
            {
                await Task.Delay(100);
            }

            await stop.CancelAsync();
            await consumer;
        }

        var requestsLeft = (await azurite.Storage.Queues.GetQueueClient(requests).GetPropertiesAsync()).Value.ApproximateMessagesCount;
        var resultsQueue = azurite.Storage.Queues.GetQueueClient(results);
        var answers = await resultsQueue.ExistsAsync() ? (await resultsQueue.GetPropertiesAsync()).Value.ApproximateMessagesCount : 0;
        var deadLetters = new List<string>();
        var deadLetterContainer = azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.DeadLetterContainer);
        if (await deadLetterContainer.ExistsAsync())
        {
            await foreach (var blob in deadLetterContainer.GetBlobsAsync(new GetBlobsOptions { Prefix = requests + "/" }))
            {
                deadLetters.Add(blob.Name);
            }
        }

        var resultBlobs = new List<string>();
        await foreach (var blob in azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.ResultsContainer).GetBlobsAsync(new GetBlobsOptions { Prefix = $"{tenant}/{StudyId}/" }))
        {
            resultBlobs.Add(blob.Name);
        }

        var rows = await azurite.Storage.SliceResults.GetAsync(tenant, StudyId, CancellationToken.None);
        var row = await azurite.Storage.Studies.GetAsync(tenant, StudyId, CancellationToken.None);
        return new ChunkRun(await settled.Task, studies.Reads, requestsLeft, deadLetters, answers, resultBlobs, rows.Count, row!.Status);
    }

    private sealed record ChunkRun(
        SettlementAction Settlement,
        int StatusReads,
        int RequestsLeft,
        IReadOnlyList<string> DeadLetters,
        int Answers,
        IReadOnlyList<string> ResultBlobs,
        int SliceResultRows,
        string FinalStatus);

    /// <summary>
    /// The real Studies table; on the scorer's <c>failOnRead</c>-th read of the study's row the study is failed first,
    /// as the orchestration's FailStudy writes it (another chunk could not be scored), so that read sees it failed.
    /// </summary>
    private sealed class FailingAtReadStudies(IStudyStore inner, int failOnRead, string tenant, string studyId) : IStudyStore
    {
        private int _reads;

        public int Reads => Volatile.Read(ref _reads);

        public async Task<StudyRecord?> GetAsync(string tenant1, string studyId1, CancellationToken cancellationToken)
        {
            if (Interlocked.Increment(ref _reads) == failOnRead)
            {
                await FailAsync(cancellationToken);
            }

            return await inner.GetAsync(tenant1, studyId1, cancellationToken);
        }

        public Task FailAsync(CancellationToken cancellationToken) =>
            inner.UpdateAsync(tenant, studyId, row => row! with
            {
                Status = StudyStatus.Failed,
                Reason = "chunk 1 (slices 8-15) could not be scored: tiles not found",
                CompletedAt = DateTimeOffset.UtcNow,
            }, cancellationToken);

        public Task<bool> TryCreateAsync(StudyRecord record, CancellationToken cancellationToken) => inner.TryCreateAsync(record, cancellationToken);

        public Task<StudyRecord> UpdateAsync(string tenant1, string studyId1, Func<StudyRecord?, StudyRecord> update, CancellationToken cancellationToken) =>
            inner.UpdateAsync(tenant1, studyId1, update, cancellationToken);

        public IAsyncEnumerable<StudyRecord> QueryAsync(string? tenant1, string? status, DateTimeOffset? from, DateTimeOffset? to, CancellationToken cancellationToken) =>
            inner.QueryAsync(tenant1, status, from, to, cancellationToken);
    }

    /// <summary>The real containers; when the scorer opens the chunk's first tile file, the study is failed first.</summary>
    private sealed class FailingOnTileReadContainers(IBlobContainers inner, Func<CancellationToken, Task> fail) : IBlobContainers
    {
        private readonly Func<CancellationToken, Task> _fail = fail;
        private int _failed;

        public IBlobStore Get(string container) =>
            container == PipelineNames.SlicesContainer ? new Store(inner.Get(container), this) : inner.Get(container);

        public string LinkTo(string container, string path) => inner.LinkTo(container, path);

        private sealed class Store(IBlobStore store, FailingOnTileReadContainers owner) : IBlobStore
        {
            public async Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken)
            {
                if (path.EndsWith(".npy", StringComparison.Ordinal) && Interlocked.Exchange(ref owner._failed, 1) == 0)
                {
                    await owner._fail(cancellationToken);
                }

                return await store.OpenReadAsync(path, cancellationToken);
            }

            public Task WriteAsync(string path, Stream content, CancellationToken cancellationToken) => store.WriteAsync(path, content, cancellationToken);

            public Task<bool> ExistsAsync(string path, CancellationToken cancellationToken) => store.ExistsAsync(path, cancellationToken);

            public IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellationToken) => store.ListAsync(prefix, cancellationToken);

            public Task DeleteAsync(string path, CancellationToken cancellationToken) => store.DeleteAsync(path, cancellationToken);

            public Task<VersionedStream> OpenReadVersionedAsync(string path, CancellationToken cancellationToken) => store.OpenReadVersionedAsync(path, cancellationToken);

            public Task<ConditionalDelete> DeleteIfVersionAsync(string path, string version, CancellationToken cancellationToken) => store.DeleteIfVersionAsync(path, version, cancellationToken);
        }
    }

    /// <summary>Sends to the real queue, with one queue name swapped for this test's own.</summary>
    private sealed class RedirectingSender(IMessageSender inner, string from, string to) : IMessageSender
    {
        public Task SendAsync(string queue, QueueMessage message, CancellationToken cancellationToken) =>
            inner.SendAsync(queue == from ? to : queue, message, cancellationToken);
    }
}
