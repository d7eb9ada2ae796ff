using System.IO.Compression;
using System.Runtime.CompilerServices;
using Azure.Storage.Blobs;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// The ingest functions (<see cref="IngestFunctions"/>: the blob trigger and the minute sweep) as the tests call them,
/// directly, on the shared Azurite's stores: the services ingest resolves per invocation, the key, the options and the
/// clock, each replaceable by a test (a Studies table that fails, a container that holds a read, a clock ahead), and
/// the upload listing narrowed to the test's tenant when it sweeps (other tests' uploads are not its sweep's). Also what
/// those tests upload (four real CT slices) and the Durable test host whose stand-in answers to the orchestrator's name.
/// </summary>
internal static class IngestFunctionsBuilder
{
    /// <summary>Four consecutive slices of a real chest CT (TCIA Lung-PET-CT-Dx, B40f reconstruction).</summary>
    public static readonly string[] SliceFiles = ["1-14.dcm", "1-15.dcm", "1-16.dcm", "1-17.dcm"];

    /// <summary>
    /// The functions over <paramref name="azurite"/>'s stores, de-identifying with <paramref name="key"/> (study ids keyed
    /// with the key derived from it, as in the app). Null arguments keep the Azurite store or the default.
    /// </summary>
    /// <param name="onlyTenant">The sweep lists this tenant's uploads only.</param>
    /// <param name="clockAhead">The system clock moved this far ahead for ingest and the sweep (a fresh blob reads as old).</param>
    /// <param name="clock">The clock of ingest and the sweep (replaces <paramref name="clockAhead"/>).</param>
    public static IngestFunctions Create(
        AzuriteFixture azurite,
        DeidKey key,
        PipelineOptions? options = null,
        IStudyStore? studies = null,
        IBlobContainers? containers = null,
        IUploadListing? listing = null,
        string? onlyTenant = null,
        TimeSpan clockAhead = default,
        TimeProvider? clock = null)
    {
        ArgumentNullException.ThrowIfNull(azurite);
        options ??= new PipelineOptions();
        listing ??= azurite.Storage.UploadListing;
        var time = clock ?? (clockAhead == TimeSpan.Zero ? TimeProvider.System : new ClockAhead(clockAhead));
        var services = new ServiceCollection()
            .AddLogging()
            .AddSingleton(containers ?? azurite.Storage.BlobContainers)
            .AddSingleton(studies ?? azurite.Storage.Studies)
            .AddSingleton(azurite.Storage.Usage)
            .AddSingleton(new DeidentificationEngine(key))
            .AddSingleton(Options.Create(options))
            .AddSingleton(time)
            .BuildServiceProvider();
        return new IngestFunctions(
            services, onlyTenant is null ? listing : new TenantListing(listing, onlyTenant), Options.Create(options), StudyIdKey.From(key), time, NullLogger<IngestFunctions>.Instance);
    }

    /// <summary>The in-process Durable host, with a stand-in under the study orchestrator's name.</summary>
    public static Task<DurableTaskTestHost> StartDurableAsync() =>
        DurableTaskTestHost.StartAsync(registry => registry.AddOrchestrator(DurableStudyOrchestrationClient.OrchestratorName, typeof(StandInStudyOrchestrator)));

    /// <summary>
    /// Closed folder uploads under <paramref name="tenant"/>: each folder holds one file that is not an image and its
    /// completion marker, so a sweep ingests each one (and rejects it) quickly.
    /// </summary>
    public static async Task UploadClosedJunkFoldersAsync(BlobContainerClient uploads, string tenant, params string[] folders)
    {
        foreach (var folder in folders)
        {
            await uploads.GetBlobClient($"{tenant}/{folder}/notes.txt").UploadAsync(BinaryData.FromString("not an image"), overwrite: true);
            await uploads.GetBlobClient($"{tenant}/{folder}/{PipelineNames.CompleteMarker}").UploadAsync(BinaryData.FromBytes([]), overwrite: true);
        }
    }

    /// <summary>The shared data's copy of one of <see cref="SliceFiles"/>.</summary>
    public static string SlicePath(string file) => TestData.Shared("dicom", "chest-ct", "lung-pet-ct-dx", "A0002-s3-b40f", file);

    /// <summary>A zip of <paramref name="files"/> (default: all of <see cref="SliceFiles"/>) under <c>series/</c>.</summary>
    public static byte[] ZipOfSlices(IEnumerable<string>? files = null)
    {
        using var buffer = new MemoryStream();
        using (var zip = new ZipArchive(buffer, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var file in files ?? SliceFiles)
            {
                zip.CreateEntryFromFile(SlicePath(file), "series/" + file);
            }
        }

        return buffer.ToArray();
    }

    /// <summary>The system clock moved ahead (the sweep's "now" and ingest's).</summary>
    private sealed class ClockAhead(TimeSpan ahead) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + ahead;
    }

    /// <summary>The uploads of one tenant only.</summary>
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

    /// <summary>Answers to the study orchestrator's name: ingest only has to start it with the right input.</summary>
    private sealed class StandInStudyOrchestrator : TaskOrchestrator<StudyOrchestrationInput, int>
    {
        public override Task<int> RunAsync(TaskOrchestrationContext context, StudyOrchestrationInput input) => Task.FromResult(input.SliceCount);
    }
}
