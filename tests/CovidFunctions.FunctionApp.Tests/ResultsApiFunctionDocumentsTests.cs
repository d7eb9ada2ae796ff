using System.Text.Json;
using System.Text.Json.Nodes;
using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// What the Function app's results API answers for studies on Azurite (Table and Blob storage, not the in-memory
/// stores): the list pages through studies created at one instant and across tenants, each once, newest first, with
/// a study uploaded between two pages neither repeated nor hiding another; the detail, file and usage routes carry their
/// documented content types and headers; another tenant's file is 404; a study that starts at 23:59:59 UTC on the last
/// day of a month and is scored after midnight is billed once, in that month, and the month's totals are the sum of its
/// records.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class ResultsApiFunctionDocumentsTests(AzuriteFixture azurite)
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task Lists_PageOnTheTableStore_EachStudyOnce_NewestFirst_WhileStudiesArrive()
    {
        using var temp = TestData.CreateTempDirectory();
        await using var services = Build(temp.Path);
        var studies = services.GetRequiredService<IStudyStore>();
        var api = ActivatorUtilities.CreateInstance<ApiFunctions>(services);
        var a = "fd-" + Guid.NewGuid().ToString("N")[..10];
        var b = "fd-" + Guid.NewGuid().ToString("N")[..10];
        var key = (await services.GetRequiredService<ApiKeyAdmin>().MintAsync([a, b], None)).Key;
        var instant = new DateTimeOffset(2026, 11, 27, 8, 0, 0, TimeSpan.Zero).AddTicks(1234567);
        var expected = new List<string>();
        for (var i = 0; i < 7; i++)
        {
            var id = $"s{i:x24}";
            expected.Add(id);
            Assert.True(await studies.TryCreateAsync(new StudyRecord { Tenant = i % 2 == 0 ? a : b, StudyId = id, Status = StudyStatus.Completed, CreatedAt = i < 5 ? instant : instant.AddTicks(-1) }, None));
        }

        var seen = new List<string>();
        string? continuation = null;
        var pages = 0;
        do
        {
            var page = await Run(await api.ListStudies(Request(key, $"?pageSize=2{(continuation is null ? "" : "&continuation=" + continuation)}")));
            Assert.Equal(200, page.Status);
            Assert.Equal(ApiResponse.JsonContentType, page.ContentType);
            using var json = JsonDocument.Parse(page.Body);
            seen.AddRange(json.RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("study").GetString()!));
            continuation = json.RootElement.TryGetProperty("continuation", out var c) ? c.GetString() : null;
            if (pages++ == 0)
            {
                Assert.True(await studies.TryCreateAsync(new StudyRecord { Tenant = a, StudyId = $"s{99:x24}", Status = StudyStatus.Queued, CreatedAt = instant.AddHours(1) }, None));
            }
        }
        while (continuation is not null);

        Assert.Equal(expected, seen);
        Assert.Equal(4, pages);
    }

    [Fact]
    public async Task Detail_File_AndUsage_HaveTheirContentTypes_AnotherTenantsFileIs404_AndAMonthEdgeStudyIsBilledOnce()
    {
        using var temp = TestData.CreateTempDirectory();
        await using var services = Build(temp.Path);
        var storage = services.GetRequiredService<PipelineStorage>();
        var api = ActivatorUtilities.CreateInstance<ApiFunctions>(services);
        var tenant = "fd-" + Guid.NewGuid().ToString("N")[..10];
        var other = "fd-" + Guid.NewGuid().ToString("N")[..10];
        var key = (await services.GetRequiredService<ApiKeyAdmin>().MintAsync([tenant], None)).Key;
        var edge = new DateTimeOffset(2026, 1, 31, 23, 59, 59, TimeSpan.Zero);
        var own = $"s{1:x24}";
        var foreign = $"s{2:x24}";
        await storage.Studies.TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = own, Status = StudyStatus.Completed, CreatedAt = edge, IngestedAt = edge.AddSeconds(20), CompletedAt = edge.AddSeconds(90), Label = "normal", ProbabilityCovid = 0.1, ProbabilityCap = 0.2, ProbabilityNormal = 0.7, LesionBurden = 0, SliceCount = 40 }, None);
        await storage.Studies.TryCreateAsync(new StudyRecord { Tenant = other, StudyId = foreign, Status = StudyStatus.Completed, CreatedAt = edge }, None);
        var results = storage.BlobContainers.Get(PipelineNames.ResultsContainer);
        await results.WriteAsync($"{tenant}/{own}/chunks/0000.json", new MemoryStream("{}"u8.ToArray()), None);
        await results.WriteAsync($"{other}/{foreign}/chunks/0000.json", new MemoryStream("{}"u8.ToArray()), None);
        await storage.Usage.TryRecordAsync(new UsageRecord(tenant, own, "ingest", edge, 40, 1.25, 0, 4096), None);
        await storage.Usage.TryRecordAsync(new UsageRecord(tenant, own, "scoring", edge.AddSeconds(90), 40, 0.5, 2.125, 0), None);
        await storage.Usage.TryRecordAsync(new UsageRecord(tenant, own, "scoring", edge.AddSeconds(200), 40, 0.5, 2.125, 0), None);
        await storage.Usage.TryRecordAsync(new UsageRecord(other, foreign, "ingest", edge.AddSeconds(30), 40, 1, 0, 1), None);

        var detail = await Run(await api.GetStudy(Request(key), own));
        Assert.Equal(200, detail.Status);
        Assert.Equal(ApiResponse.JsonContentType, detail.ContentType);
        Assert.Equal("no-store", detail.Headers["Cache-Control"]);
        Assert.Equal("nosniff", detail.Headers["X-Content-Type-Options"]);
        var report = await Run(await api.GetStudyReport(Request(key), own));
        Assert.Equal(ApiResponse.HtmlContentType, report.ContentType);
        Assert.Contains("default-src 'none'", report.Headers["Content-Security-Policy"], StringComparison.Ordinal);
        Assert.Equal(ApiResponse.FhirJsonContentType, (await Run(await api.GetStudyFhir(Request(key), own))).ContentType);
        var file = await Run(await api.GetStudyFile(Request(key), own, "chunks/0000.json"));
        Assert.Equal(200, file.Status);
        Assert.Equal(ApiResponse.JsonContentType, file.ContentType);
        Assert.Equal(404, (await Run(await api.GetStudyFile(Request(key), foreign, "chunks/0000.json"))).Status);
        Assert.Equal(404, (await Run(await api.GetStudyFile(Request(key, "?tenant=" + other), foreign, "chunks/0000.json"))).Status);
        var missing = await Run(await api.GetStudy(Request(key), $"s{3:x24}"));
        Assert.Equal(404, missing.Status);
        Assert.Equal(ApiResponse.JsonContentType, missing.ContentType);
        Assert.Equal(404, JsonNode.Parse(missing.Text)!["status"]!.GetValue<int>());

        var january = JsonNode.Parse((await Run(await api.GetUsage(Request(key, "?month=2026-01")))).Text)!;
        Assert.Equal(tenant, (string)january["tenant"]!);
        Assert.Equal(1, (int)january["studies"]!);
        Assert.Equal(40, (long)january["slicesScreened"]!);
        Assert.Equal(1.75, (double)january["cpuSeconds"]!);
        Assert.Equal(2.125, (double)january["gpuSeconds"]!);
        Assert.Equal(4096, (long)january["bytesStored"]!);
        Assert.Equal(2, (int)january["records"]!);
        Assert.Equal(0, (int)january["unscreenedStudies"]!);
        var february = JsonNode.Parse((await Run(await api.GetUsage(Request(key, "?month=2026-02")))).Text)!;
        Assert.Equal(0, (int)february["studies"]!);
        Assert.Equal(0, (int)february["records"]!);
        Assert.Equal(403, (await Run(await api.GetUsage(Request(key, "?tenant=" + other + "&month=2026-01")))).Status);
    }

    private static HttpRequest Request(string apiKey, string query = "") => FunctionHttp.Request("GET", apiKey, query: query);

    private static Task<FunctionAnswer> Run(IActionResult result) => FunctionHttp.Run(result);

    private ServiceProvider Build(string keyDirectory) => SampleApp.Build(azurite, keyDirectory);
}
