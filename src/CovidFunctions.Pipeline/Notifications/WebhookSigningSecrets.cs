namespace CovidFunctions.Pipeline.Notifications;

/// <summary>
/// The secrets one delivery attempt is signed with: the subscription's current secret and, during a rotation's overlap,
/// the previous one (<see cref="WebhookSubscription.SigningSecretNames"/>). Shared by the notifier, the retry handler
/// and the test endpoint, so every attempt (first, retry or test) is signed the same way at the time it is sent.
/// </summary>
public static class WebhookSigningSecrets
{
    /// <summary>
    /// The secrets for an attempt at <paramref name="now"/>, current first; null when the current secret is missing.
    /// A subscription read before a rotation that finished meanwhile may name a secret the rotation already deleted (a
    /// rotation without overlap deletes the old secret at once): then the row is read again and the secrets it names now
    /// are used, so a delivery racing a rotation is signed with the new secret instead of being dead-lettered. A previous
    /// secret that is missing is left out (the current one still signs).
    /// </summary>
    public static async Task<IReadOnlyList<string>?> ResolveAsync(
        IWebhookSubscriptionStore subscriptions,
        IWebhookSecretStore secrets,
        WebhookSubscription subscription,
        DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(subscriptions);
        ArgumentNullException.ThrowIfNull(secrets);
        ArgumentNullException.ThrowIfNull(subscription);
        var resolved = await ReadAsync(secrets, subscription, now, cancellationToken).ConfigureAwait(false);
        if (resolved is not null)
        {
            return resolved;
        }

        var reread = await subscriptions.GetAsync(subscription.Tenant, subscription.Id, cancellationToken).ConfigureAwait(false);
        return reread is not null && reread.SecretName != subscription.SecretName
            ? await ReadAsync(secrets, reread, now, cancellationToken).ConfigureAwait(false)
            : null;
    }

    private static async Task<IReadOnlyList<string>?> ReadAsync(IWebhookSecretStore secrets, WebhookSubscription subscription, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var values = new List<string>(2);
        foreach (var name in subscription.SigningSecretNames(now))
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
