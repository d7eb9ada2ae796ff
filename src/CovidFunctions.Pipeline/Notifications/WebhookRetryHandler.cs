using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Notifications;

/// <summary>
/// Makes the retries of webhook deliveries whose first attempt (the notify activity's) failed retryably: each run
/// lists the pending deliveries whose next attempt is due, claims each one with an ETag-conditional replace that
/// moves its due time past the attempt's lease (of two workers racing for the same attempt one wins, the other skips
/// it), and makes ONE attempt through the <see cref="WebhookDispatcher"/> with the stored body, the same delivery id
/// and a fresh signature. The dispatcher stores the next state: delivered, pending with the next retry due, or, after
/// the last attempt, the dead-letter record. Runs from a timer in the Function app and a loop in the local host.
/// A pending record written before retries were scheduled (no <see cref="WebhookDelivery.NextAttemptAt"/>, no stored
/// body) is due when its claim's lease ends; given the Studies store, its body is built again from the Studies row
/// (the same payload the notifier builds: same id, same fields), else it is dead-lettered with the reason.
/// </summary>
public sealed partial class WebhookRetryHandler(
    IWebhookDeliveryLog deliveries,
    IWebhookSubscriptionStore subscriptions,
    IWebhookSecretStore secrets,
    WebhookDispatcher dispatcher,
    WebhookOptions options,
    TimeProvider time,
    ILogger<WebhookRetryHandler> logger,
    IStudyStore? studies = null)
{
    /// <summary>Rebuilds the body of records that have none (written before bodies were stored); null: they are dead-lettered.</summary>
    private readonly IStudyStore? _studies = studies;

    /// <summary>The most due deliveries one run takes (the next run takes the rest).</summary>
    public const int BatchSize = 100;

    /// <summary>How many attempts one run makes at the same time.</summary>
    public const int Parallelism = 8;

    /// <summary>Makes the attempts due at <paramref name="now"/>; returns how many this call made (claims it lost are not counted).</summary>
    public async Task<int> RunDueAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        var due = await deliveries.ListDueAsync(now, BatchSize, cancellationToken).ConfigureAwait(false);
        var made = 0;
        await Parallel.ForEachAsync(
            due,
            new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = cancellationToken },
            async (delivery, token) =>
            {
                if (await RetryAsync(delivery, now, token).ConfigureAwait(false) is not null)
                {
                    Interlocked.Increment(ref made);
                }
            }).ConfigureAwait(false);
        return made;
    }

    /// <summary>Runs <see cref="RunDueAsync"/> every <paramref name="interval"/> until cancelled (the local host's loop).</summary>
    public async Task RunAsync(TimeSpan interval, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var made = await RunDueAsync(time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
                if (made > 0)
                {
                    Log.Ran(logger, made);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
#pragma warning disable CA1031 // the loop outlives one failed run (storage down): the next run tries again
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Log.RunFailed(logger, ex);
            }

            try
            {
                await Task.Delay(interval, time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>
    /// Claims one due delivery and makes its next attempt: the stored record after it, or null when another worker
    /// claimed it first (or it is no longer due).
    /// </summary>
    public async Task<WebhookDelivery?> RetryAsync(WebhookDelivery due, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(due);
        // A record without NextAttemptAt predates scheduled retries: it is due when its claim's lease ends.
        if (due.DueAt is not { } dueAt || dueAt > now)
        {
            return null;
        }

        // The claim: if this worker dies during the attempt, the delivery is due again once the attempt's lease is over.
        // Leased from the claim, not from the run's start: a delivery reached late in a long run (a batch of slow
        // receivers) was leased into the past, due again for any other worker while its attempt was still in flight.
        var claimedAt = time.GetUtcNow();
        var claim = await deliveries.TryReplaceAsync(due with { NextAttemptAt = (claimedAt > now ? claimedAt : now) + options.AttemptLease }, cancellationToken).ConfigureAwait(false);
        if (claim is null)
        {
            Log.ClaimLost(logger, due.DeliveryId);
            return null;
        }

        var subscription = await subscriptions.GetAsync(claim.Tenant, claim.SubscriptionId, cancellationToken).ConfigureAwait(false);
        var signing = subscription is { Active: true }
            ? await WebhookSigningSecrets.ResolveAsync(subscriptions, secrets, subscription, time.GetUtcNow(), cancellationToken).ConfigureAwait(false)
            : WebhookSigning.Refuse(WebhookSigningSecrets.RemovedRefusal);
        var body = claim.Body;
        if (string.IsNullOrEmpty(body) && _studies is not null && signing.Secrets is not null
            && await _studies.GetAsync(claim.Tenant, claim.StudyId, cancellationToken).ConfigureAwait(false) is { } study)
        {
            body = WebhookPayload.For(claim.DeliveryId, claim.EventType, study, options.PublicBaseUrl, time.GetUtcNow()).ToJson();
        }

        if (subscription is null || signing.Secrets is not { } signingSecrets || string.IsNullOrEmpty(body))
        {
            var error = signing.Refusal ?? "the delivery has no stored body to resend";
            var dead = claim with { Status = WebhookDeliveryStatus.DeadLettered, FinishedAt = time.GetUtcNow(), NextAttemptAt = null, Error = error };
            await deliveries.CompleteAsync(dead, CancellationToken.None).ConfigureAwait(false);
            Log.Abandoned(logger, claim.DeliveryId, error);
            return dead;
        }

        return await dispatcher.DeliverAsync(claim, subscription.Url, signingSecrets, body, retry: true, cancellationToken).ConfigureAwait(false);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 8121, Level = LogLevel.Information, Message = "Webhook retries: {Count} due attempt(s) made")]
        public static partial void Ran(ILogger logger, int count);

        [LoggerMessage(EventId = 8122, Level = LogLevel.Warning, Message = "Webhook retry run failed; the next run tries again")]
        public static partial void RunFailed(ILogger logger, Exception exception);

        [LoggerMessage(EventId = 8123, Level = LogLevel.Debug, Message = "Webhook delivery {DeliveryId}: another worker claimed the due attempt")]
        public static partial void ClaimLost(ILogger logger, string deliveryId);

        [LoggerMessage(EventId = 8124, Level = LogLevel.Warning, Message = "Webhook delivery {DeliveryId} dead-lettered without an attempt: {Error}")]
        public static partial void Abandoned(ILogger logger, string deliveryId, string error);
    }
}
