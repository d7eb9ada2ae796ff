using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Scoring;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Tests.Scoring;

/// <summary>
/// The host's stop (the scorer's drain timeout cancels the handler's token) ends a chunk at the next model batch: no
/// further batch runs and nothing of the chunk is stored or answered; the consumer then releases the message. The
/// stores here ignore the token on purpose, so only the handler's own check between batches can stop the chunk.
/// </summary>
public sealed class ScoringHandlerCancellationTests : IDisposable
{
    private readonly ScoringTestStudy _study = new("s-cancel");

    public void Dispose() => _study.Dispose();

    [Fact]
    public async Task A_chunk_cancelled_before_its_model_batches_runs_none_and_stores_nothing()
    {
        // Slices 0-3 lie in the first tile chunk: they are read in one go, then scored in 2 batches of 2.
        await _study.WriteRealTilesAsync();

        using var stopping = new CancellationTokenSource();
        var containers = new CancelAfterTileReadContainers(_study.Containers, stopping);
        var sliceResults = new RecordingSliceResults();
        var sender = new RecordingSender();
        var handler = ScoringTestStudy.Handler(containers, sliceResults, sender, new ScoringOptions { BatchSize = 2, MaxDeliveryCount = 5 });
        var request = _study.Request(chunkIndex: 0, firstSlice: 0, sliceCount: 4);

        // The host stops as the last tile of the chunk has been read (the drain timeout fired while tiles loaded).
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => handler.HandleAsync(ScoringTestStudy.Message(request), stopping.Token));

        Assert.True(containers.TileReads > 0);
        Assert.Empty(containers.ResultWrites);
        Assert.Empty(sliceResults.Upserted);
        Assert.Empty(sender.Sent);
    }

    private sealed class RecordingSliceResults : ISliceResultStore
    {
        public List<SliceResultRecord> Upserted { get; } = [];

        public Task UpsertAsync(IReadOnlyList<SliceResultRecord> records, CancellationToken cancellationToken)
        {
            lock (Upserted)
            {
                Upserted.AddRange(records);
            }

            return Task.CompletedTask;
        }

        public Task<IReadOnlyList<SliceResultRecord>> GetAsync(string tenant, string studyId, CancellationToken cancellationToken) =>
            Task.FromResult<IReadOnlyList<SliceResultRecord>>([.. Upserted]);
    }

    /// <summary>Cancels <c>stopping</c> when a tile chunk's stream is closed; results writes are recorded and ignore the token.</summary>
    private sealed class CancelAfterTileReadContainers(IBlobContainers inner, CancellationTokenSource stopping) : IBlobContainers
    {
        private int _tileReads;

        public int TileReads => Volatile.Read(ref _tileReads);

        public List<string> ResultWrites { get; } = [];

        public IBlobStore Get(string container) => new Store(inner.Get(container), container, this, stopping);

        public string LinkTo(string container, string path) => inner.LinkTo(container, path);

        private sealed class Store(IBlobStore store, string container, CancelAfterTileReadContainers owner, CancellationTokenSource stopping) : IBlobStore
        {
            public async Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken)
            {
                var stream = await store.OpenReadAsync(path, cancellationToken);
                if (container != PipelineNames.SlicesContainer || !path.EndsWith(".npy", StringComparison.Ordinal))
                {
                    return stream;
                }

                Interlocked.Increment(ref owner._tileReads);
                return new CancelOnClose(stream, stopping);
            }

            public async Task WriteAsync(string path, Stream content, CancellationToken cancellationToken)
            {
                if (container == PipelineNames.ResultsContainer)
                {
                    lock (owner.ResultWrites)
                    {
                        owner.ResultWrites.Add(path);
                    }
                }

                await store.WriteAsync(path, content, CancellationToken.None);
            }

            public Task<bool> ExistsAsync(string path, CancellationToken cancellationToken) => store.ExistsAsync(path, CancellationToken.None);

            public IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellationToken) => store.ListAsync(prefix, CancellationToken.None);

            public Task DeleteAsync(string path, CancellationToken cancellationToken) => store.DeleteAsync(path, CancellationToken.None);

            public Task<VersionedStream> OpenReadVersionedAsync(string path, CancellationToken cancellationToken) => store.OpenReadVersionedAsync(path, CancellationToken.None);

            public Task<ConditionalDelete> DeleteIfVersionAsync(string path, string version, CancellationToken cancellationToken) => store.DeleteIfVersionAsync(path, version, CancellationToken.None);
        }
    }

    private sealed class CancelOnClose(Stream inner, CancellationTokenSource stopping) : Stream
    {
        public override bool CanRead => inner.CanRead;

        public override bool CanSeek => inner.CanSeek;

        public override bool CanWrite => false;

        public override long Length => inner.Length;

        public override long Position { get => inner.Position; set => inner.Position = value; }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);

        public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
                stopping.Cancel();
            }

            base.Dispose(disposing);
        }

        public override async ValueTask DisposeAsync()
        {
            await inner.DisposeAsync();
            await stopping.CancelAsync();
            await base.DisposeAsync();
        }
    }
}
