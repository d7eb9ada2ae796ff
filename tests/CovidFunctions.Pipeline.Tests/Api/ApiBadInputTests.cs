using CovidFunctions.Pipeline.Api;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace CovidFunctions.Pipeline.Tests.Api;

/// <summary>
/// Bad values in the study list's query answer 400 with a message naming the parameter (and the value it got). Before,
/// a bad <c>to</c> was refused as "from/to must be ISO 8601 …" (which of the two?), and a <c>from</c> after <c>to</c>
/// answered 200 with an empty page, as if no study had been created in a range that cannot hold one.
/// </summary>
public sealed class ApiBadInputTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Theory]
    [InlineData("from", "01/02/2026", "from '01/02/2026' is not an ISO 8601 date or time")]
    [InlineData("to", "Friday", "to 'Friday' is not an ISO 8601 date or time")]
    [InlineData("pageSize", "ten", "pageSize 'ten' is not a whole number 1-500")]
    [InlineData("pageSize", "0", "pageSize must be 1-500 (got 0)")]
    [InlineData("continuation", "bm90LWEtdG9rZW4", "continuation is not a token this list returned")]
    public async Task ABadListParameter_Is400NamingIt(string name, string value, string message)
    {
        using var kit = new ApiTestKit();
        var response = await ListAsync(kit, new() { [name] = value });

        Assert.Equal(400, response.Status);
        Assert.StartsWith("{\"error\":\"" + message, response.BodyText.Replace("\\u0027", "'", StringComparison.Ordinal), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AFromAfterTo_Is400NamingBoth_NotAnEmptyPage()
    {
        using var kit = new ApiTestKit();
        await kit.AddCompletedStudyAsync("alpha", "s0000000000000000000000a1", new DateTimeOffset(2026, 11, 27, 9, 0, 0, TimeSpan.Zero));

        var swapped = await ListAsync(kit, new() { ["from"] = "2026-11-28", ["to"] = "2026-11-26" });
        Assert.Equal(400, swapped.Status);
        Assert.Contains("from (2026-11-28T00:00:00Z) is after to (2026-11-26T00:00:00Z)", swapped.BodyText, StringComparison.Ordinal);

        // The same bounds the right way round find the study; equal bounds are a valid (one-instant) range.
        var range = await ListAsync(kit, new() { ["from"] = "2026-11-26", ["to"] = "2026-11-28" });
        Assert.Equal(200, range.Status);
        Assert.Contains("s0000000000000000000000a1", range.BodyText, StringComparison.Ordinal);
        Assert.Equal(200, (await ListAsync(kit, new() { ["from"] = "2026-11-27T09:00:00Z", ["to"] = "2026-11-27T09:00:00Z" })).Status);
    }

    private static Task<ApiResponse> ListAsync(ApiTestKit kit, Dictionary<string, StringValues> query) =>
        ResultsApiEndpoints.ListStudiesAsync(kit.Api, ApiCaller.AllTenants, new QueryCollection(query), None);
}
