using System.Text;
using System.Text.Json;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Azure.Tests.Webhooks;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// API key expiry on the <c>ApiKeys</c> table of a real Azurite: a key minted with <c>expiresInDays</c> works until
/// then and is refused afterwards with a reason; rows written before expiry existed never expire; the list shows it.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class ApiKeyExpiryTests(AzuriteFixture azurite)
{
    private static readonly CancellationToken None = CancellationToken.None;

    private static readonly DateTimeOffset Start = new(2026, 11, 28, 9, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task KeyMintedWithALifetime_WorksUntilItsExpiry_ThenIsRefusedSayingSo_AndTheListShowsIt()
    {
        var store = new TableApiKeyStore(azurite.Storage.Tables);
        var clock = new ManualClock(Start);
        var admin = new ApiKeyAdmin(store, clock);
        var authorizer = new StoredApiKeyAuthorizer(store, clock);
        var tenant = AzuriteFixture.NewTenant();

        var response = await admin.MintAsync(Body($"{{\"tenants\":[\"{tenant}\"],\"expiresInDays\":30}}"), None);
        Assert.Equal(201, response.Status);
        using var minted = JsonDocument.Parse(response.Body);
        var key = minted.RootElement.GetProperty("key").GetString()!;
        var id = minted.RootElement.GetProperty("id").GetString()!;
        Assert.Equal(Start.AddDays(30), minted.RootElement.GetProperty("expiresAt").GetDateTimeOffset());

        // The row keeps the expiry (the table is what every instance reads).
        var row = (await store.Table.GetEntityAsync<TableEntity>(ApiKeyNames.Partition, ApiKeyFormat.Hash(key), cancellationToken: None)).Value;
        Assert.Equal(Start.AddDays(30), row.GetDateTimeOffset("ExpiresAt"));

        clock.Now = Start.AddDays(30).AddSeconds(-1);
        Assert.True((await authorizer.AuthorizeAsync(key, None))!.CanSee(tenant));
        var listed = Listed(await admin.ListAsync(None), id);
        Assert.Equal(Start.AddDays(30), listed.GetProperty("expiresAt").GetDateTimeOffset());
        Assert.False(listed.GetProperty("expired").GetBoolean());

        clock.Now = Start.AddDays(30);
        Assert.Null(await authorizer.AuthorizeAsync(key, None));
        var check = await authorizer.CheckAsync(key, None);
        Assert.Null(check.Caller);
        Assert.Equal($"this X-Api-Key (key {id}) expired at 2026-12-28T09:00:00Z; ask the operator for a new key", check.Refusal);
        Assert.True(Listed(await admin.ListAsync(None), id).GetProperty("expired").GetBoolean());

        // An unknown key still gets no reason: nothing tells a guesser which keys exist or existed.
        Assert.Null((await authorizer.CheckAsync(ApiKeyFormat.NewKey(), None)).Refusal);
    }

    [Fact]
    public async Task RowWrittenBeforeExpiryExisted_HasNoExpiresAt_AndKeepsWorking()
    {
        var store = new TableApiKeyStore(azurite.Storage.Tables);
        var tenant = AzuriteFixture.NewTenant();
        var key = ApiKeyFormat.NewKey();
        var hash = ApiKeyFormat.Hash(key);

        // The row exactly as the previous version wrote it: Id, Tenants, CreatedAt only.
        await store.Table.AddEntityAsync(new TableEntity(ApiKeyNames.Partition, hash) { ["Id"] = ApiKeyFormat.IdOf(hash), ["Tenants"] = tenant, ["CreatedAt"] = Start.AddYears(-2) }, None);

        var clock = new ManualClock(Start.AddYears(10));
        Assert.True((await new StoredApiKeyAuthorizer(store, clock).AuthorizeAsync(key, None))!.CanSee(tenant));
        var listed = Listed(await new ApiKeyAdmin(store, clock).ListAsync(None), ApiKeyFormat.IdOf(hash));
        Assert.Equal(["createdAt", "id", "tenants"], listed.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));

        // A key minted without expiresInDays is such a key too.
        var plain = await new ApiKeyAdmin(store, clock).MintAsync([tenant], None);
        Assert.Null(plain.ExpiresAt);
        Assert.NotNull(await new StoredApiKeyAuthorizer(store, new ManualClock(Start.AddYears(50))).AuthorizeAsync(plain.Key, None));
    }

    [Theory]
    [InlineData("0", 365)]
    [InlineData("-1", 365)]
    [InlineData("366", 365)]
    [InlineData("31", 30)]
    public async Task Mint_RefusesALifetimeOutsideTheBound_StoringNothing(string days, int maxDays)
    {
        var store = new TableApiKeyStore(azurite.Storage.Tables);
        var admin = new ApiKeyAdmin(store, new ManualClock(Start), new ApiKeyOptions { MaxLifetimeDays = maxDays });
        var tenant = AzuriteFixture.NewTenant();
        var before = (await store.ListAsync(None)).Count;

        var response = await admin.MintAsync(Body($"{{\"tenants\":[\"{tenant}\"],\"expiresInDays\":{days}}}"), None);

        Assert.Equal(400, response.Status);
        Assert.Contains($"expiresInDays must be more than 0 and at most {maxDays} (ApiKeys:MaxLifetimeDays), not {days}", Encoding.UTF8.GetString(response.Body), StringComparison.Ordinal);
        Assert.Equal(before, (await store.ListAsync(None)).Count);
        Assert.Throws<InvalidOperationException>(() => new ApiKeyOptions { MaxLifetimeDays = 0 }.Validate());
    }

    private static MemoryStream Body(string json) => new(Encoding.UTF8.GetBytes(json));

    private static JsonElement Listed(ApiResponse list, string id)
    {
        using var json = JsonDocument.Parse(list.Body);
        return json.RootElement.EnumerateArray().Single(k => k.GetProperty("id").GetString() == id).Clone();
    }
}
