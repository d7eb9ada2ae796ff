using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests.Pipeline;

/// <summary>
/// <c>covidfn up</c> runs the upload sweep the Function app runs on its hourly timer, so a study stuck in
/// <c>processing</c> (its orchestration ended without settling it) is failed locally too.
/// </summary>
[Collection(PipelineCollection.Name)]
public sealed class LocalSweepTests
{
    [Fact]
    public async Task The_local_host_sweeps_and_fails_a_study_left_processing_by_an_ended_orchestration()
    {
        using var temp = TestData.CreateTempDirectory();
        await using var azurite = await PipelineFixture.StartAzuriteAsync(temp.Path);
        var dataDir = Path.Combine(temp.Path, "data");
        using var loggers = PipelineFixture.Loggers(dataDir, out var log);
        using var _ = log;
        var options = PipelineFixture.Options(dataDir, azurite.ConnectionString) with
        {
            SweepInterval = TimeSpan.FromSeconds(1),
            Pipeline = new PipelineOptions { StuckStudyAge = TimeSpan.FromHours(1) },
        };
        await using var host = await LocalPipelineHost.StartAsync(options, loggers, CancellationToken.None);

        // Ingested two hours ago; no orchestration instance exists (it ended and was purged, or never started).
        var stuck = new StudyRecord
        {
            Tenant = "lab-s",
            StudyId = "s-stuck",
            Status = StudyStatus.Processing,
            CreatedAt = DateTimeOffset.UtcNow.AddHours(-2),
            IngestedAt = DateTimeOffset.UtcNow.AddHours(-2),
        };
        var young = stuck with { StudyId = "s-young", CreatedAt = DateTimeOffset.UtcNow, IngestedAt = DateTimeOffset.UtcNow };
        Assert.True(await host.Storage.Studies.TryCreateAsync(stuck, CancellationToken.None));
        Assert.True(await host.Storage.Studies.TryCreateAsync(young, CancellationToken.None));

        await PipelineFixture.WaitUntilAsync(
            async () => (await host.Storage.Studies.GetAsync("lab-s", "s-stuck", CancellationToken.None))!.Status == StudyStatus.Failed,
            "the local sweep fails the stuck study");

        var row = (await host.Storage.Studies.GetAsync("lab-s", "s-stuck", CancellationToken.None))!;
        Assert.Contains("its orchestration is not running", row.Reason, StringComparison.Ordinal);
        Assert.Equal(StudyStatus.Processing, (await host.Storage.Studies.GetAsync("lab-s", "s-young", CancellationToken.None))!.Status);
    }
}
