using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Orchestration.Activities;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Tests.Orchestration;

/// <summary>
/// The race between the stuck-study watchdog and a late ingest re-delivery: the watchdog fails a study whose
/// orchestration is not running just as the re-delivery starts it. The first settled state stands: the orchestration
/// never sets a failed row back to processing or completes it, and it sends no second event.
/// </summary>
public sealed class SettledElsewhereTests
{
    private const string WatchdogReason = "the study was still processing 6 h after it was ingested (Pipeline:StuckStudyAge): its orchestration is not running";

    [Fact]
    public async Task AStudyTheWatchdogFailedBeforeItsOrchestrationBeganStaysFailedAndNothingIsDispatched()
    {
        await using var harness = await OrchestrationHarness.StartAsync(_ => FakeScorerAction.Answer);
        var input = await harness.CreateStudyAsync("s-failed-first", sliceCount: 4, chunkSize: 2);
        await FailAsTheWatchdogDoesAsync(harness, input.StudyId);

        var outcome = await harness.RunAsync(input);

        Assert.Equal(StudyOutcome.AlreadySettled, outcome.Status);
        Assert.Null(outcome.Diagnosis);
        Assert.Empty(harness.Scorer.Requests);
        var row = (await harness.Studies.GetAsync(OrchestrationHarness.Tenant, input.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Failed, WatchdogReason), (row.Status, row.Reason));
        Assert.Empty(harness.Usage.Snapshot());
        Assert.Empty(harness.Notifier.Events); // the watchdog sends study.failed itself
    }

    [Fact]
    public async Task AStudyTheWatchdogFailsWhileItsChunksAreScoredIsNotCompletedOverTheFailure()
    {
        OrchestrationHarness? started = null;
        await using var harness = await OrchestrationHarness.StartAsync(request =>
        {
            if (request.ChunkIndex == 0)
            {
                // The watchdog's write lands between MarkStudyProcessing and AggregateStudy.
                FailAsTheWatchdogDoesAsync(started!, request.StudyId).GetAwaiter().GetResult();
            }

            return FakeScorerAction.Answer;
        });
        started = harness;
        var input = await harness.CreateStudyAsync("s-failed-midway", sliceCount: 4, chunkSize: 2);

        var outcome = await harness.RunAsync(input);

        Assert.Equal(StudyOutcome.AlreadySettled, outcome.Status);
        Assert.Contains("was failed", outcome.Reason, StringComparison.Ordinal);
        Assert.Equal(2, harness.Scorer.Requests.Count); // each chunk once
        var row = (await harness.Studies.GetAsync(OrchestrationHarness.Tenant, input.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Failed, WatchdogReason, null), (row.Status, row.Reason, row.Label));
        Assert.Empty(harness.Usage.Snapshot());
        Assert.Empty(harness.Notifier.Events);
    }

    [Fact]
    public async Task MarkStudyProcessingLeavesASettledRowAloneAndSaysSo()
    {
        var studies = new InMemoryStudyStore();
        var activity = new MarkStudyProcessingActivity(studies);
        var input = new StudyOrchestrationInput("lab-1", "s-mark", "lab-1/s-mark/tiles", 10, 4, 3, TimeSpan.FromMinutes(1));

        Assert.True(await activity.RunAsync(null!, input)); // no row yet: created processing
        Assert.Equal(StudyStatus.Processing, (await studies.GetAsync("lab-1", "s-mark", CancellationToken.None))!.Status);

        foreach (var settled in new[] { StudyStatus.Failed, StudyStatus.Completed, StudyStatus.Rejected })
        {
            await studies.UpdateAsync("lab-1", "s-mark", r => r! with { Status = settled, Reason = "settled" }, CancellationToken.None);
            Assert.False(await activity.RunAsync(null!, input));
            var row = (await studies.GetAsync("lab-1", "s-mark", CancellationToken.None))!;
            Assert.Equal((settled, "settled"), (row.Status, row.Reason));
        }
    }

    [Fact]
    public void AnInputWithoutARevisionIsRevisionZeroAndNewInputsAreTheCurrentRevision()
    {
        var input = new StudyOrchestrationInput("lab-1", "s-rev", "lab-1/s-rev/tiles", 10, 4, 3, TimeSpan.FromMinutes(1));
        Assert.Equal(StudyOrchestrationInput.CurrentRevision, input.Revision);
        Assert.Equal(input, PipelineJson.Deserialize<StudyOrchestrationInput>(PipelineJson.Serialize(input)));

        // The input as the code before the revision wrote it (Durable's default converter: System.Text.Json).
        const string before = """{"Tenant":"lab-1","StudyId":"s-rev","TilesPrefix":"lab-1/s-rev/tiles","SliceCount":10,"ChunkSize":4,"MaxChunkAttempts":3,"ChunkTimeout":"00:01:00","InstanceId":"x"}""";
        var old = System.Text.Json.JsonSerializer.Deserialize<StudyOrchestrationInput>(before)!;
        Assert.Equal(0, old.Revision);
        Assert.Equal(input with { Revision = 0 }, old);
    }

    private static Task FailAsTheWatchdogDoesAsync(OrchestrationHarness harness, string studyId) =>
        FailStudyActivity.FailAsync(harness.Studies, harness.Containers, OrchestrationHarness.Tenant, studyId, WatchdogReason, IngestHandler.StuckReason, WatchdogReason, DateTimeOffset.UtcNow, null, CancellationToken.None);
}
