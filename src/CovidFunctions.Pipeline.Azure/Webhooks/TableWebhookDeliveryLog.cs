using System.Diagnostics;
using Azure;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Notifications;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Azure.Webhooks;

/// <summary>
/// <see cref="IWebhookDeliveryLog"/> on the <c>WebhookDeliveries</c> table, PartitionKey tenant:
/// the delivery record (claim, then final state; a dead-lettered record is the dead letter) at RowKey
/// <c>{deliveryId}</c>, and one row per attempt at RowKey <c>{deliveryId}|a{attempt:D3}</c>. A claim is an insert
/// (409 when another caller has it); taking over an expired pending claim is an ETag-conditional replace, so of two
/// callers racing for it one wins (412 for the other). A retry handler claims a due attempt the same way
/// (<see cref="TryReplaceAsync"/>, ETag-conditional).
/// <para>
/// Due deliveries are found through an index, not a table scan: every pending delivery has one small row in the
/// partition <see cref="DueIndexPartition"/> whose RowKey is <c>{due UTC ticks:D19}|{tenant}|{deliveryId}|{nonce}</c>
/// (due = <see cref="WebhookDelivery.NextAttemptAt"/>, or <see cref="WebhookDelivery.LeaseUntil"/> on records written
/// before it existed), and the delivery row names that key in <see cref="DueIndexKeyProperty"/>. So
/// <see cref="ListDueAsync"/> is one range query <c>RowKey lt {now ticks + 1}</c> in one partition. The delivery row
/// stays the source of truth: a write that makes a delivery due at a new time first writes a NEW index row (its
/// nonce makes the key unique to that write), then writes the delivery row pointing at it, then deletes the old index
/// row; a write that fails (409/412) deletes its own new index row, unless the delivery row names it: then the write
/// landed and only its response was lost (the SDK retried it), and it counts as done. A crash between the writes leaves an extra index
/// row, never a pending delivery without one; a reader returns a delivery only when its row still points at the
/// index row read, and deletes index rows whose delivery finished, or that point at nothing for longer than
/// <see cref="StaleIndexGrace"/> (a write that may still land is never older than that, see
/// <see cref="IndexRefreshAfter"/>). Rows written before the index existed get their index row from a bounded
/// backfill pass (<see cref="BackfillDueIndexAsync"/>) that <see cref="ListDueAsync"/> runs on its first call in a
/// process and then every <see cref="BackfillInterval"/>.
/// </para>
/// </summary>
public sealed partial class TableWebhookDeliveryLog(TableClient table, ILogger? logger = null) : IWebhookDeliveryLog
{
    /// <summary>The partition of the due index rows; no tenant can have it (tenants are <c>[a-z0-9][a-z0-9-]*</c>).</summary>
    public const string DueIndexPartition = "~due";

    /// <summary>The delivery row's property naming the index row (RowKey in <see cref="DueIndexPartition"/>) that makes it due.</summary>
    public const string DueIndexKeyProperty = "DueIndexKey";

    private const string KindDelivery = "delivery";
    private const string KindAttempt = "attempt";
    private const string KindDueIndex = "due-index";

    private readonly ILogger _logger = logger ?? NullLogger.Instance;
    private int _backfillRunning;
    private long _nextBackfillAt = long.MinValue;

    public TableClient Table { get; } = table;

    /// <summary>
    /// How long an index row that its delivery does not point at (or whose delivery does not exist) is kept before a
    /// reader deletes it: the write that made it may still be on its way. Finished deliveries' index rows go at once.
    /// </summary>
    public TimeSpan StaleIndexGrace { get; init; } = TimeSpan.FromHours(1);

    /// <summary>
    /// A writer whose delivery write would start later than this after its index row was written writes a fresh index
    /// row first (a stalled process), so no delivery write lands later than <see cref="StaleIndexGrace"/> after its
    /// index row was written.
    /// </summary>
    public TimeSpan IndexRefreshAfter => StaleIndexGrace / 4;

    /// <summary>
    /// How often <see cref="ListDueAsync"/> repeats the backfill pass after the first one in this process. After this
    /// version every writer indexes its rows, so the pass only finds rows from before it, or from hosts still running
    /// the previous version during a rolling upgrade (those rewrite rows without the index key): once per process
    /// would miss the latter until the process restarts; a pass every few hours catches them at a tiny cost compared
    /// with the scan every 10–30 s it replaces.
    /// </summary>
    public TimeSpan BackfillInterval { get; init; } = TimeSpan.FromHours(6);

    /// <summary>The most rows one backfill pass indexes; a pass that reaches it runs again on the next <see cref="ListDueAsync"/>.</summary>
    public int BackfillBatchSize { get; init; } = 500;

    public static string AttemptRowKey(string deliveryId, int attempt) => $"{deliveryId}|a{attempt:D3}";

    /// <summary>The index RowKey prefix of a due time: keys of rows due at or before <paramref name="due"/> sort below the prefix of the next tick.</summary>
    public static string DueTicksPrefix(DateTimeOffset due) => due.UtcTicks.ToString("D19", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A fresh index RowKey for one write of a delivery due at <paramref name="due"/>.</summary>
    public static string NewDueIndexKey(DateTimeOffset due, string tenant, string deliveryId) =>
        $"{DueTicksPrefix(due)}|{tenant}|{deliveryId}|{Guid.NewGuid().ToString("N")[..12]}";

    public async Task<WebhookDelivery?> TryClaimAsync(WebhookDelivery claim, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(claim);
        var pending = claim with { Status = WebhookDeliveryStatus.Pending };
        var index = await WriteDueIndexAsync(pending, cancellationToken).ConfigureAwait(false);
        try
        {
            index = await RefreshIfStalledAsync(pending, index, cancellationToken).ConfigureAwait(false);
            var added = await Table.AddEntityAsync(ToEntity(pending, index.Key), cancellationToken).ConfigureAwait(false);
            return pending with { ETag = added.Headers.ETag?.ToString() };
        }
        catch (RequestFailedException ex) when (ex.Status == 409)
        {
            // Someone claimed it: ours only if theirs is a pending claim whose lease ran out.
        }

        var existingEntity = await GetEntityAsync(claim.Tenant, claim.DeliveryId, cancellationToken).ConfigureAwait(false);
        if (Names(existingEntity, index.Key))
        {
            // Our insert landed and its response was lost (the SDK's retry got the 409): the claim is ours.
            return pending with { ETag = existingEntity!.ETag.ToString() };
        }

        await DeleteDueIndexAsync(index.Key, ETag.All, cancellationToken).ConfigureAwait(false);
        var existing = existingEntity is null ? null : FromEntity(existingEntity);
        if (existing is null || existing.Status != WebhookDeliveryStatus.Pending || existing.LeaseUntil > now)
        {
            return null;
        }

        // A fresh index row, written after the ETag this replace is conditional on was read.
        var takeover = pending with { Attempts = existing.Attempts };
        var replaced = await ReplaceIndexedAsync(takeover, new ETag(existing.ETag!), existingEntity!.GetString(DueIndexKeyProperty), cancellationToken).ConfigureAwait(false);
        return replaced is null ? null : takeover with { ETag = replaced };
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
        var previousKey = (await GetEntityAsync(delivery.Tenant, delivery.DeliveryId, cancellationToken).ConfigureAwait(false))?.GetString(DueIndexKeyProperty);
        if (delivery.DueAt is null)
        {
            // The final state (the contract's use): nothing is due any more.
            await Table.UpsertEntityAsync(ToEntity(delivery, null), TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false);
            await DeleteDueIndexAsync(previousKey, ETag.All, cancellationToken).ConfigureAwait(false);
            return;
        }

        // A pending record written unconditionally: index first; and since another write could have come between
        // our index row and our row (a reader may then have judged the index row stale), make sure it is still there.
        var index = await WriteDueIndexAsync(delivery, cancellationToken).ConfigureAwait(false);
        index = await RefreshIfStalledAsync(delivery, index, cancellationToken).ConfigureAwait(false);
        await Table.UpsertEntityAsync(ToEntity(delivery, index.Key), TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false);
        var key = index.Key ?? throw new InvalidOperationException("a pending record's index row has a key");
        var check = await Table.GetEntityIfExistsAsync<TableEntity>(DueIndexPartition, key, cancellationToken: cancellationToken).ConfigureAwait(false);
        if (!check.HasValue)
        {
            await Table.UpsertEntityAsync(DueIndexEntity(delivery, key), TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false);
        }

        if (previousKey != index.Key)
        {
            await DeleteDueIndexAsync(previousKey, ETag.All, cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task<WebhookDelivery?> GetAsync(string tenant, string deliveryId, CancellationToken cancellationToken)
    {
        var entity = await GetEntityAsync(tenant, deliveryId, cancellationToken).ConfigureAwait(false);
        return entity is null ? null : FromEntity(entity);
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

    /// <summary>
    /// One range query on the due index (<c>PartitionKey eq '~due' and RowKey lt '{now ticks + 1:D19}'</c>, earliest
    /// first), then a point read of each indexed delivery: it is returned only when it is still pending and still points
    /// at that index row; index rows that no longer match are skipped (and deleted when safe). Runs the backfill pass
    /// first when it is due (first call in this process, then every <see cref="BackfillInterval"/>).
    /// </summary>
    public async Task<IReadOnlyList<WebhookDelivery>> ListDueAsync(DateTimeOffset now, int max, CancellationToken cancellationToken)
    {
        if (max <= 0)
        {
            return [];
        }

        await BackfillIfDueAsync(cancellationToken).ConfigureAwait(false);
        var below = DueTicksPrefix(now.AddTicks(1));
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {DueIndexPartition} and RowKey lt {below}");
        var due = new List<WebhookDelivery>(max);
        await foreach (var page in Table.QueryAsync<TableEntity>(filter, maxPerPage: Math.Min(max, 1000), cancellationToken: cancellationToken).AsPages().ConfigureAwait(false))
        {
            var loaded = await Task.WhenAll(page.Values.Select(index => LoadIndexedAsync(index, cancellationToken))).ConfigureAwait(false);
            foreach (var delivery in loaded)
            {
                if (delivery is null)
                {
                    continue;
                }

                due.Add(delivery);
                if (due.Count == max)
                {
                    return due;
                }
            }
        }

        return due;
    }

    public async Task<WebhookDelivery?> TryReplaceAsync(WebhookDelivery delivery, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(delivery);
        ArgumentException.ThrowIfNullOrEmpty(delivery.ETag);

        // The index key the stored row points at now (deleted once the replace has moved it); if the row changed since
        // the caller read it, the replace below fails and nothing of the stored row is touched.
        var previousKey = (await GetEntityAsync(delivery.Tenant, delivery.DeliveryId, cancellationToken).ConfigureAwait(false))?.GetString(DueIndexKeyProperty);
        var etag = await ReplaceIndexedAsync(delivery, new ETag(delivery.ETag), previousKey, cancellationToken).ConfigureAwait(false);
        return etag is null ? null : delivery with { ETag = etag };
    }

    /// <summary>
    /// One backfill pass: indexes pending delivery rows that have no index row (written before the index existed, or
    /// by a host of the previous version): a cross-partition query for pending delivery rows, at most
    /// <paramref name="max"/> of them indexed (each an ETag-conditional merge of <see cref="DueIndexKeyProperty"/>).
    /// Returns how many were indexed and whether the pass saw every pending row (false when it stopped at the bound).
    /// </summary>
    public async Task<(int Indexed, bool Complete)> BackfillDueIndexAsync(int max, CancellationToken cancellationToken)
    {
        var filter = TableClient.CreateQueryFilter($"Kind eq {KindDelivery} and Status eq {WebhookDeliveryStatus.Pending}");
        var indexed = 0;
        await foreach (var entity in Table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            if (!string.IsNullOrEmpty(entity.GetString(DueIndexKeyProperty)))
            {
                continue;
            }

            if (indexed >= max)
            {
                return (indexed, false);
            }

            var delivery = FromEntity(entity);
            var index = await WriteDueIndexAsync(delivery, cancellationToken).ConfigureAwait(false);
            try
            {
                var marker = new TableEntity(entity.PartitionKey, entity.RowKey) { [DueIndexKeyProperty] = index.Key };
                await Table.UpdateEntityAsync(marker, entity.ETag, TableUpdateMode.Merge, cancellationToken).ConfigureAwait(false);
                indexed++;
            }
            catch (RequestFailedException ex) when (ex.Status is 412 or 404)
            {
                // Changed since the query: the writer that changed it indexed it (or the next pass will).
                var current = await GetEntityAsync(entity.PartitionKey, entity.RowKey, cancellationToken).ConfigureAwait(false);
                if (Names(current, index.Key))
                {
                    indexed++;
                }
                else
                {
                    await DeleteDueIndexAsync(index.Key, ETag.All, cancellationToken).ConfigureAwait(false);
                }
            }
        }

        return (indexed, true);
    }

    private async Task BackfillIfDueAsync(CancellationToken cancellationToken)
    {
        if (Environment.TickCount64 < Interlocked.Read(ref _nextBackfillAt) || Interlocked.CompareExchange(ref _backfillRunning, 1, 0) != 0)
        {
            return;
        }

        try
        {
            var (indexed, complete) = await BackfillDueIndexAsync(BackfillBatchSize, cancellationToken).ConfigureAwait(false);
            if (indexed > 0)
            {
                Log.Backfilled(_logger, indexed, complete);
            }

            // A pass that stopped at its bound goes on at the next call; a complete one waits the interval.
            Interlocked.Exchange(ref _nextBackfillAt, complete ? Environment.TickCount64 + (long)BackfillInterval.TotalMilliseconds : long.MinValue);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
#pragma warning disable CA1031 // the backfill must not stop indexed retries from being made: the next call tries again
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Log.BackfillFailed(_logger, ex);
            Interlocked.Exchange(ref _nextBackfillAt, Environment.TickCount64 + (long)TimeSpan.FromMinutes(5).TotalMilliseconds);
        }
        finally
        {
            Interlocked.Exchange(ref _backfillRunning, 0);
        }
    }

    /// <summary>The delivery an index row makes due, when its row still points at it; otherwise null (and the index row deleted when that is safe).</summary>
    private async Task<WebhookDelivery?> LoadIndexedAsync(TableEntity index, CancellationToken cancellationToken)
    {
        var tenant = index.GetString("Tenant");
        var deliveryId = index.GetString("DeliveryId");
        var entity = string.IsNullOrEmpty(tenant) || string.IsNullOrEmpty(deliveryId) ? null : await GetEntityAsync(tenant, deliveryId, cancellationToken).ConfigureAwait(false);
        if (entity is not null && entity.GetString(DueIndexKeyProperty) == index.RowKey && entity.GetString("Status") == WebhookDeliveryStatus.Pending)
        {
            return FromEntity(entity);
        }

        // A finished delivery never becomes pending again (writes after its final state are conditional on an older
        // ETag and fail), so its index rows are stale at once. Otherwise the write that made this index row may still
        // be on its way (it always follows its index row within IndexRefreshAfter): delete only after the grace.
        var finished = entity is not null && entity.GetString("Status") != WebhookDeliveryStatus.Pending;
        var age = DateTimeOffset.UtcNow - (index.Timestamp ?? DateTimeOffset.UtcNow);
        if (finished || age >= StaleIndexGrace)
        {
            await DeleteDueIndexAsync(index.RowKey, index.ETag, cancellationToken).ConfigureAwait(false);
        }

        return null;
    }

    /// <summary>
    /// ETag-conditional replace of a delivery row with a new index row written first; on success the old index row is
    /// deleted, on failure our new one. Returns the new ETag, or null when the row changed (or vanished) first.
    /// </summary>
    private async Task<string?> ReplaceIndexedAsync(WebhookDelivery delivery, ETag ifMatch, string? previousKey, CancellationToken cancellationToken)
    {
        var index = delivery.DueAt is null ? default : await WriteDueIndexAsync(delivery, cancellationToken).ConfigureAwait(false);
        string? etag;
        try
        {
            index = await RefreshIfStalledAsync(delivery, index, cancellationToken).ConfigureAwait(false);
            var replaced = await Table.UpdateEntityAsync(ToEntity(delivery, index.Key), ifMatch, TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false);
            etag = replaced.Headers.ETag?.ToString();
        }
        catch (RequestFailedException ex) when (ex.Status is 412 or 404)
        {
            var current = await GetEntityAsync(delivery.Tenant, delivery.DeliveryId, cancellationToken).ConfigureAwait(false);
            if (!Names(current, index.Key))
            {
                await DeleteDueIndexAsync(index.Key, ETag.All, cancellationToken).ConfigureAwait(false);
                return null;
            }

            // Our replace landed and its response was lost (the SDK's retry got the 412): the row is ours.
            etag = current!.ETag.ToString();
        }

        if (previousKey != index.Key)
        {
            await DeleteDueIndexAsync(previousKey, ETag.All, cancellationToken).ConfigureAwait(false);
        }

        return etag ?? "";
    }

    private async Task<DueIndexWrite> WriteDueIndexAsync(WebhookDelivery delivery, CancellationToken cancellationToken)
    {
        var due = delivery.DueAt ?? throw new InvalidOperationException($"delivery {delivery.DeliveryId} is not pending: nothing to index");
        var key = NewDueIndexKey(due, delivery.Tenant, delivery.DeliveryId);
        await Table.UpsertEntityAsync(DueIndexEntity(delivery, key), TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false);
        return new DueIndexWrite(key, Stopwatch.GetTimestamp());
    }

    /// <summary>A process that stalled after writing its index row writes a fresh one, so readers never judge a live write's row stale.</summary>
    private async Task<DueIndexWrite> RefreshIfStalledAsync(WebhookDelivery delivery, DueIndexWrite index, CancellationToken cancellationToken)
    {
        if (index.Key is null || IndexRefreshAfter <= TimeSpan.Zero || Stopwatch.GetElapsedTime(index.WrittenAt) < IndexRefreshAfter)
        {
            return index;
        }

        var fresh = await WriteDueIndexAsync(delivery, cancellationToken).ConfigureAwait(false);
        await DeleteDueIndexAsync(index.Key, ETag.All, cancellationToken).ConfigureAwait(false);
        return fresh;
    }

    /// <summary>
    /// Whether the delivery row names the index row <paramref name="key"/> that one write created (its nonce makes it
    /// unique to that write). After a 409/412 this tells a write that lost from one that landed but whose response was
    /// lost, so the SDK's retry of it failed: nothing else writes that key, and every later write of the row changes it.
    /// </summary>
    private static bool Names(TableEntity? delivery, string? key) =>
        key is not null && delivery is not null && delivery.GetString(DueIndexKeyProperty) == key;

    private async Task DeleteDueIndexAsync(string? key, ETag ifMatch, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(key))
        {
            return;
        }

        try
        {
            await Table.DeleteEntityAsync(DueIndexPartition, key, ifMatch, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.Status is 404 or 412)
        {
            // Gone already, or rewritten since it was read (then it is someone else's to judge).
        }
    }

    private async Task<TableEntity?> GetEntityAsync(string tenant, string deliveryId, CancellationToken cancellationToken)
    {
        var response = await Table.GetEntityIfExistsAsync<TableEntity>(tenant, deliveryId, cancellationToken: cancellationToken).ConfigureAwait(false);
        return response.HasValue ? response.Value : null;
    }

    private static TableEntity DueIndexEntity(WebhookDelivery delivery, string key) => new(DueIndexPartition, key)
    {
        ["Kind"] = KindDueIndex,
        ["Tenant"] = delivery.Tenant,
        ["DeliveryId"] = delivery.DeliveryId,
        ["DueAt"] = delivery.DueAt?.ToUniversalTime(),
    };

    /// <summary>Drops null properties (a missing property reads back as null).</summary>
    private static TableEntity WithoutNulls(TableEntity entity)
    {
        foreach (var key in entity.Keys.Where(k => entity[k] is null).ToList())
        {
            entity.Remove(key);
        }

        return entity;
    }

    private static TableEntity ToEntity(WebhookDelivery d, string? dueIndexKey) => WithoutNulls(new(d.Tenant, d.DeliveryId)
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
        [DueIndexKeyProperty] = dueIndexKey,
    });

    private static WebhookDelivery FromEntity(TableEntity e)
    {
        var status = e.GetString("Status") ?? WebhookDeliveryStatus.Pending;
        var leaseUntil = e.GetDateTimeOffset("LeaseUntil") ?? default;
        return new()
        {
            Tenant = e.PartitionKey,
            DeliveryId = e.RowKey,
            SubscriptionId = e.GetString("SubscriptionId") ?? "",
            StudyId = e.GetString("StudyId") ?? "",
            EventType = e.GetString("EventType") ?? "",
            Status = status,
            Attempts = e.GetInt32("Attempts") ?? 0,
            LeaseUntil = leaseUntil,
            ClaimedAt = e.GetDateTimeOffset("ClaimedAt") ?? default,
            FinishedAt = e.GetDateTimeOffset("FinishedAt"),
            LastStatusCode = e.GetInt32("LastStatusCode"),
            Error = e.GetString("Error"),
            // Records written before NextAttemptAt existed are due when their lease ends (their claimer is presumed dead).
            NextAttemptAt = e.GetDateTimeOffset("NextAttemptAt") ?? (status == WebhookDeliveryStatus.Pending ? leaseUntil : null),
            Body = e.GetString("Body"),
            ETag = e.ETag.ToString(),
        };
    }

    /// <summary>An index row this writer wrote (Key null: none) and when, to refresh it if the process stalls.</summary>
    private readonly record struct DueIndexWrite(string? Key, long WrittenAt);

    private static partial class Log
    {
        [LoggerMessage(EventId = 8131, Level = LogLevel.Information, Message = "Webhook due index: backfilled {Count} pending deliveries (pass complete: {Complete})")]
        public static partial void Backfilled(ILogger logger, int count, bool complete);

        [LoggerMessage(EventId = 8132, Level = LogLevel.Warning, Message = "Webhook due index backfill failed; it runs again in 5 minutes")]
        public static partial void BackfillFailed(ILogger logger, Exception exception);
    }
}
