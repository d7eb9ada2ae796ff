using System.IO.Compression;
using System.Text.Json;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.Pipeline.Tests.Api;
using CovidFunctions.Pipeline.Tests.Ingest;
using CovidFunctions.Pipeline.Tests.Orchestration;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Pipeline.Tests.Metering;

/// <summary>
/// A tenant is billed once per screened study, never for a study the pipeline failed, and never twice when a retry,
/// a redelivery or a month boundary gets between the stages (the in-memory store and the real handlers; the same
/// rules on Azurite are in CovidFunctions.Pipeline.Azure.Tests' UsageMeteringTests).
/// </summary>
public sealed class MeteringCorrectnessTests
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly DateTimeOffset LastSecondOfMarch = new(2026, 3, 31, 23, 59, 50, TimeSpan.Zero);

    private static string SharpSeries => TestData.Shared("dicom", "chest-ct", "lung-pet-ct-dx", "A0002-s2-b70f");

    [Fact]
    public async Task InMemoryStore_SameStageAfterTheMonthTurned_IsRefused_AndLaterStagesFollowTheFirstMonth()
    {
        var usage = new InMemoryUsageStore();
        Assert.True(await usage.TryRecordAsync(new UsageRecord("t", "s1", IngestHandler.UsageStage, LastSecondOfMarch, 8, 2, 0, 100), None));
        Assert.False(await usage.TryRecordAsync(new UsageRecord("t", "s1", IngestHandler.UsageStage, LastSecondOfMarch.AddMinutes(1), 8, 3, 0, 100), None));
        Assert.True(await usage.TryRecordAsync(new UsageRecord("t", "s1", StudyOrchestration.UsageStage, LastSecondOfMarch.AddMinutes(2), 8, 5, 0, 0), None));

        var queries = new UsageQueries(usage, new InMemoryStudyStore());
        Assert.Equal(new UsageTotals("t", "2026-03", 1, 8, 7, 0, 100, 2), await queries.MonthlyTotalsAsync("t", "2026-03", None));
        Assert.Equal(new UsageTotals("t", "2026-04", 0, 0, 0, 0, 0, 0), await queries.MonthlyTotalsAsync("t", "2026-04", None));
    }

    [Fact]
    public async Task Ingest_RetriedAfterPartialWork_InTheNextMonth_RecordsUsageOnce()
    {
        // The first delivery records usage, then dies before the row says "ingested" (here: the row is put back as
        // that crash leaves it). The redelivery ingests again, after midnight UTC on the last day of the month.
        using var host = new IngestTestHost();
        host.Time.Now = LastSecondOfMarch;
        await host.UploadAsync("lab/chest.zip", Zip(Directory.EnumerateFiles(SharpSeries, "*.dcm").Order(StringComparer.Ordinal).Take(6)));
        var unit = Assert.Single(await host.PlanAsync());
        Assert.Equal(IngestStatus.Ingested, (await host.Handler.IngestAsync(unit, None)).Status);
        await host.Studies.UpdateAsync(unit.Tenant, unit.StudyId, row => row! with { IngestedAt = null, Status = StudyStatus.Processing }, None);

        host.Time.Now = LastSecondOfMarch.AddSeconds(20);
        Assert.Equal(IngestStatus.Ingested, (await host.Handler.IngestAsync(unit, None)).Status);

        var record = Assert.Single(host.Usage.Snapshot());
        Assert.Equal(LastSecondOfMarch, record.At);
        Assert.Empty(await host.Usage.GetMonthAsync(unit.Tenant, "2026-04", None));
    }

    [Fact]
    public async Task EveryChunkResultTwice_BillsTheStudysSlicesOnce()
    {
        await using var harness = await OrchestrationHarness.StartAsync(_ => FakeScorerAction.AnswerTwice);
        var input = await harness.CreateStudyAsync("s-twice", sliceCount: 5, chunkSize: 2);
        // Ingest's record, as the ingest handler writes it before the orchestration starts.
        await harness.Usage.TryRecordAsync(new UsageRecord(OrchestrationHarness.Tenant, "s-twice", IngestHandler.UsageStage, DateTimeOffset.UtcNow, 5, 1, 0, 1000), None);

        Assert.Equal(StudyStatus.Completed, (await harness.RunAsync(input)).Status);

        var month = UsageQueries.MonthOf(harness.Usage.Snapshot()[0].At);
        var totals = await new UsageQueries(harness.Usage, harness.Studies).MonthlyTotalsAsync(OrchestrationHarness.Tenant, month, None);
        Assert.Equal((1, 5L, 2, 0), (totals.Studies, totals.SlicesScreened, totals.Records, totals.UnscreenedStudies));
    }

    [Fact]
    public async Task AStudyTheScorerCouldNotScore_IsNotBilled_ItsIngestCountedAsUnscreened()
    {
        await using var harness = await OrchestrationHarness.StartAsync(r => r.ChunkIndex == 0 ? FakeScorerAction.Error : FakeScorerAction.Answer);
        var input = await harness.CreateStudyAsync("s-fail", sliceCount: 4, chunkSize: 2);
        var ingestedAt = DateTimeOffset.UtcNow;
        await harness.Usage.TryRecordAsync(new UsageRecord(OrchestrationHarness.Tenant, "s-fail", IngestHandler.UsageStage, ingestedAt, 4, 3, 0, 4000), None);

        Assert.Equal(StudyStatus.Failed, (await harness.RunAsync(input)).Status);

        var totals = await new UsageQueries(harness.Usage, harness.Studies).MonthlyTotalsAsync(OrchestrationHarness.Tenant, UsageQueries.MonthOf(ingestedAt), None);
        Assert.Equal(new UsageTotals(OrchestrationHarness.Tenant, UsageQueries.MonthOf(ingestedAt), 0, 0, 0, 0, 0, 1, UnscreenedStudies: 1), totals);
    }

    [Fact]
    public async Task UsageEndpoint_AllTenantKey_ListsATenantWithUsageButNoStudyRows()
    {
        using var kit = new ApiTestKit();
        await kit.Usage.TryRecordAsync(new UsageRecord("gamma", "s0000000000000000000000c1", StudyOrchestration.UsageStage, LastSecondOfMarch, 12, 1, 0, 0), None);

        using var all = JsonDocument.Parse((await kit.Api.GetUsageAsync(ApiCaller.AllTenants, null, "2026-03", None)).Body);
        var gamma = Assert.Single(all.RootElement.EnumerateArray(), t => t.GetProperty("tenant").GetString() == "gamma");
        Assert.Equal(12, gamma.GetProperty("slicesScreened").GetInt64());
        Assert.Equal(0, gamma.GetProperty("unscreenedStudies").GetInt32());
    }

    public static TheoryData<UsageRecord> Unbillable => new()
    {
        new UsageRecord("t", "s1", StudyOrchestration.UsageStage, default, 8, 1, 0, 0),
        new UsageRecord("t", "s1", StudyOrchestration.UsageStage, LastSecondOfMarch, -8, 1, 0, 0),
        new UsageRecord("t", "s1", StudyOrchestration.UsageStage, LastSecondOfMarch, 8, double.NaN, 0, 0),
        new UsageRecord("t", "s1", StudyOrchestration.UsageStage, LastSecondOfMarch, 8, 1, double.PositiveInfinity, 0),
        new UsageRecord("t", "s1", StudyOrchestration.UsageStage, LastSecondOfMarch, 8, -1, 0, 0),
        new UsageRecord("t", "s1", StudyOrchestration.UsageStage, LastSecondOfMarch, 8, 1, 0, -1),
        new UsageRecord("t", "", StudyOrchestration.UsageStage, LastSecondOfMarch, 8, 1, 0, 0),
        new UsageRecord("t", "s1", "", LastSecondOfMarch, 8, 1, 0, 0),
        new UsageRecord("T|2026-03", "s1", StudyOrchestration.UsageStage, LastSecondOfMarch, 8, 1, 0, 0),
    };

    [Theory]
    [MemberData(nameof(Unbillable))]
    public async Task InMemoryStore_RefusesARecordThatCannotBeBilledCorrectly_AndKeepsNothing(UsageRecord record)
    {
        // A default time would file the study under the year 1 (no query looks there) and claim that month for its
        // later stages too; NaN or a negative value would poison or lower the month's sum.
        var usage = new InMemoryUsageStore();
        await Assert.ThrowsAnyAsync<ArgumentException>(() => usage.TryRecordAsync(record, None));
        Assert.Empty(usage.Snapshot());
        Assert.True(await usage.TryRecordAsync(new UsageRecord("t", "s1", StudyOrchestration.UsageStage, LastSecondOfMarch, 8, 1, 0, 0), None));
        Assert.Single(await usage.GetMonthAsync("t", "2026-03", None));
    }

    private static byte[] Zip(IEnumerable<string> files)
    {
        using var buffer = new MemoryStream();
        using (var zip = new ZipArchive(buffer, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var file in files)
            {
                zip.CreateEntryFromFile(file, Path.GetFileName(file));
            }
        }

        return buffer.ToArray();
    }
}
