using System.Globalization;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Notifications;

/// <summary>What <c>WebhookManager.AddAsync</c> returns: the subscription and, when it generated one, the secret (shown once).</summary>
public sealed record CreatedWebhook(WebhookSubscription Subscription, string Secret, bool SecretGenerated);

/// <summary>
/// What <see cref="WebhookManager.RotateSecretAsync"/> returns: the subscription as stored after the rotation, the new
/// secret (shown once when generated) and until when the previous one still signs (null: it stopped at once).
/// </summary>
public sealed record RotatedWebhookSecret(WebhookSubscription Subscription, string Secret, bool SecretGenerated, DateTimeOffset? PreviousSecretExpiresAt);

/// <summary>Another request changed (or removed) the subscription while a rotation ran: nothing was changed; retry.</summary>
public sealed class WebhookConflictException(string message) : Exception(message);

/// <summary>The tenant already holds the most subscriptions it may: nothing was created.</summary>
public sealed class WebhookLimitException(string message) : Exception(message);

/// <summary>
/// Subscription management shared by the HTTP endpoints and <c>covidfn webhooks</c>: validates the target with the
/// SSRF guard at registration, stores the secret in the secret store and only its name in the table. A secret it
/// stored and no row names (it lost the row write, or could not delete the secret after) is deleted by
/// <see cref="WebhookSecretSweep"/> once <see cref="WebhookOptions.OrphanedSecretGrace"/> old.
/// </summary>
public sealed partial class WebhookManager(
    IWebhookSubscriptionStore subscriptions,
    IWebhookSecretStore secrets,
    IWebhookDeliveryLog deliveries,
    WebhookTargetGuard guard,
    WebhookDispatcher dispatcher,
    WebhookOptions options,
    TimeProvider time,
    ILogger<WebhookManager>? logger = null)
{
    private readonly ILogger _logger = logger ?? (ILogger)NullLogger.Instance;

    /// <summary>The longest secret a caller may choose (generated ones are 70 characters).</summary>
    public const int MaxSecretLength = 256;

    /// <summary>The longest target URL accepted.</summary>
    public const int MaxUrlLength = 2048;

    /// <summary>Validates and stores a new subscription, unbounded (the operator's <c>covidfn webhooks add</c>).</summary>
    public Task<CreatedWebhook> AddAsync(string tenant, string url, IReadOnlyList<string>? eventTypes, string? secret, CancellationToken cancellationToken) =>
        AddAsync(tenant, url, eventTypes, secret, maxPerTenant: null, cancellationToken);

    /// <summary>
    /// Validates and stores a new subscription. With <paramref name="maxPerTenant"/> (the HTTP API's bound; the
    /// operator's <c>covidfn webhooks add</c> passes none) the insert is refused with <see cref="WebhookLimitException"/>,
    /// its secret removed again, when the tenant already holds that many, also against creates racing this one.
    /// </summary>
    public async Task<CreatedWebhook> AddAsync(string tenant, string url, IReadOnlyList<string>? eventTypes, string? secret, int? maxPerTenant, CancellationToken cancellationToken)
    {
        StudyIds.RequireTenant(tenant);
        ArgumentNullException.ThrowIfNull(url);
        if (url.Length > MaxUrlLength)
        {
            throw new ArgumentException($"a webhook URL must be at most {MaxUrlLength} characters", nameof(url));
        }

        if (secret is not null && secret.Length > MaxSecretLength)
        {
            throw new ArgumentException($"a webhook secret must be at most {MaxSecretLength} characters", nameof(secret));
        }

        var target = await guard.ValidateAsync(url, cancellationToken).ConfigureAwait(false);
        var events = eventTypes is { Count: > 0 } ? eventTypes.Distinct(StringComparer.Ordinal).ToList() : [.. StudyEventTypes.All];
        var unknown = events.Where(e => !StudyEventTypes.All.Contains(e, StringComparer.Ordinal)).ToList();
        if (unknown.Count > 0)
        {
            throw new ArgumentException($"unknown event type(s): {string.Join(", ", unknown)} (known: {string.Join(", ", StudyEventTypes.All)})", nameof(eventTypes));
        }

        if (secret is not null && secret.Length < 16)
        {
            throw new ArgumentException("a webhook secret must be at least 16 characters", nameof(secret));
        }

        var generated = secret is null;
        secret ??= WebhookSignature.NewSecret();
        var id = WebhookIds.NewSubscriptionId();
        var subscription = new WebhookSubscription
        {
            Tenant = tenant,
            Id = id,
            Url = target,
            EventTypes = events,
            SecretName = WebhookIds.SecretName(tenant, id),
            Active = true,
            CreatedAt = time.GetUtcNow(),
        };

        // The secret first: a row never points at a secret that is not there.
        var storing = time.GetUtcNow();
        await secrets.SetAsync(subscription.SecretName, secret, cancellationToken).ConfigureAwait(false);
        await RequireRowWriteInTimeAsync(subscription, storing, "created", "create").ConfigureAwait(false);
        if (maxPerTenant is not { } max)
        {
            await subscriptions.CreateAsync(subscription, cancellationToken).ConfigureAwait(false);
        }
        else if (!await subscriptions.TryCreateWithinLimitAsync(subscription, max, cancellationToken).ConfigureAwait(false))
        {
            await DeleteUnusedSecretAsync(subscription.Tenant, subscription.Id, subscription.SecretName, "the tenant's subscription limit refused the create").ConfigureAwait(false);
            throw new WebhookLimitException($"tenant '{tenant}' already has {max} webhook subscriptions (the most a tenant may have): remove one first (DELETE /api/webhooks/{{id}})");
        }

        return new CreatedWebhook(subscription, secret, generated);
    }

    public Task<IReadOnlyList<WebhookSubscription>> ListAsync(string? tenant, CancellationToken cancellationToken) =>
        subscriptions.ListAsync(tenant, cancellationToken);

    /// <summary>Finds a subscription by id alone (the CLI is given only the id); null when none has it.</summary>
    public async Task<WebhookSubscription?> FindAsync(string? tenant, string id, CancellationToken cancellationToken)
    {
        if (tenant is not null)
        {
            return await subscriptions.GetAsync(tenant, id, cancellationToken).ConfigureAwait(false);
        }

        return (await subscriptions.ListAsync(null, cancellationToken).ConfigureAwait(false)).FirstOrDefault(s => s.Id == id);
    }

    /// <summary>
    /// Removes the subscription's row, then every secret it has: those the row names and those no row names, found by
    /// name (<see cref="WebhookIds.TryParseSecretName"/>). The row goes first and the secrets are listed after it, so a
    /// rotation running meanwhile leaves nothing: its new secret is stored before it replaces the row, so either it was
    /// stored before the row went (and is listed here) or the rotation's replace finds no row and deletes it. Before,
    /// only the secrets named by the row as read were deleted: a rotation that replaced the row between that read and
    /// the delete left its new secret in Key Vault (or the file) for a subscription that no longer existed, as did one
    /// that died between storing its secret and replacing the row. False when there was no row (secrets of it that a
    /// failed earlier removal left are deleted all the same).
    /// </summary>
    public async Task<bool> RemoveAsync(string tenant, string id, CancellationToken cancellationToken)
    {
        StudyIds.RequireTenant(tenant);
        var subscription = await subscriptions.GetAsync(tenant, id, cancellationToken).ConfigureAwait(false);
        var removed = subscription is not null && await subscriptions.DeleteAsync(tenant, id, cancellationToken).ConfigureAwait(false);
        var names = new SortedSet<string>(StringComparer.Ordinal);
        if (subscription is not null)
        {
            // Also the names of rows from before the naming scheme, which the listing would not recognise.
            names.Add(subscription.SecretName);
            if (subscription.PreviousSecretName is { Length: > 0 } previous)
            {
                names.Add(previous);
            }
        }

        names.UnionWith(await SecretNamesOfAsync(tenant, id, cancellationToken).ConfigureAwait(false));
        foreach (var name in names.Where(n => n.Length > 0))
        {
            await secrets.DeleteAsync(name, cancellationToken).ConfigureAwait(false);
        }

        return removed;
    }

    /// <summary>
    /// Deletes the secrets of subscription <paramref name="id"/> in any tenant that has no row for it: what a removal
    /// that failed after deleting the row (Key Vault unavailable, the process ended) left behind, which then no
    /// subscription lookup finds (<c>covidfn webhooks remove ID</c> runs this when the id is not found). A tenant whose
    /// row still exists keeps its secrets. Returns how many were deleted.
    /// </summary>
    public async Task<int> DeleteLeftoverSecretsAsync(string id, CancellationToken cancellationToken)
    {
        if (!WebhookIds.IsValidSubscriptionId(id))
        {
            throw new ArgumentException($"'{id}' is not a webhook subscription id (wh + 20 hex digits)", nameof(id));
        }

        var byTenant = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var name in await secrets.ListNamesAsync(WebhookIds.SecretNamePrefix, cancellationToken).ConfigureAwait(false))
        {
            if (WebhookIds.TryParseSecretName(name, out var tenant, out var subscriptionId) && subscriptionId == id)
            {
                (byTenant.TryGetValue(tenant, out var list) ? list : byTenant[tenant] = []).Add(name);
            }
        }

        var deleted = 0;
        foreach (var (tenant, names) in byTenant)
        {
            if (await subscriptions.GetAsync(tenant, id, cancellationToken).ConfigureAwait(false) is not null)
            {
                continue;
            }

            foreach (var name in names)
            {
                await secrets.DeleteAsync(name, cancellationToken).ConfigureAwait(false);
                deleted++;
            }
        }

        return deleted;
    }

    /// <summary>The stored secrets whose names are those of subscription (<paramref name="tenant"/>, <paramref name="id"/>).</summary>
    private async Task<IEnumerable<string>> SecretNamesOfAsync(string tenant, string id, CancellationToken cancellationToken) =>
        (await secrets.ListNamesAsync(WebhookIds.SecretName(tenant, id), cancellationToken).ConfigureAwait(false))
            .Where(n => WebhookIds.TryParseSecretName(n, out var t, out var i) && t == tenant && i == id);

    /// <summary>
    /// Issues a new signing secret for a subscription while the current one keeps signing for <paramref name="overlap"/>
    /// (default <see cref="WebhookOptions.SecretRotationOverlap"/>, at most <see cref="WebhookOptions.MaxSecretRotationOverlap"/>;
    /// zero stops the old secret at once, e.g. after a leak): until then every delivery carries a <c>v1</c> signature
    /// with each secret. The new secret is stored under a name never used before, then the row is replaced only if it is
    /// unchanged since read (ETag), so of two rotations at once one wins and the other throws
    /// <see cref="WebhookConflictException"/> having deleted its own secret. A rotation during another's overlap ends
    /// that overlap: the secret before the current one stops signing and is deleted; so is the replaced secret when
    /// there is no overlap. A replaced secret whose overlap ran out is no longer used to sign and is deleted by the next
    /// rotation or the removal of the subscription.
    /// </summary>
    public async Task<RotatedWebhookSecret> RotateSecretAsync(string tenant, string id, string? secret, TimeSpan? overlap, CancellationToken cancellationToken)
    {
        StudyIds.RequireTenant(tenant);
        var window = overlap ?? options.SecretRotationOverlap;
        if (window < TimeSpan.Zero || window > WebhookOptions.MaxSecretRotationOverlap)
        {
            throw new ArgumentException(
                string.Create(CultureInfo.InvariantCulture, $"the overlap must be 0-{WebhookOptions.MaxSecretRotationOverlap.TotalHours:0} hours (got {window.TotalHours:0.###})"),
                nameof(overlap));
        }

        RequireSecretLength(secret);
        var current = await subscriptions.GetAsync(tenant, id, cancellationToken).ConfigureAwait(false)
            ?? throw new KeyNotFoundException($"no webhook subscription '{id}' in tenant '{tenant}'");
        var now = time.GetUtcNow();
        var generated = secret is null;
        secret ??= WebhookSignature.NewSecret();
        var rotated = current with
        {
            SecretName = WebhookIds.RotatedSecretName(tenant, id),
            PreviousSecretName = window > TimeSpan.Zero ? current.SecretName : null,
            PreviousSecretExpiresAt = window > TimeSpan.Zero ? now + window : null,
            SecretRotatedAt = now,
        };

        // The secret first: the row never names a secret that is not there.
        var storing = time.GetUtcNow();
        await secrets.SetAsync(rotated.SecretName, secret, cancellationToken).ConfigureAwait(false);
        await RequireRowWriteInTimeAsync(rotated, storing, "changed", "rotate").ConfigureAwait(false);
        var stored = await subscriptions.TryReplaceAsync(rotated, cancellationToken).ConfigureAwait(false);
        if (stored is null)
        {
            // Lost the compare-and-swap: no row will ever name this secret. Deleted here; when that fails (the vault
            // unavailable) the conflict is still what the caller gets, and the sweep deletes the secret later.
            await DeleteUnusedSecretAsync(tenant, id, rotated.SecretName, "the rotation lost its compare-and-swap on the row").ConfigureAwait(false);
            throw new WebhookConflictException($"webhook subscription '{id}' was changed or removed by another request during the rotation; nothing was changed (rotate again)");
        }

        // Secrets the stored row no longer names: the one before the current (its overlap ends now) and, without an
        // overlap, the replaced one. The rotation is done: a failed delete is logged, not thrown (the caller must still
        // get the new secret, shown once), and the sweep deletes what it left, as it does after a crash here.
        foreach (var name in (string?[])[current.PreviousSecretName, window > TimeSpan.Zero ? null : current.SecretName])
        {
            if (name is { Length: > 0 } && name != stored.SecretName && name != stored.PreviousSecretName)
            {
                await DeleteUnusedSecretAsync(tenant, id, name, "the rotation replaced it").ConfigureAwait(false);
            }
        }

        return new RotatedWebhookSecret(stored, secret, generated, stored.PreviousSecretExpiresAt);
    }

    /// <summary>
    /// Refuses to write the row naming a secret whose storing began more than <see cref="WebhookOptions.SecretToRowLimit"/>
    /// ago (a stalled vault or process): the sweep may count such a secret as orphaned, so it is deleted and nothing is
    /// written (409: try again). Checked right before the row write, which is one Table request.
    /// </summary>
    private async Task RequireRowWriteInTimeAsync(WebhookSubscription subscription, DateTimeOffset storing, string changed, string again)
    {
        var took = time.GetUtcNow() - storing;
        if (took <= WebhookOptions.SecretToRowLimit)
        {
            return;
        }

        await DeleteUnusedSecretAsync(subscription.Tenant, subscription.Id, subscription.SecretName, "storing it took longer than the row write may wait").ConfigureAwait(false);
        throw new WebhookConflictException(string.Create(
            CultureInfo.InvariantCulture,
            $"storing the secret of webhook subscription '{subscription.Id}' took {took.TotalMinutes:0.#} min (more than {WebhookOptions.SecretToRowLimit.TotalMinutes:0} min); nothing was {changed} ({again} again)"));
    }

    /// <summary>
    /// Deletes a secret no row names (or will name), best effort: a failure is logged, never thrown over the outcome
    /// the caller is owed (the conflict, the limit, the new secret), and the sweep deletes the secret later.
    /// </summary>
    private async Task DeleteUnusedSecretAsync(string tenant, string id, string name, string why)
    {
        try
        {
            await secrets.DeleteAsync(name, CancellationToken.None).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // best effort: whatever the store throws, the sweep deletes the secret later
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Log.UnusedSecretNotDeleted(_logger, name, tenant, id, why, ex);
        }
    }

    /// <summary>A caller-chosen secret must be 16-<see cref="MaxSecretLength"/> characters (null: one is generated).</summary>
    private static void RequireSecretLength(string? secret)
    {
        if (secret is not null && secret.Length > MaxSecretLength)
        {
            throw new ArgumentException($"a webhook secret must be at most {MaxSecretLength} characters", nameof(secret));
        }

        if (secret is not null && secret.Length < 16)
        {
            throw new ArgumentException("a webhook secret must be at least 16 characters", nameof(secret));
        }
    }

    /// <summary>
    /// Sends one signed <c>webhook.test</c> delivery (a fresh idempotency id, a sample payload without any study
    /// data, one attempt, no retries) and returns its record, so a receiver can be checked before real events flow.
    /// </summary>
    public async Task<WebhookDelivery> TestAsync(WebhookSubscription subscription, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(subscription);
        var now = time.GetUtcNow();
        // Resolved before the claim: a refused test (subscription removed, secret missing) leaves no pending record.
        var signing = await WebhookSigningSecrets.ResolveAsync(subscriptions, secrets, subscription, now, cancellationToken).ConfigureAwait(false);
        if (signing.Secrets is not { } signingSecrets)
        {
            throw new InvalidOperationException(signing.Refusal);
        }

        var deliveryId = "evt_test_" + Guid.NewGuid().ToString("N");
        var claim = await deliveries.TryClaimAsync(
            new WebhookDelivery
            {
                Tenant = subscription.Tenant,
                DeliveryId = deliveryId,
                SubscriptionId = subscription.Id,
                StudyId = "-",
                EventType = TestEventType,
                ClaimedAt = now,
                LeaseUntil = now + options.ClaimLease,
            },
            now,
            cancellationToken).ConfigureAwait(false) ?? throw new InvalidOperationException("a fresh test delivery id was already claimed");
        var sample = new StudyRecord
        {
            Tenant = subscription.Tenant,
            StudyId = "s000000000000000000000000",
            Status = StudyStatus.Completed,
            Label = "normal",
            ProbabilityCovid = 0.05,
            ProbabilityCap = 0.05,
            ProbabilityNormal = 0.9,
            LesionBurden = 0,
            SliceCount = 0,
            CompletedAt = now,
        };
        var body = (WebhookPayload.For(deliveryId, TestEventType, sample, options.PublicBaseUrl, now) with { Test = true }).ToJson();
        return await dispatcher.DeliverAsync(claim, subscription.Url, signingSecrets, body, retry: false, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The event type of test deliveries (not a study event; subscriptions need not list it).</summary>
    public const string TestEventType = "webhook.test";

    private static partial class Log
    {
        [LoggerMessage(EventId = 8141, Level = LogLevel.Warning, Message = "Webhook secret {SecretName} (tenant {Tenant}, subscription {SubscriptionId}) is named by no row ({Why}) and could not be deleted; the orphaned-secret sweep deletes it once an hour old")]
        public static partial void UnusedSecretNotDeleted(ILogger logger, string secretName, string tenant, string subscriptionId, string why, Exception exception);
    }
}
