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

    private static async Task<Receiver> StartReceiverAsync(ConcurrentQueue<(string, string, string)> received)
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

    private sealed record Receiver(WebApplication App, string Url) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await App.StopAsync();
            await App.DisposeAsync();
        }
    }
}
