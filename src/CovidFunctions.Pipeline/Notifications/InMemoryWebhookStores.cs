using System.Collections.Concurrent;

namespace CovidFunctions.Pipeline.Notifications;

/// <summary>In-memory <see cref="IWebhookSubscriptionStore"/> (tests and <c>covidfn screen</c>).</summary>
public sealed class InMemoryWebhookSubscriptionStore : IWebhookSubscriptionStore
{
    private readonly ConcurrentDictionary<(string Tenant, string Id), WebhookSubscription> _rows = new();
    private readonly Lock _creates = new();
    private long _version;

    public Task<bool> TryCreateWithinLimitAsync(WebhookSubscription subscription, int maxPerTenant, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(subscription);

        // Creates take turns (the unbounded ones too), so the count and the insert are one step.
        lock (_creates)
        {
            if (_rows.Keys.Count(k => k.Tenant == subscription.Tenant) >= maxPerTenant)
            {
                return Task.FromResult(false);
            }

            Insert(subscription);
            return Task.FromResult(true);
        }
    }

    public Task CreateAsync(WebhookSubscription subscription, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(subscription);

        // In turn with the bounded creates too: an insert between a bounded create's count and its insert would let
        // that one pass the bound.
        lock (_creates)
        {
            Insert(subscription);
        }

        return Task.CompletedTask;
    }

    public Task<WebhookSubscription?> GetAsync(string tenant, string id, CancellationToken cancellationToken) =>
        Task.FromResult(_rows.TryGetValue((tenant, id), out var row) ? row : null);

    public Task<IReadOnlyList<WebhookSubscription>> ListAsync(string? tenant, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<WebhookSubscription>>(
            [.. _rows.Values.Where(s => tenant is null || s.Tenant == tenant).OrderBy(s => s.CreatedAt).ThenBy(s => s.Id, StringComparer.Ordinal)]);

    public Task<bool> DeleteAsync(string tenant, string id, CancellationToken cancellationToken) =>
        Task.FromResult(_rows.TryRemove((tenant, id), out _));

    public Task<WebhookSubscription?> TryReplaceAsync(WebhookSubscription subscription, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(subscription);
        var key = (subscription.Tenant, subscription.Id);
        if (!_rows.TryGetValue(key, out var current) || current.ETag != subscription.ETag)
        {
            return Task.FromResult<WebhookSubscription?>(null);
        }

        // TryUpdate compares with the instance read: a replace that landed in between makes this one lose.
        var stored = subscription with { ETag = NextETag() };
        return Task.FromResult(_rows.TryUpdate(key, stored, current) ? stored : null);
    }

    private void Insert(WebhookSubscription subscription)
    {
        if (!_rows.TryAdd((subscription.Tenant, subscription.Id), subscription with { ETag = NextETag() }))
        {
            throw new InvalidOperationException($"webhook subscription {subscription.Id} exists");
        }
    }

    private string NextETag() => Interlocked.Increment(ref _version).ToString(System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>In-memory <see cref="IWebhookSecretStore"/>; <paramref name="time"/> dates what it stores (default the system clock).</summary>
public sealed class InMemoryWebhookSecretStore(TimeProvider? time = null) : IWebhookSecretStore
{
    private readonly ConcurrentDictionary<string, (string Value, DateTimeOffset StoredAt)> _secrets = new(StringComparer.Ordinal);
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public Task SetAsync(string name, string value, CancellationToken cancellationToken)
    {
        _secrets[name] = (value, _time.GetUtcNow());
        return Task.CompletedTask;
    }

    public Task<string?> GetAsync(string name, CancellationToken cancellationToken) =>
        Task.FromResult(_secrets.TryGetValue(name, out var secret) ? secret.Value : null);

    public Task DeleteAsync(string name, CancellationToken cancellationToken)
    {
        _secrets.TryRemove(name, out _);
        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<string>> ListNamesAsync(string prefix, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        return Task.FromResult<IReadOnlyList<string>>([.. _secrets.Keys.Where(n => n.StartsWith(prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal)]);
    }

    public Task<IReadOnlyList<StoredWebhookSecret>> ListStoredAsync(string prefix, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        return Task.FromResult<IReadOnlyList<StoredWebhookSecret>>([.. _secrets
            .Where(s => s.Key.StartsWith(prefix, StringComparison.Ordinal))
            .Select(s => new StoredWebhookSecret(s.Key, s.Value.StoredAt))
            .OrderBy(s => s.Name, StringComparer.Ordinal)]);
    }
}

/// <summary>In-memory <see cref="IWebhookDeliveryLog"/> with the same claim semantics as the table.</summary>
public sealed class InMemoryWebhookDeliveryLog : IWebhookDeliveryLog
{
    private readonly Dictionary<(string Tenant, string Id), WebhookDelivery> _deliveries = [];
    private readonly List<WebhookDeliveryAttempt> _attempts = [];
    private readonly Lock _gate = new();
    private long _version;

    public Task<WebhookDelivery?> TryClaimAsync(WebhookDelivery claim, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(claim);
        lock (_gate)
        {
            var key = (claim.Tenant, claim.DeliveryId);
            if (_deliveries.TryGetValue(key, out var existing))
            {
                if (existing.Status != WebhookDeliveryStatus.Pending || existing.LeaseUntil > now)
                {
                    return Task.FromResult<WebhookDelivery?>(null);
                }

                // The previous claimer's lease ran out: take over, keeping its attempt count.
                claim = claim with { Attempts = existing.Attempts };
            }

            var stored = claim with { Status = WebhookDeliveryStatus.Pending, ETag = (++_version).ToString(System.Globalization.CultureInfo.InvariantCulture) };
            _deliveries[key] = stored;
            return Task.FromResult<WebhookDelivery?>(stored);
        }
    }

    public Task RecordAttemptAsync(WebhookDeliveryAttempt attempt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(attempt);
        lock (_gate)
        {
            _attempts.RemoveAll(a => a.Tenant == attempt.Tenant && a.DeliveryId == attempt.DeliveryId && a.Attempt == attempt.Attempt);
            _attempts.Add(attempt);
            if (_deliveries.TryGetValue((attempt.Tenant, attempt.DeliveryId), out var delivery) && delivery.Attempts < attempt.Attempt)
            {
                _deliveries[(attempt.Tenant, attempt.DeliveryId)] = delivery with { Attempts = attempt.Attempt, LastStatusCode = attempt.StatusCode };
            }
        }

        return Task.CompletedTask;
    }

    public Task CompleteAsync(WebhookDelivery delivery, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(delivery);
        lock (_gate)
        {
            _deliveries[(delivery.Tenant, delivery.DeliveryId)] = delivery with { ETag = (++_version).ToString(System.Globalization.CultureInfo.InvariantCulture) };
        }

        return Task.CompletedTask;
    }

    public Task<WebhookDelivery?> GetAsync(string tenant, string deliveryId, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return Task.FromResult(_deliveries.TryGetValue((tenant, deliveryId), out var row) ? row : null);
        }
    }

    public Task<IReadOnlyList<WebhookDelivery>> ListAsync(string tenant, string? subscriptionId, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return Task.FromResult<IReadOnlyList<WebhookDelivery>>(
                [.. _deliveries.Values
                    .Where(d => d.Tenant == tenant && (subscriptionId is null || d.SubscriptionId == subscriptionId))
                    .OrderBy(d => d.ClaimedAt)]);
        }
    }

    public Task<IReadOnlyList<WebhookDeliveryAttempt>> GetAttemptsAsync(string tenant, string deliveryId, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return Task.FromResult<IReadOnlyList<WebhookDeliveryAttempt>>(
                [.. _attempts.Where(a => a.Tenant == tenant && a.DeliveryId == deliveryId).OrderBy(a => a.Attempt)]);
        }
    }

    public Task<IReadOnlyList<WebhookDelivery>> ListDueAsync(DateTimeOffset now, int max, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return Task.FromResult<IReadOnlyList<WebhookDelivery>>(
                [.. _deliveries.Values
                    .Where(d => d.DueAt <= now)
                    .OrderBy(d => d.DueAt)
                    .Take(max)]);
        }
    }

    public Task<WebhookDelivery?> TryReplaceAsync(WebhookDelivery delivery, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(delivery);
        lock (_gate)
        {
            var key = (delivery.Tenant, delivery.DeliveryId);
            if (!_deliveries.TryGetValue(key, out var existing) || existing.ETag != delivery.ETag)
            {
                return Task.FromResult<WebhookDelivery?>(null);
            }

            // RecordAttemptAsync may have raised the stored attempt count without changing the ETag; never lower it.
            var stored = delivery with
            {
                Attempts = Math.Max(existing.Attempts, delivery.Attempts),
                ETag = (++_version).ToString(System.Globalization.CultureInfo.InvariantCulture),
            };
            _deliveries[key] = stored;
            return Task.FromResult<WebhookDelivery?>(stored);
        }
    }
}
