using System.Text.Json;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Orchestration.Activities;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.Pipeline.Tests.Ingest;
using CovidFunctions.Pipeline.Tests.Orchestration;

namespace CovidFunctions.Pipeline.Tests.Api;

/// <summary>
/// The <c>scoring</c> stage of the status document has a time like the other stages: when scoring started (running)
/// or finished (done), kept on the Studies row by the orchestration. Before, the row kept no scoring time and the
/// stage's <c>at</c> was always null. Rows written before the times were kept still render, without one.
/// </summary>
public sealed class ScoringStageTimeTests
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly DateTimeOffset T0 = new(2026, 11, 1, 0, 0, 0, TimeSpan.Zero);
    private const string Id = "s00000000000000000000000a";

    [Theory]
    [InlineData(StudyStatus.Processing, true, true, false, "running", 2)]
    [InlineData(StudyStatus.Completed, true, true, true, "done", 3)]
    [InlineData(StudyStatus.Failed, true, true, false, "failed", 4)]
    [InlineData(StudyStatus.Processing, true, false, false, "running", null)] // rows from before: no time, as before
    [InlineData(StudyStatus.Completed, true, false, false, "done", null)]
    [InlineData(StudyStatus.Queued, false, false, false, "pending", null)]
    public async Task TheScoringStageHasTheTimeItReachedItsState(string status, bool ingested, bool started, bool finished, string state, int? atMinute)
    {
        using var kit = new ApiTestKit();
        await kit.Studies.TryCreateAsync(
            new StudyRecord
            {
                Tenant = "alpha",
                StudyId = Id,
                Status = status,
                CreatedAt = T0,
                IngestedAt = ingested ? T0.AddMinutes(1) : null,
                ScoringStartedAt = started ? T0.AddMinutes(2) : null,
                ScoringFinishedAt = finished ? T0.AddMinutes(3) : null,
                CompletedAt = StudyStatus.IsTerminal(status) && ingested ? T0.AddMinutes(4) : null,
            },
            None);

        var scoring = await ScoringStageAsync(kit);

        Assert.Equal(state, scoring.GetProperty("state").GetString());
        if (atMinute is { } minute)
        {
            Assert.Equal(T0.AddMinutes(minute), scoring.GetProperty("at").GetDateTimeOffset());
        }
        else
        {
            Assert.False(scoring.TryGetProperty("at", out _)); // null members are left out of the document
        }
    }

    [Fact]
    public async Task MarkStudyProcessingKeepsTheFirstScoringStart()
    {
        var studies = new InMemoryStudyStore();
        var clock = new ManualTimeProvider(T0);
        var activity = new MarkStudyProcessingActivity(studies, clock);
        var input = new StudyOrchestrationInput("lab-1", "s-start", "lab-1/s-start/tiles", 10, 4, 3, TimeSpan.FromMinutes(1));

        Assert.True(await activity.RunAsync(null!, input));
        clock.Now = T0.AddMinutes(5);
        Assert.True(await activity.RunAsync(null!, input)); // a retried activity: the start stays the first

        Assert.Equal(T0, (await studies.GetAsync("lab-1", "s-start", None))!.ScoringStartedAt);
    }

    [Fact]
    public async Task AStudyScoredEndToEndHasBothScoringTimesInOrder()
    {
        await using var harness = await OrchestrationHarness.StartAsync(_ => FakeScorerAction.Answer);
        var input = await harness.CreateStudyAsync("s-times", sliceCount: 4, chunkSize: 2);

        var outcome = await harness.RunAsync(input);

        Assert.Equal(StudyStatus.Completed, outcome.Status);
        var row = (await harness.Studies.GetAsync(OrchestrationHarness.Tenant, "s-times", None))!;
        Assert.NotNull(row.ScoringStartedAt);
        Assert.NotNull(row.ScoringFinishedAt);
        Assert.InRange(row.ScoringStartedAt.Value, row.CreatedAt, row.ScoringFinishedAt.Value);
        Assert.InRange(row.ScoringFinishedAt.Value, row.ScoringStartedAt.Value, row.CompletedAt!.Value);
    }

    private static async Task<JsonElement> ScoringStageAsync(ApiTestKit kit)
    {
        var response = await kit.Api.GetStudyAsync(ApiCaller.ForTenants("alpha"), Id, null, None);
        Assert.Equal(200, response.Status);
        using var json = JsonDocument.Parse(response.Body);
        return json.RootElement.GetProperty("stages").EnumerateArray().Single(s => s.GetProperty("name").GetString() == "scoring").Clone();
    }
}
