using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.Pipeline.Tests.Ingest;

namespace CovidFunctions.Pipeline.Tests.Metering;

/// <summary>
/// Month closing on the in-memory Usage store (what <c>covidfn screen</c> and the orchestration tests use): the same
/// rules as the table (Azurite: CovidFunctions.Pipeline.Azure.Tests' UsageClosingTests).
/// </summary>
public sealed class InMemoryUsageClosingTests
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly DateTimeOffset LastMinuteOfMarch = new(2026, 3, 31, 23, 59, 0, TimeSpan.Zero);

    [Fact]
    public async Task A_closed_month_keeps_its_snapshot_and_a_study_finishing_later_is_billed_whole_in_the_next_open_month()
    {
        var usage = new InMemoryUsageStore();
        var queries = new UsageQueries(usage, new InMemoryStudyStore());
        var clock = new ManualTimeProvider(new DateTimeOffset(2026, 4, 5, 0, 0, 0, TimeSpan.Zero));
        var closing = new UsageClosing(usage, new InMemoryStudyStore(), clock);
        Assert.True(await usage.TryRecordAsync(new UsageRecord("t", "done", IngestHandler.UsageStage, LastMinuteOfMarch, 8, 2, 0, 100), None));
        Assert.True(await usage.TryRecordAsync(new UsageRecord("t", "done", StudyOrchestration.UsageStage, LastMinuteOfMarch, 8, 0, 5, 0), None));
        Assert.True(await usage.TryRecordAsync(new UsageRecord("t", "running", IngestHandler.UsageStage, LastMinuteOfMarch, 4, 1, 0, 50), None));
        var open = await queries.MonthlyTotalsAsync("t", "2026-03", None);

        var march = await closing.CloseAsync("t", "2026-03", None);
        clock.Now = clock.Now.AddDays(1);

        Assert.Equal(open with { Closed = true, ClosedAt = new DateTimeOffset(2026, 4, 5, 0, 0, 0, TimeSpan.Zero) }, march);
        Assert.Equal(march, await closing.CloseAsync("t", "2026-03", None));
        await Assert.ThrowsAsync<ArgumentException>(() => closing.CloseAsync("t", "2026-04", None));
        Assert.True(await usage.TryRecordAsync(new UsageRecord("t", "running", StudyOrchestration.UsageStage, clock.Now, 4, 0, 3, 0), None));
        Assert.False(await usage.TryRecordAsync(new UsageRecord("t", "running", StudyOrchestration.UsageStage, clock.Now, 4, 0, 3, 0), None));
        Assert.False(await usage.TryRecordAsync(new UsageRecord("t", "done", StudyOrchestration.UsageStage, clock.Now, 8, 0, 5, 0), None));

        Assert.Equal(march, await queries.MonthlyTotalsAsync("t", "2026-03", None));
        Assert.Equal(new UsageTotals("t", "2026-04", 1, 4, 1, 3, 50, 2, LateRecords: 2), await queries.MonthlyTotalsAsync("t", "2026-04", None));
    }

    [Fact]
    public async Task A_month_with_a_fence_but_no_snapshot_reads_closed_and_the_read_writes_the_snapshot()
    {
        var usage = new InMemoryUsageStore();
        var studies = new InMemoryStudyStore();
        var queries = new UsageQueries(usage, studies);
        Assert.True(await usage.TryRecordAsync(new UsageRecord("t", "done", IngestHandler.UsageStage, LastMinuteOfMarch, 8, 2, 0, 100), None));
        Assert.True(await usage.TryRecordAsync(new UsageRecord("t", "done", StudyOrchestration.UsageStage, LastMinuteOfMarch, 8, 0, 5, 0), None));
        var open = await queries.MonthlyTotalsAsync("t", "2026-03", None);

        // A closer wrote the fence and died before the snapshot.
        var fenceAt = new DateTimeOffset(2026, 4, 4, 0, 30, 0, TimeSpan.Zero);
        await usage.BeginCloseAsync("t", "2026-03", fenceAt, None);

        var read = await queries.MonthlyTotalsAsync("t", "2026-03", None);
        Assert.Equal(open with { Closed = true, ClosedAt = fenceAt }, read);
        Assert.Equal(read, await usage.GetClosedAsync("t", "2026-03", None));
        Assert.Equal(read, await new UsageClosing(usage, studies, new ManualTimeProvider(fenceAt.AddDays(1))).CloseAsync("t", "2026-03", None));
    }
}
