using System.Net;
using System.Text.Json;
using CovidFunctions.Pipeline.Api;

namespace CovidFunctions.Pipeline.Tests.Api;

/// <summary>
/// Expiry of the local API keys (<c>covidfn up</c>'s <c>api-keys.json</c>) over real HTTP: a key is refused with 401 and
/// the reason from its <c>expiresAt</c> on; entries without one (every file written before expiry existed) keep working.
/// </summary>
public sealed class ApiKeyExpiryHttpTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task LocalKeyWithALifetime_IsRefusedWith401AndTheReason_OnceItExpired()
    {
        using var kit = new ApiTestKit();
        await kit.AddCompletedStudyAsync("alpha", "s0000000000000000000000a1");
        var clock = new SettableClock(new DateTimeOffset(2026, 11, 28, 9, 0, 0, TimeSpan.Zero));
        var keys = new LocalApiKeys(kit.Temp.Path, clock);
        var expiring = await keys.AddKeyAsync(["alpha"], TimeSpan.FromHours(1), None);
        var lasting = await keys.AddKeyAsync(["alpha"], None);
        await using var server = await ApiHttpServer.StartAsync(kit.Api, keys);

        using (var before = await ApiHttpServer.Send(server.Http, HttpMethod.Get, "/api/studies/s0000000000000000000000a1", expiring))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        clock.Now = clock.Now.AddHours(1);
        using var after = await ApiHttpServer.Send(server.Http, HttpMethod.Get, "/api/studies/s0000000000000000000000a1", expiring);
        Assert.Equal(HttpStatusCode.Unauthorized, after.StatusCode);
        using var error = JsonDocument.Parse(await after.Content.ReadAsStringAsync());
        Assert.Equal("this X-Api-Key expired at 2026-11-28T10:00:00Z; ask the operator for a new key", error.RootElement.GetProperty("error").GetString());

        using var unknown = await ApiHttpServer.Send(server.Http, HttpMethod.Get, "/api/studies", ApiKeyFormat.NewKey());
        Assert.Contains("a valid X-Api-Key header is required", await unknown.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var stillValid = await ApiHttpServer.Send(server.Http, HttpMethod.Get, "/api/studies/s0000000000000000000000a1", lasting);
        Assert.Equal(HttpStatusCode.OK, stillValid.StatusCode);

        // The file names the expiry beside the key (hand-editable like the rest of the entry).
        var entries = JsonDocument.Parse(await File.ReadAllTextAsync(keys.FilePath)).RootElement.EnumerateArray().ToList();
        Assert.Equal("2026-11-28T10:00:00+00:00", entries.Single(e => e.GetProperty("key").GetString() == expiring).GetProperty("expiresAt").GetString());
        Assert.False(entries.Single(e => e.GetProperty("key").GetString() == lasting).TryGetProperty("expiresAt", out _));
    }

    [Fact]
    public async Task FileWrittenBeforeExpiryExisted_KeepsWorking_AndAnExpiryAddedByHandIsHonoured()
    {
        using var kit = new ApiTestKit();
        var path = Path.Combine(kit.Temp.Path, LocalApiKeys.FileName);
        await File.WriteAllTextAsync(path, """[{"key":"cfk_old","tenants":["alpha"],"createdAt":"2025-01-01T00:00:00+00:00"},{"key":"cfk_edited","tenants":["*"],"createdAt":"2025-01-01T00:00:00+00:00","expiresAt":"2026-01-01T00:00:00Z"}]""");
        var keys = new LocalApiKeys(kit.Temp.Path, new SettableClock(new DateTimeOffset(2036, 1, 1, 0, 0, 0, TimeSpan.Zero)));

        Assert.True((await keys.AuthorizeAsync("cfk_old", None))!.CanSee("alpha"));
        var edited = await keys.CheckAsync("cfk_edited", None);
        Assert.Null(edited.Caller);
        Assert.Contains("expired at 2026-01-01T00:00:00Z", edited.Refusal, StringComparison.Ordinal);

        // The expired operator key is not handed out again: covidfn up gets (and writes) a fresh one.
        var operatorKey = await keys.GetOrCreateOperatorKeyAsync(None);
        Assert.NotEqual("cfk_edited", operatorKey);
        Assert.True((await keys.AuthorizeAsync(operatorKey, None))!.SeesAllTenants);
    }

    [Fact]
    public async Task LocalKey_LifetimeOutsideTheBound_IsRefused()
    {
        using var kit = new ApiTestKit();
        var keys = new LocalApiKeys(kit.Temp.Path);
        await Assert.ThrowsAsync<ArgumentException>(() => keys.AddKeyAsync(["alpha"], TimeSpan.Zero, None));
        await Assert.ThrowsAsync<ArgumentException>(() => keys.AddKeyAsync(["alpha"], TimeSpan.FromDays(366), None));
        Assert.False(File.Exists(keys.FilePath));
    }

    private sealed class SettableClock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }
}
