using System.Text.Json;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.Pipeline.Tests.Api;

namespace CovidFunctions.Pipeline.Tests.Metering;

public sealed class UsageQueriesTests
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly DateTimeOffset November = new(2026, 11, 10, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task MonthlyTotals_EqualTheSlicesScreened_UnderDuplicateRecords()
    {
        var usage = new InMemoryUsageStore();
        var studies = new InMemoryStudyStore();
        // Every record delivered twice (a re-run activity, a duplicated message): the store keeps one per (study, stage).
        for (var copy = 0; copy < 2; copy++)
        {
            Assert.Equal(copy == 0, await usage.TryRecordAsync(new UsageRecord("alpha", "s1", "scoring", November, 300, 120.5, 0, 0), None));
            Assert.Equal(copy == 0, await usage.TryRecordAsync(new UsageRecord("alpha", "s1", "ingest", November, 300, 10, 0, 52_000_000), None));
            Assert.Equal(copy == 0, await usage.TryRecordAsync(new UsageRecord("alpha", "s2", "scoring", November.AddDays(3), 64, 0, 9.5, 0), None));
        }

        await usage.TryRecordAsync(new UsageRecord("alpha", "s3", "scoring", November.AddMonths(-1), 999, 1, 0, 0), None);
        await usage.TryRecordAsync(new UsageRecord("beta", "s4", "scoring", November, 10, 1, 0, 0), None);

        var totals = await new UsageQueries(usage, studies).MonthlyTotalsAsync("alpha", "2026-11", None);

        Assert.Equal(new UsageTotals("alpha", "2026-11", Studies: 2, SlicesScreened: 364, CpuSeconds: 130.5, GpuSeconds: 9.5, BytesStored: 52_000_000, Records: 3), totals);
    }

    [Fact]
    public void Total_CountsDuplicatesOnce_EvenWhenTheStoreReturnsThem()
    {
        var record = new UsageRecord("alpha", "s1", "scoring", November, 300, 100, 0, 0);
        var totals = UsageQueries.Total("alpha", "2026-11", [record, record, record with { At = November.AddSeconds(5) }]);
        Assert.Equal(300, totals.SlicesScreened);
        Assert.Equal(100, totals.CpuSeconds);
        Assert.Equal(1, totals.Studies);
    }

    [Fact]
    public async Task UsageEndpoint_AnswersPerTenant_AndRefusesOtherTenants()
    {
        using var kit = new ApiTestKit();
        await kit.AddCompletedStudyAsync("alpha", "s0000000000000000000000a1");
        await kit.AddCompletedStudyAsync("beta", "s0000000000000000000000b1");
        await kit.Usage.TryRecordAsync(new UsageRecord("alpha", "s0000000000000000000000a1", "scoring", November, 64, 12, 0, 0), None);
        await kit.Usage.TryRecordAsync(new UsageRecord("beta", "s0000000000000000000000b1", "scoring", November, 32, 6, 0, 0), None);

        using var mine = JsonDocument.Parse((await kit.Api.GetUsageAsync(ApiCaller.ForTenants("alpha"), null, "2026-11", None)).Body);
        Assert.Equal(64, mine.RootElement.GetProperty("slicesScreened").GetInt64());
        Assert.Equal(403, (await kit.Api.GetUsageAsync(ApiCaller.ForTenants("alpha"), "beta", "2026-11", None)).Status);
        Assert.Equal(400, (await kit.Api.GetUsageAsync(ApiCaller.AllTenants, "alpha", "2026-13", None)).Status);

        using var all = JsonDocument.Parse((await kit.Api.GetUsageAsync(ApiCaller.AllTenants, null, "2026-11", None)).Body);
        Assert.Equal(["alpha", "beta"], all.RootElement.EnumerateArray().Select(t => t.GetProperty("tenant").GetString()));
    }
}
