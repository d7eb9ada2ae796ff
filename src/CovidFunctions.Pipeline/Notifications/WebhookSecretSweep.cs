using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Notifications;

/// <summary>What one <see cref="WebhookSecretSweep"/> pass found and did.</summary>
/// <param name="Listed">Secrets of the webhook naming scheme in the store.</param>
/// <param name="Deleted">Orphans and expired replaced secrets deleted.</param>
/// <param name="Failed">Those whose delete failed (the next pass tries again).</param>
public sealed record WebhookSecretSweepResult(int Listed, int Deleted, int Failed);

/// <summary>
/// Deletes webhook signing secrets that no subscription will sign with again, at least
/// <see cref="WebhookOptions.OrphanedSecretGrace"/> (1 h) after they were stored:
/// <list type="bullet">
/// <item>secrets no subscription row names: left by a create or rotation that died between storing its secret and
/// writing its row, or that lost its compare-and-swap and failed to delete the secret, or by a removal whose deletes
/// failed (before, only <c>covidfn webhooks remove ID</c> run again found those, and only for an id someone knew);</item>
/// <item>a row's previous secret whose overlap ended more than the grace ago: it signs nothing any more (before, it
/// stayed in the store until the next rotation or the removal, for ever on a subscription never rotated again).</item>
/// </list>
/// Only names of the scheme (<see cref="WebhookIds.TryParseSecretName"/>: <c>webhook-{tenant}-{id}</c>, <c>-r…</c>) are
/// candidates, so another secret in the vault (the de-identification key when one vault holds both) is never touched.
/// The secrets are listed first and the rows after, and a secret is kept when any row of any tenant names it: a row
/// written after the listing names only a secret stored less than <see cref="WebhookOptions.SecretToRowLimit"/> before
/// it (the writers refuse later), so younger than the grace and not a candidate. Run hourly by the Function app's
/// <c>SweepWebhookSecrets</c> timer and by <c>covidfn up</c> (its loop, hourly).
/// </summary>
public sealed partial class WebhookSecretSweep(
    IWebhookSubscriptionStore subscriptions,
    IWebhookSecretStore secrets,
    TimeProvider time,
    ILogger<WebhookSecretSweep> logger)
{
    /// <summary>One pass over the secret store (one list of its names, one of the subscription rows, one delete per secret).</summary>
    public async Task<WebhookSecretSweepResult> SweepAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var stored = await secrets.ListStoredAsync(WebhookIds.SecretNamePrefix, cancellationToken).ConfigureAwait(false);
        var candidates = new List<(string Name, string Tenant, string Id)>();
        var listed = 0;
        foreach (var secret in stored)
        {
            if (!WebhookIds.TryParseSecretName(secret.Name, out var tenant, out var id))
            {
                continue;
            }

            listed++;

            // Unknown age (the store reports none) is never old enough.
            if (secret.StoredAt is { } storedAt && now - storedAt >= WebhookOptions.OrphanedSecretGrace)
            {
                candidates.Add((secret.Name, tenant, id));
            }
        }

        if (candidates.Count == 0)
        {
            return new WebhookSecretSweepResult(listed, 0, 0);
        }

        // Read after the listing: every row that could name a candidate is seen (see the class comment).
        var named = new HashSet<string>(StringComparer.Ordinal);
        foreach (var row in await subscriptions.ListAsync(null, cancellationToken).ConfigureAwait(false))
        {
            named.Add(row.SecretName);
            if (row.PreviousSecretName is { Length: > 0 } previous
                && (row.PreviousSecretExpiresAt is not { } expires || now - expires < WebhookOptions.OrphanedSecretGrace))
            {
                named.Add(previous);
            }
        }

        int deleted = 0, failed = 0;
        foreach (var (name, tenant, id) in candidates.Where(c => !named.Contains(c.Name)))
        {
            try
            {
                await secrets.DeleteAsync(name, cancellationToken).ConfigureAwait(false);
                deleted++;
                Log.Deleted(logger, name, tenant, id);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
#pragma warning disable CA1031 // one failed delete must not stop the pass; the next pass tries it again
            catch (Exception ex)
#pragma warning restore CA1031
            {
                failed++;
                Log.DeleteFailed(logger, name, tenant, id, ex);
            }
        }

        return new WebhookSecretSweepResult(listed, deleted, failed);
    }

    /// <summary>Runs <see cref="SweepAsync"/> every <paramref name="interval"/> until cancelled (the local host's loop).</summary>
    public async Task RunAsync(TimeSpan interval, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var result = await SweepAsync(cancellationToken).ConfigureAwait(false);
                if (result.Deleted + result.Failed > 0)
                {
                    Log.Swept(logger, result.Listed, result.Deleted, result.Failed);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
#pragma warning disable CA1031 // the loop outlives one failed pass (storage or vault down): the next pass tries again
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Log.PassFailed(logger, ex);
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

    private static partial class Log
    {
        [LoggerMessage(EventId = 8142, Level = LogLevel.Information, Message = "Deleted webhook secret {SecretName} (tenant {Tenant}, subscription {SubscriptionId}): no subscription signs with it")]
        public static partial void Deleted(ILogger logger, string secretName, string tenant, string subscriptionId);

        [LoggerMessage(EventId = 8143, Level = LogLevel.Warning, Message = "Could not delete orphaned webhook secret {SecretName} (tenant {Tenant}, subscription {SubscriptionId}); the next sweep tries again")]
        public static partial void DeleteFailed(ILogger logger, string secretName, string tenant, string subscriptionId, Exception exception);

        [LoggerMessage(EventId = 8144, Level = LogLevel.Information, Message = "Webhook secret sweep: {Listed} secret(s) listed, {Deleted} deleted, {Failed} failed")]
        public static partial void Swept(ILogger logger, int listed, int deleted, int failed);

        [LoggerMessage(EventId = 8145, Level = LogLevel.Warning, Message = "Webhook secret sweep failed; the next pass tries again")]
        public static partial void PassFailed(ILogger logger, Exception exception);
    }
}
