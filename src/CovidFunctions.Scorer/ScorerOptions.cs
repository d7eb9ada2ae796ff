using CovidFunctions.Pipeline;

namespace CovidFunctions.Scorer;

/// <summary>How messages travel (the same words as bicep's <c>resultTransport</c>).</summary>
public enum MessageTransport
{
    StorageQueue,
    ServiceBus,
}

/// <summary>
/// Scorer settings (configuration section <c>Scorer</c>; bicep/modules/containerapps.bicep sets them as
/// <c>Scorer__*</c> environment variables, local.settings.sample.json lists them for Azurite).
/// </summary>
public sealed record ScorerOptions
{
    public const string SectionName = "Scorer";

    /// <summary>The queue chunk requests arrive on (<c>slice-chunks</c> on Service Bus in Azure).</summary>
    public string SliceQueueName { get; init; } = PipelineNames.SliceRequestsQueue;

    /// <summary>The queue chunk results are posted to.</summary>
    public string ResultQueueName { get; init; } = PipelineNames.SliceResultsQueue;

    /// <summary>How chunk requests arrive; null: Service Bus when <c>ServiceBus:fullyQualifiedNamespace</c> is set, else a Storage queue.</summary>
    public MessageTransport? SliceTransport { get; init; }

    /// <summary>How chunk results are posted (bicep's <c>resultTransport</c>).</summary>
    public MessageTransport ResultTransport { get; init; } = MessageTransport.StorageQueue;

    /// <summary>A storage connection string (Azurite: <c>UseDevelopmentStorage=true</c>); when set, the service URIs are not used.</summary>
    public string? StorageConnectionString { get; init; }

    /// <summary>Blob endpoint for identity-based access (Azure).</summary>
    public Uri? BlobServiceUri { get; init; }

    /// <summary>Queue endpoint for identity-based access (Azure).</summary>
    public Uri? QueueServiceUri { get; init; }

    /// <summary>Table endpoint for the SliceResults rows; when neither it nor a connection string is set, rows are not written (the chunk documents in results carry the same values).</summary>
    public Uri? TableServiceUri { get; init; }

    public string SliceContainer { get; init; } = PipelineNames.SlicesContainer;

    public string ResultContainer { get; init; } = PipelineNames.ResultsContainer;

    /// <summary><c>Cuda</c> tries the CUDA provider first and falls back to CPU (logged); <c>Cpu</c> never tries it.</summary>
    public string ExecutionProvider { get; init; } = "Cpu";

    /// <summary>The models folder (manifest.json + ONNX files); null: next to the executable.</summary>
    public string? ModelDirectory { get; init; }

    /// <summary>Port of /healthz and /readyz (0: any free port, for tests).</summary>
    public int HealthPort { get; init; } = 8080;

    /// <summary>
    /// Chunks scored at once (Service Bus MaxConcurrentCalls). One GPU is busiest with 2: one chunk computes while the
    /// next reads tiles. A chunk delivered before (its last replica may have died of it) is scored alone on its replica
    /// (<see cref="Pipeline.Messaging.DeliveryGate"/>), so a crash during it costs no other chunk a delivery. A chunk
    /// still running after <see cref="HungChunkAfter"/> (2 min) counts as hung and no longer holds a redelivered chunk
    /// back: that one is scored beside it instead of waiting up to the 30-min lock renewal.
    /// </summary>
    public int MaxConcurrentCalls { get; init; } = 2;

    /// <summary>
    /// How long a chunk is scored before its replica takes it as hung (<see cref="Pipeline.Messaging.DeliveryGate"/>,
    /// logged as event 2401): from then on it holds nothing back, so a redelivered chunk waiting for it is scored beside
    /// it, and a redelivered chunk that has itself run this long lets the replica take other chunks again. The chunk
    /// keeps running and keeps its message. 2 min: a healthy chunk scores in about a second on a GPU and about 9 s on a
    /// 2-core CPU (docs/benchmarks.md), and it is a fifth of the orchestrator's <c>Pipeline:ChunkTimeout</c> (10 min;
    /// 20 in Azure), so a chunk held back for it is still scored before its chunk is dispatched again. Keep it well
    /// below that timeout (the scorer cannot see it); bounded here by <see cref="MinHungChunkAfter"/> and
    /// <see cref="MaxHungChunkAfter"/>.
    /// </summary>
    public TimeSpan HungChunkAfter { get; init; } = Pipeline.Messaging.DeliveryGate.DefaultHungAfter;

    /// <summary>Deliveries before a failing chunk is dead-lettered (the Service Bus queue's own limit is bicep's sliceMaxDeliveryCount).</summary>
    public int MaxDeliveryCount { get; init; } = 5;

    /// <summary>
    /// Storage queue: how long a received chunk stays invisible, renewed every third of it while the replica scoring it
    /// lives (for up to <see cref="Pipeline.Azure.Messaging.SettlementPolicy.MaxLockRenewal"/>, so it does not bound how
    /// long a chunk may take). What it bounds is how long a chunk stays hidden after the replica holding it died: a
    /// chunk that crashes the scorer (a native ONNX Runtime crash, an out-of-memory kill) costs this much per delivery
    /// before the next replica takes it, and fails its study on the delivery after <see cref="MaxDeliveryCount"/>.
    /// 30 s: renewed every 10 s, so 20 s of failed renewals (the storage account unreachable) pass without a second
    /// delivery, and a crash-looping chunk fails its study after about 5 × 30 s plus the restarts. It was 5 min, which
    /// made that about 25 minutes (docs/benchmarks.md). Not used on Service Bus, whose lock is the queue's lockDuration
    /// (bicep's sliceLockDuration, the same 30 s, renewed by the processor).
    /// </summary>
    public TimeSpan MessageLockDuration { get; init; } = DefaultMessageLockDuration;

    /// <summary>The default <see cref="MessageLockDuration"/>.</summary>
    public static readonly TimeSpan DefaultMessageLockDuration = Pipeline.Azure.Messaging.SettlementPolicy.CrashRedeliveryLock;

    /// <summary>Idle wait between empty polls of a Storage queue.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// On SIGTERM: stop receiving, then let in-flight chunks finish for at most this long before cancelling them
    /// (their messages go back to the queue at once). Below the container's 120 s grace period.
    /// </summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(100);

    /// <summary>Intra-op threads of ONNX Runtime on CPU (0: one per core).</summary>
    public int IntraOpThreads { get; init; }

    /// <summary>
    /// ONNX Runtime's CPU memory arena (<see cref="Inference.InferenceOptions.CpuMemArena"/>), on by default. Off: a CPU
    /// scorer holds ~0.75 GB less resident once chunks of several sizes have been scored, and runs 11–19 % slower
    /// (docs/benchmarks.md). The CUDA provider's device memory has its own arena either way.
    /// </summary>
    public bool CpuMemArena { get; init; } = true;

    /// <summary>
    /// Keep lesion output on HU tiles inside the (dilated) lungs: masks, overlays, lesion pixels and the slice ranking
    /// key (<see cref="Inference.InferenceOptions.RestrictLesionsToLungs"/>, the same rule as <c>covidfn segment</c>).
    /// </summary>
    public bool RestrictLesionsToLungs { get; init; } = true;

    public bool PreferCuda => string.Equals(ExecutionProvider, "Cuda", StringComparison.OrdinalIgnoreCase);

    /// <summary>The shortest <see cref="MessageLockDuration"/>: renewed every third, so at least about 7 s to renew in.</summary>
    public static readonly TimeSpan MinMessageLockDuration = TimeSpan.FromSeconds(10);

    /// <summary>The longest <see cref="MessageLockDuration"/>: a Storage queue's longest visibility timeout.</summary>
    public static readonly TimeSpan MaxMessageLockDuration = TimeSpan.FromDays(7);

    /// <summary>The longest <see cref="PollInterval"/>: an idle replica still answers a new chunk within minutes.</summary>
    public static readonly TimeSpan MaxPollInterval = TimeSpan.FromMinutes(5);

    /// <summary>
    /// The shortest <see cref="HungChunkAfter"/>: above the time a healthy chunk takes (32 slices at 0.27 s on a 2-core
    /// CPU, about 9 s; docs/benchmarks.md) with room for a slow one, or healthy chunks would be taken as hung and run
    /// beside a redelivered one that may crash the replica.
    /// </summary>
    public static readonly TimeSpan MinHungChunkAfter = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The longest <see cref="HungChunkAfter"/>: half the 30 min a received chunk's lock or visibility is renewed for
    /// (<see cref="Pipeline.Azure.Messaging.SettlementPolicy.MaxLockRenewal"/>, counted from its receipt, waiting
    /// included), so a redelivered chunk held back that long still has 15 min of renewal to be scored in. Nearer the
    /// renewal, its lock would run out while it is scored and it would be delivered, and scored, a second time.
    /// </summary>
    public static readonly TimeSpan MaxHungChunkAfter = Pipeline.Azure.Messaging.SettlementPolicy.MaxLockRenewal / 2;

    /// <summary>Throws <see cref="InvalidOperationException"/> naming the setting when one is out of range.</summary>
    public void Validate()
    {
        static InvalidOperationException Bad(string name, object? value, string rule) => new($"{SectionName}:{name} {rule} (got '{value}').");
        if (string.IsNullOrWhiteSpace(SliceQueueName))
        {
            throw Bad(nameof(SliceQueueName), SliceQueueName, "must be set");
        }

        if (string.IsNullOrWhiteSpace(ResultQueueName))
        {
            throw Bad(nameof(ResultQueueName), ResultQueueName, "must be set");
        }

        if (ExecutionProvider is not ("Cuda" or "Cpu" or "cuda" or "cpu" or "CUDA" or "CPU"))
        {
            throw Bad(nameof(ExecutionProvider), ExecutionProvider, "must be Cuda or Cpu");
        }

        if (MaxConcurrentCalls is < 1 or > 64)
        {
            throw Bad(nameof(MaxConcurrentCalls), MaxConcurrentCalls, "must be in 1..64");
        }

        if (MaxDeliveryCount < 1)
        {
            throw Bad(nameof(MaxDeliveryCount), MaxDeliveryCount, "must be at least 1");
        }

        // The Storage queue service documents a visibility timeout of whole seconds from 1 s to 7 days (the SDK sends the
        // whole seconds). Another value (0, 00:00:00.5, 8 days) was taken as it came: the service refuses such a receive
        // (400), and the consumer treats every refusal as an outage to retry each second, while /readyz says ready.
        // Under 10 s the renewal (every third of the timeout, at least every second) has too little room to be retried.
        if (MessageLockDuration < MinMessageLockDuration || MessageLockDuration > MaxMessageLockDuration)
        {
            throw Bad(nameof(MessageLockDuration), MessageLockDuration, $"must be between {MinMessageLockDuration:c} and {MaxMessageLockDuration:c}, the Storage queue's visibility range");
        }

        // Task.Delay refuses a negative wait: the consumer failed at its first empty poll, after the models had loaded.
        if (PollInterval <= TimeSpan.Zero || PollInterval > MaxPollInterval)
        {
            throw Bad(nameof(PollInterval), PollInterval, $"must be more than 0 and at most {MaxPollInterval:c}");
        }

        // Past the time a healthy chunk takes, and well short of the lock renewal a held-back chunk waits and runs under.
        if (HungChunkAfter < MinHungChunkAfter || HungChunkAfter > MaxHungChunkAfter)
        {
            throw Bad(nameof(HungChunkAfter), HungChunkAfter, $"must be between {MinHungChunkAfter:c} (past a healthy chunk's scoring time, about 9 s on a 2-core CPU) and {MaxHungChunkAfter:c} (half the 30-min lock renewal a chunk held back by it waits and is scored under); keep it well below Pipeline:ChunkTimeout");
        }

        if (DrainTimeout < TimeSpan.Zero)
        {
            throw Bad(nameof(DrainTimeout), DrainTimeout, "must not be negative");
        }

        if (HealthPort is < 0 or > 65535)
        {
            throw Bad(nameof(HealthPort), HealthPort, "must be a port number");
        }

        if (StorageConnectionString is null && BlobServiceUri is null)
        {
            throw Bad(nameof(BlobServiceUri), null, "or Scorer:StorageConnectionString must be set");
        }
    }
}
