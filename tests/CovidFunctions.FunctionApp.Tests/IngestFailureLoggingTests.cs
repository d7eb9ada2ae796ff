using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Storage;
using Microsoft.DurableTask.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

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
        var services = new ServiceCollection()
            .AddLogging()
            .AddSingleton(azurite.Storage.BlobContainers)
            .AddSingleton<IStudyStore>(new StudiesQuotingTheBlob(azurite.Storage.Studies, $"{PipelineNames.UploadsContainer}/{name}"))
            .AddSingleton(azurite.Storage.Usage)
            .AddSingleton(new DeidentificationEngine(key))
            .AddSingleton(Options.Create(new PipelineOptions()))
            .AddSingleton(TimeProvider.System)
            .BuildServiceProvider();
        var functions = new IngestFunctions(services, azurite.Storage.UploadListing, Options.Create(new PipelineOptions()), studyIdKey, TimeProvider.System, NullLogger<IngestFunctions>.Instance);

        var thrown = await Assert.ThrowsAsync<IngestFailedException>(() => functions.IngestUpload(blob, name, durable.Client, CancellationToken.None));

        var studyId = StudyIds.ForUpload(studyIdKey, Tenant, name);
        Assert.StartsWith($"ingest of study {Tenant}/{studyId} failed: System.IO.IOException: the table write failed for {UploadNames.Masked}", thrown.Message, StringComparison.Ordinal);
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
