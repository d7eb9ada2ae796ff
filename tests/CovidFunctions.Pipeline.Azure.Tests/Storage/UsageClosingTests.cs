using Azure.Data.Tables;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Azure.Tests.Webhooks;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// Month closing on a real Azurite <c>Usage</c> table: the snapshot is the open bill at close time and never changes,
/// closing again or racing gives one snapshot, months not over are refused, a record arriving after the close is
/// carried into the first open month (the study billed whole there), and the timer's grace and maximum wait.
/// Each test uses its own tenant and months (2030-xx) no other test files records under.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class UsageClosingTests(AzuriteFixture azurite)
{
    private static readonly CancellationToken None = CancellationToken.None;

    private static readonly DateTimeOffset InOctober = new(2030, 10, 14, 9, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset LastSecondOfOctober = new(2030, 10, 31, 23, 59, 59, TimeSpan.Zero);
    private static readonly DateTimeOffset InNovember = new(2030, 11, 6, 10, 0, 0, TimeSpan.Zero);

    private IUsageStore Usage => azurite.Storage.Usage;

    private TableClient Table => ((TableUsageStore)azurite.Storage.Usage).Table;

    private UsageQueries Queries => new(azurite.Storage.Usage, azurite.Storage.Studies);

    private UsageClosing Closing(DateTimeOffset now) => new(azurite.Storage.Usage, azurite.Storage.Studies, new ManualClock(now));

    [Fact]
    public async Task The_snapshot_is_the_open_bill_at_close_time_and_is_what_the_month_reads_afterwards()
    {
        var tenant = AzuriteFixture.NewTenant();
        await RecordAsync(tenant, "s1", "ingest", InOctober, 300, cpu: 12, bytes: 5_000_000);
        await RecordAsync(tenant, "s1", StudyOrchestration.UsageStage, InOctober.AddMinutes(9), 300, gpu: 40);
        await RecordAsync(tenant, "s2", "ingest", LastSecondOfOctober, 120, cpu: 5, bytes: 1_000_000); // failed after ingest
        var open = await Queries.MonthlyTotalsAsync(tenant, "2030-10", None);
        Assert.False(open.Closed);
        Assert.Null(open.ClosedAt);

        var closedAt = new DateTimeOffset(2030, 11, 4, 0, 30, 0, TimeSpan.Zero);
        var snapshot = await Closing(closedAt).CloseAsync(tenant, "2030-10", None);

        Assert.Equal(open with { Closed = true, ClosedAt = closedAt }, snapshot);
        Assert.Equal((1, 300L, 12.0, 40.0, 5_000_000L, 3, 1), (snapshot.Studies, snapshot.SlicesScreened, snapshot.CpuSeconds, snapshot.GpuSeconds, snapshot.BytesStored, snapshot.Records, snapshot.UnscreenedStudies));
        Assert.Equal(snapshot, await Queries.MonthlyTotalsAsync(tenant, "2030-10", None));
        Assert.Equal(snapshot, Assert.Single(await Queries.MonthlyTotalsForAllAsync("2030-10", None), t => t.Tenant == tenant));
    }

    [Fact]
    public async Task Closing_again_or_racing_yields_one_snapshot()
    {
        var tenant = AzuriteFixture.NewTenant();
        await RecordAsync(tenant, "s1", "ingest", InOctober, 64, cpu: 2, bytes: 100);
        await RecordAsync(tenant, "s1", StudyOrchestration.UsageStage, InOctober, 64, gpu: 7);
        var first = new DateTimeOffset(2030, 11, 4, 0, 0, 0, TimeSpan.Zero);

        // Four closers at once, each with its own clock: one fence, one snapshot, all four answer it.
        var racing = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => Closing(first.AddMinutes(i)).CloseAsync(tenant, "2030-10", None)));
        Assert.Single(racing.Distinct());
        var again = await Closing(first.AddDays(20)).CloseAsync(tenant, "2030-10", None);

        Assert.Equal(racing[0], again);
        Assert.Contains(again.ClosedAt, Enumerable.Range(0, 4).Select(i => (DateTimeOffset?)first.AddMinutes(i)));
        var rows = await Table.QueryAsync<TableEntity>(e => e.PartitionKey == TableUsageStore.ClosedPartitionKeyOf(tenant)).ToListAsync();
        Assert.Equal("2030-10", Assert.Single(rows).RowKey);
    }

    [Theory]
    [InlineData("2030-11", "month 2030-11 is not over yet (the current UTC month is 2030-11): only a past month can be closed")]
    [InlineData("2031-01", "month 2031-01 is not over yet (the current UTC month is 2030-11): only a past month can be closed")]
    [InlineData("2030-13", "month '2030-13' is not yyyy-MM")]
    [InlineData("2030-1", "month '2030-1' is not yyyy-MM")]
    public async Task A_month_that_is_not_over_or_not_a_month_is_refused_and_nothing_is_written(string month, string reason)
    {
        var tenant = AzuriteFixture.NewTenant();
        await RecordAsync(tenant, "s1", "ingest", InNovember, 64, cpu: 2, bytes: 100);

        var refused = await Assert.ThrowsAsync<ArgumentException>(() => Closing(InNovember).CloseAsync(tenant, month, None));
        await Assert.ThrowsAsync<ArgumentException>(() => Closing(InNovember).CloseAllAsync(month, None));

        Assert.StartsWith(reason, refused.Message, StringComparison.Ordinal);
        Assert.Null(await Usage.GetClosingAsync(tenant, "2030-11", None));
        Assert.Empty(await Table.QueryAsync<TableEntity>(e => e.PartitionKey == TableUsageStore.ClosedPartitionKeyOf(tenant)).ToListAsync());
        await RecordAsync(tenant, "s1", StudyOrchestration.UsageStage, InNovember, 64, gpu: 1);
        Assert.Equal(1, (await Queries.MonthlyTotalsAsync(tenant, "2030-11", None)).Studies);
    }

    [Fact]
    public async Task A_study_still_running_at_close_is_billed_whole_in_the_first_open_month_and_the_closed_bill_stays()
    {
        // Ingested on 31 October, scored after October was closed (the timer's maximum wait, or a manual close).
        var tenant = AzuriteFixture.NewTenant();
        await RecordAsync(tenant, "s1", "ingest", InOctober, 300, cpu: 12, bytes: 5_000_000);
        await RecordAsync(tenant, "s1", StudyOrchestration.UsageStage, InOctober, 300, gpu: 40);
        await RecordAsync(tenant, "late", "ingest", LastSecondOfOctober, 200, cpu: 8, bytes: 3_000_000);
        var october = await Closing(InNovember).CloseAsync(tenant, "2030-10", None);
        Assert.Equal((1, 1), (october.Studies, october.UnscreenedStudies));

        Assert.True(await RecordAsync(tenant, "late", StudyOrchestration.UsageStage, InNovember, 200, gpu: 30));

        Assert.Equal(october, await Queries.MonthlyTotalsAsync(tenant, "2030-10", None));
        var november = await Queries.MonthlyTotalsAsync(tenant, "2030-11", None);
        Assert.Equal(new UsageTotals(tenant, "2030-11", Studies: 1, SlicesScreened: 200, CpuSeconds: 8, GpuSeconds: 30, BytesStored: 3_000_000, Records: 2, LateRecords: 2), november);
        Assert.All(await Usage.GetFiledAsync(tenant, "2030-11", None), f => Assert.Equal("2030-10", f.LateFrom));

        // Retries change nothing: the ingest is in October's bill, the scoring in November's.
        Assert.False(await RecordAsync(tenant, "late", "ingest", InNovember, 200, cpu: 9, bytes: 3_000_000));
        Assert.False(await RecordAsync(tenant, "late", StudyOrchestration.UsageStage, InNovember.AddHours(1), 200, gpu: 31));
        Assert.False(await RecordAsync(tenant, "s1", StudyOrchestration.UsageStage, InNovember, 300, gpu: 41));
        Assert.Equal(november, await Queries.MonthlyTotalsAsync(tenant, "2030-11", None));
        Assert.Equal(october, await Queries.MonthlyTotalsAsync(tenant, "2030-10", None));

        // November closed too before a retry of the scoring: found in November's closed bill, not carried to December.
        var closedNovember = await Closing(new DateTimeOffset(2030, 12, 5, 0, 0, 0, TimeSpan.Zero)).CloseAsync(tenant, "2030-11", None);
        Assert.Equal(november with { Closed = true, ClosedAt = new DateTimeOffset(2030, 12, 5, 0, 0, 0, TimeSpan.Zero) }, closedNovember);
        Assert.False(await RecordAsync(tenant, "late", StudyOrchestration.UsageStage, new DateTimeOffset(2030, 12, 6, 0, 0, 0, TimeSpan.Zero), 200, gpu: 31));
        Assert.Equal(0, (await Queries.MonthlyTotalsAsync(tenant, "2030-12", None)).Records);
    }

    [Fact]
    public async Task A_record_written_behind_the_fence_is_not_in_the_closed_bill_and_its_retry_carries_it()
    {
        // The race: a writer found October open, the closer then wrote the fence and counted, and only then did the
        // writer's row land in October's partition (here written directly, as a writer that died right after).
        var tenant = AzuriteFixture.NewTenant();
        await RecordAsync(tenant, "s1", "ingest", InOctober, 100, cpu: 4, bytes: 1_000);
        var october = await Closing(InNovember).CloseAsync(tenant, "2030-10", None);
        await Task.Delay(20);
        await Table.AddEntityAsync(new TableEntity(TableUsageStore.PartitionKeyOf(tenant, "2030-10"), TableUsageStore.RowKeyOf("s1", StudyOrchestration.UsageStage))
        {
            ["Tenant"] = tenant, ["StudyId"] = "s1", ["Stage"] = StudyOrchestration.UsageStage, ["At"] = InNovember,
            ["Slices"] = 100, ["CpuSeconds"] = 0.0, ["GpuSeconds"] = 9.0, ["BytesStored"] = 0L,
        });

        Assert.Equal(october, await Queries.MonthlyTotalsAsync(tenant, "2030-10", None));
        Assert.Single(await Usage.GetFiledAsync(tenant, "2030-10", None)); // behind the fence: not October's
        Assert.Equal(0, (await Queries.MonthlyTotalsAsync(tenant, "2030-11", None)).Records);

        // The writer's retry finds its row newer than the fence and finishes the carry.
        Assert.True(await RecordAsync(tenant, "s1", StudyOrchestration.UsageStage, InNovember, 100, gpu: 9));
        Assert.False(await RecordAsync(tenant, "s1", StudyOrchestration.UsageStage, InNovember, 100, gpu: 9));
        Assert.Equal(new UsageTotals(tenant, "2030-11", 1, 100, 4, 9, 1_000, Records: 2, LateRecords: 2), await Queries.MonthlyTotalsAsync(tenant, "2030-11", None));
        Assert.Equal(october, await Queries.MonthlyTotalsAsync(tenant, "2030-10", None));
    }

    [Fact]
    public async Task The_timer_waits_for_the_grace_period_and_running_studies_up_to_the_maximum_wait()
    {
        // Months 2031-02/03 are this test's alone: the timer closes every tenant's previous month.
        var tenant = AzuriteFixture.NewTenant();
        var other = AzuriteFixture.NewTenant();
        var inFebruary = new DateTimeOffset(2031, 2, 27, 12, 0, 0, TimeSpan.Zero);
        await RecordAsync(tenant, "done", "ingest", inFebruary, 64, cpu: 2, bytes: 100);
        await RecordAsync(tenant, "done", StudyOrchestration.UsageStage, inFebruary, 64, gpu: 5);
        await RecordAsync(tenant, "running", "ingest", new DateTimeOffset(2031, 2, 28, 23, 58, 0, TimeSpan.Zero), 32, cpu: 1, bytes: 50);
        await azurite.Storage.Studies.TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = "running", Status = StudyStatus.Processing }, None);
        await RecordAsync(other, "failed", "ingest", inFebruary, 16, cpu: 1, bytes: 10);
        await azurite.Storage.Studies.TryCreateAsync(new StudyRecord { Tenant = other, StudyId = "failed", Status = StudyStatus.Failed }, None);
        var clock = new ManualClock(new DateTimeOffset(2031, 3, 3, 23, 59, 0, TimeSpan.Zero));
        var timer = new UsageAutoClose(Usage, azurite.Storage.Studies, new MeteringOptions { CloseAfterDays = 3, CloseMaxWaitDays = 10 }, clock, NullLogger<UsageAutoClose>.Instance);

        // Within the grace period: nothing closed.
        var outcome = await timer.RunAsync(None);
        Assert.Equal(("2031-02", false), (outcome.Month, outcome.Due));
        Assert.Null(await Usage.GetClosingAsync(tenant, "2031-02", None));

        // After it: the tenant whose study failed is closed, the one with a study still processing waits.
        clock.Now = new DateTimeOffset(2031, 3, 4, 0, 0, 0, TimeSpan.Zero);
        outcome = await timer.RunAsync(None);
        Assert.Contains(other, outcome.Closed);
        Assert.Equal(new[] { tenant }, outcome.Waiting);
        Assert.True((await Queries.MonthlyTotalsAsync(other, "2031-02", None)).Closed);
        Assert.False((await Queries.MonthlyTotalsAsync(tenant, "2031-02", None)).Closed);
        Assert.Equal(1, (await Queries.MonthlyTotalsAsync(other, "2031-02", None)).UnscreenedStudies);

        // At the maximum wait it is closed anyway; the study, scored later, is billed in March.
        clock.Now = new DateTimeOffset(2031, 3, 11, 0, 0, 0, TimeSpan.Zero);
        outcome = await timer.RunAsync(None);
        Assert.Contains(tenant, outcome.Closed);
        Assert.Empty(outcome.Waiting);
        var february = await Queries.MonthlyTotalsAsync(tenant, "2031-02", None);
        Assert.Equal((true, (DateTimeOffset?)clock.Now, 1, 1), (february.Closed, february.ClosedAt, february.Studies, february.UnscreenedStudies));
        await RecordAsync(tenant, "running", StudyOrchestration.UsageStage, clock.Now, 32, gpu: 3);
        Assert.Equal(february, await Queries.MonthlyTotalsAsync(tenant, "2031-02", None));
        var march = await Queries.MonthlyTotalsAsync(tenant, "2031-03", None);
        Assert.Equal((1, 1.0, 3.0, 2), (march.Studies, march.CpuSeconds, march.GpuSeconds, march.LateRecords));

        // Running it again changes nothing.
        outcome = await timer.RunAsync(None);
        Assert.DoesNotContain(tenant, outcome.Closed);
        Assert.Equal(february, await Queries.MonthlyTotalsAsync(tenant, "2031-02", None));
    }

    [Fact]
    public async Task A_month_whose_closer_died_after_the_fence_reads_closed_and_that_read_writes_its_snapshot()
    {
        var tenant = AzuriteFixture.NewTenant();
        await RecordAsync(tenant, "s1", "ingest", InOctober, 80, cpu: 3, bytes: 2_000);
        await RecordAsync(tenant, "s1", StudyOrchestration.UsageStage, InOctober, 80, gpu: 11);
        var open = await Queries.MonthlyTotalsAsync(tenant, "2030-10", None);

        // A closer wrote the fence and died before the snapshot; a study of October arrives behind the fence.
        var fenceAt = new DateTimeOffset(2030, 11, 4, 0, 30, 0, TimeSpan.Zero);
        Assert.Equal(fenceAt, await Usage.BeginCloseAsync(tenant, "2030-10", fenceAt, None));
        Assert.Null(await Usage.GetClosedAsync(tenant, "2030-10", None));
        await RecordAsync(tenant, "s2", "ingest", LastSecondOfOctober, 10, cpu: 1, bytes: 10);

        // October's bill was fixed at the fence: the read answers it closed, and writes the snapshot the closer would have.
        var read = await Queries.MonthlyTotalsAsync(tenant, "2030-10", None);
        Assert.Equal(open with { Closed = true, ClosedAt = fenceAt }, read);
        Assert.Equal(read, await Usage.GetClosedAsync(tenant, "2030-10", None));
        Assert.Equal(read, Assert.Single(await Queries.MonthlyTotalsForAllAsync("2030-10", None), t => t.Tenant == tenant));
        Assert.Equal(read, await Closing(InNovember).CloseAsync(tenant, "2030-10", None));
        Assert.Equal(new UsageTotals(tenant, "2030-11", 0, 0, 0, 0, 0, Records: 1, UnscreenedStudies: 1, LateRecords: 1), await Queries.MonthlyTotalsAsync(tenant, "2030-11", None));
    }

    private Task<bool> RecordAsync(string tenant, string study, string stage, DateTimeOffset at, int slices, double cpu = 0, double gpu = 0, long bytes = 0) =>
        Usage.TryRecordAsync(new UsageRecord(tenant, study, stage, at, slices, cpu, gpu, bytes), None);
}
