using System.Text;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace CovidFunctions.Pipeline.Tests.Ingest;

/// <summary>
/// The one place that deletes and settles raw uploads (<see cref="UploadArchive"/>), on real files: deletes rely on the
/// <see cref="IBlobStore.DeleteAsync"/> contract (a missing blob is not an error) instead of checking existence first.
/// </summary>
public sealed class UploadArchiveTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    private static readonly UploadReadKey ReadKey = UploadReadKey.From(DeidKey.Generate());

    private readonly TempDirectory _temp = TestData.CreateTempDirectory();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task A_rejected_folder_upload_is_deleted_without_an_existence_check_per_blob_marker_last()
    {
        var containers = new CountingContainers(new FileSystemBlobContainers(Path.Combine(_temp.Path, "storage")));
        var uploads = containers.Get(PipelineNames.UploadsContainer);
        foreach (var name in new[] { "1.dcm", "2.dcm", "3.dcm", PipelineNames.CompleteMarker })
        {
            await uploads.WriteAsync($"lab-a/folder/{name}", new MemoryStream(Encoding.UTF8.GetBytes("not dicom")), default);
        }

        var unit = UploadUnitPlanner.Plan(
            [.. (await uploads.ListAsync(string.Empty, default).ToListAsync()).Select(p => new UploadBlob(p, Now, 9))], Now, new PipelineOptions(), TestStudyIdKeys.Fixed).Single();
        var handler = new IngestHandler(
            containers, new InMemoryStudyStore(), new InMemoryUsageStore(), new RecordingOrchestrationClient(),
            new DeidentificationEngine(DeidKey.Generate()), Options.Create(new PipelineOptions()), NullLogger<IngestHandler>.Instance, new ManualTimeProvider(Now));
        containers.Calls.Clear();

        var outcome = await handler.IngestAsync(unit, default);

        Assert.Equal(IngestStatus.Rejected, outcome.Status);
        var uploadCalls = containers.Calls.Where(c => c.Container == PipelineNames.UploadsContainer).ToList();

        // Before: an ExistsAsync before every DeleteAsync (IngestHandler.DeleteIfExistsAsync), 8 calls for 4 blobs.
        Assert.DoesNotContain(uploadCalls, c => c.Operation == "exists");
        var deletes = uploadCalls.Where(c => c.Operation == "delete").Select(c => c.Path).ToList();
        Assert.Equal(4, deletes.Count);
        Assert.Equal($"lab-a/folder/{PipelineNames.CompleteMarker}", deletes[^1]);
        Assert.Empty(await uploads.ListAsync(string.Empty, default).ToListAsync());
        Assert.Equal(3, (await containers.Get(PipelineNames.QuarantineContainer).ListAsync($"lab-a/{unit.StudyId}/original/", default).ToListAsync()).Count);
    }

    [Fact]
    public async Task A_blob_written_again_while_its_upload_is_rejected_is_not_deleted_with_the_copied_ones()
    {
        var inner = new FileSystemBlobContainers(Path.Combine(_temp.Path, "storage"));
        var uploads = inner.Get(PipelineNames.UploadsContainer);
        foreach (var name in new[] { "1.dcm", "2.dcm", "3.dcm", PipelineNames.CompleteMarker })
        {
            await uploads.WriteAsync($"lab-a/folder/{name}", new MemoryStream(Encoding.UTF8.GetBytes("not dicom")), default);
        }

        // The uploader writes 2.dcm again just after the reject copied it to quarantine, before the upload is deleted.
        var rewritten = Encoding.UTF8.GetBytes("the uploader's second file, never screened nor copied");
        var containers = new WriteAfterCopyContainers(inner, "/original/2.dcm", () => uploads.WriteAsync("lab-a/folder/2.dcm", new MemoryStream(rewritten), default));
        var unit = UploadUnitPlanner.Plan(
            [.. (await uploads.ListAsync(string.Empty, default).ToListAsync()).Select(p => new UploadBlob(p, Now, 9))], Now, new PipelineOptions(), TestStudyIdKeys.Fixed).Single();
        var handler = new IngestHandler(
            containers, new InMemoryStudyStore(), new InMemoryUsageStore(), new RecordingOrchestrationClient(),
            new DeidentificationEngine(DeidKey.Generate()), Options.Create(new PipelineOptions()), NullLogger<IngestHandler>.Instance, new ManualTimeProvider(Now));

        Assert.Equal(IngestStatus.Rejected, (await handler.IngestAsync(unit, default)).Status);

        // Before: deleted by name with the others, its new content in no copy. Now it stays for the next look.
        Assert.Equal(["lab-a/folder/2.dcm"], await uploads.ListAsync(string.Empty, default).ToListAsync());
        Assert.Equal(rewritten, await IngestTestHost.ReadAsync(uploads, "lab-a/folder/2.dcm"));
        Assert.Equal(3, (await inner.Get(PipelineNames.QuarantineContainer).ListAsync($"lab-a/{unit.StudyId}/original/", default).ToListAsync()).Count);
    }

    [Fact]
    public async Task Deleting_an_upload_that_is_gone_or_half_gone_is_not_an_error()
    {
        var containers = new FileSystemBlobContainers(Path.Combine(_temp.Path, "storage"));
        var uploads = containers.Get(PipelineNames.UploadsContainer);
        await uploads.WriteAsync("lab-a/folder/2.dcm", new MemoryStream([2]), default);

        // A folder whose first blob and marker another settlement already deleted, then a folder and a blob never there.
        Assert.Equal(1, await UploadArchive.DeleteAsync(containers, "lab-a/folder/", default));
        Assert.Equal(0, await UploadArchive.DeleteAsync(containers, "lab-a/folder/", default));
        Assert.Equal(0, await UploadArchive.DeleteAsync(containers, "lab-b/never/", default));
        Assert.Equal(0, await UploadArchive.DeleteAsync(containers, "lab-b/never.zip", default));
        await UploadArchive.DeleteBlobsAsync(uploads, ["lab-c/missing/folder/1.dcm", "lab-c/missing/.complete"], default);
        Assert.Empty(await uploads.ListAsync(string.Empty, default).ToListAsync());
    }

    [Fact]
    public async Task Settle_deletes_or_quarantines_the_upload_then_forgets_its_path_and_a_repeat_changes_nothing()
    {
        var containers = new FileSystemBlobContainers(Path.Combine(_temp.Path, "storage"));
        var studies = new InMemoryStudyStore();
        var uploads = containers.Get(PipelineNames.UploadsContainer);
        await uploads.WriteAsync("lab-a/done.zip", new MemoryStream([1]), default);
        await uploads.WriteAsync("lab-a/failed/1.dcm", new MemoryStream([2]), default);
        await uploads.WriteAsync($"lab-a/failed/{PipelineNames.CompleteMarker}", new MemoryStream(), default);
        await studies.TryCreateAsync(new StudyRecord { Tenant = "lab-a", StudyId = "done", Status = StudyStatus.Completed, CreatedAt = Now, UploadPath = "lab-a/done.zip" }, default);
        await studies.TryCreateAsync(new StudyRecord { Tenant = "lab-a", StudyId = "failed", Status = StudyStatus.Failed, CreatedAt = Now, UploadPath = "lab-a/failed/" }, default);
        var reason = new QuarantineReason("lab-a", "failed", "lab-a/failed/", IngestHandler.StudyFailedReason, "chunk 0 could not be scored", Now);

        Assert.Equal(1, await UploadArchive.SettleCompletedAsync(containers, studies, ReadKey, "lab-a", "done", "lab-a/done.zip", default));
        Assert.Equal(1, await UploadArchive.SettleAsync(containers, studies, "lab-a", "failed", "lab-a/failed/", reason, default));

        Assert.Empty(await uploads.ListAsync(string.Empty, default).ToListAsync());
        Assert.Null((await studies.GetAsync("lab-a", "done", default))!.UploadPath);
        Assert.Null((await studies.GetAsync("lab-a", "failed", default))!.UploadPath);
        var quarantine = containers.Get(PipelineNames.QuarantineContainer);
        Assert.Equal(["lab-a/failed/original/1.dcm", "lab-a/failed/reason.json"], await quarantine.ListAsync("lab-a/", default).ToListAsync());

        // A retried activity or sweep: nothing left to move, nothing rewritten, no error.
        Assert.Equal(0, await UploadArchive.SettleCompletedAsync(containers, studies, ReadKey, "lab-a", "done", "lab-a/done.zip", default));
        Assert.Equal(0, await UploadArchive.SettleAsync(containers, studies, "lab-a", "failed", "lab-a/failed/", reason, default));
        await Assert.ThrowsAsync<ArgumentException>(() => UploadArchive.SettleAsync(containers, studies, "lab-a", "done", "lab-a/done.zip", reason, default));
    }

    /// <summary>Runs <c>afterWrite</c> once, right after a quarantine blob whose path ends with <c>suffix</c> is written.</summary>
    private sealed class WriteAfterCopyContainers(IBlobContainers inner, string suffix, Func<Task> afterWrite) : IBlobContainers
    {
        public IBlobStore Get(string container) => container == PipelineNames.QuarantineContainer ? new Store(inner.Get(container), suffix, afterWrite) : inner.Get(container);

        public string LinkTo(string container, string path) => inner.LinkTo(container, path);

        private sealed class Store(IBlobStore store, string suffix, Func<Task> afterWrite) : IBlobStore
        {
            public Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken) => store.OpenReadAsync(path, cancellationToken);

            public async Task WriteAsync(string path, Stream content, CancellationToken cancellationToken)
            {
                await store.WriteAsync(path, content, cancellationToken);
                if (path.EndsWith(suffix, StringComparison.Ordinal))
                {
                    await afterWrite();
                }
            }

            public Task<bool> ExistsAsync(string path, CancellationToken cancellationToken) => store.ExistsAsync(path, cancellationToken);

            public IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellationToken) => store.ListAsync(prefix, cancellationToken);

            public Task DeleteAsync(string path, CancellationToken cancellationToken) => store.DeleteAsync(path, cancellationToken);

            public Task<VersionedStream> OpenReadVersionedAsync(string path, CancellationToken cancellationToken) => store.OpenReadVersionedAsync(path, cancellationToken);

            public Task<ConditionalDelete> DeleteIfVersionAsync(string path, string version, CancellationToken cancellationToken) => store.DeleteIfVersionAsync(path, version, cancellationToken);
        }
    }

    /// <summary>Counts the calls made to each container (what storage round trips a step costs).</summary>
    private sealed class CountingContainers(IBlobContainers inner) : IBlobContainers
    {
        public List<(string Container, string Operation, string Path)> Calls { get; } = [];

        public IBlobStore Get(string container) => new CountingStore(inner.Get(container), container, Calls);

        public string LinkTo(string container, string path) => inner.LinkTo(container, path);
    }

    private sealed class CountingStore(IBlobStore inner, string container, List<(string Container, string Operation, string Path)> calls) : IBlobStore
    {
        public Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken)
        {
            Record("read", path);
            return inner.OpenReadAsync(path, cancellationToken);
        }

        public Task WriteAsync(string path, Stream content, CancellationToken cancellationToken)
        {
            Record("write", path);
            return inner.WriteAsync(path, content, cancellationToken);
        }

        public Task<bool> ExistsAsync(string path, CancellationToken cancellationToken)
        {
            Record("exists", path);
            return inner.ExistsAsync(path, cancellationToken);
        }

        public IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellationToken)
        {
            Record("list", prefix);
            return inner.ListAsync(prefix, cancellationToken);
        }

        public Task DeleteAsync(string path, CancellationToken cancellationToken)
        {
            Record("delete", path);
            return inner.DeleteAsync(path, cancellationToken);
        }

        public Task<VersionedStream> OpenReadVersionedAsync(string path, CancellationToken cancellationToken)
        {
            Record("read", path);
            return inner.OpenReadVersionedAsync(path, cancellationToken);
        }

        public Task<ConditionalDelete> DeleteIfVersionAsync(string path, string version, CancellationToken cancellationToken)
        {
            Record("delete", path);
            return inner.DeleteIfVersionAsync(path, version, cancellationToken);
        }

        private void Record(string operation, string path)
        {
            lock (calls)
            {
                calls.Add((container, operation, path));
            }
        }
    }
}
