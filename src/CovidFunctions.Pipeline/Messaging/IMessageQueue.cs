namespace CovidFunctions.Pipeline.Messaging;

/// <summary>A message on a queue: a deterministic id (duplicate detection) and a JSON body.</summary>
public sealed record QueueMessage(string MessageId, string Body);

/// <summary>A received message: <see cref="DeliveryCount"/> is 1 on the first delivery.</summary>
public sealed record ReceivedMessage(string MessageId, string Body, int DeliveryCount);

/// <summary>What to do with a received message once its handler has run.</summary>
public enum SettlementAction
{
    /// <summary>Done: remove it.</summary>
    Complete,

    /// <summary>Transient failure: make it visible again for another delivery.</summary>
    Retry,

    /// <summary>Poison or permanently bad: move it to the dead-letter store with the reason.</summary>
    DeadLetter,
}

public sealed record Settlement(SettlementAction Action, string? Reason = null)
{
    public static Settlement Complete { get; } = new(SettlementAction.Complete);
}

/// <summary>Sends messages to a named queue (Storage queue locally, Service Bus in Azure).</summary>
public interface IMessageSender
{
    Task SendAsync(string queue, QueueMessage message, CancellationToken cancellationToken);
}

/// <summary>
/// Receives messages from a named queue and settles each by its handler's <see cref="Settlement"/>. An exception from
/// the handler counts as <see cref="SettlementAction.Retry"/> until <see cref="ConsumerOptions.MaxDeliveryCount"/>
/// deliveries, then <see cref="SettlementAction.DeadLetter"/> with the exception message as the reason.
/// </summary>
public interface IMessageConsumer
{
    Task RunAsync(string queue, Func<ReceivedMessage, CancellationToken, Task<Settlement>> handler, ConsumerOptions options, CancellationToken cancellationToken);
}

public sealed record ConsumerOptions
{
    /// <summary>Messages handled at once.</summary>
    public int MaxConcurrency { get; init; } = 1;

    /// <summary>Deliveries before a failing message is dead-lettered.</summary>
    public int MaxDeliveryCount { get; init; } = 5;

    /// <summary>
    /// Storage queue: how long a received message stays invisible, extended by as much every third of it while its
    /// handler runs; so, how long a message whose consumer died stays hidden before another takes it. Not used on
    /// Service Bus, where the lock is the queue's own lockDuration, renewed by the processor.
    /// </summary>
    public TimeSpan VisibilityTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Idle wait between empty polls (Storage queue).</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// How long a handler runs before the consumer's <see cref="DeliveryGate"/> takes it as hung (logged, event 2401):
    /// from then on it holds nothing back, so a redelivered message waiting for it starts beside it. Both transports
    /// build their gate with it; <see cref="Timeout.InfiniteTimeSpan"/>: never. The scorer sets it from
    /// <c>Scorer:HungChunkAfter</c>.
    /// </summary>
    public TimeSpan HungAfter { get; init; } = DeliveryGate.DefaultHungAfter;

    /// <summary>
    /// Told of each message the consumer dead-letters by its own decision (over-delivered, or failing on its last
    /// delivery); null: nobody is told. The scorer's is <see cref="Scoring.ChunkDeadLetterHook"/>.
    /// </summary>
    public IDeadLetterHook? DeadLetterHook { get; init; }
}
