using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Azure;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Azure.Storage;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// The Function app's tenant-bound API keys on a real Azurite: minted keys authorize as their tenants (or every tenant
/// for <c>*</c>), unknown and revoked keys do not, and the <c>ApiKeys</c> table holds only hashes.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class TableApiKeyStoreTests(AzuriteFixture azurite)
{
    private static readonly CancellationToken None = CancellationToken.None;

    private TableApiKeyStore Store => new(azurite.Storage.Tables);

    [Fact]
    public async Task MintedKey_AuthorizesAsItsTenantOnly_AndAllTenantKeySeesEveryTenant()
    {
        var store = Store;
        var admin = new ApiKeyAdmin(store, TimeProvider.System);
        var authorizer = new StoredApiKeyAuthorizer(store);
        var tenant = AzuriteFixture.NewTenant();
        var other = AzuriteFixture.NewTenant();

        var minted = await admin.MintAsync([tenant], None);
        Assert.StartsWith(ApiKeyFormat.Prefix, minted.Key, StringComparison.Ordinal);
        Assert.Equal(ApiKeyFormat.Prefix.Length + 48, minted.Key.Length);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(minted.Key)))[..12], minted.Id);

        var caller = await authorizer.AuthorizeAsync(minted.Key, None);
        Assert.NotNull(caller);
        Assert.False(caller.SeesAllTenants);
        Assert.True(caller.CanSee(tenant));
        Assert.False(caller.CanSee(other));

        var operatorKey = await admin.MintAsync([LocalApiKeys.AllTenantsMarker], None);
        var operatorCaller = await authorizer.AuthorizeAsync(operatorKey.Key, None);
        Assert.NotNull(operatorCaller);
        Assert.True(operatorCaller.SeesAllTenants);
        Assert.True(operatorCaller.CanSee(other));
    }

    [Fact]
    public async Task MissingUnknownAndRevokedKeys_AreNotAuthorized()
    {
        var store = Store;
        var admin = new ApiKeyAdmin(store, TimeProvider.System);
        var authorizer = new StoredApiKeyAuthorizer(store);
        var minted = await admin.MintAsync([AzuriteFixture.NewTenant()], None);

        Assert.Null(await authorizer.AuthorizeAsync(null, None));
        Assert.Null(await authorizer.AuthorizeAsync("", None));
        Assert.Null(await authorizer.AuthorizeAsync(ApiKeyFormat.NewKey(), None));
        Assert.Null(await authorizer.AuthorizeAsync(minted.Key + "0", None));

        // The hash is what is stored; presenting it as a key must not work either.
        var hash = ApiKeyFormat.Hash(minted.Key);
        Assert.Null(await authorizer.AuthorizeAsync(hash, None));
        Assert.NotNull(await authorizer.AuthorizeAsync(minted.Key, None));

        Assert.Equal(204, (await admin.RevokeAsync(minted.Id, None)).Status);
        Assert.Null(await authorizer.AuthorizeAsync(minted.Key, None));
        Assert.Equal(404, (await admin.RevokeAsync(minted.Id, None)).Status);
        Assert.Equal(404, (await admin.RevokeAsync("not-an-id", None)).Status);
        Assert.DoesNotContain(await store.ListAsync(None), k => k.Id == minted.Id);
    }

    [Fact]
    public async Task Table_HoldsOnlyTheHash_AndTheListShowsNoKeyOrHash()
    {
        var store = Store;
        var admin = new ApiKeyAdmin(store, TimeProvider.System);
        var tenant = AzuriteFixture.NewTenant();
        var response = await admin.MintAsync(new MemoryStream(Encoding.UTF8.GetBytes($"{{\"tenants\":[\"{tenant}\"]}}")), None);
        Assert.Equal(201, response.Status);
        var body = JsonNode.Parse(response.BodyText)!;
        var key = (string)body["key"]!;
        var id = (string)body["id"]!;
        Assert.Equal(tenant, (string?)Assert.Single(body["tenants"]!.AsArray()));
        Assert.NotNull(body["createdAt"]);

        var hash = ApiKeyFormat.Hash(key);
        var rows = new List<TableEntity>();
        await foreach (var entity in azurite.Storage.Tables.GetTableClient(ApiKeyNames.Table).QueryAsync<TableEntity>(cancellationToken: None))
        {
            rows.Add(entity);
        }

        var row = Assert.Single(rows, r => r.RowKey == hash);
        Assert.Equal(ApiKeyNames.Partition, row.PartitionKey);
        Assert.Equal(id, row.GetString("Id"));
        Assert.Equal(tenant, row.GetString("Tenants"));
        Assert.NotNull(row.GetDateTimeOffset("CreatedAt"));
        var secret = key[ApiKeyFormat.Prefix.Length..];
        Assert.All(rows, r => Assert.All(r, p => Assert.DoesNotContain(secret, p.Value?.ToString() ?? "", StringComparison.Ordinal)));
        Assert.All(rows, r => Assert.DoesNotContain(secret, r.RowKey, StringComparison.Ordinal));

        var list = await admin.ListAsync(None);
        Assert.Equal(200, list.Status);
        Assert.Contains(id, list.BodyText, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, list.BodyText, StringComparison.Ordinal);
        Assert.DoesNotContain(hash, list.BodyText, StringComparison.Ordinal);
        var listed = Assert.Single(JsonNode.Parse(list.BodyText)!.AsArray(), k => (string?)k!["id"] == id)!.AsObject();
        Assert.Equal(["createdAt", "id", "tenants"], listed.Select(p => p.Key).Order(StringComparer.Ordinal).ToArray());
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("{}")]
    [InlineData("{\"tenants\":[]}")]
    [InlineData("{\"tenants\":[\"Bad Tenant\"]}")]
    [InlineData("{\"tenants\":[\"*\", \"../x\"]}")]
    public async Task Mint_RefusesABadBody_With400(string body)
    {
        var response = await new ApiKeyAdmin(Store, TimeProvider.System).MintAsync(new MemoryStream(Encoding.UTF8.GetBytes(body)), None);
        Assert.Equal(400, response.Status);
        Assert.DoesNotContain(ApiKeyFormat.Prefix, response.BodyText, StringComparison.Ordinal);
    }

    [Fact]
    public void ApiKeysTable_IsOneOfThePipelineTables_SoItExistsBeforeTheFirstMint()
    {
        Assert.Contains(ApiKeyNames.Table, PipelineNames.Tables);
    }

    [Fact]
    public async Task WithoutTheTable_LookupsFindNothing_AndAMintFails()
    {
        // A deployment that lost its ApiKeys table must fail closed: nobody is authorized, and a mint is an error, not a
        // silent re-creation. A separate table service cannot be made on the shared Azurite, so delete and recreate
        // the shared table around the check.
        var store = Store;
        await store.Table.DeleteAsync(None);
        try
        {
            Assert.Null(await new StoredApiKeyAuthorizer(store).AuthorizeAsync(ApiKeyFormat.NewKey(), None));
            Assert.Empty(await store.ListAsync(None));
            Assert.False(await store.DeleteByIdAsync("0123456789ab", None));

            var refused = await Assert.ThrowsAsync<RequestFailedException>(() => new ApiKeyAdmin(store, TimeProvider.System).MintAsync(["*"], None));
            Assert.Equal(404, refused.Status);
        }
        finally
        {
            await store.Table.CreateIfNotExistsAsync(None);
        }
    }
}
