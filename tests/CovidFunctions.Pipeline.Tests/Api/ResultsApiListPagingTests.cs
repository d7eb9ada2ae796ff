using System.Text.Json;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Storage;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace CovidFunctions.Pipeline.Tests.Api;

/// <summary>
/// <c>GET /api/studies</c> paging while the list changes, and its query values. Before, the continuation token was an
/// offset into the newest-first list: a study uploaded between two pages pushed every item down by one, so the next
/// page repeated the last item; a study leaving a status filter (processing → completed) pulled them up, so the next
/// page skipped one. And a pageSize that was not a number, or a date that was not ISO 8601 ("01/02/2026"), was read
/// silently (the default page; 2 January) instead of refused.
/// </summary>
public sealed class ResultsApiListPagingTests
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly DateTimeOffset T0 = new(2026, 11, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task AStudyCreatedBetweenTwoPages_RepeatsNothing_AndTheNewStudyIsOnTheFirstPageNextTime()
    {
        using var kit = new ApiTestKit();
        await AddAsync(kit, 4, StudyStatus.Completed);

        var (first, continuation) = await PageAsync(kit, new StudyListQuery(PageSize: 2));
        await kit.Studies.TryCreateAsync(new StudyRecord { Tenant = "alpha", StudyId = "s000000000000000000000009", Status = StudyStatus.Completed, CreatedAt = T0.AddDays(9) }, None);
        var (second, last) = await PageAsync(kit, new StudyListQuery(PageSize: 2, Continuation: continuation));

        Assert.Equal(["s000000000000000000000003", "s000000000000000000000002"], first);
        Assert.Equal(["s000000000000000000000001", "s000000000000000000000000"], second);
        Assert.Null(last);
        Assert.Equal("s000000000000000000000009", (await PageAsync(kit, new StudyListQuery(PageSize: 2))).Items[0]);
    }

    [Fact]
    public async Task AStudyLeavingTheStatusFilterBetweenTwoPages_HidesNoOtherStudy()
    {
        using var kit = new ApiTestKit();
        await AddAsync(kit, 4, StudyStatus.Processing);

        var (first, continuation) = await PageAsync(kit, new StudyListQuery(Status: StudyStatus.Processing, PageSize: 2));
        await kit.Studies.UpdateAsync("alpha", first[0], s => s! with { Status = StudyStatus.Completed }, None);
        var (second, _) = await PageAsync(kit, new StudyListQuery(Status: StudyStatus.Processing, PageSize: 2, Continuation: continuation));

        Assert.Equal(["s000000000000000000000001", "s000000000000000000000000"], second);
    }

    [Fact]
    public async Task StudiesCreatedAtTheSameInstant_AreEachListedOnce_AcrossPages_WithinTheToBound()
    {
        using var kit = new ApiTestKit();
        for (var i = 0; i < 7; i++)
        {
            await kit.Studies.TryCreateAsync(new StudyRecord { Tenant = i % 2 == 0 ? "alpha" : "beta", StudyId = $"s00000000000000000000000{i}", Status = StudyStatus.Completed, CreatedAt = T0 }, None);
        }

        await kit.Studies.TryCreateAsync(new StudyRecord { Tenant = "alpha", StudyId = "s00000000000000000000000a", Status = StudyStatus.Completed, CreatedAt = T0.AddMilliseconds(1) }, None);
        var seen = new List<string>();
        string? continuation = null;
        do
        {
            var page = await PageAsync(kit, new StudyListQuery(To: T0, PageSize: 3, Continuation: continuation));
            seen.AddRange(page.Items);
            continuation = page.Continuation;
        }
        while (continuation is not null);

        Assert.Equal(Enumerable.Range(0, 7).Select(i => $"s00000000000000000000000{i}"), seen);
    }

    [Theory]
    [InlineData("pageSize", "abc")]
    [InlineData("pageSize", "-5")]
    [InlineData("pageSize", "1e3")]
    [InlineData("pageSize", "0")]
    [InlineData("pageSize", "501")]
    [InlineData("from", "01/02/2026")]
    [InlineData("to", "Friday")]
    [InlineData("to", "2026-11-27\n")]
    [InlineData("from", "2026-11-27T10:00:00 01:00")]
    [InlineData("continuation", "bzo0")]
    public async Task AQueryValueThatCannotBeRead_Is400(string name, string value)
    {
        using var kit = new ApiTestKit();
        var query = new QueryCollection(new Dictionary<string, StringValues> { [name] = value });

        var response = await ResultsApiEndpoints.ListStudiesAsync(kit.Api, ApiCaller.AllTenants, query, None);

        Assert.Equal(400, response.Status);
        using var json = JsonDocument.Parse(response.Body);
        Assert.Equal(400, json.RootElement.GetProperty("status").GetInt32());
    }

    [Theory]
    [InlineData("2026-11-02", 3)]
    [InlineData("2026-11-02T00:00:00Z", 3)]
    [InlineData("2026-11-02T01:00:00+01:00", 3)]
    [InlineData("2026-11-02T00:00:00.0000001Z", 2)]
    [InlineData("2026-11-02T00:00", 3)]
    public async Task IsoDatesAndTimes_AreRead(string from, int expected)
    {
        using var kit = new ApiTestKit();
        await AddAsync(kit, 4, StudyStatus.Completed);
        var query = new QueryCollection(new Dictionary<string, StringValues> { ["from"] = from, ["pageSize"] = "10" });

        var response = await ResultsApiEndpoints.ListStudiesAsync(kit.Api, ApiCaller.AllTenants, query, None);

        Assert.Equal(200, response.Status);
        using var json = JsonDocument.Parse(response.Body);
        Assert.Equal(expected, json.RootElement.GetProperty("items").GetArrayLength());
    }

    private static async Task AddAsync(ApiTestKit kit, int count, string status)
    {
        for (var i = 0; i < count; i++)
        {
            await kit.Studies.TryCreateAsync(new StudyRecord { Tenant = "alpha", StudyId = $"s00000000000000000000000{i}", Status = status, CreatedAt = T0.AddDays(i) }, None);
        }
    }

    private static async Task<(List<string> Items, string? Continuation)> PageAsync(ApiTestKit kit, StudyListQuery query)
    {
        var response = await kit.Api.ListStudiesAsync(ApiCaller.AllTenants, query, None);
        Assert.Equal(200, response.Status);
        using var json = JsonDocument.Parse(response.Body);
        var continuation = json.RootElement.TryGetProperty("continuation", out var c) ? c.GetString() : null;
        return ([.. json.RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("study").GetString()!)], continuation);
    }
}
