using Azure.Data.Tables;
using Azure.Security.KeyVault.Secrets;
using CovidFunctions.Pipeline.Azure.Webhooks;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.TestHelpers;
using CovidFunctions.TestShared;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Azure.Tests.Webhooks;

/// <summary>
/// No secret outlives the subscription that signs with it by more than the sweep's grace: the <c>WebhookSubscriptions</c>
/// table on a real Azurite, the secrets in the local file store and in <see cref="KeyVaultWebhookSecretStore"/> over
/// <see cref="FakeSecretClient"/> (Key Vault's rules: pages of 25, soft delete, <c>created</c> by the vault's clock).
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class WebhookSecretSweepAzuriteTests(AzuriteFixture azurite) : IDisposable
{
    private readonly List<WebhookDispatcher> _dispatchers = [];

    private const string OldSecret = "whsec_old_secret_0123456789abcdef";
    private static readonly CancellationToken None = CancellationToken.None;

    public static TheoryData<string> Stores => ["file", "key-vault"];

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Rotate_LosingItsCompareAndSwapToARemoval_WhileTheStoreFailsDeletes_AnswersTheConflict_AndTheSweepLeavesNoSecretOfTheSubscription(string store)
    {
        using var data = TestData.CreateTempDirectory();
        var clock = new SettableClock(DateTimeOffset.UtcNow);
        var (secrets, failDeletes) = SecretStore(store, data.Path, clock);
        var tenant = AzuriteFixture.NewTenant();
        var removing = await StackAsync(secrets, clock);
        var created = await removing.Manager.AddAsync(tenant, "http://127.0.0.1:9/hook", null, OldSecret, None);
        var id = created.Subscription.Id;
        var keep = await removing.Manager.AddAsync(tenant, "http://127.0.0.1:9/other", null, "whsec_other_secret_0123456789ab", None);

        // The rotation reads the row; the removal runs to its end (row and secrets gone); the rotation stores its secret
        // and its replace finds no row. The vault then fails the rotation's delete of that secret.
        var rotating = await StackAsync(secrets, clock, table => new SubscriptionStoreAfterFirstRead(table, async () =>
        {
            Assert.True(await removing.Manager.RemoveAsync(tenant, id, None));
            failDeletes(true);
        }));
        var conflict = await Assert.ThrowsAsync<WebhookConflictException>(() => rotating.Manager.RotateSecretAsync(tenant, id, null, TimeSpan.FromHours(1), None));
        failDeletes(false);
        Assert.Contains("rotate again", conflict.Message, StringComparison.Ordinal);
        Assert.Null(await removing.Storage.Subscriptions.GetAsync(tenant, id, None));
        var left = Assert.Single(await NamesOfAsync(secrets, tenant, id));

        // Younger than the grace it is kept (it could be a rotation about to write its row); once older, deleted.
        var sweep = new WebhookSecretSweep(removing.Storage.Subscriptions, secrets, clock, NullLogger<WebhookSecretSweep>.Instance);
        Assert.Equal(0, (await sweep.SweepAsync(None)).Deleted);
        clock.Now += WebhookOptions.OrphanedSecretGrace;
        var result = await sweep.SweepAsync(None);
        Assert.Equal(0, result.Failed);
        Assert.Equal(1, result.Deleted);
        Assert.Empty(await NamesOfAsync(secrets, tenant, id));
        Assert.Null(await secrets.GetAsync(left, None));
        Assert.Equal("whsec_other_secret_0123456789ab", await secrets.GetAsync(keep.Subscription.SecretName, None));
    }

    [Fact]
    public async Task KeyVault_Sweep_JudgesEachSecretByTheTenantAndIdItsNameSays_ListsEveryPage_AndLeavesOtherSecretsOfTheVault()
    {
        var clock = new SettableClock(DateTimeOffset.UtcNow);
        var vault = new FakeSecretClient(clock);
        var secrets = new KeyVaultWebhookSecretStore(vault);
        var tenant = AzuriteFixture.NewTenant();
        var stack = await StackAsync(secrets, clock);
        var live = (await stack.Manager.AddAsync(tenant, "http://127.0.0.1:9/hook", null, OldSecret, None)).Subscription;

        // The same subscription id under a tenant whose name extends this one: no row has (that tenant, that id), so
        // its secret is an orphan, while this tenant's, named by its row, is not. And 60 secrets of the
        // de-identification vault's kind (one vault holding both): never of the webhook scheme, never touched.
        var lookalike = WebhookIds.SecretName(tenant + "-x", live.Id);
        await secrets.SetAsync(lookalike, "whsec_lookalike_secret_012345678", None);
        for (var i = 0; i < 60; i++)
        {
            await vault.SetSecretAsync(new KeyVaultSecret($"deid-hmac-key-{i}", "bm90LWEtd2ViaG9vay1zZWNyZXQ="), None);
        }

        clock.Now += WebhookOptions.OrphanedSecretGrace;
        var pages = vault.PagesListed;
        var sweep = new WebhookSecretSweep(stack.Storage.Subscriptions, secrets, clock, NullLogger<WebhookSecretSweep>.Instance);
        var result = await sweep.SweepAsync(None);

        Assert.True(vault.PagesListed - pages >= 3);
        Assert.Equal(0, result.Failed);
        Assert.Contains(lookalike, vault.SoftDeleted);
        Assert.Equal(OldSecret, await secrets.GetAsync(live.SecretName, None));
        Assert.Equal(60, (await secrets.ListNamesAsync("deid-hmac-key-", None)).Count);
    }

    private (IWebhookSecretStore Store, Action<bool> FailDeletes) SecretStore(string kind, string dataDirectory, TimeProvider clock)
    {
        if (kind == "file")
        {
            var file = new FailingDeletes(new FileWebhookSecretStore(dataDirectory, clock));
            return (file, fail => file.Fail = fail);
        }

        var vault = new FakeSecretClient(clock);
        return (new KeyVaultWebhookSecretStore(vault), fail => vault.FailDeletes = fail);
    }

    private static async Task<List<string>> NamesOfAsync(IWebhookSecretStore secrets, string tenant, string id) =>
        [.. (await secrets.ListNamesAsync(WebhookIds.SecretNamePrefix, None)).Where(n => WebhookIds.TryParseSecretName(n, out var t, out var i) && t == tenant && i == id)];

    private async Task<(WebhookStorage Storage, WebhookManager Manager)> StackAsync(IWebhookSecretStore secrets, TimeProvider clock, Func<IWebhookSubscriptionStore, IWebhookSubscriptionStore>? wrap = null)
    {
        var options = new WebhookOptions { AllowLoopbackWebhooks = true };
        var guard = new WebhookTargetGuard(options);
        var storage = new WebhookStorage(new TableServiceClient(azurite.Server.ConnectionString));
        await storage.EnsureCreatedAsync(None);
        var dispatcher = new WebhookDispatcher(guard, storage.Deliveries, options, clock, NullLogger<WebhookDispatcher>.Instance);
        _dispatchers.Add(dispatcher);
        var subscriptions = wrap is null ? storage.Subscriptions : wrap(storage.Subscriptions);
        return (storage, new WebhookManager(subscriptions, secrets, storage.Deliveries, guard, dispatcher, options, clock));
    }

    public void Dispose()
    {
        foreach (var dispatcher in _dispatchers)
        {
            dispatcher.Dispose();
        }
    }

    private sealed class SettableClock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }

    /// <summary>The file store with deletes failing while <see cref="Fail"/>.</summary>
    private sealed class FailingDeletes(IWebhookSecretStore inner) : IWebhookSecretStore
    {
        public bool Fail { get; set; }

        public Task SetAsync(string name, string value, CancellationToken cancellationToken) => inner.SetAsync(name, value, cancellationToken);

        public Task<string?> GetAsync(string name, CancellationToken cancellationToken) => inner.GetAsync(name, cancellationToken);

        public Task DeleteAsync(string name, CancellationToken cancellationToken) =>
            Fail ? throw new IOException("the secret store is unavailable") : inner.DeleteAsync(name, cancellationToken);

        public Task<IReadOnlyList<string>> ListNamesAsync(string prefix, CancellationToken cancellationToken) => inner.ListNamesAsync(prefix, cancellationToken);

        public Task<IReadOnlyList<StoredWebhookSecret>> ListStoredAsync(string prefix, CancellationToken cancellationToken) => inner.ListStoredAsync(prefix, cancellationToken);
    }
}
