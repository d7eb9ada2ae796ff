using System.Net;
using System.Text.Json;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Tests.Api;

namespace CovidFunctions.Pipeline.Tests.Notifications;

/// <summary>
/// Secret rotation (<see cref="WebhookManager.RotateSecretAsync"/>): during the overlap every delivery carries one
/// <c>v1</c> per secret and a receiver holding either verifies it; after the overlap only the new secret signs. Real
/// deliveries to a Kestrel receiver on 127.0.0.1; the secret file store is the real 0600 file.
/// </summary>
public sealed class WebhookSecretRotationTests
{
    private const string OldSecret = "whsec_old_secret_0123456789abcdef";
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly TimeSpan Tolerance = TimeSpan.FromMinutes(5);

    [Fact]
    public async Task Rotate_DuringOverlap_SignsWithBothSecrets_AfterItOnlyWithTheNewOne()
    {
        using var kit = new WebhookTestKit();
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(200));
        var created = await kit.SubscribeAsync(receiver.Url, OldSecret);

        var rotated = await kit.Manager.RotateSecretAsync(WebhookTestKit.Tenant, created.Subscription.Id, null, TimeSpan.FromHours(2), None);
        Assert.True(rotated.SecretGenerated);
        Assert.StartsWith("whsec_", rotated.Secret, StringComparison.Ordinal);
        Assert.NotEqual(OldSecret, rotated.Secret);
        Assert.InRange((rotated.PreviousSecretExpiresAt!.Value - kit.Clock.GetUtcNow().AddHours(2)).Duration(), TimeSpan.Zero, TimeSpan.FromSeconds(2));

        // An event during the overlap: one delivery, two v1 values, each secret verifies it.
        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);
        var during = Assert.Single(receiver.Received);
        var header = during.Headers[WebhookSignature.SignatureHeader];
        Assert.Equal(2, header.Split(',').Count(p => p.StartsWith("v1=", StringComparison.Ordinal)));
        Assert.True(WebhookSignature.Verify(OldSecret, header, during.Body, kit.Clock.GetUtcNow(), Tolerance));
        Assert.True(WebhookSignature.Verify(rotated.Secret, header, during.Body, kit.Clock.GetUtcNow(), Tolerance));

        // After the overlap: one v1, the new secret's; the old one no longer verifies.
        kit.Clock.Advance(TimeSpan.FromHours(2) + TimeSpan.FromSeconds(1));
        var test = await kit.Manager.TestAsync((await kit.Subscriptions.GetAsync(WebhookTestKit.Tenant, created.Subscription.Id, None))!, None);
        Assert.Equal(WebhookDeliveryStatus.Delivered, test.Status);
        var after = receiver.Received[^1];
        var afterHeader = after.Headers[WebhookSignature.SignatureHeader];
        Assert.Single(afterHeader.Split(','), p => p.StartsWith("v1=", StringComparison.Ordinal));
        Assert.True(WebhookSignature.Verify(rotated.Secret, afterHeader, after.Body, kit.Clock.GetUtcNow(), Tolerance));
        Assert.False(WebhookSignature.Verify(OldSecret, afterHeader, after.Body, kit.Clock.GetUtcNow(), Tolerance));
    }

    [Fact]
    public async Task Retry_MadeAfterTheOverlapEnded_IsSignedWithTheNewSecretOnly()
    {
        using var kit = new WebhookTestKit();
        await using var receiver = await WebhookReceiver.StartAsync(i => new ReceiverReply(i == 0 ? 503 : 200));
        var created = await kit.SubscribeAsync(receiver.Url, OldSecret);
        var rotated = await kit.Manager.RotateSecretAsync(WebhookTestKit.Tenant, created.Subscription.Id, null, TimeSpan.FromMinutes(10), None);

        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);
        kit.Clock.Advance(TimeSpan.FromMinutes(11));
        await kit.RunRetriesUntilSettledAsync();

        Assert.Equal(2, receiver.Received.Count);
        var first = receiver.Received[0].Headers[WebhookSignature.SignatureHeader];
        var retry = receiver.Received[1].Headers[WebhookSignature.SignatureHeader];
        Assert.True(WebhookSignature.Verify(OldSecret, first, receiver.Received[0].Body, receiver.Received[0].At, Tolerance));
        Assert.False(WebhookSignature.Verify(OldSecret, retry, receiver.Received[1].Body, kit.Clock.GetUtcNow(), Tolerance));
        Assert.True(WebhookSignature.Verify(rotated.Secret, retry, receiver.Received[1].Body, kit.Clock.GetUtcNow(), Tolerance));
    }

    [Fact]
    public async Task Rotate_WithoutOverlap_TheOldSecretStopsAtOnce_AndADeliveryHoldingTheOldRowStillSends()
    {
        using var kit = new WebhookTestKit();
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(200));
        var created = await kit.SubscribeAsync(receiver.Url, OldSecret);
        var before = (await kit.Subscriptions.GetAsync(WebhookTestKit.Tenant, created.Subscription.Id, None))!;

        var rotated = await kit.Manager.RotateSecretAsync(WebhookTestKit.Tenant, created.Subscription.Id, "whsec_chosen_new_secret_01234567", TimeSpan.Zero, None);
        Assert.False(rotated.SecretGenerated);
        Assert.Null(rotated.PreviousSecretExpiresAt);
        Assert.Null(await kit.Secrets.GetAsync(before.SecretName, None));

        // A notify run that listed the subscription before the rotation names the deleted secret: it reads the row again.
        var delivery = await kit.Notifier.DeliverAsync(before, WebhookTestKit.CompletedStudy(), StudyEventTypes.Completed, None);
        Assert.Equal(WebhookDeliveryStatus.Delivered, delivery!.Status);
        var received = Assert.Single(receiver.Received);
        var header = received.Headers[WebhookSignature.SignatureHeader];
        Assert.True(WebhookSignature.Verify("whsec_chosen_new_secret_01234567", header, received.Body, kit.Clock.GetUtcNow(), Tolerance));
        Assert.False(WebhookSignature.Verify(OldSecret, header, received.Body, kit.Clock.GetUtcNow(), Tolerance));
    }

    [Fact]
    public async Task Rotate_Again_EndsTheFirstOverlap_AndRemoveDeletesEverySecret_InTheSecretFile()
    {
        using var temp = TestHelpers.TestData.CreateTempDirectory();
        using var kit = new WebhookTestKit();
        var secrets = new FileWebhookSecretStore(temp.Path);
        using var dispatcher = new WebhookDispatcher(kit.Guard, kit.Deliveries, kit.Options, kit.Clock, Microsoft.Extensions.Logging.Abstractions.NullLogger<WebhookDispatcher>.Instance);
        var manager = new WebhookManager(kit.Subscriptions, secrets, kit.Deliveries, kit.Guard, dispatcher, kit.Options, kit.Clock);
        var created = await manager.AddAsync("alpha", "http://127.0.0.1:9/hook", null, OldSecret, None);
        var id = created.Subscription.Id;

        var first = await manager.RotateSecretAsync("alpha", id, null, null, None);
        Assert.InRange((first.PreviousSecretExpiresAt!.Value - kit.Clock.GetUtcNow().AddHours(24)).Duration(), TimeSpan.Zero, TimeSpan.FromSeconds(2));
        Assert.Equal(OldSecret, await secrets.GetAsync(created.Subscription.SecretName, None));
        Assert.Equal(first.Secret, await secrets.GetAsync(first.Subscription.SecretName, None));

        var second = await manager.RotateSecretAsync("alpha", id, null, TimeSpan.FromHours(1), None);
        Assert.Equal(first.Subscription.SecretName, second.Subscription.PreviousSecretName);
        Assert.Equal([second.Subscription.SecretName, first.Subscription.SecretName], second.Subscription.SigningSecretNames(kit.Clock.GetUtcNow()));
        Assert.Null(await secrets.GetAsync(created.Subscription.SecretName, None));

        // Each secret is dated beside it (~stored:{name}, what the orphan sweep judges its age by).
        var keys = JsonSerializer.Deserialize<Dictionary<string, string>>(await File.ReadAllTextAsync(secrets.FilePath))!.Keys.ToList();
        var names = keys.Where(k => !k.StartsWith(FileWebhookSecretStore.StoredAtPrefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal);
        Assert.Equal(names.Select(n => FileWebhookSecretStore.StoredAtPrefix + n), keys.Where(k => k.StartsWith(FileWebhookSecretStore.StoredAtPrefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal));
        Assert.Equal(new[] { first.Subscription.SecretName, second.Subscription.SecretName }.Order(StringComparer.Ordinal), names);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(secrets.FilePath));
        }

        Assert.True(await manager.RemoveAsync("alpha", id, None));
        Assert.Empty(JsonSerializer.Deserialize<Dictionary<string, string>>(await File.ReadAllTextAsync(secrets.FilePath))!);
    }

    [Fact]
    public async Task Rotate_FromAStaleRead_Conflicts_DeletesItsOwnSecret_AndChangesNothing()
    {
        using var kit = new WebhookTestKit();
        var created = await kit.SubscribeAsync(new Uri("http://127.0.0.1:9/hook"), OldSecret);
        var id = created.Subscription.Id;
        var stale = (await kit.Subscriptions.GetAsync(WebhookTestKit.Tenant, id, None))!;
        var winner = await kit.Manager.RotateSecretAsync(WebhookTestKit.Tenant, id, null, TimeSpan.FromHours(1), None);

        // The row the winner wrote has a new ETag: a replace with the one read before it loses.
        Assert.Null(await kit.Subscriptions.TryReplaceAsync(stale with { SecretName = "webhook-alpha-x" }, None));
        var conflicting = new WebhookManager(new StaleReadStore(kit.Subscriptions, stale), kit.Secrets, kit.Deliveries, kit.Guard, kit.Dispatcher, kit.Options, kit.Clock);
        var conflict = await Assert.ThrowsAsync<WebhookConflictException>(() => conflicting.RotateSecretAsync(WebhookTestKit.Tenant, id, "whsec_loser_secret_0123456789ab", TimeSpan.FromHours(1), None));
        Assert.Contains("rotate again", conflict.Message, StringComparison.Ordinal);

        var stored = (await kit.Subscriptions.GetAsync(WebhookTestKit.Tenant, id, None))!;
        Assert.Equal(winner.Subscription.SecretName, stored.SecretName);
        Assert.Equal(winner.Secret, await kit.Secrets.GetAsync(stored.SecretName, None));
        Assert.Equal(OldSecret, await kit.Secrets.GetAsync(stored.PreviousSecretName!, None));
        Assert.Equal(2, await CountSecretsAsync(kit.Secrets, [created.Subscription.SecretName, winner.Subscription.SecretName]));
    }

    private static async Task<int> CountSecretsAsync(IWebhookSecretStore secrets, IEnumerable<string> names)
    {
        var count = 0;
        foreach (var name in names)
        {
            count += await secrets.GetAsync(name, None) is null ? 0 : 1;
        }

        return count;
    }

    /// <summary>Answers one read with the row as it was before (a rotation that read just before another one wrote).</summary>
    private sealed class StaleReadStore(IWebhookSubscriptionStore inner, WebhookSubscription stale) : IWebhookSubscriptionStore
    {
        public Task CreateAsync(WebhookSubscription subscription, CancellationToken cancellationToken) => inner.CreateAsync(subscription, cancellationToken);

        public Task<bool> TryCreateWithinLimitAsync(WebhookSubscription subscription, int maxPerTenant, CancellationToken cancellationToken) =>
            inner.TryCreateWithinLimitAsync(subscription, maxPerTenant, cancellationToken);

        public Task<WebhookSubscription?> GetAsync(string tenant, string id, CancellationToken cancellationToken) => Task.FromResult<WebhookSubscription?>(stale);

        public Task<IReadOnlyList<WebhookSubscription>> ListAsync(string? tenant, CancellationToken cancellationToken) => inner.ListAsync(tenant, cancellationToken);

        public Task<bool> DeleteAsync(string tenant, string id, CancellationToken cancellationToken) => inner.DeleteAsync(tenant, id, cancellationToken);

        public Task<WebhookSubscription?> TryReplaceAsync(WebhookSubscription subscription, CancellationToken cancellationToken) => inner.TryReplaceAsync(subscription, cancellationToken);
    }

    [Fact]
    public async Task Rotate_RefusesAnOverlapOverTheCap_AndASecretOfTheWrongLength_ChangingNothing()
    {
        using var kit = new WebhookTestKit();
        var created = await kit.SubscribeAsync(new Uri("http://127.0.0.1:9/hook"), OldSecret);
        var id = created.Subscription.Id;

        var tooLong = await Assert.ThrowsAsync<ArgumentException>(() => kit.Manager.RotateSecretAsync(WebhookTestKit.Tenant, id, null, TimeSpan.FromDays(7) + TimeSpan.FromSeconds(1), None));
        Assert.Contains("0-168 hours", tooLong.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<ArgumentException>(() => kit.Manager.RotateSecretAsync(WebhookTestKit.Tenant, id, null, TimeSpan.FromHours(-1), None));
        await Assert.ThrowsAsync<ArgumentException>(() => kit.Manager.RotateSecretAsync(WebhookTestKit.Tenant, id, "short", null, None));
        await Assert.ThrowsAsync<KeyNotFoundException>(() => kit.Manager.RotateSecretAsync(WebhookTestKit.Tenant, "wh00000000000000000000", null, null, None));

        var stored = (await kit.Subscriptions.GetAsync(WebhookTestKit.Tenant, id, None))!;
        Assert.Equal(created.Subscription.SecretName, stored.SecretName);
        Assert.Null(stored.SecretRotatedAt);
        Assert.Throws<InvalidOperationException>(() => new WebhookOptions { SecretRotationOverlap = TimeSpan.FromDays(8) }.Validate());
    }

    [Fact]
    public async Task Http_RotateSecret_AnswersTheNewSecretOnce_ShowsTheOverlapInTheList_AndScopesToTheKeysTenants()
    {
        using var kit = new ApiTestKit();
        var keys = new LocalApiKeys(kit.Temp.Path);
        var alphaKey = await keys.AddKeyAsync(["alpha"], None);
        var betaKey = await keys.AddKeyAsync(["beta"], None);
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(200));
        await using var server = await ApiHttpServer.StartAsync(kit.Api, keys);
        var http = server.Http;
        using var created = await ApiHttpServer.Send(http, HttpMethod.Post, "/api/webhooks", alphaKey, new { url = receiver.Url.ToString(), secret = OldSecret });
        using var createdJson = JsonDocument.Parse(await created.Content.ReadAsStringAsync());
        var id = createdJson.RootElement.GetProperty("webhook").GetProperty("id").GetString()!;

        using var foreign = await ApiHttpServer.Send(http, HttpMethod.Post, $"/api/webhooks/{id}/rotate-secret", betaKey);
        Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
        using var overCap = await ApiHttpServer.Send(http, HttpMethod.Post, $"/api/webhooks/{id}/rotate-secret", alphaKey, new { overlapHours = 169 });
        Assert.Equal(HttpStatusCode.BadRequest, overCap.StatusCode);
        Assert.Contains("overlapHours must be 0-168 (got 169)", await overCap.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // No body: the defaults (24 h, a generated secret).
        using var rotated = await ApiHttpServer.Send(http, HttpMethod.Post, $"/api/webhooks/{id}/rotate-secret", alphaKey);
        Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
        using var rotatedJson = JsonDocument.Parse(await rotated.Content.ReadAsStringAsync());
        var secret = rotatedJson.RootElement.GetProperty("secret").GetString()!;
        var until = rotatedJson.RootElement.GetProperty("previousSecretExpiresAt").GetDateTimeOffset();
        Assert.InRange(until - DateTimeOffset.UtcNow, TimeSpan.FromHours(23.9), TimeSpan.FromHours(24.1));

        using var listed = await ApiHttpServer.Send(http, HttpMethod.Get, "/api/webhooks", alphaKey);
        var listText = await listed.Content.ReadAsStringAsync();
        Assert.DoesNotContain(secret, listText, StringComparison.Ordinal);
        Assert.DoesNotContain("webhook-alpha", listText, StringComparison.Ordinal);
        using var listJson = JsonDocument.Parse(listText);
        var view = Assert.Single(listJson.RootElement.EnumerateArray());
        Assert.Equal(until, view.GetProperty("previousSecretExpiresAt").GetDateTimeOffset());
        Assert.True(view.TryGetProperty("secretRotatedAt", out _));

        using var tested = await ApiHttpServer.Send(http, HttpMethod.Post, $"/api/webhooks/{id}/test", alphaKey);
        var received = Assert.Single(receiver.Received);
        Assert.True(WebhookSignature.Verify(OldSecret, received.Headers[WebhookSignature.SignatureHeader], received.Body, DateTimeOffset.UtcNow, Tolerance));
        Assert.True(WebhookSignature.Verify(secret, received.Headers[WebhookSignature.SignatureHeader], received.Body, DateTimeOffset.UtcNow, Tolerance));
    }
}
