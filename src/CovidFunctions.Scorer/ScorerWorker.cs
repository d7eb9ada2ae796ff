using System.Diagnostics;
using CovidFunctions.Inference;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Scoring;
using Microsoft.Extensions.Options;

namespace CovidFunctions.Scorer;

/// <summary>
/// The scorer's one hosted service: loads the models and runs a warm-up batch (so the first chunk does not pay the
/// CUDA start-up), then consumes chunk requests with <see cref="ScoringHandler"/> at bounded concurrency until the
/// host stops. Stopping drains: receiving stops at once, in-flight chunks get <see cref="ScorerOptions.DrainTimeout"/>
/// to finish and settle, and only then are they cancelled at the next model batch (their messages go back to the queue
/// at once, Storage visibility 0 or Service Bus abandon, and are scored again; outputs are idempotent).
/// </summary>
public sealed partial class ScorerWorker(
    IServiceProvider services,
    IMessageConsumer consumer,
    ScorerReadiness readiness,
    IOptions<ScorerOptions> options,
    IOptions<ScoringOptions> scoring,
    ILogger<ScorerWorker> logger) : BackgroundService
{
    private readonly ScorerOptions _options = options.Value;
    private readonly CancellationTokenSource _abort = new();
    private readonly Lock _gate = new();
    private TaskCompletionSource _idle = CompletedIdle();

    /// <summary>
    /// The inference session settings of the scorer: its provider, threads and lung restriction, and the session's
    /// largest run = <c>Scoring:BatchSize</c>, the batch the handler hands over (without it the session split every
    /// batch at its own default of 8, so a GPU configured for 32 still ran batches of 8).
    /// </summary>
    public static InferenceOptions InferenceOptionsFor(ScorerOptions options, ScoringOptions scoring)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(scoring);
        return new InferenceOptions
        {
            ModelsDirectory = options.ModelDirectory,
            PreferCuda = options.PreferCuda,
            IntraOpThreads = options.IntraOpThreads,
            CpuMemArena = options.CpuMemArena,
            MaxBatch = scoring.BatchSize,
            WarmUp = true,
            RestrictLesionsToLungs = options.RestrictLesionsToLungs,
        };
    }

    /// <summary>
    /// How the scorer consumes chunk requests: its concurrency, deliveries, Storage-queue visibility and poll interval,
    /// the hung-chunk bound of the consumer's <see cref="DeliveryGate"/> (<see cref="ScorerOptions.HungChunkAfter"/>)
    /// and <paramref name="deadLetterHook"/>, told of each chunk the consumer dead-letters.
    /// </summary>
    public static ConsumerOptions ConsumerOptionsFor(ScorerOptions options, IDeadLetterHook? deadLetterHook)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new ConsumerOptions
        {
            MaxConcurrency = options.MaxConcurrentCalls,
            MaxDeliveryCount = options.MaxDeliveryCount,
            VisibilityTimeout = options.MessageLockDuration,
            PollInterval = options.PollInterval,
            HungAfter = options.HungChunkAfter,
            DeadLetterHook = deadLetterHook,
        };
    }

    /// <summary>Loads the models and scores one dummy batch; returns the loaded models.</summary>
    public static ScreeningModels LoadAndWarmUp(InferenceOptions inference, ILogger logger, out double seconds)
    {
        var stopwatch = Stopwatch.StartNew();
        var models = ScreeningModels.Load(inference, logger);

        // One full-size batch through the graph actually used for chunks (both outputs), after the session's own
        // warm-up: allocations and (on CUDA) kernel selection happen here rather than on the first chunk.
        models.Predict(new float[OnnxModel.Plane], 1);
        seconds = stopwatch.Elapsed.TotalSeconds;
        return models;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _options.Validate();
        Log.WarmingUp(logger, _options.ExecutionProvider, _options.ModelDirectory ?? "(next to the executable)");
        double seconds = 0;
        var models = await Task.Run(() => LoadAndWarmUp(InferenceOptionsFor(_options, scoring.Value), logger, out seconds), stoppingToken).ConfigureAwait(false);
        if (_options.PreferCuda && !models.Provider.Contains("CUDA", StringComparison.OrdinalIgnoreCase))
        {
            Log.CudaUnavailable(logger, models.Provider);
        }

        var handler = ActivatorUtilities.CreateInstance<ScoringHandler>(services, models);
        readiness.MarkReady(models.Provider, seconds);
        Log.Ready(logger, models.Provider, seconds, _options.SliceQueueName, _options.MaxConcurrentCalls);

        // A chunk whose deliveries all ended with the process gone (a native crash, an out-of-memory kill) is
        // dead-lettered by the consumer on the next one; the hook answers its study with an error result then, so the
        // study fails at once instead of re-dispatching the chunk into the same crash after each chunk timeout.
        var consumerOptions = ConsumerOptionsFor(_options, ActivatorUtilities.CreateInstance<ChunkDeadLetterHook>(services, models.Provider));

        try
        {
            // stoppingToken stops receiving; handlers run on _abort, which is cancelled only when the drain times out.
            await consumer.RunAsync(_options.SliceQueueName, (message, _) => HandleAsync(handler, message), consumerOptions, stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: receiving has ended.
        }

        // Some consumers return as soon as receiving stops; in-flight handlers still finish here.
        await WaitIdleAsync().ConfigureAwait(false);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        readiness.MarkDraining();
        Log.Draining(logger, readiness.InFlight, _options.DrainTimeout.TotalSeconds);
        var stopping = base.StopAsync(cancellationToken);
        using var drainDeadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        drainDeadline.CancelAfter(_options.DrainTimeout);
        try
        {
            await stopping.WaitAsync(drainDeadline.Token).ConfigureAwait(false);
            Log.Drained(logger, readiness.Completed);
        }
        catch (OperationCanceledException) when (!stopping.IsCompleted)
        {
            Log.DrainTimedOut(logger, readiness.InFlight);
            await _abort.CancelAsync().ConfigureAwait(false);
            await stopping.ConfigureAwait(false);
        }
    }

    public override void Dispose()
    {
        _abort.Dispose();
        base.Dispose();
    }

    private async Task<Settlement> HandleAsync(ScoringHandler handler, ReceivedMessage message)
    {
        lock (_gate)
        {
            if (readiness.InFlight == 0)
            {
                _idle = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            readiness.Started();
        }

        try
        {
            return await handler.HandleAsync(message, _abort.Token).ConfigureAwait(false);
        }
        finally
        {
            lock (_gate)
            {
                readiness.Finished();
                if (readiness.InFlight == 0)
                {
                    _idle.TrySetResult();
                }
            }
        }
    }

    private Task WaitIdleAsync()
    {
        lock (_gate)
        {
            return _idle.Task;
        }
    }

    private static TaskCompletionSource CompletedIdle()
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        done.SetResult();
        return done;
    }

    // 3011-3016: the scorer process also loads CovidFunctions.Inference, whose events are 3000-3002 (3001 is its own
    // CUDA fallback); one id naming two events would make an operator's query on it match both.
    private static partial class Log
    {
        [LoggerMessage(EventId = 3011, Level = LogLevel.Information, Message = "Scorer warming up: execution provider {Provider} requested, models from {ModelDirectory}")]
        public static partial void WarmingUp(ILogger logger, string provider, string modelDirectory);

        [LoggerMessage(EventId = 3012, Level = LogLevel.Warning, Message = "CUDA was requested but the models run on {Provider}: the CUDA provider did not load (driver, CUDA 13 or cuDNN 9 missing)")]
        public static partial void CudaUnavailable(ILogger logger, string provider);

        [LoggerMessage(EventId = 3013, Level = LogLevel.Information, Message = "Scorer ready on {Provider} after {Seconds:0.00} s warm-up; consuming {Queue} with {Concurrency} concurrent chunk(s)")]
        public static partial void Ready(ILogger logger, string provider, double seconds, string queue, int concurrency);

        [LoggerMessage(EventId = 3014, Level = LogLevel.Information, Message = "Scorer stopping: receiving stopped, draining {InFlight} in-flight chunk(s) for up to {Seconds:0} s")]
        public static partial void Draining(ILogger logger, int inFlight, double seconds);

        [LoggerMessage(EventId = 3015, Level = LogLevel.Information, Message = "Scorer drained ({Completed} chunk(s) handled in this run)")]
        public static partial void Drained(ILogger logger, long completed);

        [LoggerMessage(EventId = 3016, Level = LogLevel.Warning, Message = "Drain timeout: cancelling {InFlight} in-flight chunk(s); each message goes back to the queue as its chunk stops (only if the host stops first, after its lock or visibility timeout)")]
        public static partial void DrainTimedOut(ILogger logger, int inFlight);
    }
}
