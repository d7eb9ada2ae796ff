using CovidFunctions.Pipeline.Azure.Tests.Webhooks;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Orchestration.Activities;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// A completed study whose scoring usage write failed for good (the Usage table away for all of RecordUsage's retries)
/// is billed later, once, by the hourly usage sweep (<see cref="UsageAutoClose"/>), from the usage its completed Studies
/// row carries; on real Azurite Usage and Studies tables. Months 2031-06/07 are this file's alone (the sweep closes
/// every tenant's previous month).
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class UsageReconcileTests(AzuriteFixture azurite)
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task A_completed_study_whose_usage_write_failed_for_good_is_billed_once_by_the_hourly_sweep()
    {
        var tenant = AzuriteFixture.NewTenant();
        const string StudyId = "s-unbilled";
        var usage = azurite.Storage.Usage;
        var studies = azurite.Storage.Studies;

        // Ingested on the last evening of June, scored just after midnight: billed in June, its billing month.
        Assert.True(await usage.TryRecordAsync(new UsageRecord(tenant, StudyId, "ingest", new DateTimeOffset(2031, 6, 30, 23, 50, 0, TimeSpan.Zero), 96, 4.5, 0, 3_000_000), None));
        await studies.TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = StudyId, Status = StudyStatus.Processing }, None);

        // AggregateStudy's completing write keeps the usage the orchestration then records (StudyOrchestrator).
        var scoring = new RecordUsageInput(tenant, StudyId, new DateTime(2031, 7, 1, 0, 10, 0, DateTimeKind.Utc), 96, 0, 21.25);
        await studies.UpdateAsync(tenant, StudyId, row => row! with
        {
            Status = StudyStatus.Completed,
            ScoringUsageJson = PipelineJson.Serialize(RecordUsageActivity.ToRecord(scoring)),
        }, None);

        // RecordUsage's write fails on each of its 8 tries: the orchestration ends naming it (event 2006), unbilled.
        var away = new FailingUsageStore(usage, failures: 8);
        for (var attempt = 1; attempt <= 8; attempt++)
        {
            await Assert.ThrowsAsync<IOException>(() => away.TryRecordAsync(RecordUsageActivity.ToRecord(scoring), None));
        }

        Assert.Equal(1, (await new UsageQueries(usage, studies).MonthlyTotalsAsync(tenant, "2031-06", None)).UnscreenedStudies);

        // The next hourly run (not yet due to close June) records it from the row; two runs at once record it once.
        var clock = new ManualClock(new DateTimeOffset(2031, 7, 1, 1, 0, 0, TimeSpan.Zero));
        var options = new MeteringOptions { CloseAfterDays = 3, CloseMaxWaitDays = 10 };
        var timer = new UsageAutoClose(usage, studies, options, clock, NullLogger<UsageAutoClose>.Instance);
        var other = new UsageAutoClose(usage, studies, options, clock, NullLogger<UsageAutoClose>.Instance);
        var outcomes = await Task.WhenAll(timer.RunAsync(None), other.RunAsync(None));

        Assert.Single(outcomes.SelectMany(o => o.Recorded), s => s == $"{tenant}/{StudyId}");

        // A late retry of the orchestration's write (the table back) is refused: the store keeps the first record.
        Assert.False(await away.TryRecordAsync(RecordUsageActivity.ToRecord(scoring), None));
        var june = await usage.GetMonthAsync(tenant, "2031-06", None);
        var billed = Assert.Single(june, r => r.Stage == StudyOrchestration.UsageStage);
        Assert.Equal(RecordUsageActivity.ToRecord(scoring), billed);
        var totals = await new UsageQueries(usage, studies).MonthlyTotalsAsync(tenant, "2031-06", None);
        Assert.Equal((1, 96L, 4.5, 21.25, 0, 2), (totals.Studies, totals.SlicesScreened, totals.CpuSeconds, totals.GpuSeconds, totals.UnscreenedStudies, totals.Records));

        // Later runs bill nothing more, and June closes when due without waiting for the study as if still running.
        Assert.DoesNotContain($"{tenant}/{StudyId}", (await timer.RunAsync(None)).Recorded);
        clock.Now = new DateTimeOffset(2031, 7, 4, 0, 0, 0, TimeSpan.Zero);
        var due = await timer.RunAsync(None);
        Assert.DoesNotContain(due.Recorded, s => s.StartsWith(tenant + "/", StringComparison.Ordinal));
        Assert.Contains(tenant, due.Closed);
        var closed = await new UsageQueries(usage, studies).MonthlyTotalsAsync(tenant, "2031-06", None);
        Assert.Equal((true, 1, 21.25), (closed.Closed, closed.Studies, closed.GpuSeconds));
        Assert.Single(await usage.GetMonthAsync(tenant, "2031-06", None), r => r.Stage == StudyOrchestration.UsageStage);
    }

    [Fact]
    public async Task A_failed_study_or_a_completed_row_without_its_usage_is_not_billed_by_the_sweep()
    {
        var tenant = AzuriteFixture.NewTenant();
        var usage = azurite.Storage.Usage;
        var studies = azurite.Storage.Studies;
        var at = new DateTimeOffset(2031, 7, 2, 9, 0, 0, TimeSpan.Zero);
        var scoring = RecordUsageActivity.ToRecord(new RecordUsageInput(tenant, "s-failed", at.UtcDateTime, 10, 1, 0));
        await UsageSweepStudies.FileAsync(azurite.Storage, tenant, "s-failed", at, StudyStatus.Failed, scoringOnRow: scoring);
        await UsageSweepStudies.FileAsync(azurite.Storage, tenant, "s-old", at, StudyStatus.Completed);
        await UsageSweepStudies.FileAsync(azurite.Storage, tenant, "s-running", at, StudyStatus.Processing);

        var timer = new UsageAutoClose(usage, studies, new MeteringOptions(), new ManualClock(at.AddHours(1)), NullLogger<UsageAutoClose>.Instance);
        var outcome = await timer.RunAsync(None);

        Assert.DoesNotContain(outcome.Recorded, s => s.StartsWith(tenant + "/", StringComparison.Ordinal));
        Assert.DoesNotContain(await usage.GetMonthAsync(tenant, "2031-07", None), r => r.Stage == StudyOrchestration.UsageStage);
    }

    /// <summary>The Usage table away for the first <c>failures</c> writes (each throws as the SDK's transport does), then back.</summary>
    private sealed class FailingUsageStore(IUsageStore inner, int failures) : IUsageStore
    {
        private int _calls;

        public Task<bool> TryRecordAsync(UsageRecord record, CancellationToken cancellationToken) =>
            Interlocked.Increment(ref _calls) <= failures
                ? throw new IOException($"the Usage table is unavailable (write {_calls} of {failures} refused)")
                : inner.TryRecordAsync(record, cancellationToken);

        public Task<IReadOnlyList<UsageRecord>> GetMonthAsync(string tenant, string month, CancellationToken cancellationToken) =>
            inner.GetMonthAsync(tenant, month, cancellationToken);
    }
}
