using System.Collections.Concurrent;
using System.Net;
using CovidFunctions.Pipeline.Azure.Webhooks;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Azure.Tests.Webhooks;

/// <summary>The webhook tables on a real Azurite, and exactly-once delivery through them to a Kestrel receiver on 127.0.0.1.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class TableWebhookStoreTests(AzuriteFixture azurite)
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task Subscriptions_RoundTrip_PerTenant()
    {
        var storage = new WebhookStorage(azurite.Storage.Tables);
        await storage.EnsureCreatedAsync(None);
        var tenant = AzuriteFixture.NewTenant();
        var subscription = new WebhookSubscription
        {
            Tenant = tenant,
            Id = WebhookIds.NewSubscriptionId(),
            Url = new Uri("https://hooks.example.test/in"),
            EventTypes = [StudyEventTypes.Completed, StudyEventTypes.Failed],
            SecretName = "webhook-x",
            CreatedAt = DateTimeOffset.UtcNow,
        };

        await storage.Subscriptions.CreateAsync(subscription, None);
        await Assert.ThrowsAsync<InvalidOperationException>(() => storage.Subscriptions.CreateAsync(subscription, None));
        var read = await storage.Subscriptions.GetAsync(tenant, subscription.Id, None);
        Assert.NotNull(read);
        Assert.Equal(subscription.Url, read.Url);
        Assert.Equal(subscription.EventTypes, read.EventTypes);
        Assert.True(read.Active);
        Assert.Single(await storage.Subscriptions.ListAsync(tenant, None));
        Assert.Contains(await storage.Subscriptions.ListAsync(null, None), s => s.Id == subscription.Id);
        Assert.True(await storage.Subscriptions.DeleteAsync(tenant, subscription.Id, None));
        Assert.False(await storage.Subscriptions.DeleteAsync(tenant, subscription.Id, None));
        Assert.Null(await storage.Subscriptions.GetAsync(tenant, subscription.Id, None));
    }

    [Fact]
    public async Task Claim_IsInsertIfAbsent_AndAnExpiredPendingClaimIsTakenOverOnce()
    {
        var storage = new WebhookStorage(azurite.Storage.Tables);
        await storage.EnsureCreatedAsync(None);
        var tenant = AzuriteFixture.NewTenant();
        var now = DateTimeOffset.UtcNow;
        var claim = new WebhookDelivery { Tenant = tenant, DeliveryId = "evt_1", SubscriptionId = "wh1", StudyId = "s1", EventType = StudyEventTypes.Completed, ClaimedAt = now, LeaseUntil = now.AddMinutes(10) };

        var results = await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => storage.Deliveries.TryClaimAsync(claim, now, None)));
        Assert.Single(results, r => r is not null);

        // After the lease: of several racing takers exactly one wins.
        var later = now.AddMinutes(11);
        var takeovers = await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => storage.Deliveries.TryClaimAsync(claim with { LeaseUntil = later.AddMinutes(10) }, later, None)));
        Assert.Single(takeovers, r => r is not null);

        await storage.Deliveries.RecordAttemptAsync(new WebhookDeliveryAttempt(tenant, "evt_1", "wh1", 1, later, 503, "retryable-status", "HTTP 503", 12.5), None);
        await storage.Deliveries.RecordAttemptAsync(new WebhookDeliveryAttempt(tenant, "evt_1", "wh1", 2, later, null, "timeout", "no response", 1000), None);
        await storage.Deliveries.CompleteAsync(claim with { Status = WebhookDeliveryStatus.DeadLettered, Attempts = 2, Error = "no response", FinishedAt = later }, None);

        var attempts = await storage.Deliveries.GetAttemptsAsync(tenant, "evt_1", None);
        Assert.Equal(new int?[] { 503, null }, attempts.Select(a => a.StatusCode));
        var dead = await storage.Deliveries.GetAsync(tenant, "evt_1", None);
        Assert.Equal(WebhookDeliveryStatus.DeadLettered, dead!.Status);
        Assert.Single(await storage.Deliveries.ListAsync(tenant, null, None));
        Assert.Null(await storage.Deliveries.TryClaimAsync(claim, later.AddDays(2), None));
    }

    [Fact]
    public async Task Notify_RunTwiceOnAzurite_DeliversOneSignedStudyCompleted()
    {
        var received = new ConcurrentQueue<(string Signature, string Body, string Event)>();
        await using var receiver = await StartReceiverAsync(received);
        var storage = new WebhookStorage(azurite.Storage.Tables);
        await storage.EnsureCreatedAsync(None);
        var tenant = AzuriteFixture.NewTenant();
        var studyId = "s" + Guid.NewGuid().ToString("N")[..24];
        await azurite.Storage.Studies.TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = studyId, Status = StudyStatus.Completed, Label = "covid", ProbabilityCovid = 0.9, ProbabilityCap = 0.06, ProbabilityNormal = 0.04, LesionBurden = 0.2, SliceCount = 40, CreatedAt = DateTimeOffset.UtcNow, CompletedAt = DateTimeOffset.UtcNow }, None);

        var options = new WebhookOptions { AllowLoopbackWebhooks = true, MaxRetries = 2, BaseRetryDelay = TimeSpan.FromMilliseconds(20), UseJitter = false };
        var guard = new WebhookTargetGuard(options);
        var secrets = new InMemoryWebhookSecretStore();
        using var dispatcher = new WebhookDispatcher(guard, storage.Deliveries, options, TimeProvider.System, NullLogger<WebhookDispatcher>.Instance);
        var manager = new WebhookManager(storage.Subscriptions, secrets, storage.Deliveries, guard, dispatcher, options, TimeProvider.System);
        var created = await manager.AddAsync(tenant, receiver.Url, [StudyEventTypes.Completed], null, None);
        var notifier = new WebhookNotifier(azurite.Storage.Studies, storage.Subscriptions, secrets, storage.Deliveries, dispatcher, options, TimeProvider.System, NullLogger<WebhookNotifier>.Instance);

        await Task.WhenAll(notifier.NotifyAsync(tenant, studyId, StudyEventTypes.Completed, None), notifier.NotifyAsync(tenant, studyId, StudyEventTypes.Completed, None));
        await notifier.NotifyAsync(tenant, studyId, StudyEventTypes.Completed, None);

        var (signature, body, eventType) = Assert.Single(received);
        Assert.Equal(StudyEventTypes.Completed, eventType);
        Assert.True(WebhookSignature.Verify(created.Secret, signature, body, DateTimeOffset.UtcNow, TimeSpan.FromMinutes(5)));
        Assert.Contains(studyId, body, StringComparison.Ordinal);
        var delivery = Assert.Single(await storage.Deliveries.ListAsync(tenant, null, None));
        Assert.Equal(WebhookDeliveryStatus.Delivered, delivery.Status);
        Assert.Single(await storage.Deliveries.GetAttemptsAsync(tenant, delivery.DeliveryId, None));
    }

    [Fact]
    public async Task DueAttempt_ClaimedByRacingWorkers_OneWins_AndListDueSeesOnlyDuePendingRecords()
    {
        var storage = new WebhookStorage(azurite.Storage.Tables);
        await storage.EnsureCreatedAsync(None);
        var tenant = AzuriteFixture.NewTenant();
        // Whole seconds (the table keeps times to the tick, Azurite may not), years back so no other test's row is due.
        var now = new DateTimeOffset(2021, 3, 1, 12, 0, 0, TimeSpan.Zero);
        var delivery = new WebhookDelivery { Tenant = tenant, DeliveryId = "evt_due", SubscriptionId = "wh1", StudyId = "s1", EventType = StudyEventTypes.Completed, ClaimedAt = now, LeaseUntil = now.AddHours(50), NextAttemptAt = now.AddMinutes(1), Body = "{\"id\":\"evt_due\"}" };
        var claimed = await storage.Deliveries.TryClaimAsync(delivery, now, None);
        Assert.NotNull(claimed);
        var stored = await storage.Deliveries.TryReplaceAsync(claimed with { Attempts = 1, LastStatusCode = 503 }, None);
        Assert.NotNull(stored);
        await storage.Deliveries.CompleteAsync(delivery with { DeliveryId = "evt_done", Status = WebhookDeliveryStatus.Delivered, NextAttemptAt = null }, None);

        Assert.DoesNotContain(await storage.Deliveries.ListDueAsync(now, 1000, None), d => d.Tenant == tenant);
        var due = Assert.Single(await storage.Deliveries.ListDueAsync(now.AddMinutes(1), 1000, None), d => d.Tenant == tenant);
        Assert.Equal("evt_due", due.DeliveryId);
        Assert.Equal(1, due.Attempts);
        Assert.Equal(503, due.LastStatusCode);
        Assert.Equal(delivery.Body, due.Body);
        Assert.Equal(now.AddMinutes(1), due.NextAttemptAt);

        var claims = await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => storage.Deliveries.TryReplaceAsync(due with { NextAttemptAt = now.AddMinutes(5) }, None)));
        Assert.Single(claims, c => c is not null);
        Assert.DoesNotContain(await storage.Deliveries.ListDueAsync(now.AddMinutes(2), 1000, None), d => d.Tenant == tenant);
    }

    [Fact]
    public async Task Retry_503OnAzurite_TwoConcurrentRetryHandlers_SendEachAttemptOnce_ThenDeadLetter()
    {
        var received = new ConcurrentQueue<(string DeliveryId, string Attempt)>();
        await using var receiver = await StartStatusReceiverAsync(503, received);
        var tenant = AzuriteFixture.NewTenant();
        var studyId = "s" + Guid.NewGuid().ToString("N")[..24];
        await azurite.Storage.Studies.TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = studyId, Status = StudyStatus.Completed, Label = "normal", ProbabilityCovid = 0.1, ProbabilityCap = 0.1, ProbabilityNormal = 0.8, LesionBurden = 0, SliceCount = 40, CreatedAt = DateTimeOffset.UtcNow, CompletedAt = DateTimeOffset.UtcNow }, None);
        var options = new WebhookOptions { AllowLoopbackWebhooks = true, MaxRetries = 3, BaseRetryDelay = TimeSpan.FromSeconds(45), UseJitter = false, AttemptTimeout = TimeSpan.FromSeconds(10) };
        var clock = new ManualClock(DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.ToUnixTimeSeconds()));
        var secrets = new InMemoryWebhookSecretStore();
        var guard = new WebhookTargetGuard(options);

        // Two workers, each with its own table clients (two Function instances, or a Function app and a local host).
        var workers = Enumerable.Range(0, 2).Select(_ =>
        {
            var storage = new WebhookStorage(new global::Azure.Data.Tables.TableServiceClient(azurite.Server.ConnectionString));
            var dispatcher = new WebhookDispatcher(guard, storage.Deliveries, options, clock, NullLogger<WebhookDispatcher>.Instance);
            return (Storage: storage, Dispatcher: dispatcher, Retries: new WebhookRetryHandler(storage.Deliveries, storage.Subscriptions, secrets, dispatcher, options, clock, NullLogger<WebhookRetryHandler>.Instance));
        }).ToList();
        try
        {
            var first = workers[0];
            await first.Storage.EnsureCreatedAsync(None);
            var manager = new WebhookManager(first.Storage.Subscriptions, secrets, first.Storage.Deliveries, guard, first.Dispatcher, options, clock);
            await manager.AddAsync(tenant, receiver.Url, [StudyEventTypes.Completed], null, None);
            var notifier = new WebhookNotifier(azurite.Storage.Studies, first.Storage.Subscriptions, secrets, first.Storage.Deliveries, first.Dispatcher, options, clock, NullLogger<WebhookNotifier>.Instance);

            // The activity: attempt 1, then the delivery is pending with attempt 2 due 45 s later.
            await notifier.NotifyAsync(tenant, studyId, StudyEventTypes.Completed, None);
            Assert.Single(received);
            var pending = Assert.Single(await first.Storage.Deliveries.ListAsync(tenant, null, None));
            Assert.Equal(WebhookDeliveryStatus.Pending, pending.Status);
            Assert.Equal(clock.GetUtcNow() + TimeSpan.FromSeconds(45), pending.NextAttemptAt);

            // Each round the clock skips to the next due time and both workers run at once: one attempt per round.
            for (var round = 0; round < 5; round++)
            {
                var next = (await first.Storage.Deliveries.GetAsync(tenant, pending.DeliveryId, None))!.NextAttemptAt;
                if (next is null)
                {
                    break;
                }

                clock.Now = next.Value;
                await Task.WhenAll(workers.Select(w => w.Retries.RunDueAsync(clock.GetUtcNow(), None)));
            }

            Assert.Equal(["1", "2", "3", "4"], received.Where(r => r.DeliveryId == pending.DeliveryId).Select(r => r.Attempt).Order(StringComparer.Ordinal));
            var dead = await first.Storage.Deliveries.GetAsync(tenant, pending.DeliveryId, None);
            Assert.Equal(WebhookDeliveryStatus.DeadLettered, dead!.Status);
            Assert.Equal(4, dead.Attempts);
            Assert.Equal(503, dead.LastStatusCode);
            Assert.Equal("HTTP 503", dead.Error);
            Assert.Null(dead.NextAttemptAt);
            Assert.Equal(pending.Body, dead.Body);
            Assert.Equal([1, 2, 3, 4], (await first.Storage.Deliveries.GetAttemptsAsync(tenant, pending.DeliveryId, None)).Select(a => a.Attempt));

            // The schedule was 45, 90, 180 s after attempts 1..3; nothing is due after the dead letter.
            clock.Now += TimeSpan.FromDays(2);
            await Task.WhenAll(workers.Select(w => w.Retries.RunDueAsync(clock.GetUtcNow(), None)));
            Assert.Equal(4, received.Count(r => r.DeliveryId == pending.DeliveryId));
        }
        finally
        {
            workers.ForEach(w => w.Dispatcher.Dispose());
        }
    }

    internal static async Task<Receiver> StartStatusReceiverAsync(int status, ConcurrentQueue<(string DeliveryId, string Attempt)> received)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        app.Run(context =>
        {
            received.Enqueue((context.Request.Headers[WebhookSignature.DeliveryHeader].ToString(), context.Request.Headers["X-CovidFunctions-Attempt"].ToString()));
            context.Response.StatusCode = status;
            return Task.CompletedTask;
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new Receiver(app, address + "/hook");
    }

    internal static async Task<Receiver> StartReceiverAsync(ConcurrentQueue<(string, string, string)> received)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        app.Run(async context =>
        {
            using var reader = new StreamReader(context.Request.Body);
            var body = await reader.ReadToEndAsync(context.RequestAborted);
            received.Enqueue((context.Request.Headers[WebhookSignature.SignatureHeader].ToString(), body, context.Request.Headers[WebhookSignature.EventHeader].ToString()));
            context.Response.StatusCode = 200;
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new Receiver(app, address + "/hook");
    }

    internal sealed record Receiver(WebApplication App, string Url) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await App.StopAsync();
            await App.DisposeAsync();
        }
    }
}

/// <summary>A clock the test sets (retries due in minutes are made without waiting).</summary>
internal sealed class ManualClock(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;

    public override DateTimeOffset GetUtcNow() => Now;
}
