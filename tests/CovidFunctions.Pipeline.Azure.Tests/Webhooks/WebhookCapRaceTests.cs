using System.Text;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Azure.Webhooks;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Notifications;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Azure.Tests.Webhooks;

/// <summary>
/// The per-tenant subscription bound (<see cref="ResultsApi.MaxWebhooksPerTenant"/>) against creates racing each other
/// on real Table storage (Azurite): a count taken before the insert let every racer see room.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class WebhookCapRaceTests(AzuriteFixture azurite)
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task ConcurrentApiCreates_NeverPassTheTenantBound()
    {
        var (storage, manager, api) = await NewApiAsync();
        var tenant = AzuriteFixture.NewTenant();
        var held = ResultsApi.MaxWebhooksPerTenant - 5;
        for (var i = 0; i < held; i++)
        {
            await manager.AddAsync(tenant, $"http://127.0.0.1:9/held{i}", null, null, None);
        }

        // Ten at once: the create rate limit's whole window, all past the first count.
        var caller = ApiCaller.ForTenants(tenant);
        var responses = await Task.WhenAll(Enumerable.Range(0, ResultsApi.MaxWebhookCreatesPerWindow).Select(i =>
            Task.Run(() => api.CreateWebhookAsync(caller, new CreateWebhookRequest($"http://127.0.0.1:9/race{i}", tenant, null, null), None))));

        var statuses = responses.Select(r => r.Status).ToList();
        Assert.True(statuses.All(s => s is 201 or 409), string.Join(", ", responses.Select(r => $"{r.Status} {Encoding.UTF8.GetString(r.Body)}")));
        Assert.Equal(5, statuses.Count(s => s == 201));
        var listed = await storage.Subscriptions.ListAsync(tenant, None);
        Assert.Equal(ResultsApi.MaxWebhooksPerTenant, listed.Count);

        // The guard row is no subscription: not returned, not deleted, not listed.
        Assert.Null(await storage.Subscriptions.GetAsync(tenant, TableWebhookSubscriptionStore.CreateGuardRowKey, None));
        Assert.False(await storage.Subscriptions.DeleteAsync(tenant, TableWebhookSubscriptionStore.CreateGuardRowKey, None));
        Assert.DoesNotContain(await storage.Subscriptions.ListAsync(null, None), s => s.Id.StartsWith('~'));
    }

    [Fact]
    public async Task BoundedStoreCreates_OfManyRacers_InsertExactlyUpToTheBound_AndDeletesMakeRoomAgain()
    {
        var (storage, _, _) = await NewApiAsync();
        var tenant = AzuriteFixture.NewTenant();
        const int Bound = 6;

        var results = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => Task.Run(() =>
            storage.Subscriptions.TryCreateWithinLimitAsync(Subscription(tenant, i), Bound, None))));

        Assert.Equal(Bound, results.Count(r => r));
        var listed = await storage.Subscriptions.ListAsync(tenant, None);
        Assert.Equal(Bound, listed.Count);

        Assert.True(await storage.Subscriptions.DeleteAsync(tenant, listed[0].Id, None));
        Assert.True(await storage.Subscriptions.TryCreateWithinLimitAsync(Subscription(tenant, 100), Bound, None));
        Assert.False(await storage.Subscriptions.TryCreateWithinLimitAsync(Subscription(tenant, 101), Bound, None));
        Assert.Equal(Bound, (await storage.Subscriptions.ListAsync(tenant, None)).Count);
    }

    private static WebhookSubscription Subscription(string tenant, int n) => new()
    {
        Tenant = tenant,
        Id = WebhookIds.NewSubscriptionId(),
        Url = new Uri($"https://hooks.example.test/{n}"),
        EventTypes = [StudyEventTypes.Completed],
        SecretName = $"webhook-{tenant}-{n}",
        CreatedAt = DateTimeOffset.UtcNow,
    };

    private async Task<(WebhookStorage Storage, WebhookManager Manager, ResultsApi Api)> NewApiAsync()
    {
        var storage = azurite.Storage;
        var webhookStorage = new WebhookStorage(storage.Tables);
        await webhookStorage.EnsureCreatedAsync(None);
        var options = new WebhookOptions { AllowLoopbackWebhooks = true };
        var guard = new WebhookTargetGuard(options);
        var dispatcher = new WebhookDispatcher(guard, webhookStorage.Deliveries, options, TimeProvider.System, NullLogger<WebhookDispatcher>.Instance);
        var manager = new WebhookManager(webhookStorage.Subscriptions, new InMemoryWebhookSecretStore(), webhookStorage.Deliveries, guard, dispatcher, options, TimeProvider.System);
        var api = new ResultsApi(storage.Studies, storage.BlobContainers, new UsageQueries(storage.Usage, storage.Studies), manager, new ResultsApiOptions());
        return (webhookStorage, manager, api);
    }
}
