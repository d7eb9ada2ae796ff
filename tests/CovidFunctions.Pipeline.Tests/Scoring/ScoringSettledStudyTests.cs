using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Scoring;
using CovidFunctions.Pipeline.Storage;

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
    private const string Tenant = ScoringTestStudy.Tenant;
    private const string StudyId = "s-settled";
    private readonly ScoringTestStudy _study = new(StudyId);

    public void Dispose() => _study.Dispose();

    [Fact]
    public async Task A_chunk_of_a_settled_study_is_completed_unscored_and_a_running_study_s_chunk_is_scored()
    {
        await _study.WriteRealTilesAsync();
        var studies = new InMemoryStudyStore();
        var sliceResults = new InMemorySliceResultStore();
        var sender = new RecordingSender();
        var handler = ScoringTestStudy.Handler(_study.Containers, sliceResults, sender, new ScoringOptions { BatchSize = 2 }, studies: studies);
        var message = ScoringTestStudy.Message(_study.Request(chunkIndex: 0, firstSlice: 14, sliceCount: 2));
        var results = Path.Combine(_study.Folder, PipelineNames.ResultsContainer);
        await studies.TryCreateAsync(new StudyRecord { Tenant = Tenant, StudyId = StudyId, Status = StudyStatus.Processing, CreatedAt = DateTimeOffset.UtcNow }, _study.Timeout);

        foreach (var settled in new[] { StudyStatus.Failed, StudyStatus.Completed, StudyStatus.Rejected })
        {
            await studies.UpdateAsync(Tenant, StudyId, row => row! with { Status = settled }, _study.Timeout);

            var settlement = await handler.HandleAsync(message, _study.Timeout);

            Assert.Equal(SettlementAction.Complete, settlement.Action);
            Assert.Empty(sender.Sent);
            Assert.Empty(await sliceResults.GetAsync(Tenant, StudyId, _study.Timeout));
            Assert.False(Directory.Exists(results) && Directory.EnumerateFiles(results, "*", SearchOption.AllDirectories).Any(), $"results written for a {settled} study");
        }

        // A study still processing is scored as before, and so is a chunk whose study has no row (offline screening).
        await studies.UpdateAsync(Tenant, StudyId, row => row! with { Status = StudyStatus.Processing }, _study.Timeout);
        Assert.Equal(SettlementAction.Complete, (await handler.HandleAsync(message, _study.Timeout)).Action);
        var answer = Assert.Single(sender.Sent);
        Assert.Null(PipelineJson.Deserialize<ChunkResult>(answer.Body).Error);
        Assert.Equal(2, (await sliceResults.GetAsync(Tenant, StudyId, _study.Timeout)).Count);
    }

    [Fact]
    public async Task A_running_study_s_row_is_read_before_scoring_before_storing_and_at_most_once_per_interval_between_batches()
    {
        // 8 slices in batches of 1: 8 model batches. A read per batch (or per slice) would be 8 more reads; the recheck
        // reads between batches only once StudyRecheckInterval (5 s) has passed since the last read.
        await _study.WriteRealTilesAsync();
        var studies = new CountingStudies(new InMemoryStudyStore());
        await studies.TryCreateAsync(new StudyRecord { Tenant = Tenant, StudyId = StudyId, Status = StudyStatus.Processing, CreatedAt = DateTimeOffset.UtcNow }, _study.Timeout);
        var sender = new RecordingSender();
        var handler = ScoringTestStudy.Handler(_study.Containers, new InMemorySliceResultStore(), sender, new ScoringOptions { BatchSize = 1 }, studies: studies);
        var started = System.Diagnostics.Stopwatch.StartNew();

        var settlement = await handler.HandleAsync(ScoringTestStudy.Message(_study.Request(chunkIndex: 0, firstSlice: 10, sliceCount: 8)), _study.Timeout);

        var elapsed = started.Elapsed;
        Assert.Equal(SettlementAction.Complete, settlement.Action);
        Assert.Single(sender.Sent);
        Assert.InRange(studies.Reads, 2, 2 + (int)(elapsed / ScoringHandler.StudyRecheckInterval));
    }

    private sealed class CountingStudies(IStudyStore inner) : IStudyStore
    {
        private int _reads;

        public int Reads => Volatile.Read(ref _reads);

        public Task<StudyRecord?> GetAsync(string tenant, string studyId, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _reads);
            return inner.GetAsync(tenant, studyId, cancellationToken);
        }

        public Task<bool> TryCreateAsync(StudyRecord record, CancellationToken cancellationToken) => inner.TryCreateAsync(record, cancellationToken);

        public Task<StudyRecord> UpdateAsync(string tenant, string studyId, Func<StudyRecord?, StudyRecord> update, CancellationToken cancellationToken) =>
            inner.UpdateAsync(tenant, studyId, update, cancellationToken);

        public IAsyncEnumerable<StudyRecord> QueryAsync(string? tenant, string? status, DateTimeOffset? from, DateTimeOffset? to, CancellationToken cancellationToken) =>
            inner.QueryAsync(tenant, status, from, to, cancellationToken);
    }
}
