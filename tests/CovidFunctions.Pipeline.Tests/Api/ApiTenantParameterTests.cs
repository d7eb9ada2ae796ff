using CovidFunctions.Pipeline.Api;

namespace CovidFunctions.Pipeline.Tests.Api;

/// <summary>
/// A <c>?tenant=</c> that is no valid tenant name answers the same on every route that takes one: 400 where a list or
/// a total is asked for, 404 where one study is. Before, <c>GET /api/webhooks?tenant=</c> passed any string to the
/// subscription store and answered 200 with an empty list, as if the tenant existed and had no subscriptions.
/// </summary>
public sealed class ApiTenantParameterTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Theory]
    [InlineData("Alpha")]
    [InlineData("a'b")]
    [InlineData("a|2026-11")]
    [InlineData("_month")]
    public async Task AnInvalidTenant_Is400ForListsAndUsage_And404ForAStudy(string tenant)
    {
        using var kit = new ApiTestKit();
        await kit.AddCompletedStudyAsync("alpha", "s0000000000000000000000a1");
        var all = ApiCaller.AllTenants;

        Assert.Equal(400, (await kit.Api.ListStudiesAsync(all, new StudyListQuery(Tenant: tenant), None)).Status);
        Assert.Equal(400, (await kit.Api.GetUsageAsync(all, tenant, "2026-11", None)).Status);
        Assert.Equal(400, (await kit.Api.CreateWebhookAsync(all, new CreateWebhookRequest("https://example.org/hook", tenant, null, null), None)).Status);
        var hooks = await kit.Api.ListWebhooksAsync(all, tenant, None);
        Assert.Equal(400, hooks.Status);
        Assert.Contains("not valid", hooks.BodyText, StringComparison.Ordinal);
        Assert.Equal(404, (await kit.Api.GetStudyAsync(all, "s0000000000000000000000a1", tenant, None)).Status);
    }
}
