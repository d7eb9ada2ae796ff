using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Scoring;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Tests.Scoring;

/// <summary>
/// The edges of the scorer's last-delivery rule (<see cref="ScoringOptions.MaxDeliveryCount"/>), pinned when the two
/// identical catch clauses (scoring, storing) became one: a fault while scoring or while storing is retried before the
/// last delivery and answered with an error result and dead-lettered on it; only scoring faults can be "unscorable"
/// (a FileNotFoundException while storing is a storage fault, not missing tiles); and a failure to send the unscorable
/// answer propagates to the consumer rather than being taken for a poison chunk. Each passed before the change too.
/// </summary>
public sealed class ScoringHandlerLastDeliveryTests : IDisposable
{
    private const int MaxDeliveries = 3;
    private readonly ScoringTestStudy _study = new("s-edge");

    public void Dispose() => _study.Dispose();

    [Theory]
    [InlineData(1, false)]
    [InlineData(MaxDeliveries, true)]
    public async Task A_fault_while_scoring_is_retried_then_answered_and_dead_lettered_on_the_last_delivery(int delivery, bool last)
    {
        // The tiles cannot be read for a reason that is no "unscorable" one (an I/O fault of the slices store).
        var containers = new FaultyContainers(_study.Containers) { FailSlicesReads = true };
        var sender = new RecordingSender();
        var handler = Handler(containers, sender);
        var request = Request(sliceCount: 2);

        if (!last)
        {
            await Assert.ThrowsAsync<IOException>(() => handler.HandleAsync(Message(request, delivery), _study.Timeout));
            Assert.Empty(sender.Sent);
            return;
        }

        var settlement = await handler.HandleAsync(Message(request, delivery), _study.Timeout);
        Assert.Equal(SettlementAction.DeadLetter, settlement.Action);
        var result = PipelineJson.Deserialize<ChunkResult>(Assert.Single(sender.Sent).Body);
        Assert.Equal($"scoring failed on each of {MaxDeliveries} deliveries; the last: IOException: slices store away", result.Error);
        Assert.Equal(result.Error, settlement.Reason);
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(MaxDeliveries, true)]
    public async Task A_FileNotFoundException_while_storing_is_a_storage_fault_not_missing_tiles(int delivery, bool last)
    {
        await _study.WriteRealTilesAsync();
        var containers = new FaultyContainers(_study.Containers) { FailChunkDocumentWrites = true };
        var sender = new RecordingSender();
        var handler = Handler(containers, sender);
        var request = Request(sliceCount: 2);

        if (!last)
        {
            await Assert.ThrowsAsync<FileNotFoundException>(() => handler.HandleAsync(Message(request, delivery), _study.Timeout));
            Assert.Empty(sender.Sent);
            return;
        }

        var settlement = await handler.HandleAsync(Message(request, delivery), _study.Timeout);
        Assert.Equal(SettlementAction.DeadLetter, settlement.Action);
        var result = PipelineJson.Deserialize<ChunkResult>(Assert.Single(sender.Sent).Body);
        Assert.StartsWith($"scoring failed on each of {MaxDeliveries} deliveries; the last: FileNotFoundException:", result.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("tiles not found", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_sdk_timeout_on_the_last_delivery_is_answered_and_dead_lettered_like_any_other_fault()
    {
        // Azure.Core reports a network timeout as a TaskCanceledException while the caller's token is not cancelled.
        // Before: every OperationCanceledException skipped the last-delivery answer, so the consumer dead-lettered the
        // chunk silently and the study waited out each re-dispatch timeout (3 × 10 min) instead of failing with the cause.
        var timeout = new TaskCanceledException("The operation was cancelled because it exceeded the configured timeout of 0:01:40.");
        var containers = new FaultyContainers(_study.Containers) { SlicesReadFault = () => timeout };
        var sender = new RecordingSender();
        var handler = Handler(containers, sender);

        var settlement = await handler.HandleAsync(Message(Request(sliceCount: 2), MaxDeliveries), _study.Timeout);

        Assert.Equal(SettlementAction.DeadLetter, settlement.Action);
        var result = PipelineJson.Deserialize<ChunkResult>(Assert.Single(sender.Sent).Body);
        Assert.Equal($"scoring failed on each of {MaxDeliveries} deliveries; the last: TaskCanceledException: {timeout.Message}", result.Error);
    }

    [Fact]
    public async Task A_huge_exception_message_on_the_last_delivery_is_cut_so_the_answer_fits_a_storage_queue_message()
    {
        var fault = new IOException(new string('x', 100_000));
        var containers = new FaultyContainers(_study.Containers) { SlicesReadFault = () => fault };
        var sender = new RecordingSender();
        var handler = Handler(containers, sender);

        var settlement = await handler.HandleAsync(Message(Request(sliceCount: 2), MaxDeliveries), _study.Timeout);

        var sent = Assert.Single(sender.Sent);
        var result = PipelineJson.Deserialize<ChunkResult>(sent.Body);
        Assert.Equal(ScoringHandler.MaxErrorLength, result.Error!.Length);
        Assert.StartsWith($"scoring failed on each of {MaxDeliveries} deliveries; the last: IOException: xxx", result.Error, StringComparison.Ordinal);
        Assert.Equal(result.Error, settlement.Reason);

        // A Storage-queue message is at most 64 KiB after Base64 (48 KiB of envelope text); this one is far below.
        Assert.InRange(System.Text.Encoding.UTF8.GetByteCount(sent.Body), 1, 8 * 1024);
    }

    [Fact]
    public async Task The_host_stopping_on_the_last_delivery_sends_no_answer_and_leaves_the_message_to_the_consumer()
    {
        using var stopping = new CancellationTokenSource();
        await stopping.CancelAsync();
        var containers = new FaultyContainers(_study.Containers) { SlicesReadFault = () => new OperationCanceledException(stopping.Token) };
        var sender = new RecordingSender();
        var handler = Handler(containers, sender);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => handler.HandleAsync(Message(Request(sliceCount: 2), MaxDeliveries), stopping.Token));

        Assert.Empty(sender.Attempts);
    }

    [Fact]
    public async Task An_unscorable_answer_that_cannot_be_sent_on_the_last_delivery_propagates_without_a_second_answer()
    {
        // No tiles: unscorable. The results queue refuses the answer: the consumer sees the exception (and dead-letters
        // the message itself); the handler does not try again with a "scoring failed" answer.
        var sender = new RecordingSender { Fail = true };
        var handler = Handler(_study.Containers, sender);

        var thrown = await Assert.ThrowsAsync<InvalidOperationException>(() => handler.HandleAsync(Message(Request(sliceCount: 2), MaxDeliveries), _study.Timeout));

        Assert.Equal("results queue away", thrown.Message);
        var attempted = Assert.Single(sender.Attempts);
        Assert.Equal("tiles not found under slices/lab-1/s-edge/tiles", PipelineJson.Deserialize<ChunkResult>(attempted.Body).Error);
    }

    private ChunkRequest Request(int sliceCount) => _study.Request(chunkIndex: 0, firstSlice: 0, sliceCount);

    private static ReceivedMessage Message(ChunkRequest request, int delivery) => ScoringTestStudy.Message(request, delivery);

    private static ScoringHandler Handler(IBlobContainers containers, IMessageSender sender) =>
        ScoringTestStudy.Handler(containers, new InMemorySliceResultStore(), sender, new ScoringOptions { BatchSize = 2, MaxDeliveryCount = MaxDeliveries });

    /// <summary>Containers whose slices reads fail with an I/O fault, or whose chunk-document writes fail with FileNotFoundException.</summary>
    private sealed class FaultyContainers(IBlobContainers inner) : IBlobContainers
    {
        public bool FailSlicesReads { get; init; }

        /// <summary>When set, every read of the slices container throws what it returns.</summary>
        public Func<Exception>? SlicesReadFault { get; init; }

        public bool FailChunkDocumentWrites { get; init; }

        public IBlobStore Get(string container) => new FaultyStore(inner.Get(container), container, this);

        public string LinkTo(string container, string path) => inner.LinkTo(container, path);

        private sealed class FaultyStore(IBlobStore store, string container, FaultyContainers faults) : IBlobStore
        {
            public Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken) =>
                container != PipelineNames.SlicesContainer ? store.OpenReadAsync(path, cancellationToken)
                : faults.SlicesReadFault is { } fault ? throw fault()
                : faults.FailSlicesReads ? throw new IOException("slices store away")
                : store.OpenReadAsync(path, cancellationToken);

            public Task WriteAsync(string path, Stream content, CancellationToken cancellationToken) =>
                faults.FailChunkDocumentWrites && container == PipelineNames.ResultsContainer && path.Contains("/chunks/", StringComparison.Ordinal)
                    ? throw new FileNotFoundException("results store lost the folder", path)
                    : store.WriteAsync(path, content, cancellationToken);

            public Task<bool> ExistsAsync(string path, CancellationToken cancellationToken) => store.ExistsAsync(path, cancellationToken);

            public IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellationToken) => store.ListAsync(prefix, cancellationToken);

            public Task DeleteAsync(string path, CancellationToken cancellationToken) => store.DeleteAsync(path, cancellationToken);

            public Task<VersionedStream> OpenReadVersionedAsync(string path, CancellationToken cancellationToken) => store.OpenReadVersionedAsync(path, cancellationToken);

            public Task<ConditionalDelete> DeleteIfVersionAsync(string path, string version, CancellationToken cancellationToken) => store.DeleteIfVersionAsync(path, version, cancellationToken);
        }
    }
}
