using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Testing;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// The minute sweep of folder uploads on Azurite: a folder whose ingest fails does not hold back the folders after it,
/// and the invocation still fails (an <see cref="AggregateException"/> of the masked failures) so retries and metrics see it.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class FolderSweepFailureTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task A_failing_folder_is_reported_and_the_folders_after_it_are_still_swept()
    {
        await using var durable = await DurableTaskTestHost.StartAsync(_ => { });
        var tenant = $"sweep-{Guid.NewGuid():N}"[..20];
        var key = DeidKey.Generate();
        var studyIdKey = StudyIdKey.From(key);
        var uploads = azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.UploadsContainer);
        await IngestFunctionsBuilder.UploadClosedJunkFoldersAsync(uploads, tenant, "a-first", "b-second");

        // The first folder in plan order fails on its Studies write (storage failing for that one row).
        var failing = StudyIds.ForUpload(studyIdKey, tenant, $"{tenant}/a-first/");
        var second = StudyIds.ForUpload(studyIdKey, tenant, $"{tenant}/b-second/");
        var functions = IngestFunctionsBuilder.Create(azurite, key, studies: new StudiesFailingFor(azurite.Storage.Studies, failing), onlyTenant: tenant);

        // Before, the failure left the loop: the second folder waited for the first to be fixed, on every sweep.
        var thrown = await Assert.ThrowsAsync<AggregateException>(() => functions.SweepFolderUploads(new TimerInfo(), durable.Client, CancellationToken.None));

        var failure = Assert.IsType<IngestFailedException>(Assert.Single(thrown.InnerExceptions));
        Assert.StartsWith($"ingest of study {tenant}/{failing} failed: System.IO.IOException", failure.Message, StringComparison.Ordinal);
        Assert.Contains("1 of 2 upload(s) failed ingest", thrown.Message, StringComparison.Ordinal);
        Assert.Equal(StudyStatus.Rejected, (await azurite.Storage.Studies.GetAsync(tenant, second, CancellationToken.None))?.Status);
        Assert.False(await uploads.GetBlobClient($"{tenant}/b-second/notes.txt").ExistsAsync());
        Assert.True(await azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.QuarantineContainer).GetBlobClient($"{tenant}/{second}/original/notes.txt").ExistsAsync());
        Assert.True(await uploads.GetBlobClient($"{tenant}/a-first/notes.txt").ExistsAsync());
    }

    /// <summary>A Studies table whose writes fail for one study.</summary>
    private sealed class StudiesFailingFor(IStudyStore inner, string studyId) : IStudyStore
    {
        public Task<StudyRecord?> GetAsync(string tenant, string id, CancellationToken cancellationToken) => inner.GetAsync(tenant, id, cancellationToken);

        public Task<bool> TryCreateAsync(StudyRecord record, CancellationToken cancellationToken) =>
            record.StudyId == studyId ? throw new IOException("the table write failed") : inner.TryCreateAsync(record, cancellationToken);

        public Task<StudyRecord> UpdateAsync(string tenant, string id, Func<StudyRecord?, StudyRecord> update, CancellationToken cancellationToken) =>
            id == studyId ? throw new IOException("the table write failed") : inner.UpdateAsync(tenant, id, update, cancellationToken);

        public IAsyncEnumerable<StudyRecord> QueryAsync(string? tenant, string? status, DateTimeOffset? from, DateTimeOffset? to, CancellationToken cancellationToken) =>
            inner.QueryAsync(tenant, status, from, to, cancellationToken);
    }
}
