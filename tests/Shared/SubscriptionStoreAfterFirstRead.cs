using CovidFunctions.Pipeline.Notifications;

namespace CovidFunctions.TestShared;

/// <summary>
/// A subscription store that runs <paramref name="meanwhile"/> once, right after the first read of a row returns (another
/// request's turn: a rotation replacing the row, a removal deleting it). Linked into Pipeline.Tests (in-memory rows) and
/// Pipeline.Azure.Tests (Azurite rows), so the same interleaving is driven against both stores.
/// </summary>
internal sealed class SubscriptionStoreAfterFirstRead(IWebhookSubscriptionStore inner, Func<Task> meanwhile) : IWebhookSubscriptionStore
{
    private int _reads;

    public Task CreateAsync(WebhookSubscription subscription, CancellationToken cancellationToken) => inner.CreateAsync(subscription, cancellationToken);

    public Task<bool> TryCreateWithinLimitAsync(WebhookSubscription subscription, int maxPerTenant, CancellationToken cancellationToken) =>
        inner.TryCreateWithinLimitAsync(subscription, maxPerTenant, cancellationToken);

    public async Task<WebhookSubscription?> GetAsync(string tenant, string id, CancellationToken cancellationToken)
    {
        var read = await inner.GetAsync(tenant, id, cancellationToken).ConfigureAwait(false);
        if (Interlocked.Increment(ref _reads) == 1)
        {
            await meanwhile().ConfigureAwait(false);
        }

        return read;
    }

    public Task<IReadOnlyList<WebhookSubscription>> ListAsync(string? tenant, CancellationToken cancellationToken) => inner.ListAsync(tenant, cancellationToken);

    public Task<bool> DeleteAsync(string tenant, string id, CancellationToken cancellationToken) => inner.DeleteAsync(tenant, id, cancellationToken);

    public Task<WebhookSubscription?> TryReplaceAsync(WebhookSubscription subscription, CancellationToken cancellationToken) => inner.TryReplaceAsync(subscription, cancellationToken);
}
