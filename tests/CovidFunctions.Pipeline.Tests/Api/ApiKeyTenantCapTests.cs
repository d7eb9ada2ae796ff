using CovidFunctions.Pipeline.Api;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Pipeline.Tests.Api;

/// <summary>
/// The cap on the tenants one API key may be bound to (<see cref="ApiKeyOptions.MaxTenantsPerKey"/>, 25 by default):
/// the local keys of <c>covidfn up</c> and the cap's rules (distinct names, <c>*</c> counts as one). The stored keys'
/// mint endpoint is tested through the Function app on Azurite (ApiHardeningFunctionTests).
/// </summary>
public sealed class ApiKeyTenantCapTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    private static string[] Tenants(int n) => [.. Enumerable.Range(0, n).Select(i => $"t{i}")];

    [Fact]
    public async Task LocalKeys_AKeyOverTheCap_IsRefused_AndNothingIsWritten()
    {
        using var temp = TestData.CreateTempDirectory();
        var keys = new LocalApiKeys(temp.Path);
        var operatorKey = await keys.GetOrCreateOperatorKeyAsync(None);
        var before = await File.ReadAllTextAsync(keys.FilePath);

        var ex = await Assert.ThrowsAsync<ArgumentException>(() => keys.AddKeyAsync(Tenants(ApiKeyOptions.DefaultMaxTenantsPerKey + 1), None));

        Assert.StartsWith($"a key may be bound to at most {ApiKeyOptions.DefaultMaxTenantsPerKey} tenants, not {ApiKeyOptions.DefaultMaxTenantsPerKey + 1}", ex.Message, StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllTextAsync(keys.FilePath));
        var within = await keys.AddKeyAsync(Tenants(ApiKeyOptions.DefaultMaxTenantsPerKey), None);
        Assert.NotNull(await keys.AuthorizeAsync(within, None));
        Assert.NotNull(await keys.AuthorizeAsync(operatorKey, None));
    }

    [Fact]
    public void Cap_CountsDistinctNames_AndTheAllTenantsMarkerAsOne()
    {
        Assert.Null(ApiKeyTenants.TooManyTenants(["a", "a", "b", "b"], 2));
        Assert.Null(ApiKeyTenants.TooManyTenants([LocalApiKeys.AllTenantsMarker], 1));
        Assert.NotNull(ApiKeyTenants.TooManyTenants(["a", "b", "c"], 2));
    }

    [Fact]
    public async Task Admin_WithAConfiguredCap_RefusesMoreTenants_AsA400()
    {
        var admin = new ApiKeyAdmin(new InMemoryKeyStore(), TimeProvider.System, new ApiKeyOptions { MaxTenantsPerKey = 2 });
        using var body = new MemoryStream("""{"tenants":["alpha","beta","gamma"]}"""u8.ToArray());

        var response = await admin.MintAsync(body, None);

        Assert.Equal(400, response.Status);
        Assert.Contains("at most 2 tenants, not 3", response.BodyText, StringComparison.Ordinal);
        await Assert.ThrowsAsync<ArgumentException>(() => admin.MintAsync(["alpha", "beta", "gamma"], None));
        Assert.Equal(2, (await admin.MintAsync(["alpha", "beta"], None)).Tenants.Count);
    }

    [Fact]
    public void Admin_ACapUnderOne_FailsWhereItIsBuilt()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ApiKeyAdmin(new InMemoryKeyStore(), TimeProvider.System, new ApiKeyOptions { MaxTenantsPerKey = 0 }));
    }

    /// <summary>An <see cref="IApiKeyStore"/> in memory (the admin handlers need nothing more).</summary>
    private sealed class InMemoryKeyStore : IApiKeyStore
    {
        private readonly List<StoredApiKey> _keys = [];

        public Task AddAsync(StoredApiKey key, CancellationToken cancellationToken)
        {
            _keys.Add(key);
            return Task.CompletedTask;
        }

        public Task<StoredApiKey?> FindByHashAsync(string hash, CancellationToken cancellationToken) =>
            Task.FromResult(_keys.FirstOrDefault(k => k.Hash == hash));

        public Task<IReadOnlyList<StoredApiKey>> ListAsync(CancellationToken cancellationToken) =>
            Task.FromResult<IReadOnlyList<StoredApiKey>>(_keys);

        public Task<bool> DeleteByIdAsync(string id, CancellationToken cancellationToken) =>
            Task.FromResult(_keys.RemoveAll(k => k.Id == id) > 0);
    }
}
