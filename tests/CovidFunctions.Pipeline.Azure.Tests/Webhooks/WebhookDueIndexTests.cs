using System.Collections.Concurrent;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Azure.Webhooks;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Azure.Tests.Webhooks;

/// <summary>
/// The due index of <see cref="TableWebhookDeliveryLog"/> on a real Azurite: one row per pending delivery in the
/// <c>~due</c> partition, moved by every write, dropped when the delivery finishes; crashes between the index write
/// and the delivery write (simulated by writing only one of them) neither lose a delivery nor list it twice; rows
/// written before the index existed are indexed by the backfill and retried.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class WebhookDueIndexTests(AzuriteFixture azurite)
{
    private const int All = 100_000;
    private static readonly CancellationToken None = CancellationToken.None;

    // Years back, whole seconds: the rows of other tests that share the table are due then too, so assertions look
    // only at this test's tenant.
    private static readonly DateTimeOffset T0 = new(2020, 1, 6, 9, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Index_FollowsTheDelivery_CreateDue_ClaimMovesIt_SuccessAndDeadLetterRemoveIt()
    {
        var (log, tenant) = await NewLogAsync();
        var delivery = Delivery(tenant, "evt_a", nextAttemptAt: T0.AddMinutes(1));

        var claimed = await log.TryClaimAsync(delivery, T0, None);
        Assert.NotNull(claimed);
        var row = Assert.Single(await IndexRowsAsync(log, tenant));
        Assert.StartsWith(TableWebhookDeliveryLog.DueTicksPrefix(T0.AddMinutes(1)) + "|" + tenant + "|evt_a|", row.RowKey, StringComparison.Ordinal);
        Assert.Equal(row.RowKey, await StoredIndexKeyAsync(log, tenant, "evt_a"));

        // Due exactly at NextAttemptAt, not a second before.
        Assert.DoesNotContain(await log.ListDueAsync(T0.AddMinutes(1).AddSeconds(-1), All, None), d => d.Tenant == tenant);
        var due = Assert.Single(await log.ListDueAsync(T0.AddMinutes(1), All, None), d => d.Tenant == tenant);
        Assert.Equal(T0.AddMinutes(1), due.NextAttemptAt);
        Assert.Equal(delivery.Body, due.Body);

        // The retry handler's claim moves the index row to the end of the attempt's lease.
        var claim = await log.TryReplaceAsync(due with { NextAttemptAt = T0.AddMinutes(5) }, None);
        Assert.NotNull(claim);
        row = Assert.Single(await IndexRowsAsync(log, tenant));
        Assert.StartsWith(TableWebhookDeliveryLog.DueTicksPrefix(T0.AddMinutes(5)) + "|", row.RowKey, StringComparison.Ordinal);
        Assert.Equal(row.RowKey, await StoredIndexKeyAsync(log, tenant, "evt_a"));
        Assert.DoesNotContain(await log.ListDueAsync(T0.AddMinutes(4), All, None), d => d.Tenant == tenant);

        // The failed attempt reschedules it.
        var rescheduled = await log.TryReplaceAsync(claim with { Attempts = 2, LastStatusCode = 503, NextAttemptAt = T0.AddMinutes(20) }, None);
        Assert.NotNull(rescheduled);
        row = Assert.Single(await IndexRowsAsync(log, tenant));
        Assert.StartsWith(TableWebhookDeliveryLog.DueTicksPrefix(T0.AddMinutes(20)) + "|", row.RowKey, StringComparison.Ordinal);
        Assert.Equal(2, Assert.Single(await log.ListDueAsync(T0.AddMinutes(20), All, None), d => d.Tenant == tenant).Attempts);

        // Delivered: no index row, never due again.
        await log.CompleteAsync(rescheduled with { Status = WebhookDeliveryStatus.Delivered, NextAttemptAt = null, FinishedAt = T0.AddMinutes(20) }, None);
        Assert.Empty(await IndexRowsAsync(log, tenant));
        Assert.Null(await StoredIndexKeyAsync(log, tenant, "evt_a"));
        Assert.DoesNotContain(await log.ListDueAsync(T0.AddDays(3), All, None), d => d.Tenant == tenant);

        // Dead-lettered: the same.
        var other = await log.TryClaimAsync(Delivery(tenant, "evt_b", nextAttemptAt: T0.AddMinutes(2)), T0, None);
        Assert.NotNull(other);
        Assert.Single(await IndexRowsAsync(log, tenant));
        await log.CompleteAsync(other with { Status = WebhookDeliveryStatus.DeadLettered, NextAttemptAt = null, Error = "HTTP 410: not retried", FinishedAt = T0.AddMinutes(2) }, None);
        Assert.Empty(await IndexRowsAsync(log, tenant));
        Assert.Equal(WebhookDeliveryStatus.DeadLettered, (await log.GetAsync(tenant, "evt_b", None))!.Status);
        Assert.DoesNotContain(await log.ListDueAsync(T0.AddDays(3), All, None), d => d.Tenant == tenant);
    }

    [Fact]
    public async Task RacingClaims_LeaveOneIndexRow_ForTheWinnersDueTime()
    {
        var (log, tenant) = await NewLogAsync();
        var delivery = Delivery(tenant, "evt_race", nextAttemptAt: T0.AddMinutes(1));

        // The notify activity run five times at once: one claim, one index row.
        var claims = await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => log.TryClaimAsync(delivery, T0, None)));
        Assert.Single(claims, c => c is not null);
        Assert.Single(await IndexRowsAsync(log, tenant));

        // Five retry workers claim the due attempt at once, each for its own lease end: one wins, the losers remove
        // the index rows they wrote, and the row left is the winner's.
        var due = Assert.Single(await log.ListDueAsync(T0.AddMinutes(1), All, None), d => d.Tenant == tenant);
        var leases = Enumerable.Range(0, 5).Select(i => T0.AddMinutes(10 + i)).ToList();
        var results = await Task.WhenAll(leases.Select(lease => log.TryReplaceAsync(due with { NextAttemptAt = lease }, None)));
        var winner = Assert.Single(results, r => r is not null)!;
        var row = Assert.Single(await IndexRowsAsync(log, tenant));
        Assert.StartsWith(TableWebhookDeliveryLog.DueTicksPrefix(winner.NextAttemptAt!.Value) + "|", row.RowKey, StringComparison.Ordinal);
        Assert.Equal(row.RowKey, await StoredIndexKeyAsync(log, tenant, "evt_race"));
    }

    [Fact]
    public async Task Crash_AfterTheIndexRow_BeforeTheClaimInsert_ListsNothing_AndTheOrphanGoesAfterTheGrace()
    {
        var (log, tenant) = await NewLogAsync();

        // A claim wrote its index row and died before inserting the delivery row.
        var orphan = TableWebhookDeliveryLog.NewDueIndexKey(T0, tenant, "evt_never");
        await log.Table.AddEntityAsync(IndexRow(orphan, tenant, "evt_never"), None);

        // Young: it may be a claim still on its way, so it is skipped but kept.
        Assert.DoesNotContain(await log.ListDueAsync(T0.AddMinutes(1), All, None), d => d.Tenant == tenant);
        Assert.Single(await IndexRowsAsync(log, tenant));

        // Past the grace it is deleted.
        var impatient = new TableWebhookDeliveryLog(log.Table) { StaleIndexGrace = TimeSpan.Zero };
        Assert.DoesNotContain(await impatient.ListDueAsync(T0.AddMinutes(1), All, None), d => d.Tenant == tenant);
        Assert.Empty(await IndexRowsAsync(log, tenant));
    }

    [Fact]
    public async Task Crash_AfterTheNewIndexRow_BeforeTheDeliveryReplace_TheDeliveryIsDueOnceAtItsStoredTime()
    {
        var (log, tenant) = await NewLogAsync();
        Assert.NotNull(await log.TryClaimAsync(Delivery(tenant, "evt_half", nextAttemptAt: T0.AddMinutes(1)), T0, None));
        var stored = Assert.Single(await IndexRowsAsync(log, tenant)).RowKey;

        // A worker wrote the index row for its claim (due earlier, so a reader meets it first) and died before the
        // ETag-conditional replace: the delivery row still points at its old index row.
        var dangling = TableWebhookDeliveryLog.NewDueIndexKey(T0.AddSeconds(30), tenant, "evt_half");
        await log.Table.AddEntityAsync(IndexRow(dangling, tenant, "evt_half"), None);

        // Not due at the dangling row's time; due once at the stored time, through the row it points at.
        Assert.DoesNotContain(await log.ListDueAsync(T0.AddSeconds(45), All, None), d => d.Tenant == tenant);
        var due = Assert.Single(await log.ListDueAsync(T0.AddMinutes(2), All, None), d => d.Tenant == tenant);
        Assert.Equal("evt_half", due.DeliveryId);
        Assert.Equal(stored, await StoredIndexKeyAsync(log, tenant, "evt_half"));

        // The dangling row is dropped once it is older than the grace; the live one stays.
        var impatient = new TableWebhookDeliveryLog(log.Table) { StaleIndexGrace = TimeSpan.Zero };
        Assert.Single(await impatient.ListDueAsync(T0.AddMinutes(2), All, None), d => d.Tenant == tenant);
        Assert.Equal(stored, Assert.Single(await IndexRowsAsync(log, tenant)).RowKey);
    }

    [Fact]
    public async Task Crash_AfterTheDeliveryWrite_BeforeTheOldIndexRowIsDeleted_TheDeliveryIsDueOnce()
    {
        var (log, tenant) = await NewLogAsync();
        Assert.NotNull(await log.TryClaimAsync(Delivery(tenant, "evt_moved", nextAttemptAt: T0.AddMinutes(1)), T0, None));
        var old = Assert.Single(await IndexRowsAsync(log, tenant));
        var due = Assert.Single(await log.ListDueAsync(T0.AddMinutes(1), All, None), d => d.Tenant == tenant);
        var claim = await log.TryReplaceAsync(due with { NextAttemptAt = T0.AddMinutes(3) }, None);
        Assert.NotNull(claim);

        // The worker died before deleting the old index row: put it back.
        await log.Table.AddEntityAsync(IndexRow(old.RowKey, tenant, "evt_moved"), None);
        Assert.Equal(2, (await IndexRowsAsync(log, tenant)).Count);

        // Not due through the old row while the claim's lease runs; once, through the new row, after it.
        Assert.DoesNotContain(await log.ListDueAsync(T0.AddMinutes(2), All, None), d => d.Tenant == tenant);
        var again = Assert.Single(await log.ListDueAsync(T0.AddMinutes(3), All, None), d => d.Tenant == tenant);
        Assert.Equal(T0.AddMinutes(3), again.NextAttemptAt);

        // The old row is young (kept: it could be a write on its way). Once the delivery is finished, it is deleted at
        // once: a finished delivery is never due again.
        await log.CompleteAsync(again with { Status = WebhookDeliveryStatus.Delivered, NextAttemptAt = null, FinishedAt = T0.AddMinutes(3) }, None);
        Assert.Equal(old.RowKey, Assert.Single(await IndexRowsAsync(log, tenant)).RowKey);
        Assert.DoesNotContain(await log.ListDueAsync(T0.AddMinutes(3), All, None), d => d.Tenant == tenant);
        Assert.Empty(await IndexRowsAsync(log, tenant));
    }

    [Fact]
    public async Task LostResponse_TheSdkRetriesAWriteThatLanded_ThenSees409Or412_TheWriteCountsAsDone()
    {
        var (_, tenant) = await NewLogAsync();
        var losesResponse = new LoseOneResponsePolicy();
        var options = new TableClientOptions();
        options.Retry.Delay = TimeSpan.FromMilliseconds(10);
        options.AddPolicy(losesResponse, HttpPipelinePosition.PerRetry);
        var log = new TableWebhookDeliveryLog(new TableClient(azurite.Server.ConnectionString, PipelineNames.WebhookDeliveriesTable, options));

        // The claim's insert lands, its response is lost, the SDK retries it and gets 409: the row names this write's
        // index row, so the claim is this caller's, and the delivery comes due through that index row.
        losesResponse.Arm(m => m.Request.Method == RequestMethod.Post);
        var claimed = await log.TryClaimAsync(Delivery(tenant, "evt_lost", nextAttemptAt: T0.AddMinutes(1)), T0, None);
        Assert.NotNull(claimed);
        Assert.True(losesResponse.Fired);
        var row = Assert.Single(await IndexRowsAsync(log, tenant));
        Assert.Equal(row.RowKey, await StoredIndexKeyAsync(log, tenant, "evt_lost"));
        var due = Assert.Single(await log.ListDueAsync(T0.AddMinutes(1), All, None), d => d.Tenant == tenant);

        Assert.Equal(claimed.ETag, due.ETag);

        // The same for the retry handler's ETag-conditional claim: it lands, the SDK's retry gets 412, and the claim is
        // still this caller's (with the row's ETag); the old index row is gone, the new one names the lease end.
        losesResponse.Arm(m => m.Request.Method == RequestMethod.Put && m.Request.Headers.TryGetValue("If-Match", out var ifMatch) && ifMatch != "*");
        var claim = await log.TryReplaceAsync(due with { NextAttemptAt = T0.AddMinutes(5) }, None);
        Assert.NotNull(claim);
        Assert.True(losesResponse.Fired);
        Assert.NotNull(await log.TryReplaceAsync(claim with { Attempts = 1 }, None));
        row = Assert.Single(await IndexRowsAsync(log, tenant));
        Assert.StartsWith(TableWebhookDeliveryLog.DueTicksPrefix(T0.AddMinutes(5)) + "|", row.RowKey, StringComparison.Ordinal);
        Assert.Equal(row.RowKey, await StoredIndexKeyAsync(log, tenant, "evt_lost"));
        Assert.DoesNotContain(await log.ListDueAsync(T0.AddMinutes(4), All, None), d => d.Tenant == tenant);
        Assert.Single(await log.ListDueAsync(T0.AddMinutes(5), All, None), d => d.Tenant == tenant);
    }

    [Fact]
    public async Task OldShapeRow_PendingWithoutNextAttemptAtOrBody_IsBackfilled_DueAtItsLeaseEnd_AndRetriedWithItsBodyRebuilt()
    {
        var received = new ConcurrentQueue<(string Signature, string Body, string Event)>();
        await using var receiver = await TableWebhookStoreTests.StartReceiverAsync(received);
        var storage = new WebhookStorage(azurite.Storage.Tables);
        await storage.EnsureCreatedAsync(None);
        var tenant = AzuriteFixture.NewTenant();
        var studyId = "s" + Guid.NewGuid().ToString("N")[..24];
        await azurite.Storage.Studies.TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = studyId, Status = StudyStatus.Completed, Label = "cap", ProbabilityCovid = 0.2, ProbabilityCap = 0.7, ProbabilityNormal = 0.1, LesionBurden = 0.05, SliceCount = 40, CreatedAt = DateTimeOffset.UtcNow, CompletedAt = DateTimeOffset.UtcNow }, None);
        var options = new WebhookOptions { AllowLoopbackWebhooks = true, UseJitter = false };
        var secrets = new InMemoryWebhookSecretStore();
        var guard = new WebhookTargetGuard(options);
        using var dispatcher = new WebhookDispatcher(guard, storage.Deliveries, options, TimeProvider.System, NullLogger<WebhookDispatcher>.Instance);
        var created = await new WebhookManager(storage.Subscriptions, secrets, storage.Deliveries, guard, dispatcher, options, TimeProvider.System)
            .AddAsync(tenant, receiver.Url, [StudyEventTypes.Completed], null, None);

        // The row as the notifier wrote it before NextAttemptAt and Body existed (under the id of then): its claimer died after attempt 1.
        var deliveryId = WebhookIds.LegacyDeliveryId(tenant, created.Subscription.Id, studyId, StudyEventTypes.Completed);
        var leaseEnded = DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.AddMinutes(-5).ToUnixTimeSeconds());
        var table = azurite.Storage.Tables.GetTableClient(PipelineNames.WebhookDeliveriesTable);
        await table.AddEntityAsync(OldShapeRow(tenant, deliveryId, created.Subscription.Id, studyId, leaseEnded), None);

        // A fresh log (a process start): its first ListDueAsync backfills the index, and the row is due at LeaseUntil.
        var log = new TableWebhookDeliveryLog(table);
        var due = Assert.Single(await log.ListDueAsync(DateTimeOffset.UtcNow, All, None), d => d.Tenant == tenant);
        Assert.Equal(deliveryId, due.DeliveryId);
        Assert.Equal(leaseEnded, due.NextAttemptAt);
        Assert.Null(due.Body);
        var row = Assert.Single(await IndexRowsAsync(log, tenant));
        Assert.StartsWith(TableWebhookDeliveryLog.DueTicksPrefix(leaseEnded) + "|", row.RowKey, StringComparison.Ordinal);
        Assert.Equal(row.RowKey, await StoredIndexKeyAsync(log, tenant, deliveryId));

        // The retry handler with the Studies store makes attempt 2 with the body built again from the Studies row.
        var retries = new WebhookRetryHandler(log, storage.Subscriptions, secrets, dispatcher, options, TimeProvider.System, NullLogger<WebhookRetryHandler>.Instance, azurite.Storage.Studies);
        var after = await retries.RetryAsync(due, DateTimeOffset.UtcNow, None);
        Assert.NotNull(after);
        Assert.Equal(WebhookDeliveryStatus.Delivered, after.Status);
        var (signature, body, eventType) = Assert.Single(received);
        Assert.Equal(StudyEventTypes.Completed, eventType);
        Assert.True(WebhookSignature.Verify(created.Secret, signature, body, DateTimeOffset.UtcNow, TimeSpan.FromMinutes(5)));
        Assert.Contains(deliveryId, body, StringComparison.Ordinal);
        Assert.Contains(studyId, body, StringComparison.Ordinal);
        Assert.Contains("\"cap\"", body, StringComparison.Ordinal);
        var stored = await log.GetAsync(tenant, deliveryId, None);
        Assert.Equal(2, stored!.Attempts);
        Assert.Equal(body, stored.Body);
        Assert.Empty(await IndexRowsAsync(log, tenant));
    }

    [Fact]
    public async Task Backfill_IsBounded_AndSkipsRowsThatAreIndexed()
    {
        var (log, tenant) = await NewLogAsync();
        Assert.NotNull(await log.TryClaimAsync(Delivery(tenant, "evt_new", nextAttemptAt: T0.AddMinutes(1)), T0, None));
        await log.Table.AddEntityAsync(OldShapeRow(tenant, "evt_old1", "wh1", "s1", T0.AddHours(1)), None);
        await log.Table.AddEntityAsync(OldShapeRow(tenant, "evt_old2", "wh1", "s2", T0.AddHours(2)), None);

        // The pass stops at its bound and says so.
        var (indexed, complete) = await log.BackfillDueIndexAsync(1, None);
        Assert.Equal(1, indexed);
        Assert.False(complete);
        Assert.Equal(2, (await IndexRowsAsync(log, tenant)).Count);

        // The next pass indexes the rest; the row written with its index row is not indexed again.
        await log.BackfillDueIndexAsync(1000, None);
        Assert.Equal(3, (await IndexRowsAsync(log, tenant)).Count);
        foreach (var id in new[] { "evt_new", "evt_old1", "evt_old2" })
        {
            Assert.NotNull(await StoredIndexKeyAsync(log, tenant, id));
        }

        Assert.Equal(["evt_new", "evt_old1", "evt_old2"], (await log.ListDueAsync(T0.AddHours(2), All, None)).Where(d => d.Tenant == tenant).Select(d => d.DeliveryId));
        Assert.Equal(["evt_new", "evt_old1"], (await log.ListDueAsync(T0.AddHours(1), All, None)).Where(d => d.Tenant == tenant).Select(d => d.DeliveryId));
    }

    private async Task<(TableWebhookDeliveryLog Log, string Tenant)> NewLogAsync()
    {
        var storage = new WebhookStorage(azurite.Storage.Tables);
        await storage.EnsureCreatedAsync(None);
        return (new TableWebhookDeliveryLog(azurite.Storage.Tables.GetTableClient(PipelineNames.WebhookDeliveriesTable)), AzuriteFixture.NewTenant());
    }

    private static WebhookDelivery Delivery(string tenant, string deliveryId, DateTimeOffset nextAttemptAt) => new()
    {
        Tenant = tenant,
        DeliveryId = deliveryId,
        SubscriptionId = "wh1",
        StudyId = "s1",
        EventType = StudyEventTypes.Completed,
        ClaimedAt = T0,
        LeaseUntil = T0.AddHours(50),
        NextAttemptAt = nextAttemptAt,
        Body = $$"""{"id":"{{deliveryId}}"}""",
    };

    /// <summary>A delivery row as written before NextAttemptAt, Body and the due index existed: pending, attempt 1 made.</summary>
    private static TableEntity OldShapeRow(string tenant, string deliveryId, string subscriptionId, string studyId, DateTimeOffset leaseUntil) => new(tenant, deliveryId)
    {
        ["Kind"] = "delivery",
        ["SubscriptionId"] = subscriptionId,
        ["StudyId"] = studyId,
        ["EventType"] = StudyEventTypes.Completed,
        ["Status"] = WebhookDeliveryStatus.Pending,
        ["Attempts"] = 1,
        ["LeaseUntil"] = leaseUntil,
        ["ClaimedAt"] = leaseUntil.AddHours(-26),
        ["LastStatusCode"] = 503,
    };

    private static TableEntity IndexRow(string key, string tenant, string deliveryId) => new(TableWebhookDeliveryLog.DueIndexPartition, key)
    {
        ["Kind"] = "due-index",
        ["Tenant"] = tenant,
        ["DeliveryId"] = deliveryId,
    };

    private static async Task<List<TableEntity>> IndexRowsAsync(TableWebhookDeliveryLog log, string tenant)
    {
        var rows = new List<TableEntity>();
        await foreach (var row in log.Table.QueryAsync<TableEntity>(TableClient.CreateQueryFilter($"PartitionKey eq {TableWebhookDeliveryLog.DueIndexPartition} and Tenant eq {tenant}"), cancellationToken: None))
        {
            rows.Add(row);
        }

        return rows;
    }

    private static async Task<string?> StoredIndexKeyAsync(TableWebhookDeliveryLog log, string tenant, string deliveryId) =>
        (await log.Table.GetEntityAsync<TableEntity>(tenant, deliveryId, cancellationToken: None)).Value.GetString(TableWebhookDeliveryLog.DueIndexKeyProperty);
}

/// <summary>
/// Lets one matching request reach the table and then throws a transient error instead of returning its response
/// (a response lost on the way back), so the SDK's retry policy sends the request again.
/// </summary>
internal sealed class LoseOneResponsePolicy : HttpPipelinePolicy
{
    private Func<HttpMessage, bool>? _match;
    private int _fired;

    public bool Fired => Volatile.Read(ref _fired) == 1;

    public void Arm(Func<HttpMessage, bool> match)
    {
        Volatile.Write(ref _fired, 0);
        _match = match;
    }

    public override async ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
    {
        await ProcessNextAsync(message, pipeline);
        LoseIfMatching(message);
    }

    public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
    {
        ProcessNext(message, pipeline);
        LoseIfMatching(message);
    }

    private void LoseIfMatching(HttpMessage message)
    {
        if (_match is { } match && match(message) && message.Response.Status is >= 200 and < 300 && Interlocked.Exchange(ref _fired, 1) == 0)
        {
            _match = null;
            throw new IOException("response lost (simulated)");
        }
    }
}
