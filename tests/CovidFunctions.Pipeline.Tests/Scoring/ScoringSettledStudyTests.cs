using CovidFunctions.Imaging.Series;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Inference;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Scoring;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace CovidFunctions.Pipeline.Tests.Scoring;

/// <summary>
/// A chunk request of a study that is already settled (failed, completed or rejected) is completed without scoring.
/// Found by running <c>covidfn up</c>: a study failed on its chunk timeout (the scorer busy elsewhere), and 20 s later
/// the scorer still scored that chunk (24 s of CPU), wrote 53 mask/overlay/chunk blobs and 30 SliceResults rows for the
/// failed study and sent a result no orchestration waits for; re-dispatched copies of a completed study's chunks were
/// likewise scored again. On a scorer with a backlog that is the work of every study that already gave up on it.
/// </summary>
public sealed class ScoringSettledStudyTests : IDisposable
{
    private const string Tenant = "lab-1";
    private const string StudyId = "s-settled";
    private const string TilesPrefix = "lab-1/s-settled/tiles";
    private readonly TempDirectory _temp = TestData.CreateTempDirectory();
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(5));

    public void Dispose()
    {
        _timeout.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public async Task A_chunk_of_a_settled_study_is_completed_unscored_and_a_running_study_s_chunk_is_scored()
    {
        var containers = new FileSystemBlobContainers(_temp.Path);
        using (var series = SeriesAssembler.Assemble(TestData.Shared("dicom", "chest-ct", "lung-pet-ct-dx", "A0002-s3-b40f")))
        {
            await SeriesTiles.WriteAsync(series, containers.Get(PipelineNames.SlicesContainer), TilesPrefix, null, 2, _timeout.Token);
        }

        var studies = new InMemoryStudyStore();
        var sliceResults = new InMemorySliceResultStore();
        var sender = new RecordingSender();
        var handler = new ScoringHandler(containers, sliceResults, sender, ScreeningModels.Load(), Options.Create(new ScoringOptions { BatchSize = 2 }), NullLogger<ScoringHandler>.Instance, studies);
        var request = new ChunkRequest(Tenant, StudyId, StudyIds.OrchestrationId(Tenant, StudyId), TilesPrefix, ChunkIndex: 0, FirstSlice: 14, SliceCount: 2, Attempt: 1);
        var message = new ReceivedMessage(request.MessageId, PipelineJson.Serialize(request), 1);
        await studies.TryCreateAsync(new StudyRecord { Tenant = Tenant, StudyId = StudyId, Status = StudyStatus.Processing, CreatedAt = DateTimeOffset.UtcNow }, _timeout.Token);

        foreach (var settled in new[] { StudyStatus.Failed, StudyStatus.Completed, StudyStatus.Rejected })
        {
            await studies.UpdateAsync(Tenant, StudyId, row => row! with { Status = settled }, _timeout.Token);

            var settlement = await handler.HandleAsync(message, _timeout.Token);

            Assert.Equal(SettlementAction.Complete, settlement.Action);
            Assert.Empty(sender.Sent);
            Assert.Empty(await sliceResults.GetAsync(Tenant, StudyId, _timeout.Token));
            Assert.False(Directory.Exists(Path.Combine(_temp.Path, PipelineNames.ResultsContainer)) && Directory.EnumerateFiles(Path.Combine(_temp.Path, PipelineNames.ResultsContainer), "*", SearchOption.AllDirectories).Any(), $"results written for a {settled} study");
        }

        // A study still processing is scored as before, and so is a chunk whose study has no row (offline screening).
        await studies.UpdateAsync(Tenant, StudyId, row => row! with { Status = StudyStatus.Processing }, _timeout.Token);
        Assert.Equal(SettlementAction.Complete, (await handler.HandleAsync(message, _timeout.Token)).Action);
        var answer = Assert.Single(sender.Sent);
        Assert.Null(PipelineJson.Deserialize<ChunkResult>(answer.Body).Error);
        Assert.Equal(2, (await sliceResults.GetAsync(Tenant, StudyId, _timeout.Token)).Count);
    }
}
