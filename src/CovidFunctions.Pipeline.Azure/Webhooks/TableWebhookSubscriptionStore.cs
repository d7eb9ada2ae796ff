using Azure;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Notifications;

namespace CovidFunctions.Pipeline.Azure.Webhooks;

/// <summary>
/// <see cref="IWebhookSubscriptionStore"/> on the <c>WebhookSubscriptions</c> table: PartitionKey tenant, RowKey
/// subscription id; event types as a comma-separated string; only the secret's name (the secret is in Key Vault or the
/// local secret file), and after a rotation the previous secret's name with the end of its overlap. Rows written before
/// rotation existed have neither column and read as never rotated. Each tenant's partition also holds one
/// <see cref="CreateGuardRowKey"/> row, which every create (bounded or not) replaces in the same transaction as its
/// insert; it is no subscription and is never listed or returned.
/// </summary>
public sealed class TableWebhookSubscriptionStore(TableClient table) : IWebhookSubscriptionStore
{
    /// <summary>
    /// The RowKey of a tenant's create guard (subscription ids are 'wh' and hex, never '~'). A bounded create reads it, counts the
    /// tenant's subscriptions and then, in one entity-group transaction, replaces it on the ETag it read and inserts the
    /// subscription: any create that committed after the read (bounded, or the operator's unbounded one, which replaces
    /// the guard the same way) changed that ETag, so the transaction fails and the count is taken again. Deletes do not
    /// touch it (a stale count only over-counts, refusing early).
    /// </summary>
    public const string CreateGuardRowKey = "~creates";

    /// <summary>
    /// How often a create re-counts after losing to a concurrent one before it gives up: each lost round is another
    /// create committed, so without deletes and unbounded creates meanwhile a tenant bound of 25 needs at most 26 rounds.
    /// </summary>
    private const int MaxCreateRounds = 64;

    public TableClient Table { get; } = table;

    public Task<bool> TryCreateWithinLimitAsync(WebhookSubscription subscription, int maxPerTenant, CancellationToken cancellationToken) =>
        InsertGuardedAsync(subscription, maxPerTenant, cancellationToken);

    /// <summary>
    /// Inserts without a bound (the operator's <c>covidfn webhooks add</c>), but, like a bounded create, in one
    /// transaction with the replace of the tenant's create guard: a bounded create that counted before this insert
    /// then fails on the guard's ETag and counts again, this subscription included. Before, this insert left the guard
    /// alone, so an API create that counted 24 while it ran committed the 26th subscription.
    /// </summary>
    public async Task CreateAsync(WebhookSubscription subscription, CancellationToken cancellationToken) =>
        await InsertGuardedAsync(subscription, maxPerTenant: null, cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Reads the tenant's guard, counts its subscriptions when <paramref name="maxPerTenant"/> bounds them (false, and
    /// nothing written, at the bound), then replaces the guard on the ETag read and inserts the subscription in one
    /// entity-group transaction; a create of the tenant committed since the read (bounded or not) changed the ETag:
    /// read and count again.
    /// </summary>
    private async Task<bool> InsertGuardedAsync(WebhookSubscription subscription, int? maxPerTenant, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(subscription);
        for (var round = 0; round < MaxCreateRounds; round++)
        {
            var guard = await Table.GetEntityIfExistsAsync<TableEntity>(subscription.Tenant, CreateGuardRowKey, cancellationToken: cancellationToken).ConfigureAwait(false);
            if (maxPerTenant is { } max && (await ListAsync(subscription.Tenant, cancellationToken).ConfigureAwait(false)).Count >= max)
            {
                return false;
            }

            var creates = guard.HasValue && guard.Value is { } read ? (read.GetInt64("Creates") ?? 0) : 0;
            var nextGuard = new TableEntity(subscription.Tenant, CreateGuardRowKey) { ["Creates"] = creates + 1 };
            TableTransactionAction guardAction = guard.HasValue && guard.Value is { } current
                ? new(TableTransactionActionType.UpdateReplace, nextGuard, current.ETag)
                : new(TableTransactionActionType.Add, nextGuard);
            try
            {
                await Table.SubmitTransactionAsync([guardAction, new(TableTransactionActionType.Add, ToEntity(subscription))], cancellationToken).ConfigureAwait(false);
                return true;
            }
            catch (TableTransactionFailedException ex) when (ex.FailedTransactionActionIndex is 1 && ex.Status == 409)
            {
                throw new InvalidOperationException($"webhook subscription {subscription.Id} exists", ex);
            }
            catch (TableTransactionFailedException ex) when (ex.Status is 409 or 412)
            {
                // Another create of this tenant committed since the guard was read (or created it first): count again.
            }
        }

        throw new WebhookConflictException($"tenant '{subscription.Tenant}' had {MaxCreateRounds} webhook subscriptions created concurrently with this one; nothing was created (create again)");
    }

    public async Task<WebhookSubscription?> GetAsync(string tenant, string id, CancellationToken cancellationToken)
    {
        if (IsGuard(id))
        {
            return null;
        }

        var response = await Table.GetEntityIfExistsAsync<TableEntity>(tenant, id, cancellationToken: cancellationToken).ConfigureAwait(false);
        return response.HasValue && response.Value is { } entity ? FromEntity(entity) : null;
    }

    public async Task<IReadOnlyList<WebhookSubscription>> ListAsync(string? tenant, CancellationToken cancellationToken)
    {
        var query = tenant is null
            ? Table.QueryAsync<TableEntity>(cancellationToken: cancellationToken)
            : Table.QueryAsync<TableEntity>(TableClient.CreateQueryFilter($"PartitionKey eq {tenant}"), cancellationToken: cancellationToken);
        var list = new List<WebhookSubscription>();
        await foreach (var entity in query.ConfigureAwait(false))
        {
            if (!IsGuard(entity.RowKey))
            {
                list.Add(FromEntity(entity));
            }
        }

        return [.. list.OrderBy(s => s.CreatedAt).ThenBy(s => s.Id, StringComparer.Ordinal)];
    }

    public async Task<bool> DeleteAsync(string tenant, string id, CancellationToken cancellationToken)
    {
        if (IsGuard(id))
        {
            return false;
        }

        var response = await Table.DeleteEntityAsync(tenant, id, ETag.All, cancellationToken).ConfigureAwait(false);
        return response.Status != 404;
    }

    public async Task<WebhookSubscription?> TryReplaceAsync(WebhookSubscription subscription, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(subscription);
        if (subscription.ETag is not { Length: > 0 } etag)
        {
            throw new ArgumentException("a subscription is replaced only with the ETag it was read with", nameof(subscription));
        }

        try
        {
            var response = await Table.UpdateEntityAsync(ToEntity(subscription), new ETag(etag), TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false);
            return subscription with { ETag = response.Headers.ETag?.ToString() };
        }
        catch (RequestFailedException ex) when (ex.Status is 412 or 404)
        {
            return null;
        }
    }

    private static bool IsGuard(string rowKey) => rowKey.StartsWith('~');

    private static TableEntity ToEntity(WebhookSubscription subscription)
    {
        var entity = new TableEntity(subscription.Tenant, subscription.Id)
        {
            ["Url"] = subscription.Url.ToString(),
            ["EventTypes"] = string.Join(',', subscription.EventTypes),
            ["SecretName"] = subscription.SecretName,
            ["Active"] = subscription.Active,
            ["CreatedAt"] = subscription.CreatedAt.ToUniversalTime(),
        };
        if (subscription.PreviousSecretName is not null)
        {
            entity["PreviousSecretName"] = subscription.PreviousSecretName;
        }

        if (subscription.PreviousSecretExpiresAt is { } expires)
        {
            entity["PreviousSecretExpiresAt"] = expires.ToUniversalTime();
        }

        if (subscription.SecretRotatedAt is { } rotated)
        {
            entity["SecretRotatedAt"] = rotated.ToUniversalTime();
        }

        return entity;
    }

    private static WebhookSubscription FromEntity(TableEntity entity) => new()
    {
        Tenant = entity.PartitionKey,
        Id = entity.RowKey,
        Url = new Uri(entity.GetString("Url") ?? throw new InvalidOperationException($"webhook {entity.RowKey} has no Url")),
        EventTypes = (entity.GetString("EventTypes") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
        SecretName = entity.GetString("SecretName") ?? "",
        Active = entity.GetBoolean("Active") ?? true,
        CreatedAt = entity.GetDateTimeOffset("CreatedAt") ?? default,
        PreviousSecretName = entity.GetString("PreviousSecretName"),
        PreviousSecretExpiresAt = entity.GetDateTimeOffset("PreviousSecretExpiresAt"),
        SecretRotatedAt = entity.GetDateTimeOffset("SecretRotatedAt"),
        ETag = entity.ETag.ToString(),
    };
}
