using CovidFunctions.Pipeline.Notifications;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.FunctionApp.Functions;

/// <summary>
/// Deletes webhook signing secrets in the webhook-secrets vault that no subscription signs with any more
/// (<see cref="WebhookSecretSweep"/>): orphans a create or rotation left when it died between storing its secret and
/// writing its row, or lost its compare-and-swap and could not delete the secret, a failed removal's leftovers, and
/// replaced secrets whose overlap ended; each at least <see cref="WebhookOptions.OrphanedSecretGrace"/> (1 h) old. Before,
/// nothing swept the vault: such a secret stayed there for ever unless someone removed its subscription by id.
/// Hourly (one vault list request per 25 secrets, one table query): an orphan lives at most about two hours.
/// </summary>
public sealed partial class WebhookSecretSweepFunctions(WebhookSecretSweep sweep, ILogger<WebhookSecretSweepFunctions> logger)
{
    public const string SweepWebhookSecretsName = "SweepWebhookSecrets";

    /// <summary>Hourly at minute 20 (the other hourly timers run at 30 and 45).</summary>
    public const string Schedule = "0 20 * * * *";

    [Function(SweepWebhookSecretsName)]
    public async Task SweepWebhookSecrets([TimerTrigger(Schedule)] TimerInfo timer, CancellationToken cancellationToken)
    {
        var result = await sweep.SweepAsync(cancellationToken).ConfigureAwait(false);
        Log.Swept(logger, result.Listed, result.Deleted, result.Failed);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 4221, Level = LogLevel.Information, Message = "Webhook secret sweep timer: {Listed} secret(s) listed, {Deleted} deleted, {Failed} failed")]
        public static partial void Swept(ILogger logger, int listed, int deleted, int failed);
    }
}
