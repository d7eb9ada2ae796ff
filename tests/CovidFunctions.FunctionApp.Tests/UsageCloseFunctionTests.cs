using System.Text.Json.Nodes;
using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.DependencyInjection;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// The Function app's CloseUsageMonth timer and GET /api/usage on Azurite, wired as in Azure (AddCovidFunctionsApp with
/// the sample settings; the clock replaced): nothing closes within the grace period or while a study of the month is
/// running; once closed, the API answers the snapshot with closed/closedAt, and usage arriving later is billed in the
/// next month. Month 2029-06 is this test's alone (the timer closes every tenant's previous month).
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class UsageCloseFunctionTests(AzuriteFixture azurite)
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task The_timer_closes_the_previous_month_after_the_grace_period_and_the_api_answers_the_final_bill()
    {
        using var temp = TestData.CreateTempDirectory();
        var clock = new SettableClock(new DateTimeOffset(2029, 7, 3, 23, 30, 0, TimeSpan.Zero));
        await using var services = Build(temp.Path, clock);
        var storage = services.GetRequiredService<PipelineStorage>();
        var api = ActivatorUtilities.CreateInstance<ApiFunctions>(services);
        var timer = ActivatorUtilities.CreateInstance<MeteringFunctions>(services);
        var tenant = "uc-" + Guid.NewGuid().ToString("N")[..10];
        var key = (await services.GetRequiredService<ApiKeyAdmin>().MintAsync([tenant], None)).Key;
        var inJune = new DateTimeOffset(2029, 6, 30, 23, 0, 0, TimeSpan.Zero);
        await storage.Usage.TryRecordAsync(new UsageRecord(tenant, "s-done", "ingest", inJune, 40, 1.25, 0, 4096), None);
        await storage.Usage.TryRecordAsync(new UsageRecord(tenant, "s-done", StudyOrchestration.UsageStage, inJune, 40, 0, 2.5, 0), None);
        await storage.Usage.TryRecordAsync(new UsageRecord(tenant, "s-running", "ingest", inJune, 20, 0.5, 0, 1024), None);
        await storage.Studies.TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = "s-running", Status = StudyStatus.Processing, CreatedAt = inJune }, None);

        await timer.CloseUsageMonth(new TimerInfo(), None);
        var open = await UsageAsync(api, key, "2029-06");
        Assert.False((bool)open["closed"]!);
        Assert.Null(open["closedAt"]);

        // Past the 3-day grace period, but a study of June is still processing: June waits.
        clock.Now = new DateTimeOffset(2029, 7, 4, 0, 30, 0, TimeSpan.Zero);
        await timer.CloseUsageMonth(new TimerInfo(), None);
        Assert.False((bool)(await UsageAsync(api, key, "2029-06"))["closed"]!);

        // The study fails: the next run closes June with the figures it had open.
        await storage.Studies.UpdateAsync(tenant, "s-running", r => r! with { Status = StudyStatus.Failed }, None);
        clock.Now = clock.Now.AddHours(1);
        await timer.CloseUsageMonth(new TimerInfo(), None);
        var closed = await UsageAsync(api, key, "2029-06");
        Assert.True((bool)closed["closed"]!);
        Assert.Equal(clock.Now, DateTimeOffset.Parse((string)closed["closedAt"]!, System.Globalization.CultureInfo.InvariantCulture));
        foreach (var figure in new[] { "studies", "slicesScreened", "cpuSeconds", "gpuSeconds", "bytesStored", "records", "unscreenedStudies" })
        {
            Assert.Equal(open[figure]!.ToJsonString(), closed[figure]!.ToJsonString());
        }

        // A retried scoring of the failed study arriving now changes nothing in June; it is July's, with its ingest.
        Assert.True(await storage.Usage.TryRecordAsync(new UsageRecord(tenant, "s-running", StudyOrchestration.UsageStage, clock.Now, 20, 0, 1, 0), None));
        Assert.Equal(closed.ToJsonString(), (await UsageAsync(api, key, "2029-06")).ToJsonString());
        var july = await UsageAsync(api, key, "2029-07");
        Assert.Equal((1, 2, false), ((int)july["studies"]!, (int)july["lateRecords"]!, (bool)july["closed"]!));
    }

    [Fact]
    public async Task A_month_the_timer_missed_is_closed_through_the_api_with_an_all_tenant_key_only()
    {
        // The timer was stopped through May and June: April (this test's month alone) is two months back, and the timer
        // only ever closes the previous month. Before, only covidfn usage close pointed at the storage could close it.
        using var temp = TestData.CreateTempDirectory();
        var clock = new SettableClock(new DateTimeOffset(2029, 6, 10, 9, 0, 0, TimeSpan.Zero));
        await using var services = Build(temp.Path, clock);
        var storage = services.GetRequiredService<PipelineStorage>();
        var api = ActivatorUtilities.CreateInstance<ApiFunctions>(services);
        var tenant = "ucm-" + Guid.NewGuid().ToString("N")[..10];
        var admin = services.GetRequiredService<ApiKeyAdmin>();
        var tenantKey = (await admin.MintAsync([tenant], None)).Key;
        var operatorKey = (await admin.MintAsync(["*"], None)).Key;
        var inApril = new DateTimeOffset(2029, 4, 20, 12, 0, 0, TimeSpan.Zero);
        await storage.Usage.TryRecordAsync(new UsageRecord(tenant, "s-april", "ingest", inApril, 30, 1.5, 0, 2048), None);
        await storage.Usage.TryRecordAsync(new UsageRecord(tenant, "s-april", StudyOrchestration.UsageStage, inApril, 30, 0, 3.5, 0), None);
        var open = await UsageAsync(api, tenantKey, "2029-04");

        Assert.Equal(403, (await CloseAsync(api, tenantKey, "2029-04", tenant)).Status);
        Assert.Equal(409, (await CloseAsync(api, operatorKey, "2029-06", tenant)).Status);
        Assert.Equal(400, (await CloseAsync(api, operatorKey, "2029-4", tenant)).Status);
        Assert.Equal(401, (await CloseAsync(api, "cfk_unknown", "2029-04", tenant)).Status);
        Assert.Null(await storage.Usage.GetClosingAsync(tenant, "2029-04", None));

        var (status, body) = await CloseAsync(api, operatorKey, "2029-04", tenant);
        Assert.Equal(200, status);
        var closed = JsonNode.Parse(body)!;
        Assert.True((bool)closed["closed"]!);
        Assert.Equal(clock.Now, DateTimeOffset.Parse((string)closed["closedAt"]!, System.Globalization.CultureInfo.InvariantCulture));
        foreach (var figure in new[] { "studies", "slicesScreened", "cpuSeconds", "gpuSeconds", "bytesStored", "records", "unscreenedStudies" })
        {
            Assert.Equal(open[figure]!.ToJsonString(), closed[figure]!.ToJsonString());
        }

        // Closing again a day later answers the same snapshot; the tenant reads it as its final bill.
        clock.Now = clock.Now.AddDays(1);
        Assert.Equal((200, body), await CloseAsync(api, operatorKey, "2029-04", tenant));
        Assert.Equal(closed.ToJsonString(), (await UsageAsync(api, tenantKey, "2029-04")).ToJsonString());
    }

    private static async Task<(int Status, string Body)> CloseAsync(ApiFunctions api, string key, string month, string tenant)
    {
        var answer = await FunctionHttp.Run(await api.CloseUsage(FunctionHttp.Request("POST", key, query: "?tenant=" + tenant), month));
        return (answer.Status, answer.Text);
    }

    private static async Task<JsonNode> UsageAsync(ApiFunctions api, string key, string month)
    {
        var answer = await FunctionHttp.Run(await api.GetUsage(FunctionHttp.Request("GET", key, query: "?month=" + month)));
        Assert.Equal(200, answer.Status);
        return JsonNode.Parse(answer.Text)!;
    }

    private ServiceProvider Build(string keyDirectory, TimeProvider clock) => SampleApp.Build(azurite, keyDirectory, clock);

    private sealed class SettableClock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }
}
