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

namespace CovidFunctions.Pipeline.Tests.Ingest;

/// <summary>An ingest handler on real files (FileSystemBlobContainers in a temp folder) with in-memory tables.</summary>
internal sealed class IngestTestHost : IDisposable
{
    private readonly TempDirectory _temp = TestData.CreateTempDirectory();

    /// <param name="options">The pipeline options (defaults when null).</param>
    /// <param name="deidentifyFile">
    /// Given the host's engine, the call that de-identifies one instance in ingest (null: the engine's own), to stand in
    /// for a defect of the engine on one file.
    /// </param>
    public IngestTestHost(PipelineOptions? options = null, Func<DeidentificationEngine, Func<DicomFile, DeidOutcome>>? deidentifyFile = null)
    {
        Options = options ?? new PipelineOptions();
        Containers = new FileSystemBlobContainers(Path.Combine(_temp.Path, "storage"));
        var engine = new DeidentificationEngine(DeidKey);
        Handler = new IngestHandler(
            Containers,
            Studies,
            Usage,
            Orchestrations,
            engine,
            deidentifyFile?.Invoke(engine),
            Microsoft.Extensions.Options.Options.Create(Options),
            NullLogger<IngestHandler>.Instance,
            Time,
            Notifier);
    }

    public PipelineOptions Options { get; }

    /// <summary>The host's de-identification key; study ids are keyed with <see cref="StudyIdKey"/>, derived from it.</summary>
    public DeidKey DeidKey { get; } = DeidKey.Generate();

    public StudyIdKey StudyIdKey => StudyIdKey.From(DeidKey);

    /// <summary>The read list's key, derived from <see cref="DeidKey"/> (what the AggregateStudy activity is given).</summary>
    public UploadReadKey UploadReadKey => UploadReadKey.From(DeidKey);

    public FileSystemBlobContainers Containers { get; }

    public InMemoryStudyStore Studies { get; } = new();

    public InMemoryUsageStore Usage { get; } = new();

    public RecordingOrchestrationClient Orchestrations { get; } = new();

    public RecordingNotifier Notifier { get; } = new();

    public ManualTimeProvider Time { get; } = new(new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero));

    public IngestHandler Handler { get; }

    public IBlobStore Uploads => Containers.Get(PipelineNames.UploadsContainer);

    public IBlobStore Slices => Containers.Get(PipelineNames.SlicesContainer);

    public IBlobStore Quarantine => Containers.Get(PipelineNames.QuarantineContainer);

    public string Scratch(string name)
    {
        var path = Path.Combine(_temp.Path, "scratch", name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        return path;
    }

    public async Task UploadAsync(string path, byte[] content)
    {
        using var stream = new MemoryStream(content);
        await Uploads.WriteAsync(path, stream, default);
    }

    public Task UploadFileAsync(string path, string file) => UploadAsync(path, File.ReadAllBytes(file));

    /// <summary>Plans the uploads container as the watcher would (every blob last modified now) and returns the units.</summary>
    public async Task<IReadOnlyList<UploadUnit>> PlanAsync()
    {
        var blobs = new List<UploadBlob>();
        await foreach (var path in Uploads.ListAsync(string.Empty, default))
        {
            blobs.Add(new UploadBlob(path, Time.GetUtcNow(), 0));
        }

        return UploadUnitPlanner.Plan(blobs, Time.GetUtcNow(), Options, StudyIdKey);
    }

    public static async Task<List<string>> ListAsync(IBlobStore store, string prefix)
    {
        var paths = new List<string>();
        await foreach (var path in store.ListAsync(prefix, default))
        {
            paths.Add(path);
        }

        return paths;
    }

    public static async Task<byte[]> ReadAsync(IBlobStore store, string path)
    {
        await using var stream = await store.OpenReadAsync(path, default);
        using var buffer = new MemoryStream();
        await stream.CopyToAsync(buffer);
        return buffer.ToArray();
    }

    public void Dispose() => _temp.Dispose();
}

/// <summary>Starts each instance id once, like the Durable client, and records every call.</summary>
internal sealed class RecordingOrchestrationClient : IStudyOrchestrationClient
{
    private readonly HashSet<string> _instances = [];

    public List<StudyOrchestrationInput> StartCalls { get; } = [];

    public List<StudyOrchestrationInput> Started { get; } = [];

    public Task<bool> StartIfAbsentAsync(StudyOrchestrationInput input, CancellationToken cancellationToken)
    {
        lock (_instances)
        {
            StartCalls.Add(input);
            if (!_instances.Add(input.InstanceId))
            {
                return Task.FromResult(false);
            }

            Started.Add(input);
            return Task.FromResult(true);
        }
    }

    public Task RaiseChunkResultAsync(ChunkResult result, CancellationToken cancellationToken) => Task.CompletedTask;
}

internal sealed class RecordingNotifier : IStudyNotifier
{
    public List<(string Tenant, string StudyId, string EventType)> Events { get; } = [];

    public Task NotifyAsync(string tenant, string studyId, string eventType, CancellationToken cancellationToken)
    {
        lock (Events)
        {
            Events.Add((tenant, studyId, eventType));
        }

        return Task.CompletedTask;
    }
}

internal sealed class ManualTimeProvider(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;

    public override DateTimeOffset GetUtcNow() => Now;
}
