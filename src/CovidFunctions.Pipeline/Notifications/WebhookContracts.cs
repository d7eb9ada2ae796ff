namespace CovidFunctions.Pipeline.Notifications;

/// <summary>
/// A tenant's webhook subscription (a row of <c>WebhookSubscriptions</c>: PartitionKey tenant, RowKey id). The secret
/// itself is never stored here: <see cref="SecretName"/> names it in the <see cref="IWebhookSecretStore"/>.
/// </summary>
public sealed record WebhookSubscription
{
    public required string Tenant { get; init; }

    /// <summary><c>wh</c> + 20 lower-case hex digits.</summary>
    public required string Id { get; init; }

    /// <summary>The absolute https (or, with the loopback allowance, http loopback) URL deliveries are posted to.</summary>
    public required Uri Url { get; init; }

    /// <summary>Subscribed <see cref="StudyEventTypes"/>.</summary>
    public required IReadOnlyList<string> EventTypes { get; init; }

    /// <summary>The secret's name in the secret store (Key Vault secret name in Azure): the current signing secret.</summary>
    public required string SecretName { get; init; }

    /// <summary>
    /// The secret that <see cref="SecretName"/> replaced at the last rotation, still used to sign (beside the current
    /// one) until <see cref="PreviousSecretExpiresAt"/>, so a receiver can switch to the new secret without refusing
    /// deliveries meanwhile. Null when the subscription was never rotated or the rotation had no overlap.
    /// </summary>
    public string? PreviousSecretName { get; init; }

    /// <summary>When <see cref="PreviousSecretName"/> stops signing (the end of the rotation's overlap).</summary>
    public DateTimeOffset? PreviousSecretExpiresAt { get; init; }

    /// <summary>When the secret was last rotated (null: never).</summary>
    public DateTimeOffset? SecretRotatedAt { get; init; }

    /// <summary>The row's version (the table's ETag): a rotation replaces the row only if it is unchanged since read.</summary>
    public string? ETag { get; init; }

    public bool Active { get; init; } = true;

    public DateTimeOffset CreatedAt { get; init; }

    public bool Wants(string eventType) => Active && EventTypes.Contains(eventType, StringComparer.Ordinal);

    /// <summary>
    /// The names of the secrets a delivery made at <paramref name="now"/> is signed with: the current one first, then
    /// the previous one while its overlap lasts (strictly before <see cref="PreviousSecretExpiresAt"/>).
    /// </summary>
    public IReadOnlyList<string> SigningSecretNames(DateTimeOffset now) =>
        PreviousSecretName is { Length: > 0 } previous && PreviousSecretExpiresAt is { } expires && now < expires && previous != SecretName
            ? [SecretName, previous]
            : [SecretName];
}

/// <summary>The <c>WebhookSubscriptions</c> table.</summary>
public interface IWebhookSubscriptionStore
{
    /// <summary>
    /// Inserts a new subscription without a bound (the operator's); throws <see cref="InvalidOperationException"/> when
    /// the id exists. A bounded create (<see cref="TryCreateWithinLimitAsync"/>) racing it counts it: the two never
    /// both see the tenant's count from before either insert.
    /// </summary>
    Task CreateAsync(WebhookSubscription subscription, CancellationToken cancellationToken);

    /// <summary>
    /// Inserts a new subscription only while its tenant holds fewer than <paramref name="maxPerTenant"/>: false, and
    /// nothing written, when it already holds that many. Creates racing each other cannot pass the bound together (a
    /// count taken before the insert lets each of them see room).
    /// </summary>
    Task<bool> TryCreateWithinLimitAsync(WebhookSubscription subscription, int maxPerTenant, CancellationToken cancellationToken);

    Task<WebhookSubscription?> GetAsync(string tenant, string id, CancellationToken cancellationToken);

    /// <summary>Subscriptions of one tenant, or of every tenant when null, oldest first.</summary>
    Task<IReadOnlyList<WebhookSubscription>> ListAsync(string? tenant, CancellationToken cancellationToken);

    /// <summary>Removes the subscription; false when there was none.</summary>
    Task<bool> DeleteAsync(string tenant, string id, CancellationToken cancellationToken);

    /// <summary>
    /// Replaces a subscription only if its row is unchanged since it was read (its <see cref="WebhookSubscription.ETag"/>):
    /// the stored subscription with its new ETag, or null when another caller changed or removed it first.
    /// </summary>
    Task<WebhookSubscription?> TryReplaceAsync(WebhookSubscription subscription, CancellationToken cancellationToken);
}

/// <summary>Webhook signing secrets by name: Key Vault in Azure, a 0600 file under the data dir locally.</summary>
public interface IWebhookSecretStore
{
    Task SetAsync(string name, string value, CancellationToken cancellationToken);

    /// <summary>The secret, or null when none has that name.</summary>
    Task<string?> GetAsync(string name, CancellationToken cancellationToken);

    Task DeleteAsync(string name, CancellationToken cancellationToken);

    /// <summary>
    /// The names of the stored secrets that start with <paramref name="prefix"/> (ordinal), deleted ones excluded: how a
    /// removal finds every secret a subscription has, those no row names included (a rotation's new secret, stored
    /// before the row names it).
    /// </summary>
    Task<IReadOnlyList<string>> ListNamesAsync(string prefix, CancellationToken cancellationToken);

    /// <summary>
    /// The stored secrets whose names start with <paramref name="prefix"/> (ordinal), deleted ones excluded, each with
    /// when it was stored: how <see cref="WebhookSecretSweep"/> tells a secret no row names yet (a rotation or create
    /// between storing it and writing its row) from one no row will ever name (that writer died or lost).
    /// </summary>
    Task<IReadOnlyList<StoredWebhookSecret>> ListStoredAsync(string prefix, CancellationToken cancellationToken);
}

/// <summary>
/// A stored secret's name and when the store took it (Key Vault's <c>created</c> of the secret's version; the time the
/// local file store wrote it, or first listed it when an earlier version wrote it); null when the store does not say,
/// and then the sweep never deletes it. Never the value.
/// </summary>
public sealed record StoredWebhookSecret(string Name, DateTimeOffset? StoredAt);

/// <summary>States of a <see cref="WebhookDelivery"/>.</summary>
public static class WebhookDeliveryStatus
{
    /// <summary>
    /// Claimed and not finished: an attempt is running, or the next one is due at
    /// <see cref="WebhookDelivery.NextAttemptAt"/> (the retry handler makes it).
    /// </summary>
    public const string Pending = "pending";

    /// <summary>A 2xx answer was received.</summary>
    public const string Delivered = "delivered";

    /// <summary>Every attempt failed (or a permanent failure: 4xx, refused target): the dead-letter record.</summary>
    public const string DeadLettered = "dead-lettered";
}

/// <summary>
/// One logical delivery of one event of one study to one subscription (a row of <c>WebhookDeliveries</c>:
/// PartitionKey tenant, RowKey <see cref="DeliveryId"/>). It is claimed insert-if-absent before the first attempt,
/// so a notify activity that runs twice sends once.
/// </summary>
public sealed record WebhookDelivery
{
    public required string Tenant { get; init; }

    /// <summary>The idempotency id (also the payload's <c>id</c> and the <c>X-CovidFunctions-Delivery</c> header).</summary>
    public required string DeliveryId { get; init; }

    public required string SubscriptionId { get; init; }

    public required string StudyId { get; init; }

    public required string EventType { get; init; }

    public string Status { get; init; } = WebhookDeliveryStatus.Pending;

    /// <summary>Attempts made so far.</summary>
    public int Attempts { get; init; }

    /// <summary>A pending claim older than this may be taken over (its claimer is presumed dead).</summary>
    public DateTimeOffset LeaseUntil { get; init; }

    public DateTimeOffset ClaimedAt { get; init; }

    public DateTimeOffset? FinishedAt { get; init; }

    /// <summary>The last HTTP status received (null when none, e.g. a timeout or a refused target).</summary>
    public int? LastStatusCode { get; init; }

    /// <summary>Why the delivery was dead-lettered.</summary>
    public string? Error { get; init; }

    public string? ETag { get; init; }

    /// <summary>
    /// When the next attempt of a <see cref="WebhookDeliveryStatus.Pending"/> delivery is due (the retry handler makes
    /// it); while an attempt runs, the end of that attempt's lease, so an attempt whose worker died is made again.
    /// Null when finished, and on records written before retries were scheduled: a pending one of those is due when its
    /// <see cref="LeaseUntil"/> ends (its claimer is presumed dead).
    /// </summary>
    public DateTimeOffset? NextAttemptAt { get; init; }

    /// <summary>
    /// When the retry handler may make the next attempt: <see cref="NextAttemptAt"/>, or <see cref="LeaseUntil"/> on a
    /// pending record written before it existed; null when the delivery is finished.
    /// </summary>
    public DateTimeOffset? DueAt => Status == WebhookDeliveryStatus.Pending ? NextAttemptAt ?? LeaseUntil : null;

    /// <summary>The signed JSON body, stored with the claim so every attempt sends the same payload.</summary>
    public string? Body { get; init; }
}

/// <summary>One HTTP attempt of a delivery (a row of <c>WebhookDeliveries</c>, RowKey "{deliveryId}|a{attempt:D3}").</summary>
public sealed record WebhookDeliveryAttempt(
    string Tenant,
    string DeliveryId,
    string SubscriptionId,
    int Attempt,
    DateTimeOffset At,
    int? StatusCode,
    string Outcome,
    string? Error,
    double DurationMs);

/// <summary>The delivery claims, per-attempt records and dead-letter records.</summary>
public interface IWebhookDeliveryLog
{
    /// <summary>
    /// Claims a delivery: inserts <paramref name="claim"/> when no record with its id exists, or takes over a
    /// <see cref="WebhookDeliveryStatus.Pending"/> record whose lease ended before <paramref name="now"/> (its claimer
    /// died). Returns the stored record when this caller owns the delivery now, null when another caller does or the
    /// delivery is finished.
    /// </summary>
    Task<WebhookDelivery?> TryClaimAsync(WebhookDelivery claim, DateTimeOffset now, CancellationToken cancellationToken);

    Task RecordAttemptAsync(WebhookDeliveryAttempt attempt, CancellationToken cancellationToken);

    /// <summary>Stores the final state (delivered or dead-lettered) of a claimed delivery.</summary>
    Task CompleteAsync(WebhookDelivery delivery, CancellationToken cancellationToken);

    Task<WebhookDelivery?> GetAsync(string tenant, string deliveryId, CancellationToken cancellationToken);

    /// <summary>Deliveries of one tenant (optionally of one subscription), oldest claim first.</summary>
    Task<IReadOnlyList<WebhookDelivery>> ListAsync(string tenant, string? subscriptionId, CancellationToken cancellationToken);

    /// <summary>The attempts of one delivery, in order.</summary>
    Task<IReadOnlyList<WebhookDeliveryAttempt>> GetAttemptsAsync(string tenant, string deliveryId, CancellationToken cancellationToken);

    /// <summary>
    /// Pending deliveries of every tenant whose <see cref="WebhookDelivery.NextAttemptAt"/> (or, on records without one,
    /// <see cref="WebhookDelivery.LeaseUntil"/>) is at or before <paramref name="now"/>, earliest first, at most
    /// <paramref name="max"/>; each carries the ETag to claim it with.
    /// </summary>
    Task<IReadOnlyList<WebhookDelivery>> ListDueAsync(DateTimeOffset now, int max, CancellationToken cancellationToken);

    /// <summary>
    /// Replaces a delivery record only if it is unchanged since it was read (its <see cref="WebhookDelivery.ETag"/>):
    /// the stored record with its new ETag, or null when another caller changed (or removed) it first. Of two workers
    /// claiming the same due attempt this way, one wins.
    /// </summary>
    Task<WebhookDelivery?> TryReplaceAsync(WebhookDelivery delivery, CancellationToken cancellationToken);
}
