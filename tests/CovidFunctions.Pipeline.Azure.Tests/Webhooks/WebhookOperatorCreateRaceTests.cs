using System.Text;
using Azure;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Azure.Webhooks;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Notifications;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Azure.Tests.Webhooks;

/// <summary>
/// The operator's unbounded <c>covidfn webhooks add</c> (<see cref="WebhookManager.AddAsync(string, string, IReadOnlyList{string}?, string?, CancellationToken)"/>,
/// <see cref="IWebhookSubscriptionStore.CreateAsync"/>) against API creates bounded by
/// <see cref="ResultsApi.MaxWebhooksPerTenant"/>, on real Table storage (Azurite). The operator may pass the bound; an
/// API create may not, counting the operator's subscription too when it lands while the API create runs.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class WebhookOperatorCreateRaceTests(AzuriteFixture azurite)
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly int Bound = ResultsApi.MaxWebhooksPerTenant;

    [Fact]
    public async Task An_operator_create_landing_between_an_API_creates_count_and_its_insert_makes_the_API_create_count_again()
    {
        var tenant = AzuriteFixture.NewTenant();
        var (storage, operatorManager) = await NewOperatorAsync();
        await HoldAsync(storage.Subscriptions, tenant, Bound - 1);

        // The API's store on a client that lets the operator's create run once, after the API create counted 24 and
        // before its transaction is sent.
        var interleaved = new BeforeFirstTransaction(azurite.Server.ConnectionString, PipelineNames.WebhookSubscriptionsTable);
        var api = NewApi(new TableWebhookSubscriptionStore(interleaved), storage.Deliveries);
        CreatedWebhook? byOperator = null;
        interleaved.Before = async () => byOperator = await operatorManager.AddAsync(tenant, "http://127.0.0.1:9/operator", null, null, None);

        var response = await api.CreateWebhookAsync(ApiCaller.ForTenants(tenant), new CreateWebhookRequest("http://127.0.0.1:9/api", tenant, null, null), None);

        // Before, the operator's insert left the guard row alone: the API create's transaction still matched the guard it
        // read, and it committed the 26th subscription on its count of 24.
        Assert.True(response.Status == 409, $"{response.Status} {Encoding.UTF8.GetString(response.Body)}");
        Assert.NotNull(byOperator);
        var listed = await storage.Subscriptions.ListAsync(tenant, None);
        Assert.Equal(Bound, listed.Count);
        Assert.Contains(listed, s => s.Id == byOperator.Subscription.Id);
        Assert.DoesNotContain(listed, s => s.Url.AbsolutePath == "/api");
    }

    [Fact]
    public async Task Operator_and_API_creates_at_once_on_a_tenant_holding_24_leave_the_API_at_most_one_and_each_counted_by_the_guard()
    {
        var (storage, operatorManager) = await NewOperatorAsync();
        var api = NewApi(storage.Subscriptions, storage.Deliveries);
        for (var round = 0; round < 3; round++)
        {
            var tenant = AzuriteFixture.NewTenant();
            await HoldAsync(storage.Subscriptions, tenant, Bound - 1);
            var caller = ApiCaller.ForTenants(tenant);

            var apiCreates = Enumerable.Range(0, 5).Select(i => Task.Run(() =>
                api.CreateWebhookAsync(caller, new CreateWebhookRequest($"http://127.0.0.1:9/api{i}", tenant, null, null), None))).ToList();
            var operatorCreate = Task.Run(() => operatorManager.AddAsync(tenant, "http://127.0.0.1:9/operator", null, null, None));
            var responses = await Task.WhenAll(apiCreates);
            await operatorCreate;

            Assert.True(responses.All(r => r.Status is 201 or 409), string.Join(", ", responses.Select(r => $"{r.Status} {Encoding.UTF8.GetString(r.Body)}")));
            var apiCreated = responses.Count(r => r.Status == 201);
            Assert.True(apiCreated <= 1, $"{apiCreated} API creates on a tenant holding {Bound - 1}");
            var listed = await storage.Subscriptions.ListAsync(tenant, None);
            Assert.Equal(Bound - 1 + 1 + apiCreated, listed.Count);

            // Every create replaced the guard, the operator's too: before, it counted only the bounded ones.
            Assert.Equal(listed.Count, await GuardCreatesAsync(tenant));
        }
    }

    [Fact]
    public async Task The_operator_may_still_pass_the_bound_and_a_duplicate_id_is_refused_without_touching_the_guard()
    {
        var tenant = AzuriteFixture.NewTenant();
        var (storage, operatorManager) = await NewOperatorAsync();
        await HoldAsync(storage.Subscriptions, tenant, Bound);

        var created = await operatorManager.AddAsync(tenant, "http://127.0.0.1:9/operator", null, null, None);
        Assert.Equal(Bound + 1, (await storage.Subscriptions.ListAsync(tenant, None)).Count);
        Assert.Equal(Bound + 1, await GuardCreatesAsync(tenant));

        await Assert.ThrowsAsync<InvalidOperationException>(() => storage.Subscriptions.CreateAsync(created.Subscription, None));
        Assert.Equal(Bound + 1, await GuardCreatesAsync(tenant));
        Assert.False(await storage.Subscriptions.TryCreateWithinLimitAsync(Subscription(tenant, 999), Bound, None));
    }

    /// <summary>Makes <paramref name="count"/> subscriptions of <paramref name="tenant"/> as API creates make them (bounded, through the guard).</summary>
    private static async Task HoldAsync(IWebhookSubscriptionStore subscriptions, string tenant, int count)
    {
        for (var i = 0; i < count; i++)
        {
            Assert.True(await subscriptions.TryCreateWithinLimitAsync(Subscription(tenant, i), Bound, None));
        }
    }

    private async Task<long?> GuardCreatesAsync(string tenant)
    {
        var table = azurite.Storage.Tables.GetTableClient(PipelineNames.WebhookSubscriptionsTable);
        var guard = await table.GetEntityIfExistsAsync<TableEntity>(tenant, TableWebhookSubscriptionStore.CreateGuardRowKey, cancellationToken: None);
        return guard.HasValue ? guard.Value!.GetInt64("Creates") : null;
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

    /// <summary>The webhook tables on Azurite and the manager <c>covidfn webhooks add</c> uses (no bound).</summary>
    private async Task<(WebhookStorage Storage, WebhookManager Operator)> NewOperatorAsync()
    {
        var storage = new WebhookStorage(azurite.Storage.Tables);
        await storage.EnsureCreatedAsync(None);
        return (storage, NewManager(storage.Subscriptions, storage.Deliveries));
    }

    private ResultsApi NewApi(IWebhookSubscriptionStore subscriptions, IWebhookDeliveryLog deliveries) =>
        new(azurite.Storage.Studies, azurite.Storage.BlobContainers, new UsageQueries(azurite.Storage.Usage, azurite.Storage.Studies), NewManager(subscriptions, deliveries), new ResultsApiOptions());

    private static WebhookManager NewManager(IWebhookSubscriptionStore subscriptions, IWebhookDeliveryLog deliveries)
    {
        var options = new WebhookOptions { AllowLoopbackWebhooks = true };
        var guard = new WebhookTargetGuard(options);
        var dispatcher = new WebhookDispatcher(guard, deliveries, options, TimeProvider.System, NullLogger<WebhookDispatcher>.Instance);
        return new WebhookManager(subscriptions, new InMemoryWebhookSecretStore(), deliveries, guard, dispatcher, options, TimeProvider.System);
    }

    /// <summary>A real table client that runs <see cref="Before"/> once, before the first transaction it sends.</summary>
    private sealed class BeforeFirstTransaction(string connectionString, string tableName) : TableClient(connectionString, tableName)
    {
        public Func<Task>? Before { get; set; }

        public override async Task<Response<IReadOnlyList<Response>>> SubmitTransactionAsync(IEnumerable<TableTransactionAction> transactionActions, CancellationToken cancellationToken = default)
        {
            if (Before is { } before)
            {
                Before = null;
                await before();
            }

            return await base.SubmitTransactionAsync(transactionActions, cancellationToken);
        }
    }
}
