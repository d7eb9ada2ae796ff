using CovidFunctions.Dicom;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging.Series;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

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
        var unit = await UploadScanAsync(tenant);
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

    [Fact]
    public async Task An_attempt_whose_study_was_given_up_while_it_stalled_bills_no_ingest_usage()
    {
        var tenant = AzuriteFixture.NewTenant();
        var from = DateTimeOffset.UtcNow;
        var unit = await UploadScanAsync(tenant);
        var oneAttempt = new PipelineOptions { MaxIngestAttempts = 1 };

        // The only allowed attempt stalls at its first tile write; the sweep gives the study up meanwhile.
        var stall = new FirstTileWriteStalls(azurite.Storage.BlobContainers);
        var stalled = Task.Run(() => Handler(stall, oneAttempt, new RecordingOrchestrations(), new RecordingNotifier(), TimeProvider.System).IngestAsync(unit, CancellationToken.None));
        await stall.Reached.WaitAsync(TimeSpan.FromMinutes(2));
        var later = new AheadClock(IngestHandler.IngestClaimLease + TimeSpan.FromMinutes(1));
        Assert.Equal(IngestStatus.Failed, (await Handler(azurite.Storage.BlobContainers, oneAttempt, new RecordingOrchestrations(), new RecordingNotifier(), later).IngestAsync(unit, CancellationToken.None)).Status);

        // The stalled attempt goes on, tiles the study, and finds at its closing write that the study is not its own.
        stall.Release();
        Assert.Equal(IngestStatus.Failed, (await stalled.WaitAsync(TimeSpan.FromMinutes(2))).Status);

        // Before, it recorded the study's ingest usage ahead of that write: the tenant was billed the ingest of a study
        // that failed as ingest-failed, never ingested.
        Assert.Null((await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!.IngestedAt);
        Assert.Empty(await UsageOfAsync(tenant, from));
    }

    [Fact]
    public async Task An_ingest_that_died_between_its_ingested_row_and_its_usage_is_billed_once_by_the_redelivery()
    {
        var tenant = AzuriteFixture.NewTenant();
        var from = DateTimeOffset.UtcNow;
        var unit = await UploadScanAsync(tenant);
        var orchestrations = new RecordingOrchestrations();

        // The attempt writes the study ingested (the fenced write), then its process dies as it records the usage.
        var dying = new IngestHandler(
            azurite.Storage.BlobContainers, azurite.Storage.Studies, new UsageDies(), orchestrations, new DeidentificationEngine(_key),
            Microsoft.Extensions.Options.Options.Create(new PipelineOptions()), Microsoft.Extensions.Logging.Abstractions.NullLogger<IngestHandler>.Instance, TimeProvider.System);
        await Assert.ThrowsAsync<IOException>(() => dying.IngestAsync(unit, CancellationToken.None));
        var ingested = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.NotNull(ingested.IngestedAt);
        Assert.Empty(await UsageOfAsync(tenant, from));
        Assert.Empty(orchestrations.Started);

        // The trigger retries the delivery: the usage the landed attempt kept in the row is recorded, then the orchestration starts.
        var again = await Handler(azurite.Storage.BlobContainers, new PipelineOptions(), orchestrations, new RecordingNotifier(), TimeProvider.System).IngestAsync(unit, CancellationToken.None);
        Assert.Equal(IngestStatus.AlreadyIngested, again.Status);
        var usage = Assert.Single(await UsageOfAsync(tenant, from));
        Assert.Equal((unit.StudyId, IngestHandler.UsageStage, ingested.SliceCount), (usage.StudyId, usage.Stage, usage.Slices));
        Assert.True(usage.BytesStored > 0);
        Assert.Single(orchestrations.Started);

        // Delivered once more: billed once.
        await Handler(azurite.Storage.BlobContainers, new PipelineOptions(), orchestrations, new RecordingNotifier(), TimeProvider.System).IngestAsync(unit, CancellationToken.None);
        Assert.Equal(usage, Assert.Single(await UsageOfAsync(tenant, from)));
    }

    [Fact]
    public async Task A_host_stop_of_an_attempt_taken_over_leaves_the_new_holders_attempt_counted()
    {
        var tenant = AzuriteFixture.NewTenant();
        var unit = await UploadScanAsync(tenant);
        var options = new PipelineOptions();

        // Attempt A stalls at its first tile write (a paused process); B takes the study over.
        using var hostA = new CancellationTokenSource();
        var stallA = new FirstTileWriteStalls(azurite.Storage.BlobContainers);
        var (attemptA, attemptB, stallB, heldByB) = await TakeOverAsync(
            unit, () => Handler(stallA, options, new RecordingOrchestrations(), new RecordingNotifier(), TimeProvider.System).IngestAsync(unit, hostA.Token), stallA.Reached, options);
        Assert.Equal((StudyStatus.Processing, 2), (heldByB.Status, heldByB.IngestAttempts));
        Assert.NotNull(heldByB.IngestClaim);

        // A's host stops (a scale-in): a stop is not the upload's failure, so A gives its attempt back, if it is still A's.
        await hostA.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => attemptA.WaitAsync(TimeSpan.FromMinutes(2)));

        // Before, A's give-back decremented the row whoever held it: B's attempt was uncounted (1), and the study got one
        // attempt more than Pipeline:MaxIngestAttempts. The row is B's and untouched.
        Assert.Equal(heldByB, await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None));

        stallB.Release();
        Assert.Equal(IngestStatus.Ingested, (await attemptB.WaitAsync(TimeSpan.FromMinutes(2))).Status);
        Assert.Equal(2, (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!.IngestAttempts);
    }

    [Fact]
    public async Task A_failure_of_an_attempt_taken_over_leaves_the_new_holders_row_untouched()
    {
        var tenant = AzuriteFixture.NewTenant();
        var unit = await UploadScanAsync(tenant);
        var options = new PipelineOptions();

        // Attempt A stalls at its first tile write (a paused process); B takes the study over.
        var stallA = new FirstTileWriteStalls(azurite.Storage.BlobContainers);
        var (attemptA, attemptB, stallB, heldByB) = await TakeOverAsync(
            unit, () => Handler(stallA, options, new RecordingOrchestrations(), new RecordingNotifier(), TimeProvider.System).IngestAsync(unit, CancellationToken.None), stallA.Reached, options);
        Assert.Equal((StudyStatus.Processing, 2, null), (heldByB.Status, heldByB.IngestAttempts, heldByB.IngestError));

        // A's stalled write then fails (storage refuses it): a counted failure, thrown for the trigger to retry.
        stallA.Fail(new IOException("the storage account refused the write"));
        await Assert.ThrowsAsync<IOException>(() => attemptA.WaitAsync(TimeSpan.FromMinutes(2)));

        // Before, A wrote its error onto the row whoever held it: B's row read "IOException: the storage account refused
        // the write" while B ingested it. The row is B's and untouched.
        Assert.Equal(heldByB, await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None));

        stallB.Release();
        Assert.Equal(IngestStatus.Ingested, (await attemptB.WaitAsync(TimeSpan.FromMinutes(2))).Status);
        var ingested = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Equal((2, null), (ingested.IngestAttempts, ingested.IngestError));
    }

    [Fact]
    public async Task A_failure_of_an_attempt_whose_study_was_given_up_while_it_stalled_leaves_the_failed_row_untouched()
    {
        var tenant = AzuriteFixture.NewTenant();
        var unit = await UploadScanAsync(tenant);
        var oneAttempt = new PipelineOptions { MaxIngestAttempts = 1 };
        var notifier = new RecordingNotifier();

        // The only allowed attempt stalls at its first tile write; the sweep finds its claim expired and the attempts
        // spent, and gives the study up.
        var stall = new FirstTileWriteStalls(azurite.Storage.BlobContainers);
        var stalled = Task.Run(() => Handler(stall, oneAttempt, new RecordingOrchestrations(), notifier, TimeProvider.System).IngestAsync(unit, CancellationToken.None));
        await stall.Reached.WaitAsync(TimeSpan.FromMinutes(2));
        var later = new AheadClock(IngestHandler.IngestClaimLease + TimeSpan.FromMinutes(1));
        Assert.Equal(IngestStatus.Failed, (await Handler(azurite.Storage.BlobContainers, oneAttempt, new RecordingOrchestrations(), notifier, later).IngestAsync(unit, CancellationToken.None)).Status);
        var failed = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;

        // The stalled write then fails.
        stall.Fail(new IOException("the storage account refused the write"));
        await Assert.ThrowsAsync<IOException>(() => stalled.WaitAsync(TimeSpan.FromMinutes(2)));

        // Before, its error was written onto the failed row (IngestError said the write was refused, while the row's
        // reason said no error was recorded). The failed row is as the give-up left it; one study.failed.
        Assert.Equal(failed, await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None));
        Assert.Equal([(tenant, unit.StudyId, StudyEventTypes.Failed)], notifier.Events);
    }

    [Fact]
    public async Task A_host_stop_of_the_holding_attempt_gives_its_attempt_back_and_releases_the_study()
    {
        var tenant = AzuriteFixture.NewTenant();
        var unit = await UploadScanAsync(tenant);

        using var host = new CancellationTokenSource();
        var stall = new FirstTileWriteStalls(azurite.Storage.BlobContainers);
        var attempt = Task.Run(() => Handler(stall, new PipelineOptions(), new RecordingOrchestrations(), new RecordingNotifier(), TimeProvider.System).IngestAsync(unit, host.Token));
        await stall.Reached.WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(1, (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!.IngestAttempts);

        await host.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => attempt.WaitAsync(TimeSpan.FromMinutes(2)));

        // Still its own: not counted, and free for the next start at once.
        var row = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Processing, 0, null, null), (row.Status, row.IngestAttempts, row.IngestClaim, row.IngestClaimExpiresAt));
    }

    [Fact]
    public async Task An_input_defect_of_an_attempt_taken_over_leaves_the_new_holders_row_and_upload_untouched()
    {
        // No known upload reaches the fail-at-once path (IngestNonFiniteGeometryTests): it is the safety net for a defect
        // of our own. Attempt A stands one in: its process runs with assembly options no start-up would accept
        // (LungKernelHints null), so assembling this two-series upload throws an ArgumentNullException, an input defect.
        var tenant = AzuriteFixture.NewTenant();
        using var temp = TestData.CreateTempDirectory();
        var path = $"{tenant}/two-series.zip";
        var zip = Zip([.. MidChestSlices(3), .. AsSecondSeries(MidChestSlices(3), temp.Path)]);
        await Uploads.WriteAsync(path, new MemoryStream(zip), CancellationToken.None);
        var unit = UploadUnitPlanner.ForSingleBlob(new UploadBlob(path, DateTimeOffset.UtcNow, zip.Length), StudyIdKey.From(_key))!;
        var options = new PipelineOptions();
        var notifier = new RecordingNotifier();

        // Attempt A takes the claim and stalls reading the upload (a paused process); B takes the study over.
        var stallA = new FirstUploadReadStalls(azurite.Storage.BlobContainers);
        var defective = new SeriesAssemblyOptions { LungKernelHints = null! };
        var handlerA = new IngestHandler(
            stallA, azurite.Storage.Studies, azurite.Storage.Usage, new RecordingOrchestrations(), new DeidentificationEngine(_key),
            Microsoft.Extensions.Options.Options.Create(options), Microsoft.Extensions.Logging.Abstractions.NullLogger<IngestHandler>.Instance, TimeProvider.System, notifier, defective);
        var orchestrationsB = new RecordingOrchestrations();
        var (attemptA, attemptB, stallB, heldByB) = await TakeOverAsync(unit, () => handlerA.IngestAsync(unit, CancellationToken.None), stallA.Reached, options, orchestrationsB, notifier);
        Assert.Equal((StudyStatus.Processing, 2, null), (heldByB.Status, heldByB.IngestAttempts, heldByB.IngestError));

        // A goes on: it reads the upload and meets its defect while assembling the series.
        stallA.Release();
        var outcomeA = await attemptA.WaitAsync(TimeSpan.FromMinutes(2));

        // Before, A wrote its defect onto B's row, failed the study (ingest-failed), moved the upload B was ingesting to
        // quarantine and sent study.failed. The row is B's and untouched, the upload where it was, nothing sent.
        Assert.True(outcomeA.Status == IngestStatus.InProgress, $"{outcomeA.Status}: {outcomeA.Reason} {outcomeA.Detail}");
        Assert.Equal(heldByB, await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None));
        Assert.True(await Uploads.ExistsAsync(path, CancellationToken.None));
        Assert.Empty(notifier.Events);

        stallB.Release();
        Assert.Equal(IngestStatus.Ingested, (await attemptB.WaitAsync(TimeSpan.FromMinutes(2))).Status);
        var ingested = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Processing, 2, null, 3), (ingested.Status, ingested.IngestAttempts, ingested.IngestError, ingested.SliceCount));
        Assert.Single(orchestrationsB.Started);
    }

    /// <summary>Copies of <paramref name="slices"/> as another series of the same study (new series and instance UIDs), in <paramref name="folder"/>.</summary>
    private static List<string> AsSecondSeries(List<string> slices, string folder)
    {
        var series = $"2.25.{Guid.NewGuid().ToByteArray().Aggregate(System.Numerics.BigInteger.Zero, (n, b) => (n * 256) + b)}";
        var copies = new List<string>();
        for (var i = 0; i < slices.Count; i++)
        {
            var file = DicomFile.Open(slices[i]);
            file.Dataset.SetString(DicomTags.SeriesInstanceUID, DicomVR.UI, series);
            file.Dataset.SetString(DicomTags.SOPInstanceUID, DicomVR.UI, $"{series}.{i + 1}");
            file.Dataset.SetString(DicomTags.SeriesNumber, DicomVR.IS, "99");
            var output = Path.Combine(folder, $"second-{Path.GetFileName(slices[i])}");
            file.Save(output);
            copies.Add(output);
        }

        return copies;
    }

    /// <summary>Uploads a zip of three real mid-chest CT slices as <c>{tenant}/scan.zip</c> and plans it as one study.</summary>
    private async Task<UploadUnit> UploadScanAsync(string tenant)
    {
        var path = $"{tenant}/scan.zip";
        var zip = Zip(MidChestSlices(3));
        await Uploads.WriteAsync(path, new MemoryStream(zip), CancellationToken.None);
        return UploadUnitPlanner.ForSingleBlob(new UploadBlob(path, DateTimeOffset.UtcNow, zip.Length), StudyIdKey.From(_key))!;
    }

    /// <summary>The tenant's usage records filed from the month of <paramref name="from"/> to now's.</summary>
    private async Task<List<UsageRecord>> UsageOfAsync(string tenant, DateTimeOffset from)
    {
        var months = new[] { UsageQueries.MonthOf(from), UsageQueries.MonthOf(DateTimeOffset.UtcNow) }.Distinct();
        var records = new List<UsageRecord>();
        foreach (var month in months)
        {
            records.AddRange(await azurite.Storage.Usage.GetMonthAsync(tenant, month, CancellationToken.None));
        }

        return records;
    }

    private IngestHandler Handler(IBlobContainers containers, PipelineOptions options, RecordingOrchestrations orchestrations, RecordingNotifier notifier, TimeProvider time) =>
        IngestOnAzurite.NewHandler(azurite, _key, orchestrations, containers, notifier, options, time);

    /// <summary>
    /// Instance A stalls and instance B takes the claim over, as the tests above stage it: <paramref name="startA"/> runs
    /// attempt A, which takes the study's claim and stalls (a paused process: its claim is not renewed) until its gate
    /// opens, <paramref name="aStalled"/> saying it got there. Three minutes on, another delivery (attempt B, on
    /// <paramref name="orchestrationsB"/> and <paramref name="notifierB"/> when given) finds A's claim expired, takes
    /// the study over (attempt 2, its claim) and stalls at its first tile write. Returns both attempts running, B's gate
    /// and the row as B holds it.
    /// </summary>
    private async Task<TakeOver> TakeOverAsync(
        UploadUnit unit, Func<Task<IngestOutcome>> startA, Task aStalled, PipelineOptions options, RecordingOrchestrations? orchestrationsB = null, RecordingNotifier? notifierB = null)
    {
        var attemptA = Task.Run(startA);
        await aStalled.WaitAsync(TimeSpan.FromMinutes(2));

        var later = new AheadClock(IngestHandler.IngestClaimLease + TimeSpan.FromMinutes(1));
        var stallB = new FirstTileWriteStalls(azurite.Storage.BlobContainers);
        var attemptB = Task.Run(() => Handler(stallB, options, orchestrationsB ?? new RecordingOrchestrations(), notifierB ?? new RecordingNotifier(), later).IngestAsync(unit, CancellationToken.None));
        await stallB.Reached.WaitAsync(TimeSpan.FromMinutes(2));
        var heldByB = (await azurite.Storage.Studies.GetAsync(unit.Tenant, unit.StudyId, CancellationToken.None))!;
        return new TakeOver(attemptA, attemptB, stallB, heldByB);
    }

    /// <summary>What <see cref="TakeOverAsync"/> leaves: A stalled and no longer holding the study, B stalled holding it.</summary>
    private sealed record TakeOver(Task<IngestOutcome> AttemptA, Task<IngestOutcome> AttemptB, FirstTileWriteStalls StallB, StudyRecord HeldByB);

    /// <summary>The process dying as it records usage (every record refused with an IOException, nothing written).</summary>
    private sealed class UsageDies : IUsageStore
    {
        public Task<bool> TryRecordAsync(UsageRecord record, CancellationToken cancellationToken) => throw new IOException("the process was killed");

        public Task<IReadOnlyList<UsageRecord>> GetMonthAsync(string tenant, string month, CancellationToken cancellationToken) => Task.FromResult<IReadOnlyList<UsageRecord>>([]);
    }

    private sealed class AheadClock(TimeSpan ahead) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + ahead;
    }

    /// <summary>Azurite's containers, but the first read of an upload (in <c>ct-uploads</c>) waits until <see cref="Release"/> (a paused process).</summary>
    private sealed class FirstUploadReadStalls(IBlobContainers inner) : IBlobContainers
    {
        private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _reads;

        public Task Reached => _reached.Task;

        public void Release() => _released.TrySetResult();

        public IBlobStore Get(string container) => container == PipelineNames.UploadsContainer ? new Stalling(this, inner.Get(container)) : inner.Get(container);

        public string LinkTo(string container, string path) => inner.LinkTo(container, path);

        private sealed class Stalling(FirstUploadReadStalls gate, IBlobStore store) : IBlobStore
        {
            public Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken) => store.OpenReadAsync(path, cancellationToken);

            public Task WriteAsync(string path, Stream content, CancellationToken cancellationToken) => store.WriteAsync(path, content, cancellationToken);

            public Task<bool> ExistsAsync(string path, CancellationToken cancellationToken) => store.ExistsAsync(path, cancellationToken);

            public IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellationToken) => store.ListAsync(prefix, cancellationToken);

            public Task DeleteAsync(string path, CancellationToken cancellationToken) => store.DeleteAsync(path, cancellationToken);

            public async Task<VersionedStream> OpenReadVersionedAsync(string path, CancellationToken cancellationToken)
            {
                if (Interlocked.Increment(ref gate._reads) == 1)
                {
                    gate._reached.TrySetResult();
                    await gate._released.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
                }

                return await store.OpenReadVersionedAsync(path, cancellationToken).ConfigureAwait(false);
            }

            public Task<ConditionalDelete> DeleteIfVersionAsync(string path, string version, CancellationToken cancellationToken) => store.DeleteIfVersionAsync(path, version, cancellationToken);
        }
    }

    /// <summary>Azurite's containers, but the first write under <c>slices</c> waits until <see cref="Release"/> (a paused process).</summary>
    private sealed class FirstTileWriteStalls(IBlobContainers inner) : IBlobContainers
    {
        private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _writes;

        public Task Reached => _reached.Task;

        public void Release() => _released.TrySetResult();

        /// <summary>The stalled write throws <paramref name="fault"/> instead of going on (storage refusing it).</summary>
        public void Fail(Exception fault) => _released.TrySetException(fault);

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
