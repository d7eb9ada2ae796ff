using CovidFunctions.Pipeline.Notifications;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.FunctionApp.Functions;

/// <summary>
/// Webhook retries in Azure: the notify activity makes only the first attempt of each delivery (an activity must stay
/// short), and this timer makes the due retries (<see cref="WebhookRetryHandler"/>), each claimed with an ETag so two
/// instances never send the same attempt twice.
/// </summary>
public sealed partial class WebhookFunctions(WebhookRetryHandler retries, TimeProvider time, ILogger<WebhookFunctions> logger)
{
    public const string RetryWebhookDeliveriesName = "RetryWebhookDeliveries";

    /// <summary>Every 30 s: the first retry is due 45 s (nominal) after the first attempt.</summary>
    [Function(RetryWebhookDeliveriesName)]
    public async Task RetryWebhookDeliveries([TimerTrigger("*/30 * * * * *")] TimerInfo timer, CancellationToken cancellationToken)
    {
        var made = await retries.RunDueAsync(time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
        Log.Retried(logger, made);
    }

    private static partial class Log
    {
        // 4211, beside the secret sweep's 4221: 4201 is the orchestration history purge's (cited in failure-semantics.md).
        [LoggerMessage(EventId = 4211, Level = LogLevel.Information, Message = "Webhook retry timer made {Count} due attempt(s)")]
        public static partial void Retried(ILogger logger, int count);
    }
}
