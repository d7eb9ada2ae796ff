using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>What the ingest tests on Azurite share: a handler on Azurite's tables and containers, and its stand-ins.</summary>
internal static class IngestOnAzurite
{
    /// <summary>
    /// A fresh ingest handler (a restarted process) on Azurite's Studies and Usage tables and its blob containers, or on
    /// <paramref name="containers"/> when given (Azurite's behind a failing stand-in), on <paramref name="time"/>'s clock when given.
    /// </summary>
    public static IngestHandler NewHandler(
        AzuriteFixture azurite,
        DeidKey key,
        IStudyOrchestrationClient orchestrations,
        IBlobContainers? containers = null,
        IStudyNotifier? notifier = null,
        PipelineOptions? options = null,
        TimeProvider? time = null) => new(
        containers ?? azurite.Storage.BlobContainers,
        azurite.Storage.Studies,
        azurite.Storage.Usage,
        orchestrations,
        new DeidentificationEngine(key),
        Options.Create(options ?? new PipelineOptions()),
        NullLogger<IngestHandler>.Instance,
        time ?? TimeProvider.System,
        notifier);
}

/// <summary>Records every study event it is asked to send.</summary>
internal sealed class RecordingNotifier : IStudyNotifier
{
    public List<(string Tenant, string StudyId, string EventType)> Events { get; } = [];

    public Task NotifyAsync(string tenant, string studyId, string eventType, CancellationToken cancellationToken)
    {
        Events.Add((tenant, studyId, eventType));
        return Task.CompletedTask;
    }
}

/// <summary>Says every orchestration started, and records nothing.</summary>
internal sealed class StartedOrchestrations : IStudyOrchestrationClient
{
    public Task<bool> StartIfAbsentAsync(StudyOrchestrationInput input, CancellationToken cancellationToken) => Task.FromResult(true);

    public Task RaiseChunkResultAsync(ChunkResult result, CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>Starts each instance id once, like the Durable client, and records the starts; with <c>failStarts</c>, every start throws (the process killed).</summary>
internal sealed class RecordingOrchestrations(bool failStarts = false) : IStudyOrchestrationClient
{
    private readonly HashSet<string> _ids = [];

    public List<StudyOrchestrationInput> Started { get; } = [];

    public Task<bool> StartIfAbsentAsync(StudyOrchestrationInput input, CancellationToken cancellationToken)
    {
        if (failStarts)
        {
            throw new IOException("process killed");
        }

        lock (_ids)
        {
            if (!_ids.Add(input.InstanceId))
            {
                return Task.FromResult(false);
            }

            Started.Add(input);
            return Task.FromResult(true);
        }
    }

    public Task RaiseChunkResultAsync(ChunkResult result, CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>The real containers, but every write under slices throws what <paramref name="failure"/> makes (a full disk, an outage).</summary>
internal sealed class TilesWritesFail(IBlobContainers inner, Func<Exception> failure) : IBlobContainers
{
    public IBlobStore Get(string container) => container == PipelineNames.SlicesContainer ? new FailingWrites(inner.Get(container), failure) : inner.Get(container);

    public string LinkTo(string container, string path) => inner.LinkTo(container, path);

    private sealed class FailingWrites(IBlobStore store, Func<Exception> failure) : IBlobStore
    {
        public Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken) => store.OpenReadAsync(path, cancellationToken);

        public Task WriteAsync(string path, Stream content, CancellationToken cancellationToken) => throw failure();

        public Task<bool> ExistsAsync(string path, CancellationToken cancellationToken) => store.ExistsAsync(path, cancellationToken);

        public IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellationToken) => store.ListAsync(prefix, cancellationToken);

        public Task DeleteAsync(string path, CancellationToken cancellationToken) => store.DeleteAsync(path, cancellationToken);

        public Task<VersionedStream> OpenReadVersionedAsync(string path, CancellationToken cancellationToken) => store.OpenReadVersionedAsync(path, cancellationToken);

        public Task<ConditionalDelete> DeleteIfVersionAsync(string path, string version, CancellationToken cancellationToken) => store.DeleteIfVersionAsync(path, version, cancellationToken);
    }
}
