using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Notifications;

/// <summary>
/// <see cref="IStudyNotifier"/> over webhooks: for each active subscription of the study's tenant that wants the
/// event, claims the delivery <c>(subscription, study attempt, event)</c> insert-if-absent and, only when this call won the
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
        var deliveryId = WebhookIds.DeliveryId(subscription.Tenant, subscription.Id, study.StudyId, eventType, study.CreatedAt);
        if (await LegacyClaimOfThisAttemptAsync(subscription, study, eventType, cancellationToken).ConfigureAwait(false) is { } legacy)
        {
            Log.ClaimedUnderLegacyId(logger, legacy.DeliveryId, subscription.Id, study.StudyId, eventType, legacy.Status);
            return null;
        }

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
        if (signing.Secrets is not { } signingSecrets)
        {
            var refused = claim with
            {
                Status = WebhookDeliveryStatus.DeadLettered,
                FinishedAt = time.GetUtcNow(),
                Error = signing.Refusal,
                NextAttemptAt = null,
            };
            await deliveries.CompleteAsync(refused, CancellationToken.None).ConfigureAwait(false);
            return refused;
        }

        return await dispatcher.DeliverAsync(claim, subscription.Url, signingSecrets, body, retry: true, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// How much earlier than the study row's creation a legacy claim may be and still count as a claim of this attempt:
    /// the row's time is the ingest host's clock, the claim's the notifier host's, and a rejection is claimed within
    /// seconds of the attempt's start. A later attempt of the same study id starts only after the earlier one's
    /// quarantine was deleted (days, by the lifecycle rule), so its claims are far older than this.
    /// </summary>
    internal static readonly TimeSpan LegacyClaimClockSkew = TimeSpan.FromMinutes(1);

    /// <summary>
    /// The delivery record under the id deliveries had before ids named the study's attempt
    /// (<see cref="WebhookIds.LegacyDeliveryId"/>) when it was claimed for the attempt the study row is now (claimed
    /// after that row was created): the outcome was claimed (sent, or being sent and retried) before this version, and
    /// is not sent again under the new id. A record claimed before the row was created belongs to an earlier attempt of
    /// the study id (a rejected upload whose quarantine expired, then uploaded again) and does not stop this one's
    /// delivery. Null when there is none of this attempt.
    /// </summary>
    private async Task<WebhookDelivery?> LegacyClaimOfThisAttemptAsync(WebhookSubscription subscription, StudyRecord study, string eventType, CancellationToken cancellationToken)
    {
        var legacyId = WebhookIds.LegacyDeliveryId(subscription.Tenant, subscription.Id, study.StudyId, eventType);
        var legacy = await deliveries.GetAsync(subscription.Tenant, legacyId, cancellationToken).ConfigureAwait(false);
        if (legacy is null)
        {
            return null;
        }

        // A row without a creation time (written before it was kept) has one attempt only: the record is of it.
        var thisAttemptFrom = study.CreatedAt - DateTimeOffset.MinValue > LegacyClaimClockSkew ? study.CreatedAt - LegacyClaimClockSkew : DateTimeOffset.MinValue;
        return legacy.ClaimedAt >= thisAttemptFrom ? legacy : null;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 8113, Level = LogLevel.Information, Message = "Webhook delivery {DeliveryId} ({SubscriptionId}, {StudyId}, {EventType}) was claimed under its id from before ids named the study's attempt ({Status}): not sent again")]
        public static partial void ClaimedUnderLegacyId(ILogger logger, string deliveryId, string subscriptionId, string studyId, string eventType, string status);

        [LoggerMessage(EventId = 8111, Level = LogLevel.Warning, Message = "No Studies row for {Tenant}/{StudyId}: {EventType} not delivered")]
        public static partial void StudyMissing(ILogger logger, string tenant, string studyId, string eventType);

        [LoggerMessage(EventId = 8112, Level = LogLevel.Information, Message = "Webhook delivery {DeliveryId} ({SubscriptionId}, {StudyId}, {EventType}) is already claimed: not sent again")]
        public static partial void AlreadyClaimed(ILogger logger, string deliveryId, string subscriptionId, string studyId, string eventType);
    }
}
