using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;

using static CovidFunctions.Pipeline.Azure.Tests.Storage.UploadTestFiles;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// An ingest attempt that outlives its claim (a process paused, or its renewals failing, for longer than
/// <see cref="IngestHandler.IngestClaimLease"/>) while another delivery decides the study, on Azurite: when it ends, the
/// write that would say the study ingested finds the study no longer its own, and the attempt records nothing.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class IngestClaimFenceTests(AzuriteFixture azurite)
{
    private readonly DeidKey _key = DeidKey.Generate();

    private IBlobStore Uploads => azurite.Storage.BlobContainers.Get(PipelineNames.UploadsContainer);

    [Fact]
    public async Task An_attempt_whose_study_was_given_up_while_it_stalled_does_not_write_it_ingested_nor_start_it()
    {
        var tenant = AzuriteFixture.NewTenant();
        var path = $"{tenant}/scan.zip";
        var zip = Zip(MidChestSlices(3));
        await Uploads.WriteAsync(path, new MemoryStream(zip), CancellationToken.None);
        var unit = UploadUnitPlanner.ForSingleBlob(new UploadBlob(path, DateTimeOffset.UtcNow, zip.Length), StudyIdKey.From(_key))!;
        var oneAttempt = new PipelineOptions { MaxIngestAttempts = 1 };
        var orchestrations = new RecordingOrchestrations();
        var notifier = new RecordingNotifier();

        // The only allowed attempt has read the upload and stalls at its first tile write.
        var stall = new FirstTileWriteStalls(azurite.Storage.BlobContainers);
        var stalled = Task.Run(() => Handler(stall, oneAttempt, orchestrations, notifier, TimeProvider.System).IngestAsync(unit, CancellationToken.None));
        await stall.Reached.WaitAsync(TimeSpan.FromMinutes(2));

        // Three minutes on its claim has not been renewed: the next delivery (the sweep) finds it expired and the
        // attempts spent, and gives the study up (upload to quarantine, study.failed).
        var later = new AheadClock(IngestHandler.IngestClaimLease + TimeSpan.FromMinutes(1));
        var gaveUp = await Handler(azurite.Storage.BlobContainers, oneAttempt, orchestrations, notifier, later).IngestAsync(unit, CancellationToken.None);
        Assert.Equal((IngestStatus.Failed, IngestHandler.IngestFailedReason), (gaveUp.Status, gaveUp.Reason));
        var failed = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;

        // The stalled attempt goes on and ends.
        stall.Release();
        var outcome = await stalled.WaitAsync(TimeSpan.FromMinutes(2));

        // Before, it wrote the failed study ingested (IngestedAt, tiles, series) and started its orchestration: a study
        // failed as ingest-failed, its upload in quarantine, that read as failed after ingest (a new upload at its path
        // kept apart for ever as reupload-after-ingest).
        Assert.Equal(IngestStatus.Failed, outcome.Status);
        var row = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Failed, failed.Reason, null, null), (row.Status, row.Reason, row.IngestedAt, row.TilesPrefix));
        Assert.Empty(orchestrations.Started);
        Assert.Empty(await azurite.Storage.BlobContainers.Get(PipelineNames.SlicesContainer).ListAsync($"{tenant}/", CancellationToken.None).ToListAsync());
        Assert.Equal([(tenant, unit.StudyId, StudyEventTypes.Failed)], notifier.Events);
    }

    private IngestHandler Handler(IBlobContainers containers, PipelineOptions options, RecordingOrchestrations orchestrations, RecordingNotifier notifier, TimeProvider time) =>
        IngestOnAzurite.NewHandler(azurite, _key, orchestrations, containers, notifier, options, time);

    private sealed class AheadClock(TimeSpan ahead) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + ahead;
    }

    /// <summary>Azurite's containers, but the first write under <c>slices</c> waits until <see cref="Release"/> (a paused process).</summary>
    private sealed class FirstTileWriteStalls(IBlobContainers inner) : IBlobContainers
    {
        private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _writes;

        public Task Reached => _reached.Task;

        public void Release() => _released.TrySetResult();

        public IBlobStore Get(string container) => container == PipelineNames.SlicesContainer ? new Stalling(this, inner.Get(container)) : inner.Get(container);

        public string LinkTo(string container, string path) => inner.LinkTo(container, path);

        private sealed class Stalling(FirstTileWriteStalls gate, IBlobStore store) : IBlobStore
        {
            public Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken) => store.OpenReadAsync(path, cancellationToken);

            public async Task WriteAsync(string path, Stream content, CancellationToken cancellationToken)
            {
                if (Interlocked.Increment(ref gate._writes) == 1)
                {
                    gate._reached.TrySetResult();
                    await gate._released.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
                }

                await store.WriteAsync(path, content, cancellationToken).ConfigureAwait(false);
            }

            public Task<bool> ExistsAsync(string path, CancellationToken cancellationToken) => store.ExistsAsync(path, cancellationToken);

            public IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellationToken) => store.ListAsync(prefix, cancellationToken);

            public Task DeleteAsync(string path, CancellationToken cancellationToken) => store.DeleteAsync(path, cancellationToken);

            public Task<VersionedStream> OpenReadVersionedAsync(string path, CancellationToken cancellationToken) => store.OpenReadVersionedAsync(path, cancellationToken);

            public Task<ConditionalDelete> DeleteIfVersionAsync(string path, string version, CancellationToken cancellationToken) => store.DeleteIfVersionAsync(path, version, cancellationToken);
        }
    }
}
