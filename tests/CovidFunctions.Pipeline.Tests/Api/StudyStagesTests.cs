using System.Text.Json;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Tests.Api;

/// <summary>
/// The <c>stages</c> of <c>GET /api/studies/{id}</c> at each point of a study's life. Ingest marks the row processing
/// when it starts, before it sets the ingest time; before, that study showed ingest "pending" and scoring "running",
/// and a study that failed in ingest (its attempts used up) showed ingest "pending" although it had ended.
/// </summary>
public sealed class StudyStagesTests
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly DateTimeOffset T0 = new(2026, 11, 1, 0, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData(StudyStatus.Queued, false, "pending", "pending", "pending")]
    [InlineData(StudyStatus.Processing, false, "running", "pending", "pending")]
    [InlineData(StudyStatus.Processing, true, "done", "running", "pending")]
    [InlineData(StudyStatus.Completed, true, "done", "done", "done")]
    [InlineData(StudyStatus.Failed, false, "failed", "pending", "failed")]
    [InlineData(StudyStatus.Failed, true, "done", "failed", "failed")]
    [InlineData(StudyStatus.Rejected, false, "rejected", "pending", "rejected")]
    public async Task EachStageSaysWhereTheStudyIs(string status, bool ingested, string ingest, string scoring, string diagnosis)
    {
        using var kit = new ApiTestKit();
        await kit.Studies.TryCreateAsync(new StudyRecord { Tenant = "alpha", StudyId = "s00000000000000000000000a", Status = status, CreatedAt = T0, IngestedAt = ingested ? T0.AddMinutes(1) : null }, None);

        var response = await kit.Api.GetStudyAsync(ApiCaller.ForTenants("alpha"), "s00000000000000000000000a", null, None);

        Assert.Equal(200, response.Status);
        using var json = JsonDocument.Parse(response.Body);
        var stages = json.RootElement.GetProperty("stages").EnumerateArray().ToDictionary(s => s.GetProperty("name").GetString()!, s => s.GetProperty("state").GetString());
        Assert.Equal(["queued", "ingest", "scoring", "diagnosis"], stages.Keys);
        Assert.Equal("done", stages["queued"]);
        Assert.Equal(ingest, stages["ingest"]);
        Assert.Equal(scoring, stages["scoring"]);
        Assert.Equal(diagnosis, stages["diagnosis"]);
    }
}
