namespace CovidFunctions.Pipeline.Messaging;

/// <summary>Why a consumer dead-lettered a message that its handler did not ask to dead-letter.</summary>
public enum DeadLetterCause
{
    /// <summary>
    /// Delivered more often than <see cref="ConsumerOptions.MaxDeliveryCount"/> without any delivery being settled: the
    /// handler's process stopped while handling it each time (a native crash, an out-of-memory kill), so the consumer
    /// dead-letters it before the handler runs again.
    /// </summary>
    OverDelivered,

    /// <summary>The handler threw (or asked for a retry) on the last allowed delivery.</summary>
    FailedOnLastDelivery,
}

/// <summary>
/// A message a consumer dead-lettered by its own decision (<see cref="Cause"/>). <see cref="Location"/> says where the
/// dead-lettered copy can be read: <c>dead-letters/{queue}/{id}-{n}.json</c> on a Storage queue, the queue's
/// dead-letter sub-queue on Service Bus.
/// </summary>
public sealed record DeadLetteredMessage(
    string Queue,
    ReceivedMessage Message,
    DeadLetterCause Cause,
    string Reason,
    string Location,
    int MaxDeliveryCount);

/// <summary>
/// Called by a consumer (both transports) when it dead-letters a message without its handler having asked for that:
/// whoever waits for the message's answer can be told now, rather than find out by a timeout. Not called for a
/// dead-letter the handler returned (<see cref="SettlementAction.DeadLetter"/>): the handler has read the message and
/// answers for it itself, where anyone waits.
/// <para>
/// The consumer stores the dead-lettered copy first, then calls the hook, then removes the message; a crash between the
/// steps runs them again on a later delivery, so a hook must be idempotent. A hook that throws is logged and the
/// message is dead-lettered all the same (never kept for ever).
/// </para>
/// </summary>
public interface IDeadLetterHook
{
    Task OnDeadLetteredAsync(DeadLetteredMessage deadLettered, CancellationToken cancellationToken);
}
