using System.Text.Json;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.TestShared;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Tests.Notifications;

/// <summary>
/// Removing a subscription leaves no secret of it in the secret store (the real 0600 file here; Key Vault in
/// Pipeline.Azure.Tests), whatever a rotation did meanwhile, and nothing signs with a removed subscription's secret.
/// </summary>
public sealed class WebhookRemovalSecretTests
{
    private const string OldSecret = "whsec_old_secret_0123456789abcdef";
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task Remove_AfterARotationStoredItsSecretAndDiedBeforeReplacingTheRow_DeletesThatSecretToo()
    {
        using var temp = TestHelpers.TestData.CreateTempDirectory();
        using var kit = new WebhookTestKit();
        var secrets = new FileWebhookSecretStore(temp.Path);
        var manager = new WebhookManager(kit.Subscriptions, secrets, kit.Deliveries, kit.Guard, kit.Dispatcher, kit.Options, kit.Clock);
        var created = await manager.AddAsync("alpha", "http://127.0.0.1:9/hook", null, OldSecret, None);
        var id = created.Subscription.Id;

        // What a rotation leaves when its process dies between storing the new secret and replacing the row: a secret
        // under a rotated name that no row names.
        var pending = WebhookIds.RotatedSecretName("alpha", id);
        await secrets.SetAsync(pending, "whsec_pending_rotation_0123456789", None);

        Assert.True(await manager.RemoveAsync("alpha", id, None));

        Assert.Empty(SecretNames(secrets));
    }

    [Fact]
    public async Task Remove_ReadingTheRowJustBeforeARotationReplacedIt_LeavesNoSecretOfTheSubscription()
    {
        using var temp = TestHelpers.TestData.CreateTempDirectory();
        using var kit = new WebhookTestKit();
        var secrets = new FileWebhookSecretStore(temp.Path);
        var rotating = new WebhookManager(kit.Subscriptions, secrets, kit.Deliveries, kit.Guard, kit.Dispatcher, kit.Options, kit.Clock);
        var created = await rotating.AddAsync("alpha", "http://127.0.0.1:9/hook", null, OldSecret, None);
        var id = created.Subscription.Id;
        RotatedWebhookSecret? rotated = null;

        // The removal reads the row, then a rotation runs to its end, then the removal deletes the row.
        var removing = new WebhookManager(
            new SubscriptionStoreAfterFirstRead(kit.Subscriptions, async () => rotated = await rotating.RotateSecretAsync("alpha", id, null, TimeSpan.FromHours(1), None)),
            secrets, kit.Deliveries, kit.Guard, kit.Dispatcher, kit.Options, kit.Clock);
        Assert.True(await removing.RemoveAsync("alpha", id, None));

        Assert.NotNull(rotated);
        Assert.Null(await kit.Subscriptions.GetAsync("alpha", id, None));
        Assert.Empty(SecretNames(secrets));
    }

    [Fact]
    public async Task Remove_RunAgainAfterItsSecretDeleteFailed_DeletesWhatTheFirstRunLeft_AndTheCliWayFindsItByIdAlone()
    {
        using var temp = TestHelpers.TestData.CreateTempDirectory();
        using var kit = new WebhookTestKit();
        var file = new FileWebhookSecretStore(temp.Path);
        var failing = new FailingDeleteStore(file);
        var manager = new WebhookManager(kit.Subscriptions, failing, kit.Deliveries, kit.Guard, kit.Dispatcher, kit.Options, kit.Clock);
        var created = await manager.AddAsync("alpha", "http://127.0.0.1:9/hook", null, OldSecret, None);
        var other = await manager.AddAsync("alpha", "http://127.0.0.1:9/other", null, "whsec_other_secret_0123456789ab", None);
        var rotated = await manager.RotateSecretAsync("alpha", created.Subscription.Id, null, TimeSpan.FromHours(1), None);

        // Key Vault answers 503 to the first delete: the row is gone, both secrets stay.
        failing.FailNext = true;
        await Assert.ThrowsAsync<IOException>(() => manager.RemoveAsync("alpha", created.Subscription.Id, None));
        Assert.Null(await kit.Subscriptions.GetAsync("alpha", created.Subscription.Id, None));
        Assert.Equal(3, SecretNames(file).Count);

        // The row is gone, so `covidfn webhooks remove ID` (no --tenant) finds no subscription; it deletes what is left
        // of it by its id, and never another subscription's secret.
        Assert.Equal(2, await manager.DeleteLeftoverSecretsAsync(created.Subscription.Id, None));
        Assert.Equal([other.Subscription.SecretName], SecretNames(file));
        Assert.Equal(0, await manager.DeleteLeftoverSecretsAsync(other.Subscription.Id, None));
        Assert.NotEqual(created.Subscription.SecretName, rotated.Subscription.SecretName);
    }

    [Fact]
    public async Task Notify_WithASubscriptionListedBeforeItWasRemoved_SignsNothing_EvenWhileItsSecretIsStillStored()
    {
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(200));
        using var kit = new WebhookTestKit();
        var created = await kit.SubscribeAsync(receiver.Url);
        var listed = Assert.Single(await kit.Subscriptions.ListAsync(WebhookTestKit.Tenant, None));

        // The removal deleted the row and had not yet deleted the secret (or died there): the secret is still stored.
        Assert.True(await kit.Subscriptions.DeleteAsync(WebhookTestKit.Tenant, created.Subscription.Id, None));
        Assert.NotNull(await kit.Secrets.GetAsync(created.Subscription.SecretName, None));

        var delivery = await kit.Notifier.DeliverAsync(listed, WebhookTestKit.CompletedStudy(), StudyEventTypes.Completed, None);

        Assert.Empty(receiver.Received);
        Assert.NotNull(delivery);
        Assert.Equal(WebhookDeliveryStatus.DeadLettered, delivery.Status);
        Assert.Contains("removed", delivery.Error, StringComparison.Ordinal);

        var test = await Assert.ThrowsAsync<InvalidOperationException>(() => kit.Manager.TestAsync(listed, None));
        Assert.Contains("removed", test.Message, StringComparison.Ordinal);
        Assert.Empty(receiver.Received);
    }

    [Fact]
    public async Task Retry_WithTheRowRemovedBetweenItsReadAndTheSigning_SignsNothing()
    {
        await using var receiver = await WebhookReceiver.StartAsync(i => new ReceiverReply(i == 0 ? 503 : 200));
        using var kit = new WebhookTestKit();
        var created = await kit.SubscribeAsync(receiver.Url);
        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);
        Assert.Single(receiver.Received);

        // The retry handler reads the row; the removal deletes it before the handler reads the secret.
        var handler = new WebhookRetryHandler(
            kit.Deliveries,
            new SubscriptionStoreAfterFirstRead(kit.Subscriptions, () => kit.Subscriptions.DeleteAsync(WebhookTestKit.Tenant, created.Subscription.Id, None)),
            kit.Secrets, kit.Dispatcher, kit.Options, kit.Clock, NullLogger<WebhookRetryHandler>.Instance);
        var due = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None));
        kit.Clock.AdvanceTo(due.NextAttemptAt!.Value);
        var dead = await handler.RetryAsync(due, kit.Clock.GetUtcNow(), None);

        Assert.Single(receiver.Received);
        Assert.NotNull(dead);
        Assert.Equal(WebhookDeliveryStatus.DeadLettered, dead.Status);
        Assert.Contains("removed", dead.Error, StringComparison.Ordinal);
    }

    private static List<string> SecretNames(FileWebhookSecretStore secrets) =>
        File.Exists(secrets.FilePath)
            ? [.. JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(secrets.FilePath))!.Keys
                .Where(k => !k.StartsWith(FileWebhookSecretStore.StoredAtPrefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal)]
            : [];

    /// <summary>A secret store whose next delete fails once (Key Vault unavailable for a moment).</summary>
    private sealed class FailingDeleteStore(IWebhookSecretStore inner) : IWebhookSecretStore
    {
        public bool FailNext { get; set; }

        public Task SetAsync(string name, string value, CancellationToken cancellationToken) => inner.SetAsync(name, value, cancellationToken);

        public Task<string?> GetAsync(string name, CancellationToken cancellationToken) => inner.GetAsync(name, cancellationToken);

        public Task DeleteAsync(string name, CancellationToken cancellationToken)
        {
            if (FailNext)
            {
                FailNext = false;
                throw new IOException("the secret store is unavailable");
            }

            return inner.DeleteAsync(name, cancellationToken);
        }

        public Task<IReadOnlyList<string>> ListNamesAsync(string prefix, CancellationToken cancellationToken) => inner.ListNamesAsync(prefix, cancellationToken);

        public Task<IReadOnlyList<StoredWebhookSecret>> ListStoredAsync(string prefix, CancellationToken cancellationToken) => inner.ListStoredAsync(prefix, cancellationToken);
    }
}
