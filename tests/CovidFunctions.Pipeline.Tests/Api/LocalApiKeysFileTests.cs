using System.Net;
using System.Text.Json;
using CovidFunctions.Pipeline.Api;

namespace CovidFunctions.Pipeline.Tests.Api;

/// <summary>
/// <c>api-keys.json</c> is documented as a file the operator may edit (an entry <c>{"key", "tenants"}</c> per key).
/// Before, an entry without <c>"key"</c> made every request of every key fail inside the authorizer (an
/// ArgumentNullException: 500 with an empty body), an entry without <c>"tenants"</c> did so for its own key and stopped
/// <c>covidfn up</c> at start with a NullReferenceException, and a file that was not JSON stopped it with a JsonException
/// naming no file. Now each of them is an <see cref="InvalidDataException"/> naming the file, the entry and the reason,
/// at start and on every request (no request passes: a JSON 500 with that reason). So is a key written twice: before, the
/// first entry's tenants applied and the second entry was ignored without a word, so a key copied into a second entry
/// for another tenant kept seeing the first entry's tenant.
/// </summary>
public sealed class LocalApiKeysFileTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Theory]
    [InlineData("[{\"key\":\"cfk_alpha\",\"tenants\":[\"alpha\"]},{\"tenants\":[\"beta\"]}]", "entry 2: no \"key\"")]
    [InlineData("[{\"key\":\"cfk_alpha\",\"tenants\":[\"alpha\"]},{\"key\":\"cfk_beta\"}]", "entry 2: no \"tenants\"")]
    [InlineData("[{\"key\":\"cfk_alpha\",\"tenants\":[\"alpha\"]},{\"key\":\"cfk_beta\",\"tenants\":[]}]", "entry 2: no \"tenants\"")]
    [InlineData("[{\"key\":\"cfk_alpha\",\"tenants\":[\"alpha\"]},{\"key\":\"cfk_beta\",\"tenants\":[\"Beta\"]}]", "entry 2: tenant 'Beta' is not valid")]
    [InlineData("[{\"key\":\"cfk_alpha\",\"tenants\":[\"alpha\"]},{\"key\":\"cfk_beta\",\"tenants\":[null]}]", "entry 2: a null tenant")]
    [InlineData("[{\"key\":\"cfk_alpha\",\"tenants\":[\"alpha\"]},null]", "entry 2: null instead of an entry")]
    [InlineData("[{\"key\":\"cfk_alpha\",\"tenants\":[\"alpha\"]},{\"key\":\"cfk_alpha\",\"tenants\":[\"beta\"]}]", "entry 2: the same key as entry 1")]
    [InlineData("{\"key\":\"cfk_alpha\"", "not a JSON array")]
    [InlineData("{\"key\":\"cfk_alpha\",\"tenants\":[\"alpha\"]}", "not a JSON array of {\"key\", \"tenants\"} entries (line 1, byte ")]
    public async Task AMalformedEntry_IsNamed_AtStartAndOnEveryRequest(string content, string reason)
    {
        using var kit = new ApiTestKit();
        await kit.AddCompletedStudyAsync("alpha", "s0000000000000000000000a1");
        var keys = new LocalApiKeys(kit.Temp.Path);
        await File.WriteAllTextAsync(keys.FilePath, content);

        var atStart = await Assert.ThrowsAsync<InvalidDataException>(() => keys.GetOrCreateOperatorKeyAsync(None));
        Assert.StartsWith(keys.FilePath + ": ", atStart.Message, StringComparison.Ordinal);
        Assert.Contains(reason, atStart.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", atStart.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("CovidFunctions.Pipeline.Api", atStart.Message, StringComparison.Ordinal);

        await using var server = await ApiHttpServer.StartAsync(kit.Api, keys);
        var http = server.Http;
        foreach (var key in new[] { "cfk_alpha", "cfk_beta", "cfk_unknown" })
        {
            using var response = await ApiHttpServer.Send(http, HttpMethod.Get, "/api/studies/s0000000000000000000000a1", key);
            Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
            using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Contains(reason, json.RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
            Assert.Equal(500, json.RootElement.GetProperty("status").GetInt32());
        }
    }

    [Fact]
    public async Task AHandWrittenEntry_Works()
    {
        using var kit = new ApiTestKit();
        await kit.AddCompletedStudyAsync("alpha", "s0000000000000000000000a1");
        var keys = new LocalApiKeys(kit.Temp.Path);
        await File.WriteAllTextAsync(keys.FilePath, "[{\"key\": \"cfk_alpha\", \"tenants\": [\"alpha\"]}]");

        Assert.Equal(ApiCaller.ForTenants("alpha").Tenants, (await keys.AuthorizeAsync("cfk_alpha", None))!.Tenants);
        Assert.Null(await keys.AuthorizeAsync("cfk_other", None));
        var operatorKey = await keys.GetOrCreateOperatorKeyAsync(None);
        Assert.True((await keys.AuthorizeAsync(operatorKey, None))!.SeesAllTenants);
    }

    [Fact]
    public async Task AddingAKeyWithoutTenants_IsRefused_AndTheFileStaysUsable()
    {
        // Before, AddKeyAsync([]) wrote {"key": "cfk_…", "tenants": []}: an entry the file's own rule refuses, so from then
        // on every request of every key (the operator key too) answered 500 until the file was edited by hand.
        using var kit = new ApiTestKit();
        var keys = new LocalApiKeys(kit.Temp.Path);
        var operatorKey = await keys.GetOrCreateOperatorKeyAsync(None);
        var before = await File.ReadAllTextAsync(keys.FilePath);

        var refused = await Assert.ThrowsAsync<ArgumentException>(() => keys.AddKeyAsync([], None));
        Assert.Contains("at least one tenant", refused.Message, StringComparison.Ordinal);

        Assert.Equal(before, await File.ReadAllTextAsync(keys.FilePath));
        Assert.True((await keys.AuthorizeAsync(operatorKey, None))!.SeesAllTenants);
    }
}
