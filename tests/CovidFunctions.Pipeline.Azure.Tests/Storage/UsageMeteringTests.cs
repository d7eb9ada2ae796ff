using Azure.Data.Tables;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Orchestration.Activities;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// Metering on a real Azurite <c>Usage</c> table: every billable unit once under retries that cross a UTC month,
/// redelivery, replay and concurrency; failed studies not billed; month edges, tenant isolation and paging.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class UsageMeteringTests(AzuriteFixture azurite)
{
    private static readonly CancellationToken None = CancellationToken.None;

    // One second before and a few seconds after the UTC turn of November into December.
    private static readonly DateTimeOffset LastSecondOfNovember = new(2026, 11, 30, 23, 59, 59, TimeSpan.Zero);
    private static readonly DateTimeOffset FirstSecondsOfDecember = new(2026, 12, 1, 0, 0, 5, TimeSpan.Zero);

    private IUsageStore Usage => azurite.Storage.Usage;

    private UsageQueries Queries => new(azurite.Storage.Usage, azurite.Storage.Studies);

    [Fact]
    public async Task Ingest_retried_after_the_utc_month_turned_is_recorded_once()
    {
        // Ingest records usage before the row says "ingested"; dying between the two makes the re-delivery ingest again
        // with a new start time. When that time is in the next month the record must still count once.
        var tenant = AzuriteFixture.NewTenant();
        Assert.True(await Usage.TryRecordAsync(new UsageRecord(tenant, "s1", "ingest", LastSecondOfNovember, 300, 12, 0, 5_000_000), None));
        Assert.False(await Usage.TryRecordAsync(new UsageRecord(tenant, "s1", "ingest", FirstSecondsOfDecember, 300, 13, 0, 5_000_000), None));

        Assert.Single(await Usage.GetMonthAsync(tenant, "2026-11", None));
        Assert.Empty(await Usage.GetMonthAsync(tenant, "2026-12", None));
    }

    [Fact]
    public async Task Record_usage_activity_run_again_with_another_time_records_once()
    {
        // The activity's input carries the orchestration's time: an activity retry repeats it, but a second
        // orchestration of the same study (re-started after a purge) computes a new one, possibly in the next month.
        var tenant = AzuriteFixture.NewTenant();
        var activity = new RecordUsageActivity(Usage);
        var first = new RecordUsageInput(tenant, "s1", LastSecondOfNovember.UtcDateTime, 64, 30, 0);

        Assert.True(await activity.RunAsync(null!, first));
        Assert.False(await activity.RunAsync(null!, first));
        Assert.False(await activity.RunAsync(null!, first with { At = FirstSecondsOfDecember.UtcDateTime, CpuSeconds = 31 }));

        var november = await Queries.MonthlyTotalsAsync(tenant, "2026-11", None);
        var december = await Queries.MonthlyTotalsAsync(tenant, "2026-12", None);
        Assert.Equal((1, 64L, 30.0), (november.Studies, november.SlicesScreened, november.CpuSeconds));
        Assert.Equal((0, 0L, 0), (december.Studies, december.SlicesScreened, december.Records));
    }

    [Fact]
    public async Task A_study_ingested_before_midnight_and_scored_after_is_billed_once_in_one_month()
    {
        var tenant = AzuriteFixture.NewTenant();
        Assert.True(await Usage.TryRecordAsync(new UsageRecord(tenant, "s1", "ingest", LastSecondOfNovember, 300, 12, 0, 5_000_000), None));
        Assert.True(await Usage.TryRecordAsync(new UsageRecord(tenant, "s1", StudyOrchestration.UsageStage, FirstSecondsOfDecember, 300, 0, 40, 0), None));

        var november = await Queries.MonthlyTotalsAsync(tenant, "2026-11", None);
        var december = await Queries.MonthlyTotalsAsync(tenant, "2026-12", None);

        // The study is filed under the month of its first record, every stage with it.
        Assert.Equal(new UsageTotals(tenant, "2026-11", Studies: 1, SlicesScreened: 300, CpuSeconds: 12, GpuSeconds: 40, BytesStored: 5_000_000, Records: 2), november);
        Assert.Equal(new UsageTotals(tenant, "2026-12", 0, 0, 0, 0, 0, 0), december);
        var scoring = Assert.Single(await Usage.GetMonthAsync(tenant, "2026-11", None), r => r.Stage == StudyOrchestration.UsageStage);
        Assert.Equal(FirstSecondsOfDecember, scoring.At); // the record keeps its own time
    }

    [Fact]
    public async Task A_study_that_failed_after_ingest_is_not_billed()
    {
        // Only ingest recorded: the orchestration failed the study (no chunk result in time, a chunk the scorer could
        // not score), which records no scoring usage. Nothing was screened, so nothing is billed.
        var tenant = AzuriteFixture.NewTenant();
        await Usage.TryRecordAsync(new UsageRecord(tenant, "failed", "ingest", LastSecondOfNovember.AddDays(-1), 300, 12, 0, 5_000_000), None);
        await Usage.TryRecordAsync(new UsageRecord(tenant, "done", "ingest", LastSecondOfNovember.AddDays(-2), 100, 4, 0, 1_000_000), None);
        await Usage.TryRecordAsync(new UsageRecord(tenant, "done", StudyOrchestration.UsageStage, LastSecondOfNovember.AddDays(-2), 100, 20, 0, 0), None);

        var totals = await Queries.MonthlyTotalsAsync(tenant, "2026-11", None);

        Assert.Equal((1, 100L, 24.0, 1_000_000L, 3), (totals.Studies, totals.SlicesScreened, totals.CpuSeconds, totals.BytesStored, totals.Records));
        Assert.Equal(1, totals.UnscreenedStudies);
    }

    [Fact]
    public async Task A_record_without_a_time_or_with_a_non_finite_quantity_writes_no_row_at_all()
    {
        // Refused before the billing-month claim: a claim for the year 1 would file the study's later stages there too.
        var tenant = AzuriteFixture.NewTenant();
        await Assert.ThrowsAsync<ArgumentException>(() => Usage.TryRecordAsync(new UsageRecord(tenant, "s1", "ingest", default, 300, 12, 0, 1), None));
        await Assert.ThrowsAsync<ArgumentException>(() => Usage.TryRecordAsync(new UsageRecord(tenant, "s1", "ingest", LastSecondOfNovember, 300, double.NaN, 0, 1), None));

        var table = ((TableUsageStore)Usage).Table;
        var filter = TableClient.CreateQueryFilter($"PartitionKey ge {tenant} and PartitionKey lt {tenant + "~"}");
        Assert.Empty(await table.QueryAsync<TableEntity>(filter, cancellationToken: None).ToListAsync());
        Assert.DoesNotContain(tenant, await Usage.GetTenantsAsync("0001-01", None));
        Assert.True(await Usage.TryRecordAsync(new UsageRecord(tenant, "s1", "ingest", LastSecondOfNovember, 300, 12, 0, 1), None));
        Assert.Single(await Usage.GetMonthAsync(tenant, "2026-11", None));
    }

    [Fact]
    public async Task Concurrent_records_of_one_tenant_lose_nothing_and_duplicate_nothing()
    {
        // No counter row is read-modify-written: each (study, stage) is its own insert-only row. Eight studies of one
        // tenant, each stage written by three racing writers (one of them a retry with the next month's time).
        var tenant = AzuriteFixture.NewTenant();
        var writes = new List<Task<bool>>();
        for (var s = 0; s < 8; s++)
        {
            var study = $"s{s}";
            foreach (var stage in new[] { "ingest", StudyOrchestration.UsageStage })
            {
                writes.Add(Task.Run(() => Usage.TryRecordAsync(new UsageRecord(tenant, study, stage, LastSecondOfNovember, 10, 1, 0, 100), None)));
                writes.Add(Task.Run(() => Usage.TryRecordAsync(new UsageRecord(tenant, study, stage, LastSecondOfNovember, 10, 1, 0, 100), None)));
                writes.Add(Task.Run(() => Usage.TryRecordAsync(new UsageRecord(tenant, study, stage, FirstSecondsOfDecember, 10, 1, 0, 100), None)));
            }
        }

        var inserted = await Task.WhenAll(writes);

        Assert.Equal(16, inserted.Count(i => i));
        var november = await Usage.GetMonthAsync(tenant, "2026-11", None);
        var december = await Usage.GetMonthAsync(tenant, "2026-12", None);
        // Each study lands whole in one month, whichever writer won.
        Assert.Equal(16, november.Count + december.Count);
        Assert.All(november.Concat(december).GroupBy(r => r.StudyId), g => Assert.Equal(2, g.Count()));
        Assert.Empty(november.Select(r => r.StudyId).Intersect(december.Select(r => r.StudyId)));
        var totals = UsageQueries.Total(tenant, "x", november.Concat(december));
        Assert.Equal((8, 80L, 16.0, 1600L), (totals.Studies, totals.SlicesScreened, totals.CpuSeconds, totals.BytesStored));
    }

    [Fact]
    public async Task Month_edges_are_utc_whatever_offset_the_time_carries()
    {
        var tenant = AzuriteFixture.NewTenant();
        // 01:00 on 1 December at +02:00 is 23:00 on 30 November UTC; 23:30 on 30 November at -05:00 is December UTC.
        await Usage.TryRecordAsync(new UsageRecord(tenant, "east", StudyOrchestration.UsageStage, new DateTimeOffset(2026, 12, 1, 1, 0, 0, TimeSpan.FromHours(2)), 7, 1, 0, 0), None);
        await Usage.TryRecordAsync(new UsageRecord(tenant, "west", StudyOrchestration.UsageStage, new DateTimeOffset(2026, 11, 30, 23, 30, 0, TimeSpan.FromHours(-5)), 11, 1, 0, 0), None);
        await Usage.TryRecordAsync(new UsageRecord(tenant, "first", StudyOrchestration.UsageStage, new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero), 13, 1, 0, 0), None);
        await Usage.TryRecordAsync(new UsageRecord(tenant, "last", StudyOrchestration.UsageStage, new DateTimeOffset(2026, 11, 30, 23, 59, 59, 999, TimeSpan.Zero), 17, 1, 0, 0), None);

        Assert.Equal(["east", "first", "last"], (await Usage.GetMonthAsync(tenant, "2026-11", None)).Select(r => r.StudyId).Order(StringComparer.Ordinal));
        Assert.Equal(["west"], (await Usage.GetMonthAsync(tenant, "2026-12", None)).Select(r => r.StudyId));
        Assert.Equal(7 + 13 + 17, (await Queries.MonthlyTotalsAsync(tenant, "2026-11", None)).SlicesScreened);
    }

    [Fact]
    public async Task A_tenant_never_sees_another_tenants_usage_even_with_a_prefix_name()
    {
        // "ab" and "ab-c" share a prefix; partitions are compared whole.
        var ab = AzuriteFixture.NewTenant();
        var abc = ab + "-c";
        await Usage.TryRecordAsync(new UsageRecord(ab, "s1", StudyOrchestration.UsageStage, LastSecondOfNovember, 5, 1, 0, 0), None);
        await Usage.TryRecordAsync(new UsageRecord(abc, "s1", StudyOrchestration.UsageStage, LastSecondOfNovember, 50, 1, 0, 0), None);
        await Usage.TryRecordAsync(new UsageRecord(abc, "s2", StudyOrchestration.UsageStage, LastSecondOfNovember, 500, 1, 0, 0), None);

        Assert.Equal((1, 5L), ((await Queries.MonthlyTotalsAsync(ab, "2026-11", None)).Studies, (await Queries.MonthlyTotalsAsync(ab, "2026-11", None)).SlicesScreened));
        Assert.All(await Usage.GetMonthAsync(ab, "2026-11", None), r => Assert.Equal(ab, r.Tenant));
        Assert.Equal(550, (await Queries.MonthlyTotalsAsync(abc, "2026-11", None)).SlicesScreened);
    }

    [Fact]
    public async Task Every_tenant_with_usage_is_in_the_all_tenant_view_even_without_study_rows()
    {
        // The Studies table is not the list of whom to bill: a tenant whose study rows are gone (deleted, or never
        // written in this account) still has usage to bill.
        var tenant = AzuriteFixture.NewTenant();
        await Usage.TryRecordAsync(new UsageRecord(tenant, "s1", StudyOrchestration.UsageStage, LastSecondOfNovember, 9, 1, 0, 0), None);

        var all = await Queries.MonthlyTotalsForAllAsync("2026-11", None);

        var mine = Assert.Single(all, t => t.Tenant == tenant);
        Assert.Equal(9, mine.SlicesScreened);
        Assert.DoesNotContain(await Queries.MonthlyTotalsForAllAsync("2026-10", None), t => t.Tenant == tenant);
    }

    [Fact]
    public async Task A_month_of_more_than_one_page_is_read_whole()
    {
        // Table queries answer at most 1000 entities a page; the store must follow the continuation.
        var tenant = AzuriteFixture.NewTenant();
        const int studies = 1234;
        var table = ((TableUsageStore)Usage).Table;
        var partition = TableUsageStore.PartitionKeyOf(tenant, "2026-11");
        for (var first = 0; first < studies; first += 100)
        {
            var batch = Enumerable.Range(first, Math.Min(100, studies - first)).Select(i => new TableTransactionAction(TableTransactionActionType.Add,
                new TableEntity(partition, TableUsageStore.RowKeyOf($"s{i:D5}", StudyOrchestration.UsageStage))
                {
                    ["Tenant"] = tenant,
                    ["StudyId"] = $"s{i:D5}",
                    ["Stage"] = StudyOrchestration.UsageStage,
                    ["At"] = LastSecondOfNovember.AddHours(-i % 600),
                    ["Slices"] = 2,
                    ["CpuSeconds"] = 0.5,
                    ["GpuSeconds"] = 0.0,
                    ["BytesStored"] = 0L,
                }));
            await table.SubmitTransactionAsync(batch, None);
        }

        var records = await Usage.GetMonthAsync(tenant, "2026-11", None);
        var totals = await Queries.MonthlyTotalsAsync(tenant, "2026-11", None);

        Assert.Equal(studies, records.Count);
        Assert.Equal((studies, 2L * studies, 0.5 * studies), (totals.Studies, totals.SlicesScreened, totals.CpuSeconds));
    }
}
