using System.Text.Json;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Tests.Api;

public sealed class ResultsApiTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task GetStudy_ShowsStagesTimingsDiagnosisSeriesAndLinks()
    {
        using var kit = new ApiTestKit();
        await kit.AddCompletedStudyAsync("alpha", "s0000000000000000000000a1");

        var response = await kit.Api.GetStudyAsync(ApiCaller.ForTenants("alpha"), "s0000000000000000000000a1", null, None);

        Assert.Equal(200, response.Status);
        using var json = JsonDocument.Parse(response.Body);
        var root = json.RootElement;
        Assert.Equal("completed", root.GetProperty("status").GetString());
        Assert.Equal("covid", root.GetProperty("diagnosis").GetProperty("label").GetString());
        Assert.Equal(7.5, root.GetProperty("timings").GetProperty("scoring").GetDouble());
        Assert.Equal("2.25.1", root.GetProperty("series").GetProperty("selected").GetProperty("seriesInstanceUid").GetString());
        Assert.Equal(["queued", "ingest", "scoring", "diagnosis"], root.GetProperty("stages").EnumerateArray().Select(s => s.GetProperty("name").GetString()));
        Assert.Equal("http://127.0.0.1:7071/api/studies/s0000000000000000000000a1/report", root.GetProperty("links").GetProperty("report").GetString());
        Assert.DoesNotContain("Doe^Jane", response.BodyText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TenantsSeeOnlyTheirOwnStudies_AnotherTenantsStudyIs404()
    {
        using var kit = new ApiTestKit();
        await kit.AddCompletedStudyAsync("alpha", "s0000000000000000000000a1");
        await kit.AddCompletedStudyAsync("beta", "s0000000000000000000000b1");
        var beta = ApiCaller.ForTenants("beta");

        Assert.Equal(404, (await kit.Api.GetStudyAsync(beta, "s0000000000000000000000a1", null, None)).Status);
        Assert.Equal(404, (await kit.Api.GetStudyAsync(beta, "s0000000000000000000000a1", "alpha", None)).Status);
        Assert.Equal(404, (await kit.Api.GetReportAsync(beta, "s0000000000000000000000a1", null, None)).Status);
        Assert.Equal(404, (await kit.Api.GetFhirAsync(beta, "s0000000000000000000000a1", null, None)).Status);
        Assert.Equal(404, (await kit.Api.GetFileAsync(beta, "s0000000000000000000000a1", "overlays/0031.png", null, None)).Status);
        Assert.Equal(200, (await kit.Api.GetStudyAsync(beta, "s0000000000000000000000b1", null, None)).Status);
        Assert.Equal(403, (await kit.Api.ListStudiesAsync(beta, new StudyListQuery(Tenant: "alpha"), None)).Status);

        using var list = JsonDocument.Parse((await kit.Api.ListStudiesAsync(beta, new StudyListQuery(), None)).Body);
        Assert.Equal(["s0000000000000000000000b1"], list.RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("study").GetString()));

        using var all = JsonDocument.Parse((await kit.Api.ListStudiesAsync(ApiCaller.AllTenants, new StudyListQuery(), None)).Body);
        Assert.Equal(2, all.RootElement.GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task ListStudies_PagesWithContinuationTokens_AndFilters()
    {
        using var kit = new ApiTestKit();
        var t0 = new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero);
        for (var i = 0; i < 5; i++)
        {
            await kit.Studies.TryCreateAsync(new StudyRecord { Tenant = "alpha", StudyId = $"s00000000000000000000000{i}", Status = i == 4 ? StudyStatus.Failed : StudyStatus.Completed, CreatedAt = t0.AddDays(i) }, None);
        }

        var seen = new List<string>();
        string? continuation = null;
        var pages = 0;
        do
        {
            var response = await kit.Api.ListStudiesAsync(ApiCaller.AllTenants, new StudyListQuery(Tenant: "alpha", Continuation: continuation, PageSize: 2), None);
            Assert.Equal(200, response.Status);
            using var json = JsonDocument.Parse(response.Body);
            seen.AddRange(json.RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("study").GetString()!));
            continuation = json.RootElement.TryGetProperty("continuation", out var c) ? c.GetString() : null;
            pages++;
        }
        while (continuation is not null);

        Assert.Equal(3, pages);
        Assert.Equal(5, seen.Distinct().Count());

        using var failed = JsonDocument.Parse((await kit.Api.ListStudiesAsync(ApiCaller.AllTenants, new StudyListQuery(Status: "failed"), None)).Body);
        Assert.Equal(["s000000000000000000000004"], failed.RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("study").GetString()));

        using var ranged = JsonDocument.Parse((await kit.Api.ListStudiesAsync(ApiCaller.AllTenants, new StudyListQuery(From: t0.AddDays(1), To: t0.AddDays(2).AddHours(1)), None)).Body);
        Assert.Equal(2, ranged.RootElement.GetProperty("items").GetArrayLength());

        Assert.Equal(400, (await kit.Api.ListStudiesAsync(ApiCaller.AllTenants, new StudyListQuery(Continuation: "garbage!"), None)).Status);
        Assert.Equal(400, (await kit.Api.ListStudiesAsync(ApiCaller.AllTenants, new StudyListQuery(Status: "bogus"), None)).Status);
    }

    [Fact]
    public async Task GetFile_ServesTheOverlayPng_AndRefusesPathsOutsideTheStudy()
    {
        using var kit = new ApiTestKit();
        await kit.AddCompletedStudyAsync("alpha", "s0000000000000000000000a1");
        var caller = ApiCaller.ForTenants("alpha");

        var png = await kit.Api.GetFileAsync(caller, "s0000000000000000000000a1", "overlays/0031.png", null, None);
        Assert.Equal(200, png.Status);
        Assert.Equal("image/png", png.ContentType);
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47 }, png.Body[..4]);
        Assert.Equal(400, (await kit.Api.GetFileAsync(caller, "s0000000000000000000000a1", "../s0000000000000000000000b1/montage.png", null, None)).Status);
        Assert.Equal(404, (await kit.Api.GetFileAsync(caller, "s0000000000000000000000a1", "overlays/9999.png", null, None)).Status);
    }
}
