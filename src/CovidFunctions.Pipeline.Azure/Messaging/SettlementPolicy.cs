using CovidFunctions.Pipeline.Messaging;

namespace CovidFunctions.Pipeline.Azure.Messaging;

/// <summary>
/// The one settlement rule both transports apply (pure, unit-tested): the handler's answer stands, except that an
/// exception is a <see cref="SettlementAction.Retry"/> with the exception's message, and a retry on the last allowed
/// delivery (<see cref="ConsumerOptions.MaxDeliveryCount"/>) becomes a <see cref="SettlementAction.DeadLetter"/> with that reason.
/// </summary>
public static class SettlementPolicy
{
    /// <summary>
    /// How long both transports keep a message locked (Service Bus lock renewal) or invisible (Storage-queue visibility
    /// renewal) while its handler runs. One bound for both, so a chunk behaves the same on either transport: a chunk
    /// scores in seconds to a minute, so a handler still running after 30 minutes is hung rather than slow, and the
    /// study orchestration re-dispatches a chunk after <c>Pipeline:ChunkTimeout</c> anyway. Past it the message can be
    /// delivered again; each transport logs that when it happens.
    /// </summary>
    public static readonly TimeSpan MaxLockRenewal = TimeSpan.FromMinutes(30);

    /// <summary>
    /// How long a scorer's received chunk stays hidden per renewal, so how long a chunk whose replica died waits before
    /// its next delivery: the scorer's default <c>Scorer:MessageLockDuration</c> (Storage-queue visibility), <c>covidfn
    /// up</c>'s scorer visibility, and bicep's <c>sliceLockDuration</c> (<c>PT30S</c>, the Service Bus lock). A live
    /// holder renews it (every third on a Storage queue, 10 s before it ends on Service Bus) for up to
    /// <see cref="MaxLockRenewal"/>, so it does not bound how long a chunk may run.
    /// </summary>
    public static readonly TimeSpan CrashRedeliveryLock = TimeSpan.FromSeconds(30);

    /// <summary>Decides what happens to a message after its handler ran (or threw <paramref name="handlerError"/>).</summary>
    public static Settlement Decide(Settlement? handlerResult, Exception? handlerError, int deliveryCount, int maxDeliveryCount)
    {
        var outcome = handlerError is not null
            ? new Settlement(SettlementAction.Retry, $"{handlerError.GetType().Name}: {handlerError.Message}")
            : handlerResult ?? Settlement.Complete;

        return outcome.Action switch
        {
            SettlementAction.Retry when deliveryCount >= maxDeliveryCount =>
                new Settlement(SettlementAction.DeadLetter, $"gave up after {deliveryCount} deliveries (max {maxDeliveryCount}): {outcome.Reason ?? "the handler asked for a retry"}"),
            SettlementAction.DeadLetter when string.IsNullOrWhiteSpace(outcome.Reason) =>
                outcome with { Reason = "dead-lettered by the handler" },
            _ => outcome,
        };
    }

    /// <summary>
    /// The consumer, not the handler, decided this dead-letter (a retry or an exception on the last allowed delivery
    /// became one): the consumer's <see cref="IDeadLetterHook"/> is told of it. A dead-letter the handler returned is
    /// the handler's own answer and is not.
    /// </summary>
    public static bool IsConsumerDeadLetter(Settlement? handlerResult, Settlement decided)
    {
        ArgumentNullException.ThrowIfNull(decided);
        return decided.Action == SettlementAction.DeadLetter && handlerResult?.Action != SettlementAction.DeadLetter;
    }

    /// <summary>
    /// A message delivered more often than allowed (its handler kept crashing the process, so it was never settled)
    /// is dead-lettered before the handler runs again.
    /// </summary>
    public static bool IsOverDelivered(int deliveryCount, int maxDeliveryCount) => deliveryCount > maxDeliveryCount;

    /// <summary>Backoff before a retried Storage-queue message is visible again: base × 2^(delivery−1), capped.</summary>
    public static TimeSpan RetryDelay(int deliveryCount, TimeSpan baseDelay, TimeSpan maxDelay)
    {
        var exponent = Math.Clamp(deliveryCount - 1, 0, 20);
        var delay = TimeSpan.FromTicks(Math.Min(baseDelay.Ticks * (1L << exponent), maxDelay.Ticks));
        return delay < TimeSpan.Zero ? TimeSpan.Zero : delay;
    }
}
