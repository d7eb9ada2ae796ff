using CovidFunctions.Pipeline.Messaging;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Azure.Messaging;

/// <summary>How both transports call a consumer's <see cref="IDeadLetterHook"/>.</summary>
internal static partial class DeadLetterNotification
{
    /// <summary>
    /// Calls the hook, if any. A hook that fails is logged (the study then learns of the chunk only by its timeouts, as
    /// before the hook) and the message is dead-lettered all the same: keeping it back to try the hook again would
    /// redeliver it for ever while the hook's target stays unreachable. Returns whether the hook ran to the end.
    /// </summary>
    public static async Task<bool> NotifyAsync(IDeadLetterHook? hook, DeadLetteredMessage deadLettered, ILogger logger)
    {
        if (hook is null)
        {
            return false;
        }

        try
        {
            // Not the consumer's token: a dead-letter decided while stopping still tells its waiter.
            await hook.OnDeadLetteredAsync(deadLettered, CancellationToken.None).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex)
        {
            LogHookFailed(logger, deadLettered.Queue, deadLettered.Message.MessageId, ex.GetType().Name, ex.Message);
            return false;
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Message {MessageId} on {Queue} is dead-lettered, but telling its waiter failed ({Type}: {Error}); whoever waits for its answer finds out by its own timeout")]
    private static partial void LogHookFailed(ILogger logger, string queue, string messageId, string type, string error);
}
