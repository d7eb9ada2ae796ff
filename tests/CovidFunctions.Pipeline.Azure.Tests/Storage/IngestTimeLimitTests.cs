using System.Text;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;

using static CovidFunctions.Pipeline.Azure.Tests.Storage.UploadTestFiles;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// An ingest attempt that reaches <see cref="PipelineOptions.IngestTimeLimit"/>, on Azurite: it is a failed, counted
/// attempt whose error names the limit and the upload's size, so <see cref="PipelineOptions.MaxIngestAttempts"/> ends
/// it as <c>ingest-failed</c> with that reason; the caller's own cancellation (the host stopping, or cutting the
/// invocation at functionTimeout) is still not counted.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class IngestTimeLimitTests(AzuriteFixture azurite)
{
    private const string Limited = "TimeoutException: ingest did not finish within 300 ms (Pipeline:IngestTimeLimit; upload ";

    private readonly DeidKey _key = DeidKey.Generate();

    private IBlobStore Uploads => azurite.Storage.BlobContainers.Get(PipelineNames.UploadsContainer);

    [Fact]
    public async Task An_attempt_that_reaches_the_time_limit_is_counted_with_the_reason_and_the_last_one_fails_the_study()
    {
        var (unit, zip) = await UploadAsync();
        var options = new PipelineOptions { MaxIngestAttempts = 2, IngestTimeLimit = TimeSpan.FromMilliseconds(300) };
        var notifier = new RecordingNotifier();
        var orchestrations = new RecordingOrchestrations();
        var size = $"{zip.Length / 1024.0 / 1024.0:0.0} MiB in 1 blob(s)), stopped while writing the tiles";

        // Every attempt hangs at its first tile write (a decoder or a storage call that never returns) until cancelled.
        var hang = new TileWritesHang(azurite.Storage.BlobContainers);
        var thrown = await Assert.ThrowsAsync<TimeoutException>(() => Handler(hang, options, orchestrations, notifier).IngestAsync(unit, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(2)));

        // Before, the limit did not exist: the host cut the attempt at functionTimeout as a host stop, uncounted, and the
        // trigger's retries and the minute sweep repeated it until the watchdog failed the study 6 h on.
        Assert.StartsWith(Limited["TimeoutException: ".Length..], thrown.Message, StringComparison.Ordinal);
        var row = (await azurite.Storage.Studies.GetAsync(unit.Tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Processing, 1, null), (row.Status, row.IngestAttempts, row.IngestClaim));
        Assert.Equal(Limited + size, row.IngestError);
        Assert.True(await Uploads.ExistsAsync(unit.UploadPath, CancellationToken.None), "the upload stays while another attempt may succeed");

        // The last allowed attempt times out too: the study fails with the reason, its upload in quarantine.
        var outcome = await Handler(hang, options, orchestrations, notifier).IngestAsync(unit, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(2));

        Assert.Equal((IngestStatus.Failed, IngestHandler.IngestFailedReason), (outcome.Status, outcome.Reason));
        var failed = (await azurite.Storage.Studies.GetAsync(unit.Tenant, unit.StudyId, CancellationToken.None))!;
        var detail = $"ingest failed on each of 2 attempt(s) (Pipeline:MaxIngestAttempts 2); the last error: {Limited}{size}";
        Assert.Equal((StudyStatus.Failed, detail, 2), (failed.Status, failed.Reason, failed.IngestAttempts));
        var quarantine = azurite.Storage.BlobContainers.Get(PipelineNames.QuarantineContainer);
        Assert.True(await quarantine.ExistsAsync($"{unit.Tenant}/{unit.StudyId}/original/scan.zip", CancellationToken.None));
        await using var reasonJson = await quarantine.OpenReadAsync($"{unit.Tenant}/{unit.StudyId}/reason.json", CancellationToken.None);
        var reason = PipelineJson.Deserialize<QuarantineReason>(await new StreamReader(reasonJson, Encoding.UTF8).ReadToEndAsync());
        Assert.Equal((IngestHandler.IngestFailedReason, detail), (reason.Reason, reason.Detail));
        Assert.Equal([(unit.Tenant, unit.StudyId, StudyEventTypes.Failed)], notifier.Events);
        Assert.Empty(orchestrations.Started);
        Assert.Empty(await azurite.Storage.BlobContainers.Get(PipelineNames.SlicesContainer).ListAsync($"{unit.Tenant}/", CancellationToken.None).ToListAsync());
    }

    [Fact]
    public async Task The_callers_cancellation_within_the_limit_is_a_host_stop_and_not_counted()
    {
        var (unit, _) = await UploadAsync();
        var options = new PipelineOptions { MaxIngestAttempts = 1, IngestTimeLimit = TimeSpan.FromMinutes(10) };
        var hang = new TileWritesHang(azurite.Storage.BlobContainers);
        using var host = new CancellationTokenSource();

        var attempt = Task.Run(() => Handler(hang, options, new RecordingOrchestrations(), new RecordingNotifier()).IngestAsync(unit, host.Token));
        await hang.Reached.WaitAsync(TimeSpan.FromMinutes(2));
        await host.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => attempt.WaitAsync(TimeSpan.FromMinutes(2)));
        var row = (await azurite.Storage.Studies.GetAsync(unit.Tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Processing, 0, null, null), (row.Status, row.IngestAttempts, row.IngestError, row.IngestClaim));

        // The only allowed attempt is still to come: the next delivery ingests the study.
        var outcome = await Handler(azurite.Storage.BlobContainers, options, new RecordingOrchestrations(), new RecordingNotifier()).IngestAsync(unit, CancellationToken.None);
        Assert.Equal(IngestStatus.Ingested, outcome.Status);
    }

    private async Task<(UploadUnit Unit, byte[] Zip)> UploadAsync()
    {
        var tenant = AzuriteFixture.NewTenant();
        var path = $"{tenant}/scan.zip";
        var zip = Zip(MidChestSlices(3));
        await Uploads.WriteAsync(path, new MemoryStream(zip), CancellationToken.None);
        return (UploadUnitPlanner.ForSingleBlob(new UploadBlob(path, DateTimeOffset.UtcNow, zip.Length), StudyIdKey.From(_key))!, zip);
    }

    private IngestHandler Handler(IBlobContainers containers, PipelineOptions options, RecordingOrchestrations orchestrations, RecordingNotifier notifier) =>
        IngestOnAzurite.NewHandler(azurite, _key, orchestrations, containers, notifier, options, TimeProvider.System);

    /// <summary>Azurite's containers, but every write under <c>slices</c> waits until its token is cancelled (a hung call).</summary>
    private sealed class TileWritesHang(IBlobContainers inner) : IBlobContainers
    {
        private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Reached => _reached.Task;

        public IBlobStore Get(string container) => container == PipelineNames.SlicesContainer ? new Hanging(this, inner.Get(container)) : inner.Get(container);

        public string LinkTo(string container, string path) => inner.LinkTo(container, path);

        private sealed class Hanging(TileWritesHang gate, IBlobStore store) : IBlobStore
        {
            public Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken) => store.OpenReadAsync(path, cancellationToken);

            public async Task WriteAsync(string path, Stream content, CancellationToken cancellationToken)
            {
                if (path.Contains("/tiles/", StringComparison.Ordinal))
                {
                    gate._reached.TrySetResult();
                    await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
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
