using Azure.Storage;
using Azure.Storage.Blobs;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Storage;
using Microsoft.DurableTask.Testing;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// The Functions host logs a failed invocation's exception whole (message and inner exceptions) at Error, which
/// host.json cannot filter by content. An ingest failure whose message names the upload (here a storage error quoting
/// the blob path, which carries a patient's name) leaves the function as an <see cref="IngestFailedException"/> that
/// names the study and masks the name, with no inner exception; the function still fails, so the trigger retries.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class IngestFailureLoggingTests(AzuriteFixture azurite)
{
    private const string Tenant = "ingest-fail-log";

    [Fact]
    public async Task A_failing_ingest_leaves_the_function_without_the_upload_name_in_any_exception_text()
    {
        await using var durable = await DurableTaskTestHost.StartAsync(_ => { });
        var patient = $"DOE_JANE_{Guid.NewGuid():N}";
        var name = $"{Tenant}/{patient}.zip";
        var blob = azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.UploadsContainer).GetBlobClient(name);
        await blob.UploadAsync(BinaryData.FromString("not looked at: the Studies table fails first"), overwrite: true);
        var key = DeidKey.Generate();
        var studyIdKey = StudyIdKey.From(key);
        var functions = IngestFunctionsBuilder.Create(azurite, key, studies: new StudiesQuotingTheBlob(azurite.Storage.Studies, $"{PipelineNames.UploadsContainer}/{name}"));

        var thrown = await Assert.ThrowsAsync<IngestFailedException>(() => functions.IngestUpload(blob, name, durable.Client, CancellationToken.None));

        var studyId = StudyIds.ForUpload(studyIdKey, Tenant, name);
        Assert.StartsWith($"ingest of study {Tenant}/{studyId} failed: System.IO.IOException: the table write failed for {UploadNames.Masked}", thrown.Message, StringComparison.Ordinal);
        Assert.Null(thrown.InnerException);
        Assert.DoesNotContain(patient, thrown.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_storage_error_reading_the_upload_leaves_only_its_status_in_the_exception()
    {
        await using var durable = await DurableTaskTestHost.StartAsync(_ => { });
        var patient = $"DOE_JOHN_{Guid.NewGuid():N}";
        var name = $"{Tenant}/{patient}.zip";
        var real = azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.UploadsContainer).GetBlobClient(name);
        await real.UploadAsync(BinaryData.FromString("x"), overwrite: true);

        // The same blob through a wrong account key: Azurite answers 403, and the SDK's message quotes the request.
        var forbidden = new BlobClient(real.Uri, new StorageSharedKeyCredential(real.AccountName, Convert.ToBase64String(new byte[64])));
        var functions = IngestFunctionsBuilder.Create(azurite, DeidKey.Generate());

        var thrown = await Assert.ThrowsAsync<IngestFailedException>(() => functions.IngestUpload(forbidden, name, durable.Client, CancellationToken.None));

        Assert.StartsWith("ingest could not read an upload's properties: Azure.RequestFailedException: status 403", thrown.Message, StringComparison.Ordinal);
        Assert.Null(thrown.InnerException);
        Assert.DoesNotContain(patient, thrown.ToString(), StringComparison.Ordinal);
    }

    /// <summary>A Studies table whose writes fail with a message quoting the upload's blob path, as storage errors do.</summary>
    private sealed class StudiesQuotingTheBlob(IStudyStore inner, string blobPath) : IStudyStore
    {
        public Task<StudyRecord?> GetAsync(string tenant, string studyId, CancellationToken cancellationToken) =>
            inner.GetAsync(tenant, studyId, cancellationToken);

        public Task<bool> TryCreateAsync(StudyRecord record, CancellationToken cancellationToken) =>
            throw new IOException($"the table write failed for {blobPath}", new InvalidOperationException($"inner detail about {blobPath}"));

        public Task<StudyRecord> UpdateAsync(string tenant, string studyId, Func<StudyRecord?, StudyRecord> update, CancellationToken cancellationToken) =>
            throw new IOException($"the table write failed for {blobPath}", new InvalidOperationException($"inner detail about {blobPath}"));

        public IAsyncEnumerable<StudyRecord> QueryAsync(string? tenant, string? status, DateTimeOffset? from, DateTimeOffset? to, CancellationToken cancellationToken) =>
            inner.QueryAsync(tenant, status, from, to, cancellationToken);
    }
}
