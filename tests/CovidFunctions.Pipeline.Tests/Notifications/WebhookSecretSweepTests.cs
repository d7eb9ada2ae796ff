using System.Text.Json;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.TestShared;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Tests.Notifications;

/// <summary>
/// Secrets no subscription signs with do not stay in the secret store (the real 0600 file here; Key Vault on Azurite in
/// Pipeline.Azure.Tests): a rotation that loses its compare-and-swap deletes its secret (and still answers the conflict
/// when the store fails that delete), one whose secret took too long to store writes nothing, and the sweep deletes,
/// once an hour old, what a writer left (died, lost, failed to delete) and replaced secrets whose overlap ended.
/// </summary>
public sealed class WebhookSecretSweepTests
{
    private const string OldSecret = "whsec_old_secret_0123456789abcdef";
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task Rotate_LosingItsCompareAndSwap_WithTheStoreFailingTheDelete_StillAnswersTheConflict_AndTheSweepDeletesTheSecretAnHourLater()
    {
        using var temp = TestHelpers.TestData.CreateTempDirectory();
        using var kit = new WebhookTestKit();
        var file = new FileWebhookSecretStore(temp.Path, kit.Clock);
        var secrets = new FailingDeleteStore(file);
        var winning = new WebhookManager(kit.Subscriptions, secrets, kit.Deliveries, kit.Guard, kit.Dispatcher, kit.Options, kit.Clock);
        var id = (await winning.AddAsync("alpha", "http://127.0.0.1:9/hook", null, OldSecret, None)).Subscription.Id;
        RotatedWebhookSecret? winner = null;

        // The losing rotation reads the row, another rotation runs to its end, then the loser stores its secret and
        // loses the compare-and-swap; the store answers its delete with an error (Key Vault unavailable for a moment).
        var log = new RecordingLogger<WebhookManager>();
        var losing = new WebhookManager(
            new SubscriptionStoreAfterFirstRead(kit.Subscriptions, async () => winner = await winning.RotateSecretAsync("alpha", id, null, TimeSpan.FromHours(1), None)),
            secrets, kit.Deliveries, kit.Guard, kit.Dispatcher, kit.Options, kit.Clock, log);
        secrets.FailDeletes = true;
        var conflict = await Assert.ThrowsAsync<WebhookConflictException>(() => losing.RotateSecretAsync("alpha", id, "whsec_loser_secret_0123456789ab", TimeSpan.FromHours(1), None));
        secrets.FailDeletes = false;

        Assert.Contains("rotate again", conflict.Message, StringComparison.Ordinal);
        Assert.NotNull(winner);
        var row = (await kit.Subscriptions.GetAsync("alpha", id, None))!;
        Assert.Equal(winner.Subscription.SecretName, row.SecretName);
        var orphan = Assert.Single(SecretNames(file), n => n != row.SecretName && n != row.PreviousSecretName);
        var warning = Assert.Single(log.Messages, e => e.Level == LogLevel.Warning);
        Assert.Contains(orphan, warning.Text, StringComparison.Ordinal);
        Assert.DoesNotContain("whsec_", warning.Text, StringComparison.Ordinal);

        // Under an hour old it may still be a rotation about to write its row: kept. An hour later it is deleted, the
        // secrets the row names are not.
        var sweep = Sweep(kit, file);
        Assert.Equal(new WebhookSecretSweepResult(3, 0, 0), await sweep.SweepAsync(None));
        kit.Clock.Advance(WebhookOptions.OrphanedSecretGrace);
        Assert.Equal(new WebhookSecretSweepResult(3, 1, 0), await sweep.SweepAsync(None));
        Assert.Equal(new[] { row.SecretName, row.PreviousSecretName! }.Order(StringComparer.Ordinal), SecretNames(file));
        Assert.Equal(winner.Secret, await file.GetAsync(row.SecretName, None));
    }

    [Fact]
    public async Task Rotate_WhoseSecretTookLongerThanTheRowWriteMayWait_WritesNothing_AndDeletesItsSecret()
    {
        using var temp = TestHelpers.TestData.CreateTempDirectory();
        using var kit = new WebhookTestKit();
        var file = new FileWebhookSecretStore(temp.Path, kit.Clock);
        var slow = new FailingDeleteStore(file);
        var manager = new WebhookManager(kit.Subscriptions, slow, kit.Deliveries, kit.Guard, kit.Dispatcher, kit.Options, kit.Clock);
        var created = await manager.AddAsync("alpha", "http://127.0.0.1:9/hook", null, OldSecret, None);
        var before = (await kit.Subscriptions.GetAsync("alpha", created.Subscription.Id, None))!;

        // The vault took 16 minutes to answer the set: the sweep may already count that secret as orphaned (it deletes
        // them an hour old; the row write has the other 45 minutes), so the rotation must not name it in the row now.
        slow.OnSet = () => kit.Clock.Advance(WebhookOptions.SecretToRowLimit + TimeSpan.FromMinutes(1));
        var conflict = await Assert.ThrowsAsync<WebhookConflictException>(() => manager.RotateSecretAsync("alpha", created.Subscription.Id, null, TimeSpan.FromHours(1), None));
        Assert.Contains("rotate again", conflict.Message, StringComparison.Ordinal);
        var after = (await kit.Subscriptions.GetAsync("alpha", created.Subscription.Id, None))!;
        Assert.Equal((before.SecretName, before.PreviousSecretName, before.ETag), (after.SecretName, after.PreviousSecretName, after.ETag));
        Assert.Equal([created.Subscription.SecretName], SecretNames(file));

        // The same bound for a create (its row is written after its secret too).
        var create = await Assert.ThrowsAsync<WebhookConflictException>(() => manager.AddAsync("alpha", "http://127.0.0.1:9/other", null, null, None));
        Assert.Contains("create again", create.Message, StringComparison.Ordinal);
        Assert.Single(await kit.Subscriptions.ListAsync("alpha", None));
        Assert.Equal([created.Subscription.SecretName], SecretNames(file));
    }

    [Fact]
    public async Task Sweep_DeletesOnlySecretsNoRowNames_OnceAnHourOld_OfTheNamingScheme_AndReplacedSecretsAnHourAfterTheirOverlap()
    {
        using var temp = TestHelpers.TestData.CreateTempDirectory();
        using var kit = new WebhookTestKit();
        var file = new FileWebhookSecretStore(temp.Path, kit.Clock);
        var manager = new WebhookManager(kit.Subscriptions, file, kit.Deliveries, kit.Guard, kit.Dispatcher, kit.Options, kit.Clock);
        var alpha = (await manager.AddAsync("alpha", "http://127.0.0.1:9/hook", null, OldSecret, None)).Subscription;
        var rotated = (await manager.RotateSecretAsync("alpha", alpha.Id, null, TimeSpan.FromHours(2), None)).Subscription;
        var beta = (await manager.AddAsync("beta", "http://127.0.0.1:9/beta", null, "whsec_beta_secret_0123456789abc", None)).Subscription;

        // What writers left: a rotation of alpha's subscription that died before its row write, a create in beta that
        // died before its insert, and a secret under alpha's id in another tenant whose row does not exist (an orphan
        // is judged by the tenant and id its name says). Names of no webhook scheme are never touched.
        var diedRotating = WebhookIds.RotatedSecretName("alpha", alpha.Id);
        var diedCreating = WebhookIds.SecretName("beta", WebhookIds.NewSubscriptionId());
        var otherTenant = WebhookIds.SecretName("alpha-x", alpha.Id);
        foreach (var name in new[] { diedRotating, diedCreating, otherTenant, "webhook-not-of-the-scheme", "deid-hmac-key" })
        {
            await file.SetAsync(name, "whsec_left_behind_0123456789abcd", None);
        }

        var sweep = Sweep(kit, file);
        Assert.Equal(new WebhookSecretSweepResult(6, 0, 0), await sweep.SweepAsync(None));

        kit.Clock.Advance(WebhookOptions.OrphanedSecretGrace);
        Assert.Equal(new WebhookSecretSweepResult(6, 3, 0), await sweep.SweepAsync(None));
        Assert.Equal(
            new[] { rotated.SecretName, alpha.SecretName, beta.SecretName, "deid-hmac-key", "webhook-not-of-the-scheme" }.Order(StringComparer.Ordinal),
            AllNames(file));

        // Alpha's replaced secret signs until its overlap ends (2 h after the rotation) and is kept an hour past that
        // (a delivery that read the names just before the end); then it is deleted and the current one still signs.
        kit.Clock.Advance(TimeSpan.FromHours(1) + WebhookOptions.OrphanedSecretGrace - TimeSpan.FromMinutes(1));
        Assert.Equal(new WebhookSecretSweepResult(3, 0, 0), await sweep.SweepAsync(None));
        kit.Clock.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal(new WebhookSecretSweepResult(3, 1, 0), await sweep.SweepAsync(None));
        Assert.Null(await file.GetAsync(alpha.SecretName, None));
        var signing = await WebhookSigningSecrets.ResolveAsync(kit.Subscriptions, file, rotated, kit.Clock.GetUtcNow(), None);
        Assert.Equal(new[] { (await file.GetAsync(rotated.SecretName, None))! }, signing.Secrets);

        // Removing it later deletes what is left (the row still names the deleted secret: nothing to do for it).
        Assert.True(await manager.RemoveAsync("alpha", alpha.Id, None));
        Assert.Equal(new[] { beta.SecretName, "deid-hmac-key", "webhook-not-of-the-scheme" }.Order(StringComparer.Ordinal), AllNames(file));
    }

    [Fact]
    public async Task Sweep_OfAFileAnEarlierVersionWrote_DatesItsSecretsWhenFirstListed_AndDeletesAnOrphanOnlyAnHourAfterThat()
    {
        using var temp = TestHelpers.TestData.CreateTempDirectory();
        using var kit = new WebhookTestKit();
        var file = new FileWebhookSecretStore(temp.Path, kit.Clock);
        var manager = new WebhookManager(kit.Subscriptions, file, kit.Deliveries, kit.Guard, kit.Dispatcher, kit.Options, kit.Clock);
        var live = (await manager.AddAsync("alpha", "http://127.0.0.1:9/hook", null, OldSecret, None)).Subscription;
        var orphan = WebhookIds.RotatedSecretName("alpha", live.Id);

        // The file as the previous version wrote it: names and secrets only, no dates (the orphan of any age).
        await File.WriteAllTextAsync(file.FilePath, JsonSerializer.Serialize(new Dictionary<string, string>
        {
            [live.SecretName] = OldSecret,
            [orphan] = "whsec_orphan_from_long_ago_012345",
        }));
        kit.Clock.Advance(TimeSpan.FromDays(30));

        var sweep = Sweep(kit, file);
        Assert.Equal(new WebhookSecretSweepResult(2, 0, 0), await sweep.SweepAsync(None));
        kit.Clock.Advance(WebhookOptions.OrphanedSecretGrace);
        Assert.Equal(new WebhookSecretSweepResult(2, 1, 0), await sweep.SweepAsync(None));
        Assert.Equal([live.SecretName], AllNames(file));
        Assert.Equal(OldSecret, await file.GetAsync(live.SecretName, None));
        Assert.Null(await file.GetAsync(FileWebhookSecretStore.StoredAtPrefix + live.SecretName, None));
    }

    private static WebhookSecretSweep Sweep(WebhookTestKit kit, IWebhookSecretStore secrets) =>
        new(kit.Subscriptions, secrets, kit.Clock, NullLogger<WebhookSecretSweep>.Instance);

    /// <summary>The webhook-scheme secret names in the file (the dating entries left out).</summary>
    private static List<string> SecretNames(FileWebhookSecretStore file) =>
        [.. AllNames(file).Where(n => WebhookIds.TryParseSecretName(n, out _, out _))];

    private static List<string> AllNames(FileWebhookSecretStore file) =>
        [.. JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(file.FilePath))!.Keys
            .Where(k => !k.StartsWith(FileWebhookSecretStore.StoredAtPrefix, StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)];

    /// <summary>A secret store whose deletes fail while <see cref="FailDeletes"/> (the vault unavailable) and whose sets run <see cref="OnSet"/> (a slow vault).</summary>
    private sealed class FailingDeleteStore(IWebhookSecretStore inner) : IWebhookSecretStore
    {
        public bool FailDeletes { get; set; }

        public Action? OnSet { get; set; }

        public async Task SetAsync(string name, string value, CancellationToken cancellationToken)
        {
            await inner.SetAsync(name, value, cancellationToken);
            OnSet?.Invoke();
        }

        public Task<string?> GetAsync(string name, CancellationToken cancellationToken) => inner.GetAsync(name, cancellationToken);

        public Task DeleteAsync(string name, CancellationToken cancellationToken) =>
            FailDeletes ? throw new IOException("the secret store is unavailable") : inner.DeleteAsync(name, cancellationToken);

        public Task<IReadOnlyList<string>> ListNamesAsync(string prefix, CancellationToken cancellationToken) => inner.ListNamesAsync(prefix, cancellationToken);

        public Task<IReadOnlyList<StoredWebhookSecret>> ListStoredAsync(string prefix, CancellationToken cancellationToken) => inner.ListStoredAsync(prefix, cancellationToken);
    }
}
