using System.Runtime.CompilerServices;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

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
        foreach (var folder in new[] { "a-first", "b-second" })
        {
            await uploads.GetBlobClient($"{tenant}/{folder}/notes.txt").UploadAsync(BinaryData.FromString("not an image"), overwrite: true);
            await uploads.GetBlobClient($"{tenant}/{folder}/{PipelineNames.CompleteMarker}").UploadAsync(BinaryData.FromBytes([]), overwrite: true);
        }

        // The first folder in plan order fails on its Studies write (storage failing for that one row).
        var failing = StudyIds.ForUpload(studyIdKey, tenant, $"{tenant}/a-first/");
        var second = StudyIds.ForUpload(studyIdKey, tenant, $"{tenant}/b-second/");
        var functions = Functions(new StudiesFailingFor(azurite.Storage.Studies, failing), key, new TenantListing(azurite.Storage.UploadListing, tenant));

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

    private IngestFunctions Functions(IStudyStore studies, DeidKey key, IUploadListing listing)
    {
        var services = new ServiceCollection()
            .AddLogging()
            .AddSingleton(azurite.Storage.BlobContainers)
            .AddSingleton(studies)
            .AddSingleton(azurite.Storage.Usage)
            .AddSingleton(new DeidentificationEngine(key))
            .AddSingleton(Options.Create(new PipelineOptions()))
            .AddSingleton(TimeProvider.System)
            .BuildServiceProvider();
        return new IngestFunctions(services, listing, Options.Create(new PipelineOptions()), StudyIdKey.From(key), TimeProvider.System, NullLogger<IngestFunctions>.Instance);
    }

    /// <summary>The shared Azurite's uploads of this test's tenant only (other tests' folders are not this sweep's to ingest).</summary>
    private sealed class TenantListing(IUploadListing inner, string tenant) : IUploadListing
    {
        public async IAsyncEnumerable<UploadBlob> ListAsync([EnumeratorCancellation] CancellationToken cancellationToken)
        {
            await foreach (var blob in inner.ListAsync(cancellationToken).ConfigureAwait(false))
            {
                if (blob.Path.StartsWith(tenant + "/", StringComparison.Ordinal))
                {
                    yield return blob;
                }
            }
        }
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
