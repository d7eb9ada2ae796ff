using System.Collections.Concurrent;
using Azure;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Azure.Tests.Webhooks;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Orchestration.Activities;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// The hourly usage sweep (<see cref="UsageAutoClose"/>) on real Azurite Usage and Studies tables when part of it fails
/// (one tenant's recording, another tenant's month read: the Table service answering 503), and with Studies rows
/// completed before the row kept its scoring usage (b61fec6); and the Usage table's index of open studies the sweep
/// reads. Months 2033-04 to 2034-01 are this file's alone (the sweep closes every tenant's previous month).
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class UsageSweepFailureTests(AzuriteFixture azurite)
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task A_failing_step_leaves_the_other_steps_and_tenants_to_run_and_the_run_reports_failure_at_the_end()
    {
        var (a, b, c) = (AzuriteFixture.NewTenant(), AzuriteFixture.NewTenant(), AzuriteFixture.NewTenant());
        var studies = azurite.Storage.Studies;
        foreach (var tenant in new[] { a, b, c })
        {
            // Each tenant: an April and a May study completed with their scoring write lost (the row carries it).
            await CompletedUnbilledAsync(tenant, "s-april", new DateTimeOffset(2033, 4, 20, 9, 0, 0, TimeSpan.Zero));
            await CompletedUnbilledAsync(tenant, "s-may", new DateTimeOffset(2033, 5, 2, 9, 0, 0, TimeSpan.Zero));
        }

        // A's April recording fails, and so does the read of C's April records; B has no failure.
        var failing = new FailingUsageStore(azurite.Storage.Usage)
        {
            FailRecord = r => r.Tenant == a && r.StudyId == "s-april",
            FailFiled = (tenant, month) => tenant == c && month == "2033-04",
        };
        var logger = new ListLogger();
        var clock = new ManualClock(new DateTimeOffset(2033, 5, 4, 0, 30, 0, TimeSpan.Zero));
        var sweep = new UsageAutoClose(failing, studies, new MeteringOptions { CloseAfterDays = 3, CloseMaxWaitDays = 10 }, clock, logger);

        var ex = await Assert.ThrowsAsync<UsageSweepException>(() => sweep.RunAsync(None));
        var outcome = ex.Outcome;

        // The rest ran: B's April and every May study billed, B's April closed; A's and C's April not closed this run.
        Assert.Equal(
            new[] { $"{a}/s-may", $"{b}/s-april", $"{b}/s-may", $"{c}/s-may" }.Order(StringComparer.Ordinal),
            outcome.Recorded.Where(s => s.StartsWith(a + "/", StringComparison.Ordinal) || s.StartsWith(b + "/", StringComparison.Ordinal) || s.StartsWith(c + "/", StringComparison.Ordinal)));
        Assert.Contains(b, outcome.Closed);
        Assert.DoesNotContain(a, outcome.Closed);
        Assert.DoesNotContain(c, outcome.Closed);
        Assert.Null(await azurite.Storage.Usage.GetClosedAsync(a, "2033-04", None));
        Assert.Null(await azurite.Storage.Usage.GetClosedAsync(c, "2033-04", None));
        Assert.Equal((true, 1), await ClosedStudiesAsync(b, "2033-04"));

        // The failures, named: tenant, month, study for a study's step, and the reason; the run itself logged as failed.
        Assert.Equal(2, outcome.Failures.Count);
        Assert.Contains(outcome.Failures, f => f.Contains(a, StringComparison.Ordinal) && f.Contains("2033-04", StringComparison.Ordinal) && f.Contains("s-april", StringComparison.Ordinal) && f.Contains("503", StringComparison.Ordinal));
        Assert.Contains(outcome.Failures, f => f.Contains(c, StringComparison.Ordinal) && f.Contains("2033-04", StringComparison.Ordinal) && f.Contains("503", StringComparison.Ordinal));
        var studyFailure = Assert.Single(logger.Entries, e => e.EventId == 7007);
        Assert.Contains($"{a}/s-april", studyFailure.Message, StringComparison.Ordinal);
        Assert.Contains("2033-04", studyFailure.Message, StringComparison.Ordinal);
        var monthFailure = Assert.Single(logger.Entries, e => e.EventId == 7006);
        Assert.Contains(c, monthFailure.Message, StringComparison.Ordinal);
        Assert.Single(logger.Entries, e => e.EventId == 7008);
        Assert.DoesNotContain(logger.Entries, e => e.Message.Contains("Doe", StringComparison.Ordinal));
        Assert.Contains("503", ex.Message, StringComparison.Ordinal);

        // Storage back: the next hourly run bills A's and C's April studies once, closes their April, and succeeds.
        failing.FailRecord = _ => false;
        failing.FailFiled = (_, _) => false;
        clock.Now = clock.Now.AddHours(1);
        var next = await sweep.RunAsync(None);
        Assert.Equal(
            new[] { $"{a}/s-april", $"{c}/s-april" }.Order(StringComparer.Ordinal),
            next.Recorded.Where(s => s.StartsWith(a + "/", StringComparison.Ordinal) || s.StartsWith(b + "/", StringComparison.Ordinal) || s.StartsWith(c + "/", StringComparison.Ordinal)));
        Assert.Contains(a, next.Closed);
        Assert.Contains(c, next.Closed);
        Assert.Empty(next.Failures);
        foreach (var tenant in new[] { a, b, c })
        {
            Assert.Equal((true, 1), await ClosedStudiesAsync(tenant, "2033-04"));
            Assert.Single(await azurite.Storage.Usage.GetMonthAsync(tenant, "2033-05", None), r => r.Stage == StudyOrchestration.UsageStage);
        }
    }

    [Fact]
    public async Task A_row_completed_before_it_kept_its_usage_is_not_billed_and_does_not_hold_the_close()
    {
        var tenant = AzuriteFixture.NewTenant();
        var usage = azurite.Storage.Usage;
        var studies = azurite.Storage.Studies;
        var at = new DateTimeOffset(2033, 6, 10, 9, 0, 0, TimeSpan.Zero);
        var scoring = RecordUsageActivity.ToRecord(new RecordUsageInput(tenant, "s-legacy-billed", at.AddMinutes(5).UtcDateTime, 120, 0, 8.5));

        // Completed before b61fec6, no ScoringUsageJson: one whose scoring write failed for good (event 2006 then), one
        // billed as usual. And one completed since, its scoring record written by its orchestration.
        var billedNow = scoring with { StudyId = "s-billed" };
        await UsageSweepStudies.FileAsync(azurite.Storage, tenant, "s-legacy-lost", at, StudyStatus.Completed);
        await UsageSweepStudies.FileAsync(azurite.Storage, tenant, "s-legacy-billed", at, StudyStatus.Completed);
        await UsageSweepStudies.FileAsync(azurite.Storage, tenant, "s-billed", at, StudyStatus.Completed, scoringOnRow: billedNow);
        Assert.True(await usage.TryRecordAsync(scoring, None));
        Assert.True(await usage.TryRecordAsync(billedNow, None));

        // Due on 4 July (CloseAfterDays 3), well before CloseMaxWaitDays (10): before, the legacy row counted as still
        // running and June waited until the 11th, then closed with it unbilled anyway.
        var logger = new ListLogger();
        var clock = new ManualClock(new DateTimeOffset(2033, 7, 4, 0, 30, 0, TimeSpan.Zero));
        var sweep = new UsageAutoClose(usage, studies, new MeteringOptions { CloseAfterDays = 3, CloseMaxWaitDays = 10 }, clock, logger);
        var outcome = await sweep.RunAsync(None);

        Assert.Contains(tenant, outcome.Closed);
        Assert.DoesNotContain(tenant, outcome.Waiting);
        Assert.Equal(new[] { $"{tenant}/s-legacy-lost" }, outcome.Unbillable.Where(s => s.StartsWith(tenant + "/", StringComparison.Ordinal)));
        Assert.DoesNotContain(outcome.Recorded, s => s.StartsWith(tenant + "/", StringComparison.Ordinal));
        var june = await new UsageQueries(usage, studies).MonthlyTotalsAsync(tenant, "2033-06", None);
        Assert.Equal((true, 2, 1, 17.0), (june.Closed, june.Studies, june.UnscreenedStudies, june.GpuSeconds));
        var logged = Assert.Single(logger.Entries, e => e.EventId == 7005 && e.Message.Contains(tenant, StringComparison.Ordinal));
        Assert.Contains("s-legacy-lost", logged.Message, StringComparison.Ordinal);
        Assert.Contains("2033-06", logged.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(logger.Entries, e => e.Message.Contains("Doe", StringComparison.Ordinal));

        // Each billed study once (the usage store recognises the billed ones; nothing recorded again).
        Assert.Equal(2, (await usage.GetMonthAsync(tenant, "2033-06", None)).Count(r => r.Stage == StudyOrchestration.UsageStage));
        clock.Now = clock.Now.AddHours(1);
        var again = await sweep.RunAsync(None);
        Assert.DoesNotContain(again.Recorded, s => s.StartsWith(tenant + "/", StringComparison.Ordinal));
        Assert.Equal(june, await new UsageQueries(usage, studies).MonthlyTotalsAsync(tenant, "2033-06", None));
    }

    [Fact]
    public async Task A_row_without_its_usage_found_by_an_earlier_run_is_still_named_at_its_months_close()
    {
        var tenant = AzuriteFixture.NewTenant();
        var usage = azurite.Storage.Usage;
        var studies = azurite.Storage.Studies;
        var at = new DateTimeOffset(2033, 10, 5, 9, 0, 0, TimeSpan.Zero);
        await UsageSweepStudies.FileAsync(azurite.Storage, tenant, "s-legacy-lost", at, StudyStatus.Completed);

        // The hourly runs of October (the current month) already find it unbillable.
        var logger = new ListLogger();
        var clock = new ManualClock(at.AddDays(1));
        var sweep = new UsageAutoClose(usage, studies, new MeteringOptions { CloseAfterDays = 3, CloseMaxWaitDays = 10 }, clock, logger);
        Assert.Contains($"{tenant}/s-legacy-lost", (await sweep.RunAsync(None)).Unbillable);

        // October's close still names it (7005) and the outcome lists it: before, the index dropped it when first found,
        // so the run that closed the month never saw it.
        clock.Now = new DateTimeOffset(2033, 11, 4, 0, 30, 0, TimeSpan.Zero);
        var due = await sweep.RunAsync(None);
        Assert.Contains(tenant, due.Closed);
        Assert.Contains($"{tenant}/s-legacy-lost", due.Unbillable);
        var logged = Assert.Single(logger.Entries, e => e.EventId == 7005 && e.Message.Contains(tenant, StringComparison.Ordinal));
        Assert.Contains("s-legacy-lost", logged.Message, StringComparison.Ordinal);
        Assert.Contains("2033-10", logged.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_study_filed_by_a_writer_older_than_the_index_is_billed_before_its_month_closes()
    {
        var tenant = AzuriteFixture.NewTenant();
        var usage = azurite.Storage.Usage;
        var studies = azurite.Storage.Studies;
        var at = new DateTimeOffset(2033, 12, 5, 9, 0, 0, TimeSpan.Zero);
        await UsageSweepStudies.FileAsync(azurite.Storage, tenant, "s-failed", at, StudyStatus.Failed);

        // An hourly run indexes December (its marker written) and drops the failed study.
        var clock = new ManualClock(at.AddDays(1));
        var sweep = new UsageAutoClose(usage, studies, new MeteringOptions { CloseAfterDays = 3, CloseMaxWaitDays = 10 }, clock, new ListLogger());
        await sweep.RunAsync(None);

        // Then a writer older than the index (a deployment's old instance) files a study's ingest record as it did:
        // claim, month index, record, and no index entry. The study completes, its scoring write lost (the row has it).
        var oldWriter = new UsageRecord(tenant, "s-old-writer", "ingest", at.AddDays(1).AddHours(1), 50, 2.5, 0, 500_000);
        var table = azurite.Storage.Tables.GetTableClient(PipelineNames.UsageTable);
        await table.AddEntityAsync(new TableEntity(TableUsageStore.ClaimPartitionKeyOf(tenant), oldWriter.StudyId) { ["Month"] = "2033-12", ["Stage"] = oldWriter.Stage, ["At"] = oldWriter.At }, None);
        await table.UpsertEntityAsync(new TableEntity(TableUsageStore.MonthIndexPartitionKeyOf("2033-12"), tenant), cancellationToken: None);
        await table.AddEntityAsync(new TableEntity(TableUsageStore.PartitionKeyOf(tenant, "2033-12"), TableUsageStore.RowKeyOf(oldWriter.StudyId, oldWriter.Stage))
        {
            ["Tenant"] = tenant, ["StudyId"] = oldWriter.StudyId, ["Stage"] = oldWriter.Stage, ["At"] = oldWriter.At,
            ["Slices"] = oldWriter.Slices, ["CpuSeconds"] = oldWriter.CpuSeconds, ["GpuSeconds"] = oldWriter.GpuSeconds, ["BytesStored"] = oldWriter.BytesStored,
        }, None);
        var scoring = RecordUsageActivity.ToRecord(new RecordUsageInput(tenant, oldWriter.StudyId, at.AddDays(1).AddHours(2).UtcDateTime, 50, 0, 6.75));
        await studies.TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = oldWriter.StudyId, Status = StudyStatus.Completed, CreatedAt = oldWriter.At, ScoringUsageJson = PipelineJson.Serialize(scoring) }, None);
        Assert.Empty(await usage.GetOpenStudiesAsync(tenant, "2033-12", None));

        // The run that closes December reads its records first: the study is billed in December, then the month closes.
        // Before, the close rested on the index alone: December closed without it, never to be billed.
        clock.Now = new DateTimeOffset(2034, 1, 4, 0, 30, 0, TimeSpan.Zero);
        var due = await sweep.RunAsync(None);
        Assert.Contains($"{tenant}/s-old-writer", due.Recorded);
        Assert.Contains(tenant, due.Closed);
        var december = await new UsageQueries(usage, studies).MonthlyTotalsAsync(tenant, "2033-12", None);
        Assert.Equal((true, 1, 1, 6.75), (december.Closed, december.Studies, december.UnscreenedStudies, december.GpuSeconds));
    }

    [Fact]
    public async Task Once_a_month_is_indexed_the_sweep_finds_new_unbilled_and_reingested_studies_from_the_index()
    {
        var tenant = AzuriteFixture.NewTenant();
        var usage = azurite.Storage.Usage;
        var studies = azurite.Storage.Studies;
        var at = new DateTimeOffset(2033, 8, 5, 9, 0, 0, TimeSpan.Zero);
        var ingest = await UsageSweepStudies.FileAsync(azurite.Storage, tenant, "s-failed", at, StudyStatus.Failed);

        // The first run indexes August (from its records) and drops the failed study: later runs do not read it.
        var clock = new ManualClock(at.AddDays(1));
        var sweep = new UsageAutoClose(usage, studies, new MeteringOptions { CloseAfterDays = 3, CloseMaxWaitDays = 10 }, clock, new ListLogger());
        await sweep.RunAsync(None);
        Assert.Empty(await usage.GetOpenStudiesAsync(tenant, "2033-08", None));

        // A study completed since, its scoring write lost: its ingest record put it in the index, and the sweep bills it.
        await CompletedUnbilledAsync(tenant, "s-lost", at.AddDays(1).AddHours(2));
        Assert.Equal(new[] { "s-lost" }, (await usage.GetOpenStudiesAsync(tenant, "2033-08", None)).Select(o => o.StudyId));
        clock.Now = at.AddDays(1).AddHours(3);
        Assert.Contains($"{tenant}/s-lost", (await sweep.RunAsync(None)).Recorded);
        Assert.Empty(await usage.GetOpenStudiesAsync(tenant, "2033-08", None));

        // The failed study ingested again (its record filed again, refused as a duplicate): listed again, and running,
        // it holds August's close. A drop of the entry as listed before a later filing leaves it listed.
        await studies.UpdateAsync(tenant, "s-failed", row => row! with { Status = StudyStatus.Processing }, None);
        Assert.False(await usage.TryRecordAsync(ingest with { At = at.AddDays(2) }, None));
        var listed = Assert.Single(await usage.GetOpenStudiesAsync(tenant, "2033-08", None));
        Assert.Equal("s-failed", listed.StudyId);
        Assert.False(await usage.TryRecordAsync(ingest with { At = at.AddDays(2).AddMinutes(1) }, None));
        await usage.ForgetOpenStudyAsync(tenant, "2033-08", listed, None);
        Assert.Equal("s-failed", Assert.Single(await usage.GetOpenStudiesAsync(tenant, "2033-08", None)).StudyId);
        clock.Now = new DateTimeOffset(2033, 9, 4, 0, 30, 0, TimeSpan.Zero);
        var due = await sweep.RunAsync(None);
        Assert.Contains(tenant, due.Waiting);
        Assert.Null(await usage.GetClosedAsync(tenant, "2033-08", None));
    }

    /// <summary>A study ingested at <paramref name="at"/>, completed ten minutes later with its scoring write lost: the row carries it.</summary>
    private Task CompletedUnbilledAsync(string tenant, string studyId, DateTimeOffset at) =>
        UsageSweepStudies.FileAsync(azurite.Storage, tenant, studyId, at, StudyStatus.Completed,
            scoringOnRow: RecordUsageActivity.ToRecord(new RecordUsageInput(tenant, studyId, at.AddMinutes(10).UtcDateTime, 50, 0, 4.25)));

    private async Task<(bool Closed, int Studies)> ClosedStudiesAsync(string tenant, string month)
    {
        var totals = await new UsageQueries(azurite.Storage.Usage, azurite.Storage.Studies).MonthlyTotalsAsync(tenant, month, None);
        return (totals.Closed, totals.Studies);
    }

    /// <summary>The Usage table answering 503 (as the SDK throws it) for the chosen recordings and month reads.</summary>
    private sealed class FailingUsageStore(IUsageStore inner) : IUsageStore
    {
        public Func<UsageRecord, bool> FailRecord { get; set; } = _ => false;

        public Func<string, string, bool> FailFiled { get; set; } = (_, _) => false;

        public Task<bool> TryRecordAsync(UsageRecord record, CancellationToken cancellationToken) =>
            FailRecord(record) ? throw Unavailable() : inner.TryRecordAsync(record, cancellationToken);

        public Task<IReadOnlyList<UsageRecord>> GetMonthAsync(string tenant, string month, CancellationToken cancellationToken) =>
            FailFiled(tenant, month) ? throw Unavailable() : inner.GetMonthAsync(tenant, month, cancellationToken);

        public Task<IReadOnlyList<FiledUsage>> GetFiledAsync(string tenant, string month, CancellationToken cancellationToken) =>
            FailFiled(tenant, month) ? throw Unavailable() : inner.GetFiledAsync(tenant, month, cancellationToken);

        public Task<IReadOnlyList<OpenStudy>> GetOpenStudiesAsync(string tenant, string month, CancellationToken cancellationToken) =>
            FailFiled(tenant, month) ? throw Unavailable() : inner.GetOpenStudiesAsync(tenant, month, cancellationToken);

        public Task ForgetOpenStudyAsync(string tenant, string month, OpenStudy study, CancellationToken cancellationToken) => inner.ForgetOpenStudyAsync(tenant, month, study, cancellationToken);

        public Task<IReadOnlyList<string>> GetTenantsAsync(string month, CancellationToken cancellationToken) => inner.GetTenantsAsync(month, cancellationToken);

        public Task<DateTimeOffset?> GetClosingAsync(string tenant, string month, CancellationToken cancellationToken) => inner.GetClosingAsync(tenant, month, cancellationToken);

        public Task<DateTimeOffset> BeginCloseAsync(string tenant, string month, DateTimeOffset at, CancellationToken cancellationToken) => inner.BeginCloseAsync(tenant, month, at, cancellationToken);

        public Task<UsageTotals?> GetClosedAsync(string tenant, string month, CancellationToken cancellationToken) => inner.GetClosedAsync(tenant, month, cancellationToken);

        public Task<UsageTotals> AddClosedIfAbsentAsync(UsageTotals closed, CancellationToken cancellationToken) => inner.AddClosedIfAbsentAsync(closed, cancellationToken);

        private static RequestFailedException Unavailable() => new(503, "Service request failed.\nStatus: 503 (Service Unavailable)\nErrorCode: ServerBusy\n\nHeaders:\nx-ms-request-id: 0f1e2d3c", "ServerBusy", null);
    }

    /// <summary>The sweep's log entries: event id and formatted message.</summary>
    private sealed class ListLogger : ILogger<UsageAutoClose>
    {
        private readonly ConcurrentQueue<(int EventId, string Message)> _entries = new();

        public IReadOnlyList<(int EventId, string Message)> Entries => [.. _entries];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            _entries.Enqueue((eventId.Id, formatter(state, exception)));
    }
}
