using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Notifications;

/// <summary>
/// <see cref="IStudyNotifier"/> over webhooks: for each active subscription of the study's tenant that wants the
/// event, claims the delivery <c>(subscription, study, event)</c> insert-if-absent and, only when this call won the
/// claim, builds the payload from the Studies row (stored with the claim) and makes the FIRST attempt through the
/// <see cref="WebhookDispatcher"/>. It never waits for a retry: a retryable failure leaves the delivery pending with its
/// next attempt due, and the <see cref="WebhookRetryHandler"/> (a timer in the Function app, a loop in the local host)
/// makes the rest, so the notify activity stays short. A notify activity that runs twice (or two hosts racing)
/// therefore sends each delivery once; a claim whose owner died is taken over by a later call once its lease
/// (<see cref="WebhookOptions.ClaimLease"/>) ran out, and its attempt is made again by the retry handler once the
/// attempt's lease (<see cref="WebhookOptions.AttemptLease"/>) ran out.
/// </summary>
public sealed partial class WebhookNotifier(
    IStudyStore studies,
    IWebhookSubscriptionStore subscriptions,
    IWebhookSecretStore secrets,
    IWebhookDeliveryLog deliveries,
    WebhookDispatcher dispatcher,
    WebhookOptions options,
    TimeProvider time,
    ILogger<WebhookNotifier> logger) : IStudyNotifier
{
    public async Task NotifyAsync(string tenant, string studyId, string eventType, CancellationToken cancellationToken)
    {
        StudyIds.RequireTenant(tenant);
        ArgumentException.ThrowIfNullOrEmpty(studyId);
        if (!StudyEventTypes.All.Contains(eventType, StringComparer.Ordinal))
        {
            throw new ArgumentException($"unknown event type '{eventType}'", nameof(eventType));
        }

        var targets = (await subscriptions.ListAsync(tenant, cancellationToken).ConfigureAwait(false)).Where(s => s.Wants(eventType)).ToList();
        if (targets.Count == 0)
        {
            return;
        }

        var study = await studies.GetAsync(tenant, studyId, cancellationToken).ConfigureAwait(false);
        if (study is null)
        {
            Log.StudyMissing(logger, tenant, studyId, eventType);
            return;
        }

        await Task.WhenAll(targets.Select(s => DeliverAsync(s, study, eventType, cancellationToken))).ConfigureAwait(false);
    }

    /// <summary>
    /// Makes the first attempt of one event to one subscription unless another call has (or is doing) it: the stored
    /// record (delivered, dead-lettered, or pending with its retry due), or null when skipped.
    /// </summary>
    public async Task<WebhookDelivery?> DeliverAsync(WebhookSubscription subscription, StudyRecord study, string eventType, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(subscription);
        ArgumentNullException.ThrowIfNull(study);
        var now = time.GetUtcNow();
        var deliveryId = WebhookIds.DeliveryId(subscription.Tenant, subscription.Id, study.StudyId, eventType);
        var body = WebhookPayload.For(deliveryId, eventType, study, options.PublicBaseUrl, now).ToJson();
        var claim = await deliveries.TryClaimAsync(
            new WebhookDelivery
            {
                Tenant = subscription.Tenant,
                DeliveryId = deliveryId,
                SubscriptionId = subscription.Id,
                StudyId = study.StudyId,
                EventType = eventType,
                ClaimedAt = now,
                LeaseUntil = now + options.ClaimLease,
                NextAttemptAt = now + options.AttemptLease,
                Body = body,
            },
            now,
            cancellationToken).ConfigureAwait(false);
        if (claim is null)
        {
            Log.AlreadyClaimed(logger, deliveryId, subscription.Id, study.StudyId, eventType);
            return null;
        }

        var signing = await WebhookSigningSecrets.ResolveAsync(subscriptions, secrets, subscription, time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
        if (signing is null)
        {
            var missing = claim with
            {
                Status = WebhookDeliveryStatus.DeadLettered,
                FinishedAt = time.GetUtcNow(),
                Error = $"the subscription's secret '{subscription.SecretName}' is missing",
                NextAttemptAt = null,
            };
            await deliveries.CompleteAsync(missing, CancellationToken.None).ConfigureAwait(false);
            return missing;
        }

        return await dispatcher.DeliverAsync(claim, subscription.Url, signing, body, retry: true, cancellationToken).ConfigureAwait(false);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 8111, Level = LogLevel.Warning, Message = "No Studies row for {Tenant}/{StudyId}: {EventType} not delivered")]
        public static partial void StudyMissing(ILogger logger, string tenant, string studyId, string eventType);

        [LoggerMessage(EventId = 8112, Level = LogLevel.Information, Message = "Webhook delivery {DeliveryId} ({SubscriptionId}, {StudyId}, {EventType}) is already claimed: not sent again")]
        public static partial void AlreadyClaimed(ILogger logger, string deliveryId, string subscriptionId, string studyId, string eventType);
    }
}
