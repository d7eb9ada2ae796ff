namespace CovidFunctions.Pipeline.Notifications;

/// <summary>
/// What <see cref="WebhookSigningSecrets.ResolveAsync"/> found for one attempt: the secrets to sign it with (current
/// first), or none and why (<see cref="Refusal"/>: the subscription was removed, or its secret is missing).
/// </summary>
public sealed record WebhookSigning(IReadOnlyList<string>? Secrets, string? Refusal)
{
    public static WebhookSigning Sign(IReadOnlyList<string> secrets) => new(secrets, null);

    public static WebhookSigning Refuse(string refusal) => new(null, refusal);
}

/// <summary>
/// The secrets one delivery attempt is signed with: the subscription's current secret and, during a rotation's overlap,
/// the previous one (<see cref="WebhookSubscription.SigningSecretNames"/>). Shared by the notifier, the retry handler
/// and the test endpoint, so every attempt (first, retry or test) is signed the same way at the time it is sent.
/// </summary>
public static class WebhookSigningSecrets
{
    /// <summary>How often the row is read again when it changed between the secrets' read and its confirmation.</summary>
    private const int MaxRounds = 5;

    /// <summary>The refusal when the subscription's row is gone (or inactive) by the time the secrets were read.</summary>
    public const string RemovedRefusal = "the subscription was removed or deactivated before the delivery succeeded";

    /// <summary>
    /// The secrets for an attempt at <paramref name="now"/>, current first, read from the secret store and then
    /// confirmed against the row read again: only a subscription whose row still exists, active and naming the secrets
    /// read, signs. Before, the secrets named by the caller's copy of the row were used as found, so a delivery whose
    /// subscription was listed (or read) before a removal deleted the row signed and sent with the removed
    /// subscription's secret while it was still stored (a removal between its row and secret deletes, one that failed
    /// there, or a secret a rotation racing the removal left). A copy read before a rotation names secrets the rotation
    /// may have deleted (one without overlap deletes the old secret at once): the row read again names the current
    /// ones, which are read and confirmed in turn, so a delivery racing a rotation is signed with the new secret instead
    /// of being dead-lettered. A previous secret that is missing is left out (the current one still signs).
    /// </summary>
    public static async Task<WebhookSigning> ResolveAsync(
        IWebhookSubscriptionStore subscriptions,
        IWebhookSecretStore secrets,
        WebhookSubscription subscription,
        DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(subscriptions);
        ArgumentNullException.ThrowIfNull(secrets);
        ArgumentNullException.ThrowIfNull(subscription);
        var names = subscription.SigningSecretNames(now);
        for (var round = 0; round < MaxRounds; round++)
        {
            var values = await ReadAsync(secrets, names, cancellationToken).ConfigureAwait(false);

            // Confirmed after the read: a removal that deleted the row before this point signs nothing, whatever is
            // still stored under the names read.
            var confirmed = await subscriptions.GetAsync(subscription.Tenant, subscription.Id, cancellationToken).ConfigureAwait(false);
            if (confirmed is not { Active: true })
            {
                return WebhookSigning.Refuse(RemovedRefusal);
            }

            var confirmedNames = confirmed.SigningSecretNames(now);
            if (confirmedNames.SequenceEqual(names, StringComparer.Ordinal))
            {
                return values is not null ? WebhookSigning.Sign(values) : WebhookSigning.Refuse(MissingRefusal(confirmed.SecretName));
            }

            // A rotation changed the names since they were read: read the ones the row names now.
            names = confirmedNames;
        }

        return WebhookSigning.Refuse($"the subscription's secret changed {MaxRounds} times while it was read (rotations in a row); try again");
    }

    /// <summary>The refusal when the current secret the row names is not in the secret store.</summary>
    public static string MissingRefusal(string secretName) => $"the subscription's secret '{secretName}' is missing";

    private static async Task<IReadOnlyList<string>?> ReadAsync(IWebhookSecretStore secrets, IReadOnlyList<string> names, CancellationToken cancellationToken)
    {
        var values = new List<string>(2);
        foreach (var name in names)
        {
            var value = await secrets.GetAsync(name, cancellationToken).ConfigureAwait(false);
            if (value is { Length: > 0 })
            {
                values.Add(value);
            }
            else if (values.Count == 0)
            {
                // The current secret (always first) is missing: nothing may be signed with the previous one alone.
                return null;
            }
        }

        return values;
    }
}
