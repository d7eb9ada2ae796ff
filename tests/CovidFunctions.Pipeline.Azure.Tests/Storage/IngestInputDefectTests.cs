using System.Text;
using CovidFunctions.Dicom;
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

using static CovidFunctions.Pipeline.Azure.Tests.Storage.UploadTestFiles;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// A study-level defect that a retry cannot change (the same upload through the same code fails the same way) fails the
/// study on its first attempt, with the upload and the cause in the reason and the originals in quarantine as the
/// give-up path keeps them; a storage failure, whatever its type, is still retried. On a real Azurite, each attempt by a
/// fresh handler (a restarted process).
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class IngestInputDefectTests(AzuriteFixture azurite) : IDisposable
{
    private static readonly DeidKey Key = DeidKey.Generate();
    private readonly TempDirectory _temp = TestData.CreateTempDirectory();

    private IBlobStore Uploads => azurite.Storage.BlobContainers.Get(PipelineNames.UploadsContainer);

    private IBlobStore Quarantine => azurite.Storage.BlobContainers.Get(PipelineNames.QuarantineContainer);

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task A_series_the_assembler_throws_on_fails_the_study_at_once_with_the_upload_and_cause_and_the_original_in_quarantine()
    {
        // One slice whose Rows is present but empty: de-identification keeps it (an empty value is whole values), and the
        // series assembler's header scan throws a DicomException on it, outside the ImagingException ingest rejects on.
        // Before: the attempt threw, the trigger retried it twice more the same way, and only the third attempt failed
        // the study (ingest-failed, "failed on each of 3 attempt(s)"): three downloads, de-identifications and waits.
        var tenant = AzuriteFixture.NewTenant();
        var uploadPath = $"{tenant}/Doe_Jane_chest.zip";
        var slices = MidChestSlices(3);
        slices[1] = WithEmptyRows(slices[1]);
        var zip = Zip(slices);
        await Uploads.WriteAsync(uploadPath, new MemoryStream(zip), CancellationToken.None);
        var unit = new UploadUnit(tenant, "s-defect", uploadPath, UploadUnitKind.SingleBlob, [new UploadBlob(uploadPath, DateTimeOffset.UtcNow, zip.Length)], null);
        var notifier = new RecordingNotifier();

        var outcome = await NewIngest(azurite.Storage.BlobContainers, notifier).IngestAsync(unit, CancellationToken.None);

        Assert.Equal((IngestStatus.Failed, IngestHandler.IngestFailedReason), (outcome.Status, outcome.Reason));
        const string Cause = "DicomException: (0028,0010) has no value at index 0";
        Assert.StartsWith($"upload {uploadPath}: ingest failed while the series was assembled, on a defect a retry cannot change (the same upload fails the same way): {Cause}", outcome.Detail, StringComparison.Ordinal);
        Assert.EndsWith("; not retried (attempt 1 of 3)", outcome.Detail, StringComparison.Ordinal);
        var row = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Failed, 1, null), (row.Status, row.IngestAttempts, row.UploadPath));
        Assert.StartsWith("upload [name]: ingest failed while the series was assembled", row.Reason, StringComparison.Ordinal);
        Assert.Contains(Cause, row.Reason, StringComparison.Ordinal);
        Assert.DoesNotContain("Doe_Jane", row.Reason, StringComparison.Ordinal);
        Assert.Equal($"{Cause}", row.IngestError);
        Assert.False(await Uploads.ExistsAsync(uploadPath, CancellationToken.None));
        Assert.Equal(zip, await ReadAsync(Quarantine, $"{tenant}/{unit.StudyId}/original/Doe_Jane_chest.zip"));
        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await ReadAsync(Quarantine, $"{tenant}/{unit.StudyId}/reason.json")));
        Assert.Equal((IngestHandler.IngestFailedReason, outcome.Detail, uploadPath), (reason.Reason, reason.Detail, reason.UploadPath));
        Assert.Equal([(tenant, unit.StudyId, StudyEventTypes.Failed)], notifier.Events);
        Assert.Empty(await azurite.Storage.BlobContainers.Get(PipelineNames.SlicesContainer).ListAsync($"{tenant}/", CancellationToken.None).ToListAsync());

        // A re-delivery of the event (its blob gone) is settled as it is: no new attempt, the reason kept, no second event.
        var again = await NewIngest(azurite.Storage.BlobContainers, notifier).IngestAsync(unit, CancellationToken.None);
        Assert.Equal(IngestStatus.Failed, again.Status);
        var settled = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Failed, 1, row.Reason), (settled.Status, settled.IngestAttempts, settled.Reason));
        Assert.Single(notifier.Events);

        // A new upload at the path later is kept apart, as after a give-up: the first upload's original stays as it was.
        var second = Zip(MidChestSlices(2));
        await Uploads.WriteAsync(uploadPath, new MemoryStream(second), CancellationToken.None);
        var reupload = await NewIngest(azurite.Storage.BlobContainers, notifier).IngestAsync(
            unit with { Blobs = [new UploadBlob(uploadPath, DateTimeOffset.UtcNow.AddMinutes(5), second.Length)] }, CancellationToken.None);
        Assert.Equal((IngestStatus.Rejected, "reupload-after-failure"), (reupload.Status, reupload.Reason));
        Assert.Equal(zip, await ReadAsync(Quarantine, $"{tenant}/{unit.StudyId}/original/Doe_Jane_chest.zip"));
        Assert.Equal(row.Reason, (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!.Reason);
    }

    [Fact]
    public async Task A_storage_failure_while_tiling_is_retried_whatever_its_type()
    {
        // Tiling decodes (the upload's content) and writes (storage) in one call; only what the store itself threw says
        // storage. An SDK that surfaces an outage as InvalidOperationException (not an IOException) must still be retried,
        // never taken for a defect of the upload.
        var tenant = AzuriteFixture.NewTenant();
        var uploadPath = $"{tenant}/scan.zip";
        var zip = Zip(MidChestSlices(3));
        await Uploads.WriteAsync(uploadPath, new MemoryStream(zip), CancellationToken.None);
        var unit = new UploadUnit(tenant, "s-storage", uploadPath, UploadUnitKind.SingleBlob, [new UploadBlob(uploadPath, DateTimeOffset.UtcNow, zip.Length)], null);
        var containers = new TilesWritesFail(azurite.Storage.BlobContainers);
        var notifier = new RecordingNotifier();

        var thrown = await Assert.ThrowsAsync<InvalidOperationException>(() => NewIngest(containers, notifier).IngestAsync(unit, CancellationToken.None));

        Assert.Equal("the storage account is being failed over", thrown.Message);
        var row = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Processing, 1, "InvalidOperationException: the storage account is being failed over"), (row.Status, row.IngestAttempts, row.IngestError));
        Assert.True(await Uploads.ExistsAsync(uploadPath, CancellationToken.None), "the upload stays while a retry may still succeed");
        Assert.Empty(notifier.Events);

        // Storage back: the next attempt ingests it.
        var outcome = await NewIngest(azurite.Storage.BlobContainers, notifier).IngestAsync(unit, CancellationToken.None);
        Assert.Equal((IngestStatus.Ingested, 3), (outcome.Status, outcome.SliceCount));
    }

    /// <summary>A copy of the slice at <paramref name="path"/> whose Rows (0028,0010) is present with an empty value.</summary>
    private string WithEmptyRows(string path)
    {
        var file = DicomFile.Open(path);
        file.Dataset.AddOrUpdate(new DicomValueElement(new DicomTag(0x0028, 0x0010), DicomVR.US, Array.Empty<byte>()));
        var output = Path.Combine(_temp.Path, Path.GetFileName(path));
        file.Save(output);
        return output;
    }

    private IngestHandler NewIngest(IBlobContainers containers, IStudyNotifier notifier) => new(
        containers,
        azurite.Storage.Studies,
        azurite.Storage.Usage,
        new StartedOrchestrations(),
        new DeidentificationEngine(Key),
        Options.Create(new PipelineOptions()),
        NullLogger<IngestHandler>.Instance,
        TimeProvider.System,
        notifier);

    private sealed class RecordingNotifier : IStudyNotifier
    {
        public List<(string Tenant, string StudyId, string EventType)> Events { get; } = [];

        public Task NotifyAsync(string tenant, string studyId, string eventType, CancellationToken cancellationToken)
        {
            Events.Add((tenant, studyId, eventType));
            return Task.CompletedTask;
        }
    }

    private sealed class StartedOrchestrations : IStudyOrchestrationClient
    {
        public Task<bool> StartIfAbsentAsync(StudyOrchestrationInput input, CancellationToken cancellationToken) => Task.FromResult(true);

        public Task RaiseChunkResultAsync(ChunkResult result, CancellationToken cancellationToken) => Task.CompletedTask;
    }

    /// <summary>The real containers, but every write under slices fails as an SDK might report an outage: not an IOException.</summary>
    private sealed class TilesWritesFail(IBlobContainers inner) : IBlobContainers
    {
        public IBlobStore Get(string container) => container == PipelineNames.SlicesContainer ? new FailingWrites(inner.Get(container)) : inner.Get(container);

        public string LinkTo(string container, string path) => inner.LinkTo(container, path);

        private sealed class FailingWrites(IBlobStore store) : IBlobStore
        {
            public Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken) => store.OpenReadAsync(path, cancellationToken);

            public Task WriteAsync(string path, Stream content, CancellationToken cancellationToken) => throw new InvalidOperationException("the storage account is being failed over");

            public Task<bool> ExistsAsync(string path, CancellationToken cancellationToken) => store.ExistsAsync(path, cancellationToken);

            public IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellationToken) => store.ListAsync(prefix, cancellationToken);

            public Task DeleteAsync(string path, CancellationToken cancellationToken) => store.DeleteAsync(path, cancellationToken);

            public Task<VersionedStream> OpenReadVersionedAsync(string path, CancellationToken cancellationToken) => store.OpenReadVersionedAsync(path, cancellationToken);

            public Task<ConditionalDelete> DeleteIfVersionAsync(string path, string version, CancellationToken cancellationToken) => store.DeleteIfVersionAsync(path, version, cancellationToken);
        }
    }
}
