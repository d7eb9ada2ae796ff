using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Tests.Orchestration;

/// <summary>
/// The steps after a study's diagnosis is stored (usage, the clinicians' notification) get no second chance once the
/// orchestration ends, so they outlast short outages and do not depend on each other.
/// </summary>
public sealed class SettledStepTests
{
    [Fact]
    public async Task UsageThatFailsThreeTimesIsRetriedAndTheStudyIsBilledAndNotifiedOnce()
    {
        var flaky = (FailingUsageStore?)null;
        await using var harness = await OrchestrationHarness.StartAsync(
            _ => FakeScorerAction.Answer,
            wrapUsage: inner => flaky = new FailingUsageStore(inner, failures: 3, () => new IOException("table service unavailable")));
        var input = await harness.CreateStudyAsync("s-usage-flaky", sliceCount: 4, chunkSize: 2);

        var outcome = await harness.RunAsync(input);

        Assert.Equal(StudyStatus.Completed, outcome.Status);
        Assert.Equal(4, flaky!.Calls); // three failures: one more than the three tries other activities get
        Assert.Single(harness.Usage.Snapshot(), r => r.StudyId == "s-usage-flaky");
        Assert.Equal([(OrchestrationHarness.Tenant, "s-usage-flaky", StudyEventTypes.Completed)], harness.Notifier.Events);
    }

    [Fact]
    public async Task AUsageRefusalStillNotifiesTheCompletedStudyAndFailsTheOrchestrationNamingIt()
    {
        var refusing = (FailingUsageStore?)null;
        await using var harness = await OrchestrationHarness.StartAsync(
            _ => FakeScorerAction.Answer,
            wrapUsage: inner => refusing = new FailingUsageStore(inner, failures: int.MaxValue, () => new ArgumentException("usage record refused")));
        var input = await harness.CreateStudyAsync("s-usage-refused", sliceCount: 4, chunkSize: 2);

        var metadata = await StartAndWaitAsync(harness, input);

        // A refusal is permanent: one try, no four-minute retry window.
        Assert.Equal(1, refusing!.Calls);
        Assert.Equal(OrchestrationRuntimeStatus.Failed, metadata.RuntimeStatus);
        Assert.Contains($"study {OrchestrationHarness.Tenant}/s-usage-refused completed, but {StudyOrchestration.RecordUsage}:", metadata.FailureDetails!.ErrorMessage);
        Assert.Contains("usage record refused", metadata.FailureDetails.ErrorMessage);
        var row = await harness.Studies.GetAsync(OrchestrationHarness.Tenant, "s-usage-refused", CancellationToken.None);
        Assert.Equal(StudyStatus.Completed, row!.Status);
        Assert.Equal([(OrchestrationHarness.Tenant, "s-usage-refused", StudyEventTypes.Completed)], harness.Notifier.Events);
        Assert.Empty(harness.Usage.Snapshot());
    }

    [Fact]
    public async Task AUsageWriteThatFailsForGoodLeavesItsUsageOnTheCompletedRowAndTheHourlySweepBillsItOnce()
    {
        // The write fails at once for good (a refusal is not retried), standing for one that failed all its tries.
        await using var harness = await OrchestrationHarness.StartAsync(
            _ => FakeScorerAction.Answer,
            wrapUsage: inner => new FailingUsageStore(inner, failures: int.MaxValue, () => new ArgumentException("the Usage table refused the write")));
        var input = await harness.CreateStudyAsync("s-usage-lost", sliceCount: 4, chunkSize: 2);
        Assert.True(await harness.Usage.TryRecordAsync(new UsageRecord(OrchestrationHarness.Tenant, "s-usage-lost", "ingest", DateTimeOffset.UtcNow, 4, 1, 0, 100), CancellationToken.None));

        var metadata = await StartAndWaitAsync(harness, input);

        Assert.Equal(OrchestrationRuntimeStatus.Failed, metadata.RuntimeStatus);
        Assert.DoesNotContain(harness.Usage.Snapshot(), r => r.Stage == StudyOrchestration.UsageStage);
        var row = await harness.Studies.GetAsync(OrchestrationHarness.Tenant, "s-usage-lost", CancellationToken.None);
        Assert.Equal(StudyStatus.Completed, row!.Status);
        var kept = PipelineJson.Deserialize<UsageRecord>(row.ScoringUsageJson!);
        Assert.Equal((OrchestrationHarness.Tenant, "s-usage-lost", StudyOrchestration.UsageStage, 4, 2 * OrchestrationHarness.ScoringSeconds, 0.0), (kept.Tenant, kept.StudyId, kept.Stage, kept.Slices, kept.CpuSeconds, kept.GpuSeconds));

        // The hourly usage sweep (the CloseUsageMonth timer, covidfn up's loop) records it from the row, once.
        var sweep = new UsageAutoClose(harness.Usage, harness.Studies, new MeteringOptions(), TimeProvider.System, NullLogger<UsageAutoClose>.Instance);
        Assert.Equal([$"{OrchestrationHarness.Tenant}/s-usage-lost"], (await sweep.RunAsync(CancellationToken.None)).Recorded);
        Assert.Empty((await sweep.RunAsync(CancellationToken.None)).Recorded);
        Assert.Equal(kept, Assert.Single(harness.Usage.Snapshot(), r => r.Stage == StudyOrchestration.UsageStage));
        Assert.False(await harness.Usage.TryRecordAsync(kept, CancellationToken.None));
    }

    [Fact]
    public async Task ANotifierThatFailsThreeTimesIsRetriedAndTellsTheCliniciansOnce()
    {
        var flaky = (FailingNotifier?)null;
        await using var harness = await OrchestrationHarness.StartAsync(
            _ => FakeScorerAction.Answer,
            wrapNotifier: inner => flaky = new FailingNotifier(inner, failures: 3));
        var input = await harness.CreateStudyAsync("s-notify-flaky", sliceCount: 2, chunkSize: 2);

        var outcome = await harness.RunAsync(input);

        Assert.Equal(StudyStatus.Completed, outcome.Status);
        Assert.Equal(4, flaky!.Calls); // three failures: one more than the three tries before the settled-step policy
        Assert.Single(harness.Usage.Snapshot(), r => r.StudyId == "s-notify-flaky");
        Assert.Equal([(OrchestrationHarness.Tenant, "s-notify-flaky", StudyEventTypes.Completed)], harness.Notifier.Events);
    }

    private static async Task<OrchestrationMetadata> StartAndWaitAsync(OrchestrationHarness harness, StudyOrchestrationInput input)
    {
        Assert.True(await new DurableStudyOrchestrationClient(harness.Client).StartIfAbsentAsync(input, CancellationToken.None));
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        return await harness.Client.WaitForInstanceCompletionAsync(input.InstanceId, getInputsAndOutputs: true, timeout.Token);
    }

    /// <summary>Throws the given exception on the first <c>failures</c> calls to record, then passes them on.</summary>
    private sealed class FailingUsageStore(IUsageStore inner, int failures, Func<Exception> failure) : IUsageStore
    {
        private int _calls;

        public int Calls => Volatile.Read(ref _calls);

        public Task<bool> TryRecordAsync(UsageRecord record, CancellationToken cancellationToken) =>
            Interlocked.Increment(ref _calls) <= failures ? throw failure() : inner.TryRecordAsync(record, cancellationToken);

        public Task<IReadOnlyList<UsageRecord>> GetMonthAsync(string tenant, string month, CancellationToken cancellationToken) =>
            inner.GetMonthAsync(tenant, month, cancellationToken);

        public Task<IReadOnlyList<string>> GetTenantsAsync(string month, CancellationToken cancellationToken) =>
            inner.GetTenantsAsync(month, cancellationToken);
    }

    /// <summary>Throws on the first <c>failures</c> notifications, then passes them on.</summary>
    private sealed class FailingNotifier(IStudyNotifier inner, int failures) : IStudyNotifier
    {
        private int _calls;

        public int Calls => Volatile.Read(ref _calls);

        public Task NotifyAsync(string tenant, string studyId, string eventType, CancellationToken cancellationToken) =>
            Interlocked.Increment(ref _calls) <= failures
                ? throw new IOException("webhook queue unavailable")
                : inner.NotifyAsync(tenant, studyId, eventType, cancellationToken);
    }
}
