using Azure;
using Azure.Data.Tables;
using Azure.Security.KeyVault.Secrets;
using CovidFunctions.Pipeline.Azure.Webhooks;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.TestHelpers;
using CovidFunctions.TestShared;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Azure.Tests.Webhooks;

/// <summary>
/// A subscription removed while its secret is rotated leaves no secret of it behind: the <c>WebhookSubscriptions</c>
/// table on a real Azurite, the secrets in the real local store (<see cref="FileWebhookSecretStore"/>, what
/// <c>covidfn up</c> uses) and in <see cref="KeyVaultWebhookSecretStore"/> over a <see cref="SecretClient"/> seam that
/// keeps Key Vault's rules (no emulator exists: names listed in pages of 25, a deleted name soft-deleted and refused
/// when set again, 404 for a missing secret).
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class WebhookRemovalDuringRotationTests(AzuriteFixture azurite)
{
    private const string OldSecret = "whsec_old_secret_0123456789abcdef";
    private static readonly CancellationToken None = CancellationToken.None;

    public static TheoryData<string> Stores => ["file", "key-vault"];

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Remove_ReadingTheRowJustBeforeARotationReplacedIt_LeavesNoSecretOfTheSubscription(string store)
    {
        using var data = TestData.CreateTempDirectory();
        var (secrets, names) = SecretStore(store, data.Path);
        var tenant = AzuriteFixture.NewTenant();
        using var rotating = await Stack.CreateAsync(azurite, secrets);
        var created = await rotating.Manager.AddAsync(tenant, "http://127.0.0.1:9/hook", null, OldSecret, None);
        var id = created.Subscription.Id;
        var keep = await rotating.Manager.AddAsync(tenant, "http://127.0.0.1:9/other", null, "whsec_other_secret_0123456789ab", None);
        RotatedWebhookSecret? rotated = null;

        // Another instance removes: it reads the row, the rotation runs to its end, then it deletes the row.
        using var removing = await Stack.CreateAsync(
            azurite,
            secrets,
            table => new SubscriptionStoreAfterFirstRead(table, async () => rotated = await rotating.Manager.RotateSecretAsync(tenant, id, null, TimeSpan.FromHours(1), None)));
        Assert.True(await removing.Manager.RemoveAsync(tenant, id, None));

        Assert.NotNull(rotated);
        Assert.Null(await rotating.Storage.Subscriptions.GetAsync(tenant, id, None));
        Assert.Empty(await names(tenant, id));
        Assert.Equal("whsec_other_secret_0123456789ab", await secrets.GetAsync(keep.Subscription.SecretName, None));
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task RemoveAndRotate_AtOnce_OnSeparateInstances_LeaveNoSecretOfTheSubscription(string store)
    {
        using var data = TestData.CreateTempDirectory();
        var (secrets, names) = SecretStore(store, data.Path);
        var tenant = AzuriteFixture.NewTenant();
        using var first = await Stack.CreateAsync(azurite, secrets);
        using var second = await Stack.CreateAsync(azurite, secrets);
        using var third = await Stack.CreateAsync(azurite, secrets);

        for (var round = 0; round < 6; round++)
        {
            var id = (await first.Manager.AddAsync(tenant, "http://127.0.0.1:9/hook", null, OldSecret, None)).Subscription.Id;
            await first.Manager.RotateSecretAsync(tenant, id, null, TimeSpan.FromHours(1), None);

            // Two rotations and a removal race; a rotation may win, lose (409) or find the row gone (404).
            await Task.WhenAll(
                Task.Run(() => RotateIgnoringLossAsync(second.Manager, tenant, id)),
                Task.Run(() => RotateIgnoringLossAsync(third.Manager, tenant, id)),
                Task.Run(() => first.Manager.RemoveAsync(tenant, id, None)));

            Assert.Null(await first.Storage.Subscriptions.GetAsync(tenant, id, None));
            Assert.Empty(await names(tenant, id));
        }
    }

    [Fact]
    public async Task KeyVault_RemoveAfterARotationDiedBeforeReplacingTheRow_DeletesItsSecret_AndListsEveryPage()
    {
        var vault = new FakeSecretClient();
        var secrets = new KeyVaultWebhookSecretStore(vault);
        var tenant = AzuriteFixture.NewTenant();
        using var stack = await Stack.CreateAsync(azurite, secrets);

        // 60 other secrets: the vault lists them in 3 pages, the subscription's on the last.
        for (var i = 0; i < 60; i++)
        {
            await secrets.SetAsync($"webhook-{tenant}-{WebhookIds.NewSubscriptionId()}", "whsec_unrelated_0123456789abcdef", None);
        }

        var created = await stack.Manager.AddAsync(tenant, "http://127.0.0.1:9/hook", null, OldSecret, None);
        var id = created.Subscription.Id;
        var died = WebhookIds.RotatedSecretName(tenant, id);
        await secrets.SetAsync(died, "whsec_pending_rotation_0123456789", None);

        Assert.True(await stack.Manager.RemoveAsync(tenant, id, None));

        Assert.Null(await secrets.GetAsync(created.Subscription.SecretName, None));
        Assert.Null(await secrets.GetAsync(died, None));
        Assert.Contains(died, vault.SoftDeleted);
        Assert.Equal(60, (await secrets.ListNamesAsync(WebhookIds.SecretNamePrefix, None)).Count);
        Assert.True(vault.PagesListed >= 3);
    }

    private (IWebhookSecretStore Store, Func<string, string, Task<IReadOnlyList<string>>> Names) SecretStore(string kind, string dataDirectory)
    {
        IWebhookSecretStore store = kind == "file" ? new FileWebhookSecretStore(dataDirectory) : new KeyVaultWebhookSecretStore(new FakeSecretClient());
        return (store, async (tenant, id) => [.. (await store.ListNamesAsync(WebhookIds.SecretNamePrefix, None))
            .Where(n => WebhookIds.TryParseSecretName(n, out var t, out var i) && t == tenant && i == id)]);
    }

    private static async Task RotateIgnoringLossAsync(WebhookManager manager, string tenant, string id)
    {
        try
        {
            await manager.RotateSecretAsync(tenant, id, null, TimeSpan.FromHours(1), None);
        }
        catch (WebhookConflictException)
        {
            // Lost to the other rotation, or the removal deleted the row after this rotation read it.
        }
        catch (KeyNotFoundException)
        {
            // The removal came first.
        }
    }

    /// <summary>One instance of the app: its own table client, the shared secret store.</summary>
    private sealed class Stack : IDisposable
    {
        private Stack(WebhookStorage storage, WebhookDispatcher dispatcher, WebhookManager manager)
        {
            Storage = storage;
            Dispatcher = dispatcher;
            Manager = manager;
        }

        public WebhookStorage Storage { get; }

        public WebhookDispatcher Dispatcher { get; }

        public WebhookManager Manager { get; }

        public static async Task<Stack> CreateAsync(AzuriteFixture azurite, IWebhookSecretStore secrets, Func<IWebhookSubscriptionStore, IWebhookSubscriptionStore>? wrap = null)
        {
            var options = new WebhookOptions { AllowLoopbackWebhooks = true };
            var guard = new WebhookTargetGuard(options);
            var storage = new WebhookStorage(new TableServiceClient(azurite.Server.ConnectionString));
            await storage.EnsureCreatedAsync(None);
            var dispatcher = new WebhookDispatcher(guard, storage.Deliveries, options, TimeProvider.System, NullLogger<WebhookDispatcher>.Instance);
            var subscriptions = wrap is null ? storage.Subscriptions : wrap(storage.Subscriptions);
            return new Stack(storage, dispatcher, new WebhookManager(subscriptions, secrets, storage.Deliveries, guard, dispatcher, options, TimeProvider.System));
        }

        public void Dispose() => Dispatcher.Dispose();
    }
}
