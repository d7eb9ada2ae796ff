using System.Net;
using System.Text.Json.Nodes;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.Pipeline.Tests.Ingest;

namespace CovidFunctions.Pipeline.Tests.Api;

/// <summary>
/// <c>POST /api/usage/{month}/close[?tenant=]</c>: the operator closes a past month's bills over the API (before, only
/// <c>covidfn usage close</c> pointed at the storage could close a month the timer missed). Only an all-tenant key may;
/// closing again answers the same snapshot; the current and later months, a malformed month or tenant are refused
/// with a 4xx naming the parameter, and nothing is written then.
/// </summary>
public sealed class UsageCloseApiTests
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly DateTimeOffset InApril = new(2026, 4, 30, 23, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Closing_a_past_month_needs_an_all_tenant_key_answers_the_snapshot_and_again_the_same()
    {
        using var kit = new ApiTestKit();
        var clock = new ManualTimeProvider(new DateTimeOffset(2026, 5, 2, 8, 0, 0, TimeSpan.Zero));
        var api = new ResultsApi(kit.Studies, kit.Containers, new UsageQueries(kit.Usage, kit.Studies), kit.Webhooks.Manager, new ResultsApiOptions(), time: clock);
        await RecordScreenedAsync(kit.Usage, "alpha", "s1", 40);
        await RecordScreenedAsync(kit.Usage, "beta", "s2", 60);
        var alphaKey = ApiCaller.ForTenants("alpha");

        // Refused, nothing written: a tenant's key (even for its own tenant), a month not over, malformed values.
        Assert.Equal(403, (await api.CloseUsageMonthAsync(alphaKey, "2026-04", "alpha", None)).Status);
        Assert.Equal(403, (await api.CloseUsageMonthAsync(alphaKey, "2026-04", null, None)).Status);
        await AssertErrorAsync(api, "2026-05", null, 409, "month 2026-05 is not over yet (the current UTC month is 2026-05): only a past month can be closed");
        await AssertErrorAsync(api, "2026-07", "alpha", 409, "month 2026-07 is not over yet (the current UTC month is 2026-05): only a past month can be closed");
        await AssertErrorAsync(api, "April", null, 400, "month 'April' is not yyyy-MM");
        await AssertErrorAsync(api, "2026-04", "Not_A_Tenant", 400, "tenant 'Not_A_Tenant' is not valid");
        Assert.Null(await kit.Usage.GetClosingAsync("alpha", "2026-04", None));
        Assert.Null(await kit.Usage.GetClosedAsync("alpha", "2026-04", None));

        var alpha = await CloseAsync(api, "2026-04", "alpha");
        Assert.Equal((true, clock.Now, 1, 40L), ((bool)alpha["closed"]!, (DateTimeOffset)alpha["closedAt"]!, (int)alpha["studies"]!, (long)alpha["slicesScreened"]!));
        Assert.Null(await kit.Usage.GetClosedAsync("beta", "2026-04", None));

        // Again, later: the same snapshot, byte for byte; GET /api/usage answers it too.
        clock.Now = clock.Now.AddDays(3);
        Assert.Equal(alpha.ToJsonString(), (await CloseAsync(api, "2026-04", "alpha")).ToJsonString());
        Assert.Equal(alpha.ToJsonString(), JsonNode.Parse(Text(await api.GetUsageAsync(ApiCaller.AllTenants, "alpha", "2026-04", None)))!.ToJsonString());

        // Without a tenant: every tenant, alpha's snapshot unchanged.
        var all = (await CloseAsync(api, "2026-04", null)).AsArray();
        Assert.Equal(["alpha", "beta"], all.Select(t => (string)t!["tenant"]!));
        Assert.Equal(alpha.ToJsonString(), all[0]!.ToJsonString());
        Assert.Equal((true, clock.Now, 60L), ((bool)all[1]!["closed"]!, (DateTimeOffset)all[1]!["closedAt"]!, (long)all[1]!["slicesScreened"]!));
        Assert.Equal(all.ToJsonString(), (await CloseAsync(api, "2026-04", null)).ToJsonString());
    }

    [Fact]
    public async Task The_route_is_served_by_the_minimal_api_mapping_over_http()
    {
        using var kit = new ApiTestKit();
        await RecordScreenedAsync(kit.Usage, "alpha", "s1", 40, new DateTimeOffset(2020, 1, 15, 0, 0, 0, TimeSpan.Zero));
        var keys = new LocalApiKeys(kit.Temp.Path);
        var operatorKey = await keys.GetOrCreateOperatorKeyAsync(None);
        var alphaKey = await keys.AddKeyAsync(["alpha"], None);
        await using var server = await ApiHttpServer.StartAsync(kit.Api, keys);
        var http = server.Http;

        using var forbidden = await ApiHttpServer.Send(http, HttpMethod.Post, "/api/usage/2020-01/close?tenant=alpha", alphaKey);
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        using var future = await ApiHttpServer.Send(http, HttpMethod.Post, "/api/usage/2999-01/close", operatorKey);
        Assert.Equal(HttpStatusCode.Conflict, future.StatusCode);
        using var closed = await ApiHttpServer.Send(http, HttpMethod.Post, "/api/usage/2020-01/close?tenant=alpha", operatorKey);
        Assert.Equal(HttpStatusCode.OK, closed.StatusCode);
        var body = JsonNode.Parse(await closed.Content.ReadAsStringAsync())!;
        Assert.Equal((true, 1), ((bool)body["closed"]!, (int)body["studies"]!));
        using var get = await ApiHttpServer.Send(http, HttpMethod.Get, "/api/usage?month=2020-01", alphaKey);
        Assert.Equal(body.ToJsonString(), JsonNode.Parse(await get.Content.ReadAsStringAsync())!.ToJsonString());
    }

    private static async Task RecordScreenedAsync(InMemoryUsageStore usage, string tenant, string studyId, int slices, DateTimeOffset? at = null)
    {
        Assert.True(await usage.TryRecordAsync(new UsageRecord(tenant, studyId, IngestHandler.UsageStage, at ?? InApril, slices, 2, 0, 1_000), None));
        Assert.True(await usage.TryRecordAsync(new UsageRecord(tenant, studyId, StudyOrchestration.UsageStage, at ?? InApril, slices, 0, 4, 0), None));
    }

    private static async Task<JsonNode> CloseAsync(ResultsApi api, string month, string? tenant)
    {
        var response = await api.CloseUsageMonthAsync(ApiCaller.AllTenants, month, tenant, None);
        Assert.Equal(200, response.Status);
        return JsonNode.Parse(Text(response))!;
    }

    private static async Task AssertErrorAsync(ResultsApi api, string month, string? tenant, int status, string message)
    {
        var response = await api.CloseUsageMonthAsync(ApiCaller.AllTenants, month, tenant, None);
        Assert.Equal((status, message), (response.Status, (string?)JsonNode.Parse(Text(response))!["error"]));
    }

    private static string Text(ApiResponse response) => response.BodyText;
}
