using System.Text.Json;
using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.Inference;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Tests.Orchestration;

/// <summary>The study orchestrator on the in-memory Durable host (about 0.25 s per activity here: small fan-outs).</summary>
public sealed class StudyOrchestratorTests
{
    [Fact]
    public async Task HappyPathAggregatesWritesTheRowRecordsUsageAndNotifiesOnce()
    {
        await using var harness = await OrchestrationHarness.StartAsync(_ => FakeScorerAction.Answer);
        var input = await harness.CreateStudyAsync("s-happy", sliceCount: 6, chunkSize: 2);

        var outcome = await harness.RunAsync(input);

        Assert.Equal(StudyStatus.Completed, outcome.Status);
        Assert.Null(outcome.Reason);
        var diagnosis = Assert.IsType<StudyDiagnosis>(outcome.Diagnosis);

        // Three chunks of two slices, each dispatched once with deterministic ids.
        var requests = harness.Scorer.Requests.OrderBy(r => r.ChunkIndex).ToList();
        Assert.Equal([(0, 0, 2), (1, 2, 2), (2, 4, 2)], requests.Select(r => (r.ChunkIndex, r.FirstSlice, r.SliceCount)));
        Assert.All(requests, r => Assert.Equal(1, r.Attempt));
        Assert.All(requests, r => Assert.Equal(input.InstanceId, r.OrchestrationId));

        // The study rule over the six slice summaries, and the burden Σ lesion / Σ lung.
        var scores = Enumerable.Range(0, 6).Select(s => OrchestrationHarness.ScoreOf(requests[s / 2], s)).ToList();
        var expected = StudyAggregator.Aggregate(
            [.. scores.Select(s => new SliceSummary(s.SliceIndex, s.LesionMeanProbability, s.LesionFraction, s.ClassProbabilities))],
            OrchestrationHarness.Classes);
        Assert.Equal(expected.Label, diagnosis.Label);
        Assert.Equal(expected.ClassProbabilities.Select(p => (double)p), diagnosis.Probabilities);
        Assert.Equal((10.0 + 20 + 30 + 40 + 50 + 60) / 6000, diagnosis.LesionBurden, 9);
        Assert.Equal(6, diagnosis.Slices);

        // The four most affected slices, most affected first.
        Assert.Equal([5, 4, 3, 2], diagnosis.TopSlices.Select(t => t.SliceIndex));
        Assert.Equal(6.0, diagnosis.TopSlices[0].LesionPercent, 9);

        var row = await harness.Studies.GetAsync(OrchestrationHarness.Tenant, "s-happy", CancellationToken.None);
        Assert.NotNull(row);
        Assert.Equal(StudyStatus.Completed, row.Status);
        Assert.Equal(diagnosis.Label, row.Label);
        Assert.Equal(diagnosis.Probabilities[0], row.ProbabilityCovid);
        Assert.Equal(diagnosis.Probabilities[2], row.ProbabilityNormal);
        Assert.Equal(diagnosis.LesionBurden, row.LesionBurden);
        Assert.Equal("fake@000000000000", row.ModelVersion);
        Assert.Equal(input.InstanceId, row.OrchestrationId);
        Assert.Equal(6, row.SliceCount);
        Assert.NotNull(row.CompletedAt);
        var top = PipelineJson.Deserialize<List<TopSlice>>(row.TopSlicesJson!);
        Assert.Equal(diagnosis.TopSlices, top);
        using (var timings = JsonDocument.Parse(row.TimingsJson!))
        {
            Assert.Equal(1.5, timings.RootElement.GetProperty("ingest").GetDouble());
            Assert.Equal(1.5, timings.RootElement.GetProperty("scoringCompute").GetDouble(), 9);
            Assert.True(timings.RootElement.TryGetProperty("aggregate", out _));
            Assert.True(timings.RootElement.TryGetProperty("total", out _));
        }

        // The montage is a real PNG in the results container, drawn from the tiles and masks.
        Assert.Equal($"{OrchestrationHarness.Tenant}/s-happy/montage.png", row.MontagePath);
        var montage = await File.ReadAllBytesAsync(harness.Containers.LinkTo(PipelineNames.ResultsContainer, row.MontagePath!));
        var image = ImageLoader.Decode(montage, "montage.png");
        Assert.True(image.Width >= 256 && image.Height >= 256);

        var usage = Assert.Single(harness.Usage.Snapshot());
        Assert.Equal(("s-happy", StudyOrchestration.UsageStage, 6, 1.5, 0.0), (usage.StudyId, usage.Stage, usage.Slices, usage.CpuSeconds, usage.GpuSeconds));
        Assert.Equal([(OrchestrationHarness.Tenant, "s-happy", StudyEventTypes.Completed)], harness.Notifier.Events);
    }

    [Fact]
    public async Task DuplicateAndForeignEventsAreIgnored()
    {
        await using var harness = await OrchestrationHarness.StartAsync(_ => FakeScorerAction.AnswerTwice);
        var input = await harness.CreateStudyAsync("s-dup", sliceCount: 5, chunkSize: 2);

        // A result of another study raised at this instance (a mis-routed message) must not count.
        var foreign = new ChunkResult(OrchestrationHarness.Tenant, "s-other", input.InstanceId, 0, 1, 2, "lab-1/s-other/chunks/0000.json", 9, "CPU", null);
        var outcomeTask = harness.RunAsync(input);
        await harness.Client.RaiseEventAsync(input.InstanceId, PipelineNames.ChunkResultEvent, foreign);
        var outcome = await outcomeTask;

        Assert.Equal(StudyStatus.Completed, outcome.Status);
        Assert.Equal(5, outcome.Diagnosis!.Slices);
        Assert.Equal(3, harness.Scorer.Requests.Count);
        var usage = Assert.Single(harness.Usage.Snapshot());
        Assert.Equal(5, usage.Slices);
        Assert.Equal(1.5, usage.CpuSeconds, 9);
        Assert.Equal([(OrchestrationHarness.Tenant, "s-dup", StudyEventTypes.Completed)], harness.Notifier.Events);

        // A result relayed after the study finished is dropped without an error (the relay completes its message).
        var late = new ChunkResult(OrchestrationHarness.Tenant, "s-dup", input.InstanceId, 0, 1, 2, "lab-1/s-dup/chunks/0000.json", 0.5, "CPU", null);
        await new DurableStudyOrchestrationClient(harness.Client).RaiseChunkResultAsync(late, CancellationToken.None);
        var metadata = await harness.Client.GetInstanceAsync(input.InstanceId, getInputsAndOutputs: true);
        Assert.Equal(Microsoft.DurableTask.Client.OrchestrationRuntimeStatus.Completed, metadata!.RuntimeStatus);
        Assert.Single(harness.Usage.Snapshot());
    }

    [Fact]
    public async Task AScorerReportingMoreSlicesThanDispatchedIsBilledOnlyThePlannedSlices()
    {
        // Chunk 1 (slices 2-3) is answered twice, each time claiming 2000 slices: the bill stays at the study's 5.
        await using var harness = await OrchestrationHarness.StartAsync(r => r.ChunkIndex == 1 ? FakeScorerAction.AnswerInflatedTwice : FakeScorerAction.Answer);
        var input = await harness.CreateStudyAsync("s-inflated", sliceCount: 5, chunkSize: 2);

        var outcome = await harness.RunAsync(input);

        Assert.Equal(StudyStatus.Completed, outcome.Status);
        Assert.Equal(5, outcome.Diagnosis!.Slices);
        var usage = Assert.Single(harness.Usage.Snapshot());
        Assert.Equal(5, usage.Slices);
        Assert.Equal(1.5, usage.CpuSeconds, 9);
    }

    [Theory]
    [InlineData(2, 2, 2)]
    [InlineData(2000, 2, 2)]
    [InlineData(1, 2, 1)]
    [InlineData(-5, 2, 0)]
    public void BilledSlicesAreTheReportedOnesBoundedByThePlan(int reported, int planned, int billed) =>
        Assert.Equal(billed, StudyOrchestrator.BilledSlices(reported, planned));

    [Fact]
    public async Task AScorerReportingMoreScoringSecondsThanItsChunkWasOutIsBilledAtMostThatTime()
    {
        // Chunk 1 claims 10^9 s (31 years) of scoring: it was out for about a second, and the bill says so.
        await using var harness = await OrchestrationHarness.StartAsync(
            _ => FakeScorerAction.Answer, reportedSeconds: r => r.ChunkIndex == 1 ? 1e9 : OrchestrationHarness.ScoringSeconds);
        var input = await harness.CreateStudyAsync("s-long", sliceCount: 4, chunkSize: 2);

        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        var outcome = await harness.RunAsync(input);
        var elapsed = stopwatch.Elapsed.TotalSeconds;

        Assert.Equal(StudyStatus.Completed, outcome.Status);
        var usage = Assert.Single(harness.Usage.Snapshot());
        Assert.Equal(4, usage.Slices);

        // The honest chunk is billed its 0.5 s; the other at least the 0.5 s it really scored (never under-billed) and
        // at most the time between its dispatch and its result, which lies inside this run.
        Assert.InRange(usage.CpuSeconds, 2 * OrchestrationHarness.ScoringSeconds, OrchestrationHarness.ScoringSeconds + elapsed);
        var row = await harness.Studies.GetAsync(OrchestrationHarness.Tenant, "s-long", CancellationToken.None);
        using var timings = JsonDocument.Parse(row!.TimingsJson!);
        Assert.InRange(timings.RootElement.GetProperty("scoringCompute").GetDouble(), 2 * OrchestrationHarness.ScoringSeconds, OrchestrationHarness.ScoringSeconds + elapsed);
    }

    [Fact]
    public async Task NegativeScoringSecondsAreBilledAsNoneAndTheStudyIsStillBilled()
    {
        // Relayed unchecked, a negative count lowered the tenant's bill by any amount, or (the sum below 0) had the usage
        // record refused, leaving the completed study unbilled. NaN and ∞ cannot cross the JSON transport (the relay's
        // and Durable's serializers refuse them); BilledScoringSeconds bills them as 0 all the same (the theory below).
        double[] claims = [-5, -1e9, -0.25];
        await using var harness = await OrchestrationHarness.StartAsync(
            _ => FakeScorerAction.Answer, reportedSeconds: r => r.ChunkIndex < claims.Length ? claims[r.ChunkIndex] : OrchestrationHarness.ScoringSeconds);
        var input = await harness.CreateStudyAsync("s-negative", sliceCount: 4, chunkSize: 1);

        var outcome = await harness.RunAsync(input);

        Assert.Equal(StudyStatus.Completed, outcome.Status);
        var usage = Assert.Single(harness.Usage.Snapshot());
        Assert.Equal((4, OrchestrationHarness.ScoringSeconds, 0.0), (usage.Slices, usage.CpuSeconds, usage.GpuSeconds));
        Assert.Equal([(OrchestrationHarness.Tenant, "s-negative", StudyEventTypes.Completed)], harness.Notifier.Events);
    }

    [Theory]
    [InlineData(0.5, 10, 0.5)]
    [InlineData(1e9, 10, 10)]
    [InlineData(10, 10, 10)]
    [InlineData(0, 10, 0)]
    [InlineData(-1, 10, 0)]
    [InlineData(double.NaN, 10, 0)]
    [InlineData(double.PositiveInfinity, 10, 0)]
    [InlineData(double.NegativeInfinity, 10, 0)]
    [InlineData(3, -2, 0)]
    public void BilledScoringSecondsAreTheReportedOnesBoundedByTheChunksWindow(double reported, double windowSeconds, double billed) =>
        Assert.Equal(billed, StudyOrchestrator.BilledScoringSeconds(reported, TimeSpan.FromSeconds(windowSeconds)));

    [Fact]
    public async Task ALostChunkIsDispatchedAgainAfterTheTimeoutAndTheStudyCompletes()
    {
        await using var harness = await OrchestrationHarness.StartAsync(r => r is { ChunkIndex: 1, Attempt: 1 } ? FakeScorerAction.Drop : FakeScorerAction.Answer);
        var input = await harness.CreateStudyAsync("s-lost", sliceCount: 6, chunkSize: 2, maxAttempts: 3, chunkTimeout: TimeSpan.FromSeconds(2));

        var outcome = await harness.RunAsync(input);

        Assert.Equal(StudyStatus.Completed, outcome.Status);
        Assert.Equal(6, outcome.Diagnosis!.Slices);
        var requests = harness.Scorer.Requests.ToList();
        Assert.Equal([(0, 1), (1, 1), (1, 2), (2, 1)], requests.Select(r => (r.ChunkIndex, r.Attempt)).Order());
        Assert.Equal("s-lost-c0001-a2", requests.Single(r => r.Attempt == 2).MessageId);
        Assert.Single(harness.Usage.Snapshot());
    }

    [Fact]
    public async Task AChunkWithoutResultAfterAllAttemptsFailsTheStudyWithAReason()
    {
        await using var harness = await OrchestrationHarness.StartAsync(r => r.ChunkIndex == 1 ? FakeScorerAction.Drop : FakeScorerAction.Answer);
        var input = await harness.CreateStudyAsync("s-never", sliceCount: 4, chunkSize: 2, maxAttempts: 2, chunkTimeout: TimeSpan.FromSeconds(1));

        var outcome = await harness.RunAsync(input);

        Assert.Equal(StudyStatus.Failed, outcome.Status);
        Assert.Null(outcome.Diagnosis);
        Assert.Contains("chunk(s) 1 (slices 2-3)", outcome.Reason);
        Assert.Contains("after 2 attempt(s)", outcome.Reason);
        Assert.Equal([1, 2], harness.Scorer.Requests.Where(r => r.ChunkIndex == 1).Select(r => r.Attempt).Order());
        var row = await harness.Studies.GetAsync(OrchestrationHarness.Tenant, "s-never", CancellationToken.None);
        Assert.Equal(StudyStatus.Failed, row!.Status);
        Assert.Equal(outcome.Reason, row.Reason);
        Assert.Empty(harness.Usage.Snapshot());
        Assert.Equal([(OrchestrationHarness.Tenant, "s-never", StudyEventTypes.Failed)], harness.Notifier.Events);
    }

    [Fact]
    public async Task AChunkResultWithAnErrorFailsTheStudyAtOnce()
    {
        await using var harness = await OrchestrationHarness.StartAsync(r => r.ChunkIndex == 0 ? FakeScorerAction.Error : FakeScorerAction.Answer);
        var input = await harness.CreateStudyAsync("s-error", sliceCount: 4, chunkSize: 2);

        var outcome = await harness.RunAsync(input);

        Assert.Equal(StudyStatus.Failed, outcome.Status);
        Assert.Equal("chunk 0 (slices 0-1) could not be scored: tile chunk hash does not match the manifest", outcome.Reason);
        Assert.Equal(StudyStatus.Failed, (await harness.Studies.GetAsync(OrchestrationHarness.Tenant, "s-error", CancellationToken.None))!.Status);
        Assert.Equal([(OrchestrationHarness.Tenant, "s-error", StudyEventTypes.Failed)], harness.Notifier.Events);
    }

    [Fact]
    public async Task AFailingAggregateFailsTheStudyWithTheActivityError()
    {
        await using var harness = await OrchestrationHarness.StartAsync(r => r.ChunkIndex == 1 ? FakeScorerAction.AnswerWithoutDocument : FakeScorerAction.Answer);
        var input = await harness.CreateStudyAsync("s-nodoc", sliceCount: 4, chunkSize: 2);

        var outcome = await harness.RunAsync(input);

        Assert.Equal(StudyStatus.Failed, outcome.Status);
        Assert.StartsWith("activity AggregateStudy failed:", outcome.Reason);
        var row = await harness.Studies.GetAsync(OrchestrationHarness.Tenant, "s-nodoc", CancellationToken.None);
        Assert.Equal((StudyStatus.Failed, outcome.Reason), (row!.Status, row.Reason));
        Assert.Empty(harness.Usage.Snapshot());
        Assert.Equal([(OrchestrationHarness.Tenant, "s-nodoc", StudyEventTypes.Failed)], harness.Notifier.Events);
    }

    [Theory]
    [InlineData(1, 32, new[] { 0, 1 })]
    [InlineData(64, 32, new[] { 0, 32, 32, 32 })]
    [InlineData(70, 32, new[] { 0, 32, 32, 32, 64, 6 })]
    public void ChunksCoverTheSeriesInOrder(int slices, int size, int[] flat)
    {
        var plan = StudyOrchestrator.PlanChunks(slices, size);
        Assert.Equal(flat, plan.SelectMany(c => new[] { c.FirstSlice, c.SliceCount }));
    }
}
