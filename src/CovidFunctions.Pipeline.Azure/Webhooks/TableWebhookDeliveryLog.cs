using Azure;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Notifications;

namespace CovidFunctions.Pipeline.Azure.Webhooks;

/// <summary>
/// <see cref="IWebhookDeliveryLog"/> on the <c>WebhookDeliveries</c> table, PartitionKey tenant:
/// the delivery record (claim, then final state; a dead-lettered record is the dead letter) at RowKey
/// <c>{deliveryId}</c>, and one row per attempt at RowKey <c>{deliveryId}|a{attempt:D3}</c>. A claim is an insert
/// (409 when another caller has it); taking over an expired pending claim is an ETag-conditional replace, so of two
/// callers racing for it one wins (412 for the other). A retry handler claims a due attempt the same way
/// (<see cref="TryReplaceAsync"/>, ETag-conditional).
/// </summary>
public sealed class TableWebhookDeliveryLog(TableClient table) : IWebhookDeliveryLog
{
    private const string KindDelivery = "delivery";
    private const string KindAttempt = "attempt";

    public TableClient Table { get; } = table;

    public static string AttemptRowKey(string deliveryId, int attempt) => $"{deliveryId}|a{attempt:D3}";

    public async Task<WebhookDelivery?> TryClaimAsync(WebhookDelivery claim, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(claim);
        var pending = claim with { Status = WebhookDeliveryStatus.Pending };
        try
        {
            var added = await Table.AddEntityAsync(ToEntity(pending), cancellationToken).ConfigureAwait(false);
            return pending with { ETag = added.Headers.ETag?.ToString() };
        }
        catch (RequestFailedException ex) when (ex.Status == 409)
        {
            // Someone claimed it: ours only if theirs is a pending claim whose lease ran out.
        }

        var existing = await GetAsync(claim.Tenant, claim.DeliveryId, cancellationToken).ConfigureAwait(false);
        if (existing is null || existing.Status != WebhookDeliveryStatus.Pending || existing.LeaseUntil > now)
        {
            return null;
        }

        var takeover = pending with { Attempts = existing.Attempts };
        try
        {
            var replaced = await Table.UpdateEntityAsync(ToEntity(takeover), new ETag(existing.ETag!), TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false);
            return takeover with { ETag = replaced.Headers.ETag?.ToString() };
        }
        catch (RequestFailedException ex) when (ex.Status is 412 or 404)
        {
            return null;
        }
    }

    public async Task RecordAttemptAsync(WebhookDeliveryAttempt attempt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(attempt);
        var entity = new TableEntity(attempt.Tenant, AttemptRowKey(attempt.DeliveryId, attempt.Attempt))
        {
            ["Kind"] = KindAttempt,
            ["DeliveryId"] = attempt.DeliveryId,
            ["SubscriptionId"] = attempt.SubscriptionId,
            ["Attempt"] = attempt.Attempt,
            ["At"] = attempt.At.ToUniversalTime(),
            ["StatusCode"] = attempt.StatusCode,
            ["Outcome"] = attempt.Outcome,
            ["Error"] = attempt.Error,
            ["DurationMs"] = attempt.DurationMs,
        };
        await Table.UpsertEntityAsync(WithoutNulls(entity), TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false);
    }

    public async Task CompleteAsync(WebhookDelivery delivery, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(delivery);
        await Table.UpsertEntityAsync(ToEntity(delivery), TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false);
    }

    public async Task<WebhookDelivery?> GetAsync(string tenant, string deliveryId, CancellationToken cancellationToken)
    {
        var response = await Table.GetEntityIfExistsAsync<TableEntity>(tenant, deliveryId, cancellationToken: cancellationToken).ConfigureAwait(false);
        return response.HasValue && response.Value is { } entity ? FromEntity(entity) : null;
    }

    public async Task<IReadOnlyList<WebhookDelivery>> ListAsync(string tenant, string? subscriptionId, CancellationToken cancellationToken)
    {
        var filter = subscriptionId is null
            ? TableClient.CreateQueryFilter($"PartitionKey eq {tenant} and Kind eq {KindDelivery}")
            : TableClient.CreateQueryFilter($"PartitionKey eq {tenant} and Kind eq {KindDelivery} and SubscriptionId eq {subscriptionId}");
        var list = new List<WebhookDelivery>();
        await foreach (var entity in Table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            list.Add(FromEntity(entity));
        }

        return [.. list.OrderBy(d => d.ClaimedAt)];
    }

    public async Task<IReadOnlyList<WebhookDeliveryAttempt>> GetAttemptsAsync(string tenant, string deliveryId, CancellationToken cancellationToken)
    {
        // Attempt rows sort right after their delivery row: "{id}|a001" … "{id}|a999".
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {tenant} and RowKey ge {deliveryId + "|a"} and RowKey lt {deliveryId + "|b"}");
        var list = new List<WebhookDeliveryAttempt>();
        await foreach (var e in Table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            list.Add(new WebhookDeliveryAttempt(
                e.PartitionKey,
                e.GetString("DeliveryId") ?? deliveryId,
                e.GetString("SubscriptionId") ?? "",
                e.GetInt32("Attempt") ?? 0,
                e.GetDateTimeOffset("At") ?? default,
                e.GetInt32("StatusCode"),
                e.GetString("Outcome") ?? "",
                e.GetString("Error"),
                e.GetDouble("DurationMs") ?? 0));
        }

        return [.. list.OrderBy(a => a.Attempt)];
    }

    public async Task<IReadOnlyList<WebhookDelivery>> ListDueAsync(DateTimeOffset now, int max, CancellationToken cancellationToken)
    {
        // A cross-partition query: due deliveries of every tenant. Finished records and attempt rows never match.
        var filter = TableClient.CreateQueryFilter($"Kind eq {KindDelivery} and Status eq {WebhookDeliveryStatus.Pending} and NextAttemptAt le {now.ToUniversalTime()}");
        var list = new List<WebhookDelivery>();
        await foreach (var entity in Table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            list.Add(FromEntity(entity));
        }

        return [.. list.OrderBy(d => d.NextAttemptAt).Take(max)];
    }

    public async Task<WebhookDelivery?> TryReplaceAsync(WebhookDelivery delivery, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(delivery);
        ArgumentException.ThrowIfNullOrEmpty(delivery.ETag);
        try
        {
            var replaced = await Table.UpdateEntityAsync(ToEntity(delivery), new ETag(delivery.ETag), TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false);
            return delivery with { ETag = replaced.Headers.ETag?.ToString() };
        }
        catch (RequestFailedException ex) when (ex.Status is 412 or 404)
        {
            return null;
        }
    }

    /// <summary>Drops null properties (a missing property reads back as null).</summary>
    private static TableEntity WithoutNulls(TableEntity entity)
    {
        foreach (var key in entity.Keys.Where(k => entity[k] is null).ToList())
        {
            entity.Remove(key);
        }

        return entity;
    }

    private static TableEntity ToEntity(WebhookDelivery d) => WithoutNulls(new(d.Tenant, d.DeliveryId)
    {
        ["Kind"] = KindDelivery,
        ["SubscriptionId"] = d.SubscriptionId,
        ["StudyId"] = d.StudyId,
        ["EventType"] = d.EventType,
        ["Status"] = d.Status,
        ["Attempts"] = d.Attempts,
        ["LeaseUntil"] = d.LeaseUntil.ToUniversalTime(),
        ["ClaimedAt"] = d.ClaimedAt.ToUniversalTime(),
        ["FinishedAt"] = d.FinishedAt?.ToUniversalTime(),
        ["LastStatusCode"] = d.LastStatusCode,
        ["Error"] = d.Error,
        ["NextAttemptAt"] = d.NextAttemptAt?.ToUniversalTime(),
        ["Body"] = d.Body,
    });

    private static WebhookDelivery FromEntity(TableEntity e) => new()
    {
        Tenant = e.PartitionKey,
        DeliveryId = e.RowKey,
        SubscriptionId = e.GetString("SubscriptionId") ?? "",
        StudyId = e.GetString("StudyId") ?? "",
        EventType = e.GetString("EventType") ?? "",
        Status = e.GetString("Status") ?? WebhookDeliveryStatus.Pending,
        Attempts = e.GetInt32("Attempts") ?? 0,
        LeaseUntil = e.GetDateTimeOffset("LeaseUntil") ?? default,
        ClaimedAt = e.GetDateTimeOffset("ClaimedAt") ?? default,
        FinishedAt = e.GetDateTimeOffset("FinishedAt"),
        LastStatusCode = e.GetInt32("LastStatusCode"),
        Error = e.GetString("Error"),
        NextAttemptAt = e.GetDateTimeOffset("NextAttemptAt"),
        Body = e.GetString("Body"),
        ETag = e.ETag.ToString(),
    };
}
