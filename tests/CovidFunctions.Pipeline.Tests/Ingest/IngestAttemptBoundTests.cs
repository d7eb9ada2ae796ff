using System.Text;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

using static CovidFunctions.Pipeline.Tests.Ingest.IngestTestFiles;

namespace CovidFunctions.Pipeline.Tests.Ingest;

/// <summary>
/// "A study never stays processing for ever", on real files and a real chest CT: an ingest that throws on every
/// attempt is bounded by <see cref="PipelineOptions.MaxIngestAttempts"/> (the count lives in the Studies row), and the
/// sweep's watchdog fails studies stuck in processing past <see cref="PipelineOptions.StuckStudyAge"/> whose
/// orchestration is not running. Both end like every failure after ingest: the upload in quarantine with the reason,
/// the row failed with it, one <c>study.failed</c>.
/// </summary>
public sealed class IngestAttemptBoundTests : IDisposable
{
    private const string Tenant = "lab-a";
    private const string StudyId = "s-bound";
    private const string UploadPath = "lab-a/Doe_Jane_scan.zip";
    private static readonly DateTimeOffset Now = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    private readonly TempDirectory _temp = TestData.CreateTempDirectory();
    private readonly InMemoryStudyStore _studies = new();
    private readonly RecordingNotifier _notifier = new();
    private readonly ManualTimeProvider _time = new(Now);
    private readonly FaultyContainers _containers;

    public IngestAttemptBoundTests()
    {
        _containers = new FaultyContainers(new FileSystemBlobContainers(Path.Combine(_temp.Path, "storage")));
    }

    public void Dispose() => _temp.Dispose();

    private IBlobStore Uploads => _containers.Get(PipelineNames.UploadsContainer);

    private IBlobStore Quarantine => _containers.Get(PipelineNames.QuarantineContainer);

    [Fact]
    public async Task An_ingest_throwing_on_every_attempt_fails_the_study_on_the_last_with_the_upload_in_quarantine()
    {
        var zip = ZipFiles(MidChestSlices(3));
        var unit = await UploadAsync(zip);
        _containers.FailSlicesWrites = true; // the disk under the tiles is full: not an input problem, so no reject

        // Before: every attempt threw, the row stayed processing, and the local watcher retried on every poll for ever.
        for (var attempt = 1; attempt <= 2; attempt++)
        {
            var thrown = await Assert.ThrowsAsync<IOException>(() => Handler().IngestAsync(unit, default));
            Assert.Equal("No space left on device", thrown.Message);
            var row = (await _studies.GetAsync(Tenant, StudyId, default))!;
            Assert.Equal((StudyStatus.Processing, attempt, "IOException: No space left on device"), (row.Status, row.IngestAttempts, row.IngestError));
            Assert.True(await Uploads.ExistsAsync(UploadPath, default), "the upload stays while ingest may still succeed");
        }

        var outcome = await Handler().IngestAsync(unit, default);

        Assert.Equal((IngestStatus.Failed, IngestHandler.IngestFailedReason), (outcome.Status, outcome.Reason));
        var failed = (await _studies.GetAsync(Tenant, StudyId, default))!;
        const string Detail = "ingest failed on each of 3 attempt(s) (Pipeline:MaxIngestAttempts 3); the last error: IOException: No space left on device";
        Assert.Equal((StudyStatus.Failed, Detail, null, 3), (failed.Status, failed.Reason, failed.UploadPath, failed.IngestAttempts));
        Assert.Empty(await Uploads.ListAsync(string.Empty, default).ToListAsync());
        Assert.Equal(zip, await ReadAsync(Quarantine, $"{Tenant}/{StudyId}/original/Doe_Jane_scan.zip"));
        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await ReadAsync(Quarantine, $"{Tenant}/{StudyId}/reason.json")));
        Assert.Equal((IngestHandler.IngestFailedReason, Detail, UploadPath), (reason.Reason, reason.Detail, reason.UploadPath));
        Assert.Equal([(Tenant, StudyId, StudyEventTypes.Failed)], _notifier.Events);
        Assert.Empty(await _containers.Get(PipelineNames.SlicesContainer).ListAsync(string.Empty, default).ToListAsync());

        // A late re-delivery of the blob event (its blob gone) changes nothing on the row. It asks the notifier for
        // study.failed again, in case the giving-up process died before sending it; the notifier delivers once per study
        // attempt and event, so no subscriber hears it twice (SettledStudyRedeliveryTests, WebhookReingestTests).
        var late = await Handler().IngestAsync(unit, default);
        Assert.Equal(IngestStatus.Failed, late.Status);
        Assert.Equal(failed, await _studies.GetAsync(Tenant, StudyId, default));
        Assert.Equal([(Tenant, StudyId, StudyEventTypes.Failed), (Tenant, StudyId, StudyEventTypes.Failed)], _notifier.Events);
        Assert.Equal(2, (await Quarantine.ListAsync($"{Tenant}/", default).ToListAsync()).Count);

        // A new upload written to the same path later is kept apart: the first upload's quarantined original stays as it was.
        var second = ZipFiles(MidChestSlices(2));
        _time.Now = Now.AddHours(2);
        await Uploads.WriteAsync(UploadPath, new MemoryStream(second), default);
        var again = await Handler().IngestAsync(new UploadUnit(Tenant, StudyId, UploadPath, UploadUnitKind.SingleBlob, [new UploadBlob(UploadPath, _time.Now, second.Length)], null), default);
        Assert.Equal((IngestStatus.Rejected, "reupload-after-failure"), (again.Status, again.Reason));
        Assert.Equal(zip, await ReadAsync(Quarantine, $"{Tenant}/{StudyId}/original/Doe_Jane_scan.zip"));
        Assert.Equal(second, await ReadAsync(Quarantine, $"{Tenant}/{StudyId}/reupload-20260301T140000Z/original/Doe_Jane_scan.zip"));
        Assert.Empty(await Uploads.ListAsync(string.Empty, default).ToListAsync());
        Assert.Equal((StudyStatus.Failed, Detail), ((await _studies.GetAsync(Tenant, StudyId, default))!.Status, (await _studies.GetAsync(Tenant, StudyId, default))!.Reason));
        Assert.Equal(2, _notifier.Events.Count);
    }

    [Fact]
    public async Task Attempts_whose_process_died_count_and_the_next_delivery_gives_up_without_ingesting_again()
    {
        var zip = ZipFiles(MidChestSlices(1));
        var unit = await UploadAsync(zip);
        await _studies.TryCreateAsync(new StudyRecord { Tenant = Tenant, StudyId = StudyId, Status = StudyStatus.Processing, CreatedAt = Now, UploadPath = UploadPath, IngestAttempts = 3 }, default);
        var uploadReads = 0;
        _containers.BeforeUploadRead = () => uploadReads++;

        var outcome = await Handler().IngestAsync(unit, default);

        Assert.Equal(IngestStatus.Failed, outcome.Status);
        var row = (await _studies.GetAsync(Tenant, StudyId, default))!;
        Assert.Equal(StudyStatus.Failed, row.Status);
        Assert.Contains("the last error: none was recorded (the process ended during the attempt", row.Reason, StringComparison.Ordinal);
        Assert.Single(_notifier.Events);
        Assert.Empty(await Uploads.ListAsync(string.Empty, default).ToListAsync());
        Assert.Equal(zip, await ReadAsync(Quarantine, $"{Tenant}/{StudyId}/original/Doe_Jane_scan.zip"));
        Assert.Equal(1, uploadReads); // the quarantine copy only: no fourth download and decode
        Assert.Equal(3, row.IngestAttempts);
    }

    [Fact]
    public async Task An_attempt_that_cannot_reach_the_studies_table_or_is_cancelled_is_not_counted()
    {
        var unit = await UploadAsync(ZipFiles(MidChestSlices(1)));
        var studies = new FailingStudyStore(_studies) { Fail = true };
        await Assert.ThrowsAsync<IOException>(() => Handler(studies).IngestAsync(unit, default));
        Assert.Null(await _studies.GetAsync(Tenant, StudyId, default));

        // The host stops while the upload is being read (after the attempt was counted): the count is given back.
        using var stopping = new CancellationTokenSource();
        _containers.BeforeUploadRead = stopping.Cancel;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Handler().IngestAsync(unit, stopping.Token));
        var row = (await _studies.GetAsync(Tenant, StudyId, default))!;
        Assert.Equal((StudyStatus.Processing, 0), (row.Status, row.IngestAttempts));
    }

    [Fact]
    public async Task A_cancellation_the_caller_did_not_ask_for_is_a_failed_attempt()
    {
        // An SDK timeout surfaces as TaskCanceledException with the ingest's own token not cancelled: counted, recorded.
        var unit = await UploadAsync(ZipFiles(MidChestSlices(3)));
        _containers.FailSlicesWrites = true;
        _containers.SlicesWriteFault = () => new TaskCanceledException("The operation was cancelled because it exceeded the configured timeout");

        await Assert.ThrowsAsync<TaskCanceledException>(() => Handler().IngestAsync(unit, default));

        var row = (await _studies.GetAsync(Tenant, StudyId, default))!;
        Assert.Equal((1, "TaskCanceledException: The operation was cancelled because it exceeded the configured timeout"), (row.IngestAttempts, row.IngestError));
    }

    [Fact]
    public async Task The_sweep_fails_studies_stuck_processing_whose_orchestration_is_not_running_and_leaves_the_others()
    {
        var old = Now - TimeSpan.FromHours(7);
        var orchestrations = new StatusOrchestrations { Running = { ["o-running"] = true, ["o-ended"] = false } };
        await Uploads.WriteAsync("lab-a/ended.zip", new MemoryStream([1, 2, 3]), default);
        await Uploads.WriteAsync("lab-a/never/1.dcm", new MemoryStream([4]), default);
        await Uploads.WriteAsync("lab-a/never/.complete", new MemoryStream(), default);
        await Row("ended", old, old, "o-ended", "lab-a/ended.zip");
        await Row("running", old, old, "o-running", "lab-a/running.zip");
        await Row("unknown", old, old, "o-unknown", "lab-a/unknown.zip");
        await Row("young", old, Now - TimeSpan.FromHours(1), "o-ended", "lab-a/young.zip");
        await Row("never", old, null, null, "lab-a/never/", ingestError: "IOException: No space left on device");
        await _studies.TryCreateAsync(new StudyRecord { Tenant = Tenant, StudyId = "done", Status = StudyStatus.Completed, CreatedAt = old, CompletedAt = old }, default);

        Assert.Equal(0, await Handler(orchestrations: orchestrations).SweepExpiredUploadsAsync(Now, default));

        var statuses = new Dictionary<string, string>();
        foreach (var id in new[] { "ended", "running", "unknown", "young", "never", "done" })
        {
            statuses[id] = (await _studies.GetAsync(Tenant, id, default))!.Status;
        }

        Assert.Equal(
            new Dictionary<string, string> { ["ended"] = "failed", ["running"] = "processing", ["unknown"] = "processing", ["young"] = "processing", ["never"] = "failed", ["done"] = "completed" },
            statuses);
        var ended = (await _studies.GetAsync(Tenant, "ended", default))!;
        Assert.Equal("the study was still processing 6 h after it was ingested (Pipeline:StuckStudyAge): its orchestration is not running (it ended without settling the study, or never started)", ended.Reason);
        Assert.Null(ended.UploadPath);
        var never = (await _studies.GetAsync(Tenant, "never", default))!;
        Assert.Equal("the study was still processing 6 h after it was created (Pipeline:StuckStudyAge): its ingest never finished; the last ingest error: IOException: No space left on device", never.Reason);
        Assert.Empty(await Uploads.ListAsync(string.Empty, default).ToListAsync());
        Assert.Equal(
            ["lab-a/ended/original/ended.zip", "lab-a/ended/reason.json", "lab-a/never/original/1.dcm", "lab-a/never/reason.json"],
            await Quarantine.ListAsync("lab-a/", default).ToListAsync());
        Assert.Equal(IngestHandler.StuckReason, PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await ReadAsync(Quarantine, "lab-a/ended/reason.json"))).Reason);
        Assert.Equal([(Tenant, "ended", StudyEventTypes.Failed), (Tenant, "never", StudyEventTypes.Failed)], _notifier.Events.OrderBy(e => e.StudyId));

        // The next hourly run finds nothing more to do.
        await Handler(orchestrations: orchestrations).SweepExpiredUploadsAsync(Now.AddHours(1), default);
        Assert.Equal(2, _notifier.Events.Count);
    }

    private Task Row(string studyId, DateTimeOffset createdAt, DateTimeOffset? ingestedAt, string? orchestrationId, string uploadPath, string? ingestError = null) =>
        _studies.TryCreateAsync(new StudyRecord
        {
            Tenant = Tenant,
            StudyId = studyId,
            Status = StudyStatus.Processing,
            CreatedAt = createdAt,
            IngestedAt = ingestedAt,
            OrchestrationId = orchestrationId,
            TilesPrefix = ingestedAt is null ? null : $"{Tenant}/{studyId}/tiles",
            UploadPath = uploadPath,
            IngestError = ingestError,
        }, default);

    private IngestHandler Handler(IStudyStore? studies = null, IStudyOrchestrationClient? orchestrations = null) => new(
        _containers,
        studies ?? _studies,
        new InMemoryUsageStore(),
        orchestrations ?? new RecordingOrchestrationClient(),
        new DeidentificationEngine(DeidKey.Generate()),
        Options.Create(new PipelineOptions()),
        NullLogger<IngestHandler>.Instance,
        _time,
        _notifier);

    private async Task<UploadUnit> UploadAsync(byte[] zip)
    {
        await Uploads.WriteAsync(UploadPath, new MemoryStream(zip), default);
        return new UploadUnit(Tenant, StudyId, UploadPath, UploadUnitKind.SingleBlob, [new UploadBlob(UploadPath, Now, zip.Length)], null);
    }

    private static async Task<byte[]> ReadAsync(IBlobStore store, string path)
    {
        await using var stream = await store.OpenReadAsync(path, default);
        using var buffer = new MemoryStream();
        await stream.CopyToAsync(buffer);
        return buffer.ToArray();
    }

    /// <summary>An orchestration client that knows which instances run (an id it does not list: it cannot tell).</summary>
    private sealed class StatusOrchestrations : IStudyOrchestrationClient
    {
        public Dictionary<string, bool> Running { get; } = [];

        public Task<bool> StartIfAbsentAsync(StudyOrchestrationInput input, CancellationToken cancellationToken) => Task.FromResult(false);

        public Task RaiseChunkResultAsync(ChunkResult result, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task<bool?> IsRunningAsync(string instanceId, CancellationToken cancellationToken) =>
            Task.FromResult(Running.TryGetValue(instanceId, out var running) ? running : (bool?)null);
    }

    /// <summary>A studies table that is away (every write fails).</summary>
    private sealed class FailingStudyStore(IStudyStore inner) : IStudyStore
    {
        public bool Fail { get; init; }

        public Task<StudyRecord?> GetAsync(string tenant, string studyId, CancellationToken cancellationToken) => inner.GetAsync(tenant, studyId, cancellationToken);

        public Task<bool> TryCreateAsync(StudyRecord record, CancellationToken cancellationToken) =>
            Fail ? throw new IOException("table away") : inner.TryCreateAsync(record, cancellationToken);

        public Task<StudyRecord> UpdateAsync(string tenant, string studyId, Func<StudyRecord?, StudyRecord> update, CancellationToken cancellationToken) =>
            Fail ? throw new IOException("table away") : inner.UpdateAsync(tenant, studyId, update, cancellationToken);

        public IAsyncEnumerable<StudyRecord> QueryAsync(string? tenant, string? status, DateTimeOffset? from, DateTimeOffset? to, CancellationToken cancellationToken) =>
            inner.QueryAsync(tenant, status, from, to, cancellationToken);
    }

    /// <summary>File-system containers with switchable faults: writes under slices fail (disk full), and a hook runs before each read of an upload.</summary>
    private sealed class FaultyContainers(IBlobContainers inner) : IBlobContainers
    {
        public bool FailSlicesWrites { get; set; }

        public Action? BeforeUploadRead { get; set; }

        public Func<Exception> SlicesWriteFault { get; set; } = () => new IOException("No space left on device");

        public IBlobStore Get(string container) => new FaultyStore(inner.Get(container), container, this);

        public string LinkTo(string container, string path) => inner.LinkTo(container, path);

        private sealed class FaultyStore(IBlobStore store, string container, FaultyContainers faults) : IBlobStore
        {
            public Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken)
            {
                if (container == PipelineNames.UploadsContainer)
                {
                    faults.BeforeUploadRead?.Invoke();
                }

                return store.OpenReadAsync(path, cancellationToken);
            }

            public Task WriteAsync(string path, Stream content, CancellationToken cancellationToken) =>
                faults.FailSlicesWrites && container == PipelineNames.SlicesContainer
                    ? throw faults.SlicesWriteFault()
                    : store.WriteAsync(path, content, cancellationToken);

            public Task<bool> ExistsAsync(string path, CancellationToken cancellationToken) => store.ExistsAsync(path, cancellationToken);

            public IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellationToken) => store.ListAsync(prefix, cancellationToken);

            public Task DeleteAsync(string path, CancellationToken cancellationToken) => store.DeleteAsync(path, cancellationToken);

            public Task<VersionedStream> OpenReadVersionedAsync(string path, CancellationToken cancellationToken)
            {
                if (container == PipelineNames.UploadsContainer)
                {
                    faults.BeforeUploadRead?.Invoke();
                }

                return store.OpenReadVersionedAsync(path, cancellationToken);
            }

            public Task<ConditionalDelete> DeleteIfVersionAsync(string path, string version, CancellationToken cancellationToken) => store.DeleteIfVersionAsync(path, version, cancellationToken);
        }
    }
}
