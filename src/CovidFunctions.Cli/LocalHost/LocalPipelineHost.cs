using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging.Series;
using CovidFunctions.Inference;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.Pipeline.Azure.Messaging;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Relay;
using CovidFunctions.Pipeline.Scoring;
using CovidFunctions.Pipeline.Storage;
using Grpc.Net.Client;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CovidFunctions.Cli.LocalHost;

/// <summary>How <see cref="LocalPipelineHost"/> runs.</summary>
public sealed record LocalPipelineOptions
{
    /// <summary>Azurite data, keys (<c>keys/deid.key</c>) and logs (<c>logs/</c>) live here.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>An explicit Storage connection string (tests, or <c>COVIDFN_STORAGE</c>); null: Azurite on <see cref="AzuritePorts"/>.</summary>
    public string? ConnectionString { get; init; }

    /// <summary>The Azurite ports to reuse or start on when no connection string is given.</summary>
    public AzuritePorts AzuritePorts { get; init; } = AzuritePorts.Default;

    public PipelineOptions Pipeline { get; init; } = new();

    /// <summary>How ingest assembles series and expands zips (<c>covidfn up</c>: the checked <c>Imaging__*</c> settings).</summary>
    public SeriesAssemblyOptions Assembly { get; init; } = SeriesAssemblyOptions.Default;

    public ScoringOptions Scoring { get; init; } = new();

    public string? ModelsDirectory { get; init; }

    public int InferenceThreads { get; init; }

    /// <summary>The scorer's session settings (<c>covidfn up</c>: Inference__* and its flags); null: <see cref="ModelsDirectory"/> and <see cref="InferenceThreads"/> over the defaults.</summary>
    public InferenceOptions? Inference { get; init; }

    /// <summary>How often the upload watcher lists <c>ct-uploads</c>.</summary>
    public TimeSpan WatchInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How often the upload sweep runs: the retention sweep of completed studies' uploads and the stuck-study watchdog
    /// (<see cref="IngestHandler.SweepExpiredUploadsAsync"/>; the Function app's hourly timer). It also runs at start.
    /// </summary>
    public TimeSpan SweepInterval { get; init; } = TimeSpan.FromHours(1);

    /// <summary>When the previous month's bills close (<see cref="UsageAutoClose"/>, run at start and every <see cref="SweepInterval"/>).</summary>
    public MeteringOptions Metering { get; init; } = new();

    /// <summary>Uploads ingested at once.</summary>
    public int IngestConcurrency { get; init; } = 2;

    /// <summary>Chunk messages scored at once (one ONNX Runtime session uses every core already).</summary>
    public int ScorerConcurrency { get; init; } = 1;

    /// <summary>
    /// How long a received chunk message stays invisible; a killed scorer's chunk comes back after this. The scorer
    /// container's 30 s (renewed every third of it while the chunk runs, for up to 30 min, so a long chunk keeps it);
    /// it was 2 min.
    /// </summary>
    public TimeSpan ScorerVisibilityTimeout { get; init; } = SettlementPolicy.CrashRedeliveryLock;

    /// <summary>Wraps the message sender every stage uses (tests: deliver every message twice).</summary>
    public Func<IMessageSender, IMessageSender>? SenderDecorator { get; init; }

    /// <summary>The results API port on 127.0.0.1 (H6's <see cref="LocalApiServer"/>, with signed webhooks as the notifier); null: no API, terminal states are only logged.</summary>
    public int? ApiPort { get; init; }

    /// <summary>Allows http://127.0.0.1 webhook targets (local testing only).</summary>
    public bool AllowLoopbackWebhooks { get; init; }

    /// <summary>The notifier (overrides the API's webhooks); null: webhooks when the API runs, else logging only.</summary>
    public Func<PipelineStorage, ILoggerFactory, IStudyNotifier>? NotifierFactory { get; init; }
}

/// <summary>
/// The whole pipeline on this machine (<c>covidfn up</c>): Azurite (reused when one answers, else the pinned one started
/// with its data under the data folder), the Durable sidecar over DurableTask.AzureStorage on Azurite and a worker host
/// running <see cref="StudyOrchestrator"/> and its activities, the upload watcher (<see cref="IngestHandler"/>), the
/// scorer (<see cref="ScoringHandler"/> on the slice-requests queue) and the relay (<see cref="ResultRelayHandler"/> on
/// slice-results), and with the API the webhook retry loop (<see cref="WebhookRetryHandler"/>). Everything durable is in storage, so stopping and starting again resumes unfinished studies.
/// Stop order: watcher, scorer and relay, then the worker, then the sidecar, then Azurite if this host started it.
/// </summary>
public sealed partial class LocalPipelineHost : IAsyncDisposable
{
    private readonly LocalPipelineOptions _options;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _loops = [];
    private AzuriteServer? _azurite;
    private LocalDurableSidecar? _sidecar;
    private GrpcChannel? _channel;
    private IHost? _worker;
    private StorageQueueTransport? _transport;
    private ScoringHandler? _scoring;
    private ChunkDeadLetterHook? _scoringDeadLetters;
    private CancellationTokenSource? _scorerStop;
    private Task? _scorerLoop;
    private bool _stopped;
    private LocalWebhooks? _webhooks;
    private LocalApiServer? _api;
    private readonly TaskCompletionSource<string> _storageLost = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private LocalPipelineHost(LocalPipelineOptions options, ILoggerFactory loggers)
    {
        _options = options;
        _loggers = loggers;
        _logger = loggers.CreateLogger<LocalPipelineHost>();
        DataDirectory = Path.GetFullPath(options.DataDirectory);
    }

    public string DataDirectory { get; }

    /// <summary>The Storage connection string in use (Azurite's, or the one given).</summary>
    public string ConnectionString { get; private set; } = string.Empty;

    /// <summary>True when this host started Azurite (and stops it).</summary>
    public bool StartedAzurite => _azurite is not null;

    /// <summary>The Azurite this host started (null when it reused one or was given a connection string).</summary>
    public AzuriteServer? Azurite => _azurite;

    public PipelineStorage Storage { get; private set; } = null!;

    public DurableTaskClient Durable { get; private set; } = null!;

    public UploadWatcher Watcher { get; private set; } = null!;

    public string DeidKeyPath { get; private set; } = string.Empty;

    /// <summary>The study-id key (derived from <c>keys/deid.key</c>): a <see cref="StudySubmitter"/> for this host needs it.</summary>
    public StudyIdKey StudyIdKey { get; private set; } = null!;

    public bool IsScorerRunning => _scorerLoop is { IsCompleted: false };

    /// <summary>The results API when it runs (<see cref="LocalPipelineOptions.ApiPort"/>).</summary>
    public LocalApiServer? Api => _api;

    /// <summary>Why the results API did not start (null when it runs or was not asked for).</summary>
    public string? ApiProblem { get; private set; }

    /// <summary>
    /// Completes, with the reason, when the Azurite this host started has exited and could not be started again (or
    /// keeps exiting): the pipeline cannot go on, and <c>up</c> stops saying so. Never completes otherwise.
    /// </summary>
    public Task<string> StorageLost => _storageLost.Task;

    /// <summary>Raised (from a background loop) with a line for the console when the Azurite this host started exited and was started again.</summary>
    public event Action<string>? AzuriteRestarted;

    /// <summary>How often the Azurite this host started is checked for having exited.</summary>
    internal static TimeSpan AzuriteCheckInterval { get; } = TimeSpan.FromSeconds(1);

    /// <summary>Restarts of Azurite within <see cref="RestartWindow"/> after which the host gives up (it keeps dying: its log says why).</summary>
    internal const int MaxRestartsInWindow = 3;

    internal static TimeSpan RestartWindow { get; } = TimeSpan.FromMinutes(10);

    public static async Task<LocalPipelineHost> StartAsync(LocalPipelineOptions options, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggers);
        var host = new LocalPipelineHost(options, loggers);
        try
        {
            await host.StartCoreAsync(cancellationToken).ConfigureAwait(false);
            return host;
        }
        catch
        {
            await host.StopAsync(CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    private async Task StartCoreAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(DataDirectory);
        if (_options.ConnectionString is { Length: > 0 } given)
        {
            ConnectionString = given;
        }
        else if (await AzuriteServer.IsRunningAtAsync(_options.AzuritePorts, cancellationToken).ConfigureAwait(false))
        {
            ConnectionString = AzuriteServer.ConnectionStringFor(_options.AzuritePorts);
            Log.ReusingAzurite(_logger, _options.AzuritePorts.Blob);
        }
        else
        {
            _azurite = await AzuriteServer.StartAsync(
                new AzuriteServerOptions
                {
                    DataDirectory = Path.Combine(DataDirectory, "azurite"),
                    Ports = _options.AzuritePorts,
                    RepoRoot = PinnedAzurite.FindRepoRoot([AppContext.BaseDirectory, Directory.GetCurrentDirectory()], _options.AzuritePorts),
                },
                _loggers.CreateLogger<AzuriteServer>(),
                cancellationToken).ConfigureAwait(false);
            ConnectionString = _azurite.ConnectionString;
        }

        await File.WriteAllTextAsync(Path.Combine(DataDirectory, LocalStorage.ConnectionFileName), ConnectionString + "\n", cancellationToken).ConfigureAwait(false);
        Storage = PipelineStorage.FromConnectionString(ConnectionString);
        await Storage.EnsureCreatedAsync(cancellationToken).ConfigureAwait(false);

        var key = DeidKeys.ForDataDir(DataDirectory, out var keyPath, out var created);
        DeidKeyPath = keyPath;
        StudyIdKey = StudyIdKey.From(key);
        if (created)
        {
            Log.KeyCreated(_logger, keyPath);
        }

        _transport = Storage.CreateQueueTransport(_loggers.CreateLogger<StorageQueueTransport>());
        var sender = _options.SenderDecorator is { } decorate ? decorate(_transport) : _transport;
        if (_options.ApiPort is { } apiPort && _options.NotifierFactory is null)
        {
            _webhooks = new LocalWebhooks(DataDirectory, Storage.Tables, Storage.Studies, _options.AllowLoopbackWebhooks, LocalApiServer.BaseUrlFor(apiPort), _loggers);
        }

        var notifier = _options.NotifierFactory?.Invoke(Storage, _loggers)
            ?? (IStudyNotifier?)_webhooks?.Notifier
            ?? new LoggingStudyNotifier(_loggers.CreateLogger<LoggingStudyNotifier>());
        var pipelineOptions = Options.Create(_options.Pipeline);

        _sidecar = await LocalDurableSidecar.StartAsync(new LocalDurableSidecarOptions { StorageConnectionString = ConnectionString }, _loggers, cancellationToken).ConfigureAwait(false);
        _channel = _sidecar.CreateChannel();
        var storage = Storage;
        _worker = LocalDurableWorker.BuildHost(
            _channel,
            tasks => tasks.AddStudyOrchestration(),
            services =>
            {
                services.AddSingleton(storage.BlobContainers);
                services.AddSingleton(storage.Studies);
                services.AddSingleton(storage.Usage);
                services.AddSingleton(storage.SliceResults);
                services.AddSingleton(sender);
                services.AddSingleton(notifier);
                services.AddSingleton(pipelineOptions);
                services.AddSingleton(UploadReadKey.From(key));
                services.AddSingleton(TimeProvider.System);
                services.AddLogging();
            },
            _loggers);
        await _worker.StartAsync(cancellationToken).ConfigureAwait(false);
        Durable = _worker.Services.GetRequiredService<DurableTaskClient>();
        var orchestrations = new DurableStudyOrchestrationClient(Durable);

        var ingest = new IngestHandler(Storage.BlobContainers, Storage.Studies, Storage.Usage, orchestrations, new DeidentificationEngine(key),
            pipelineOptions, _loggers.CreateLogger<IngestHandler>(), TimeProvider.System, notifier, _options.Assembly);
        Watcher = new UploadWatcher(Storage.UploadListing, ingest, _options.Pipeline, StudyIdKey, _options.IngestConcurrency, _loggers.CreateLogger<UploadWatcher>());

        var models = ScreeningModels.Load(_options.Inference ?? new InferenceOptions { ModelsDirectory = _options.ModelsDirectory, IntraOpThreads = _options.InferenceThreads, MaxBatch = _options.Scoring.BatchSize }, _loggers.CreateLogger<ScreeningModels>());
        _scoring = new ScoringHandler(Storage.BlobContainers, Storage.SliceResults, sender, models, Options.Create(_options.Scoring with { MaxDeliveryCount = _options.Pipeline.MaxDeliveryCount }), _loggers.CreateLogger<ScoringHandler>(), Storage.Studies);
        // As in the scorer container: a chunk the process kept dying on (covidfn up killed on it each time) is answered
        // with an error result when the consumer dead-letters it, so its study fails then, not after every chunk timeout.
        _scoringDeadLetters = new ChunkDeadLetterHook(sender, _loggers.CreateLogger<ChunkDeadLetterHook>(), Storage.Studies, models.Provider);
        var relay = new ResultRelayHandler(orchestrations, _loggers.CreateLogger<ResultRelayHandler>());

        var token = _stopping.Token;
        _loops.Add(Task.Run(() => Watcher.RunAsync(_options.WatchInterval, token), CancellationToken.None));
        _loops.Add(Task.Run(() => _transport.RunAsync(PipelineNames.SliceResultsQueue, relay.HandleAsync, ConsumerFor(4, TimeSpan.FromSeconds(30)), token), CancellationToken.None));
        _loops.Add(Task.Run(() => RunSweepsAsync(ingest, _options.SweepInterval, token), CancellationToken.None));
        var autoClose = new UsageAutoClose(Storage.Usage, Storage.Studies, _options.Metering, TimeProvider.System, _loggers.CreateLogger<UsageAutoClose>());
        _loops.Add(Task.Run(() => RunUsageCloseAsync(autoClose, _options.SweepInterval, token), CancellationToken.None));

        // The study id index's one-time completion (a scan of Studies), off the request path as in the Function app.
        var indexCompletion = new StudyIdIndexCompletion(Storage.Studies, TimeProvider.System, _loggers.CreateLogger<StudyIdIndexCompletion>());
        _loops.Add(Task.Run(() => indexCompletion.RunAsync(TimeSpan.Zero, token), CancellationToken.None));
        if (_webhooks is { } webhooks)
        {
            // The notify activity makes only the first attempt of a delivery; this loop makes the due retries.
            _loops.Add(Task.Run(() => webhooks.Retries.RunAsync(webhooks.Options.RetryPollInterval, token), CancellationToken.None));

            // Secrets no subscription signs with (a rotation that died before its row write or lost it and could not
            // delete its secret, a replaced secret past its overlap): deleted from webhook-secrets.json once an hour old.
            var secretSweep = new WebhookSecretSweep(webhooks.Storage.Subscriptions, webhooks.Secrets, TimeProvider.System, _loggers.CreateLogger<WebhookSecretSweep>());
            _loops.Add(Task.Run(() => secretSweep.RunAsync(WebhookOptions.SecretSweepInterval, token), CancellationToken.None));
        }

        if (_azurite is { } azurite)
        {
            _loops.Add(Task.Run(() => WatchAzuriteAsync(azurite, token), CancellationToken.None));
        }

        StartScorer();
        if (_options.ApiPort is { } port)
        {
            try
            {
                _api = await LocalApiServer.StartAsync(
                    new LocalApiServerOptions { DataDir = DataDirectory, Port = port, AllowLoopbackWebhooks = _options.AllowLoopbackWebhooks },
                    Storage, _loggers, cancellationToken, _webhooks).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or InvalidOperationException)
            {
                // The pipeline runs without the API (for example the port is taken); up says so.
                ApiProblem = ex.Message;
            }
        }

        Log.Started(_logger, ConnectionString.Contains("127.0.0.1", StringComparison.Ordinal) ? "Azurite" : "storage", _sidecar.Port);
    }

    /// <summary>Starts the scorer loop (again, after <see cref="StopScorerAsync"/>).</summary>
    public void StartScorer()
    {
        if (IsScorerRunning || _scoring is null || _transport is null)
        {
            return;
        }

        _scorerStop = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        var token = _scorerStop.Token;
        var scoring = _scoring;
        var transport = _transport;
        var consumer = ConsumerFor(_options.ScorerConcurrency, _options.ScorerVisibilityTimeout) with { DeadLetterHook = _scoringDeadLetters };
        _scorerLoop = Task.Run(
            () => transport.RunAsync(PipelineNames.SliceRequestsQueue, scoring.HandleAsync, consumer, token),
            CancellationToken.None);
    }

    /// <summary>
    /// Stops the scorer at once, abandoning the chunk it is scoring (as a crash would): the message is not completed and
    /// comes back after its visibility timeout.
    /// </summary>
    public async Task StopScorerAsync()
    {
        if (_scorerStop is null || _scorerLoop is null)
        {
            return;
        }

        await _scorerStop.CancelAsync().ConfigureAwait(false);
        await Quietly(_scorerLoop).ConfigureAwait(false);
        _scorerStop.Dispose();
        _scorerStop = null;
        _scorerLoop = null;
    }

    /// <summary>Stops everything in order: loops, worker, sidecar, then Azurite if this host started it.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_stopped)
        {
            return;
        }

        _stopped = true;
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_scorerLoop is not null)
        {
            _loops.Add(_scorerLoop);
        }

        foreach (var loop in _loops)
        {
            await Quietly(loop).ConfigureAwait(false);
        }

        if (_api is not null)
        {
            await _api.DisposeAsync().ConfigureAwait(false);
        }

        if (_worker is not null)
        {
            await Quietly(_worker.StopAsync(cancellationToken)).ConfigureAwait(false);
            _worker.Dispose();
        }

        if (_sidecar is not null)
        {
            await Quietly(_sidecar.StopAsync(cancellationToken)).ConfigureAwait(false);
            await _sidecar.DisposeAsync().ConfigureAwait(false);
        }

        _channel?.Dispose();
        if (_azurite is not null)
        {
            await Quietly(_azurite.StopAsync(cancellationToken)).ConfigureAwait(false);
            await _azurite.DisposeAsync().ConfigureAwait(false);
        }

        _scorerStop?.Dispose();
        _webhooks?.Dispose();
        Log.Stopped(_logger);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        _stopping.Dispose();
    }

    private ConsumerOptions ConsumerFor(int concurrency, TimeSpan visibility) => new()
    {
        MaxConcurrency = concurrency,
        MaxDeliveryCount = _options.Pipeline.MaxDeliveryCount,
        VisibilityTimeout = visibility,
        PollInterval = TimeSpan.FromMilliseconds(500),
    };

    private async Task Quietly(Task task)
    {
        try
        {
            await task.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Expected while stopping.
        }
        catch (Exception ex)
        {
            Log.StopProblem(_logger, ex.GetType().Name, ex.Message);
        }
    }

    /// <summary>
    /// Watches the Azurite this host started and starts it again on the same folder and ports when it exits (killed,
    /// crashed): its data is on disk under the data folder, as when <c>up</c> itself is restarted, and every part of the
    /// pipeline retries its storage calls, so it carries on. Before, a dead Azurite made <c>up</c> shut down and the
    /// shutdown hang until Azurite came back (drill, docs/operations.md entry 3). When it cannot be started again, or has
    /// exited more than <see cref="MaxRestartsInWindow"/> times in <see cref="RestartWindow"/>, <see cref="StorageLost"/>
    /// completes with the reason and <c>up</c> stops.
    /// </summary>
    private async Task WatchAzuriteAsync(AzuriteServer azurite, CancellationToken cancellationToken)
    {
        var restarts = new Queue<DateTimeOffset>();
        var pid = azurite.ProcessId;
        var where = $"127.0.0.1:{azurite.Ports.Blob}-{azurite.Ports.Table} with its data in {azurite.DataDirectory}";
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(AzuriteCheckInterval, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            if (azurite.ProcessId is not null)
            {
                continue;
            }

            var now = DateTimeOffset.UtcNow;
            while (restarts.Count > 0 && now - restarts.Peek() > RestartWindow)
            {
                restarts.Dequeue();
            }

            if (restarts.Count >= MaxRestartsInWindow)
            {
                _storageLost.TrySetResult(
                    $"the Azurite it started (pid {pid}) on {where} exited again: {restarts.Count + 1} times in {RestartWindow.TotalMinutes:0} minutes, so it is not started once more; its log is {azurite.LogPath}");
                return;
            }

            Log.AzuriteExited(_logger, pid ?? 0, azurite.Ports.Blob);
            try
            {
                await azurite.RestartAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                _storageLost.TrySetResult($"the Azurite it started (pid {pid}) on {where} exited and could not be started again: {ex.Message}");
                return;
            }

            restarts.Enqueue(now);

            // Azurite saves its metadata every 5 s: a kill -9 can lose what was created just before it (a table
            // created at start: 404 TableNotFound after the restart, seen in the test). The pipeline's own containers,
            // queues and tables are created again if so (idempotent); the Durable hub's are made by its own retries.
            try
            {
                await Storage.EnsureCreatedAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // The parts retry their own calls; a table still missing shows in their errors.
                Log.RecreateFailed(_logger, ex.GetType().Name);
            }

            var newPid = azurite.ProcessId;
            Log.AzuriteRestarted(_logger, newPid ?? 0, azurite.Ports.Blob);
            AzuriteRestarted?.Invoke($"Azurite (pid {pid}) exited; started it again (pid {newPid}) on {where}");
            pid = newPid;
        }
    }

    // Without this loop `covidfn up` kept every upload when Pipeline:UploadRetention is above zero and never failed a
    // study stuck in processing (a FailStudy that failed for good): the Function app runs the same sweep hourly.
    private async Task RunSweepsAsync(IngestHandler ingest, TimeSpan interval, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var swept = await ingest.SweepExpiredUploadsAsync(DateTimeOffset.UtcNow, cancellationToken).ConfigureAwait(false);
                Log.Swept(_logger, swept);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                // Storage briefly away: the next interval tries again (each step of the sweep is safe to repeat).
                Log.SweepFailed(_logger, ex.GetType().Name);
            }

            try
            {
                await Task.Delay(interval, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    // The Function app's hourly CloseUsageMonth timer: without it a local deployment's bills never became final.
    private async Task RunUsageCloseAsync(UsageAutoClose autoClose, TimeSpan interval, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await autoClose.RunAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                // Storage briefly away: closing is safe to repeat (insert-only fence and snapshot).
                Log.UsageCloseFailed(_logger, ex.GetType().Name, ex.Message);
            }

            try
            {
                await Task.Delay(interval, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    // 4011-4018, not 4001-4008: covidfn loads CovidFunctions.Imaging, whose events are 4001-4006 (docs/imaging.md);
    // within one process an id must name one event, or a query on it matches both.
    private static partial class Log
    {
        // Usage holds tenants, study ids and months, no upload names: the message may be logged.
        [LoggerMessage(EventId = 4018, Level = LogLevel.Warning, Message = "Usage month close failed ({Type}: {Message}); trying again at the next interval")]
        public static partial void UsageCloseFailed(ILogger logger, string type, string message);

        [LoggerMessage(EventId = 4016, Level = LogLevel.Debug, Message = "Upload sweep done: {Swept} upload(s) past retention deleted")]
        public static partial void Swept(ILogger logger, int swept);

        // The type only: an exception message of a storage call may name an upload (a patient's name).
        [LoggerMessage(EventId = 4017, Level = LogLevel.Warning, Message = "Upload sweep failed ({Type}); trying again at the next interval")]
        public static partial void SweepFailed(ILogger logger, string type);

        [LoggerMessage(EventId = 4011, Level = LogLevel.Information, Message = "Reusing the Azurite that answers on port {BlobPort} (and the two after it)")]
        public static partial void ReusingAzurite(ILogger logger, int blobPort);

        [LoggerMessage(EventId = 4012, Level = LogLevel.Information, Message = "Created the de-identification key {Path} (mode 0600)")]
        public static partial void KeyCreated(ILogger logger, string path);

        [LoggerMessage(EventId = 4013, Level = LogLevel.Information, Message = "Local pipeline started on {Storage}; Durable sidecar on 127.0.0.1:{Port}")]
        public static partial void Started(ILogger logger, string storage, int port);

        [LoggerMessage(EventId = 4014, Level = LogLevel.Information, Message = "Local pipeline stopped")]
        public static partial void Stopped(ILogger logger);

        [LoggerMessage(EventId = 4015, Level = LogLevel.Warning, Message = "While stopping: {Type}: {Message}")]
        public static partial void StopProblem(ILogger logger, string type, string message);

        [LoggerMessage(EventId = 4019, Level = LogLevel.Warning, Message = "The Azurite this host started (pid {Pid}, blob port {BlobPort}) has exited; starting it again on the same ports and data")]
        public static partial void AzuriteExited(ILogger logger, int pid, int blobPort);

        [LoggerMessage(EventId = 4020, Level = LogLevel.Information, Message = "Azurite started again (pid {Pid}, blob port {BlobPort})")]
        public static partial void AzuriteRestarted(ILogger logger, int pid, int blobPort);

        // The type only, as for the sweep: a storage exception's message may name a blob.
        [LoggerMessage(EventId = 4021, Level = LogLevel.Warning, Message = "Creating the pipeline's containers, queues and tables again after the Azurite restart failed ({Type})")]
        public static partial void RecreateFailed(ILogger logger, string type);
    }
}

/// <summary>The notifier when no webhooks are wired: logs each terminal state.</summary>
public sealed partial class LoggingStudyNotifier(ILogger<LoggingStudyNotifier> logger) : IStudyNotifier
{
    public Task NotifyAsync(string tenant, string studyId, string eventType, CancellationToken cancellationToken)
    {
        Log.Notified(logger, tenant, studyId, eventType);
        return Task.CompletedTask;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 4010, Level = LogLevel.Information, Message = "Study {Tenant}/{StudyId}: {EventType}")]
        public static partial void Notified(ILogger logger, string tenant, string studyId, string eventType);
    }
}
