using System.Text.Json;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Azure.Webhooks;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Azure.Tests.Webhooks;

/// <summary>
/// Secret rotation on the stores <c>covidfn up</c> uses: the <c>WebhookSubscriptions</c> table on a real Azurite (the
/// rotation's ETag-guarded replace) and the real 0600 secret file.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class WebhookSecretRotationAzuriteTests(AzuriteFixture azurite)
{
    private const string OldSecret = "whsec_old_secret_0123456789abcdef";
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task RotatedRow_RoundTripsItsPreviousSecretAndOverlap_AndAStaleETagLoses()
    {
        var storage = new WebhookStorage(azurite.Storage.Tables);
        await storage.EnsureCreatedAsync(None);
        var tenant = AzuriteFixture.NewTenant();
        var id = WebhookIds.NewSubscriptionId();
        var createdAt = DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        await storage.Subscriptions.CreateAsync(new WebhookSubscription { Tenant = tenant, Id = id, Url = new Uri("https://hooks.example.test/in"), EventTypes = [StudyEventTypes.Completed], SecretName = "webhook-a", CreatedAt = createdAt }, None);

        var read = (await storage.Subscriptions.GetAsync(tenant, id, None))!;
        Assert.False(string.IsNullOrEmpty(read.ETag));
        Assert.Null(read.PreviousSecretName);
        Assert.Null(read.SecretRotatedAt);

        var rotated = read with { SecretName = "webhook-b", PreviousSecretName = "webhook-a", PreviousSecretExpiresAt = createdAt.AddHours(24), SecretRotatedAt = createdAt };
        var stored = await storage.Subscriptions.TryReplaceAsync(rotated, None);
        Assert.NotNull(stored);
        Assert.NotEqual(read.ETag, stored.ETag);
        Assert.Null(await storage.Subscriptions.TryReplaceAsync(rotated, None));

        var again = (await storage.Subscriptions.GetAsync(tenant, id, None))!;
        Assert.Equal("webhook-b", again.SecretName);
        Assert.Equal("webhook-a", again.PreviousSecretName);
        Assert.Equal(createdAt.AddHours(24), again.PreviousSecretExpiresAt);
        Assert.Equal(createdAt, again.SecretRotatedAt);
        Assert.Equal(stored.ETag, again.ETag);
        Assert.Equal(["webhook-b", "webhook-a"], again.SigningSecretNames(createdAt.AddHours(23)));
        Assert.Equal(["webhook-b"], again.SigningSecretNames(createdAt.AddHours(24)));

        Assert.True(await storage.Subscriptions.DeleteAsync(tenant, id, None));
        Assert.Null(await storage.Subscriptions.TryReplaceAsync(again, None));
    }

    [Fact]
    public async Task ConcurrentRotations_OnAzurite_OneRowWins_EachLoserConflicts_AndTheSecretFileHoldsOnlyWhatTheRowNames()
    {
        using var data = TestData.CreateTempDirectory();
        var secrets = new FileWebhookSecretStore(data.Path);
        var options = new WebhookOptions { AllowLoopbackWebhooks = true };
        var guard = new WebhookTargetGuard(options);
        var tenant = AzuriteFixture.NewTenant();

        // Each rotation on its own table client (separate instances of the app, or the CLI beside covidfn up).
        var managers = Enumerable.Range(0, 8).Select(_ =>
        {
            var storage = new WebhookStorage(new TableServiceClient(azurite.Server.ConnectionString));
            var dispatcher = new WebhookDispatcher(guard, storage.Deliveries, options, TimeProvider.System, NullLogger<WebhookDispatcher>.Instance);
            return (Storage: storage, Dispatcher: dispatcher, Manager: new WebhookManager(storage.Subscriptions, secrets, storage.Deliveries, guard, dispatcher, options, TimeProvider.System));
        }).ToList();
        try
        {
            await managers[0].Storage.EnsureCreatedAsync(None);
            var created = await managers[0].Manager.AddAsync(tenant, "http://127.0.0.1:9/hook", null, OldSecret, None);
            var id = created.Subscription.Id;

            var outcomes = await Task.WhenAll(managers.Select(m => Task.Run(async () =>
            {
                try
                {
                    return (Rotated: await m.Manager.RotateSecretAsync(tenant, id, null, TimeSpan.FromHours(1), None), Conflict: (WebhookConflictException?)null);
                }
                catch (WebhookConflictException ex)
                {
                    return (Rotated: (RotatedWebhookSecret?)null, Conflict: ex);
                }
            })));

            var winners = outcomes.Where(o => o.Rotated is not null).Select(o => o.Rotated!).ToList();
            Assert.NotEmpty(winners);
            Assert.Equal(8, winners.Count + outcomes.Count(o => o.Conflict is not null));

            // The row names one winner's secret and the one it replaced; the file holds exactly those two of this
            // subscription: every loser deleted its own secret, every winner the secret its overlap ended.
            var row = (await managers[0].Storage.Subscriptions.GetAsync(tenant, id, None))!;
            var current = Assert.Single(winners, w => w.Subscription.SecretName == row.SecretName);
            Assert.Equal(current.Secret, await secrets.GetAsync(row.SecretName, None));
            Assert.NotNull(row.PreviousSecretName);
            Assert.NotNull(await secrets.GetAsync(row.PreviousSecretName, None));
            var names = JsonSerializer.Deserialize<Dictionary<string, string>>(await File.ReadAllTextAsync(secrets.FilePath))!.Keys
                .Where(n => n.StartsWith($"webhook-{tenant}-{id}", StringComparison.Ordinal))
                .Order(StringComparer.Ordinal);
            Assert.Equal(new[] { row.SecretName, row.PreviousSecretName }.Order(StringComparer.Ordinal), names);
        }
        finally
        {
            foreach (var m in managers)
            {
                m.Dispatcher.Dispose();
            }
        }
    }
}
