using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// <c>covidfn up</c>'s progress rounds (<see cref="StudyProgressWatch"/>) on a real Azurite. Before, every round (every
/// 2 s) read every study of every tenant: a data folder with thousands of settled studies was read whole every 2 s.
/// Now a round reads the unfinished studies, the places of the studies created since the start and the studies new to
/// the view; what it shows is what the full read showed.
/// </summary>
public sealed class StudyProgressWatchTests : IAsyncLifetime
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly DateTimeOffset Old = new(2026, 10, 1, 8, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Since = new(2026, 11, 27, 8, 0, 0, TimeSpan.Zero);
    private TempDirectory? _data;
    private AzuriteServer? _server;

    public async Task InitializeAsync()
    {
        _data = TestData.CreateTempDirectory();
        _server = await AzuriteServer.StartAsync(new AzuriteServerOptions { DataDirectory = _data.Path, Ports = AzuriteServer.FreePorts() }, null, None);
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        _data?.Dispose();
    }

    [Fact]
    public async Task A_round_reads_as_much_with_400_old_settled_studies_as_with_none()
    {
        var costs = new List<List<(int Requests, long Rows)>>();
        foreach (var oldSettled in new[] { 0, 400 })
        {
            var (studies, counter) = await StoreAsync(indexed: true);
            var statuses = new[] { StudyStatus.Completed, StudyStatus.Failed, StudyStatus.Rejected };
            await Parallel.ForEachAsync(Enumerable.Range(0, oldSettled), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, token) =>
                await studies.TryCreateAsync(Study("lab-a", 1000 + i, Old.AddMinutes(i)) with { Status = statuses[i % 3] }, token));
            // The same run in both: an old study resumed, two new ones created, progressing and settling.
            await studies.TryCreateAsync(Study("lab-a", 1, Old) with { Status = StudyStatus.Processing }, None);
            var watch = new StudyProgressWatch(studies, Since);
            var rounds = new List<(int Requests, long Rows)>();
            async Task RoundAsync()
            {
                counter.Reset();
                await watch.PollAsync(None);
                rounds.Add((counter.Requests, counter.Rows));
            }

            await studies.TryCreateAsync(Study("lab-a", 2, Since.AddMinutes(1)), None);
            await RoundAsync();
            await studies.TryCreateAsync(Study("lab-b", 3, Since.AddMinutes(2)), None);
            await SetAsync(studies, "lab-a", 2, StudyStatus.Processing);
            await RoundAsync();
            await SetAsync(studies, "lab-a", 1, StudyStatus.Completed);
            await SetAsync(studies, "lab-a", 2, StudyStatus.Completed);
            await SetAsync(studies, "lab-b", 3, StudyStatus.Failed);
            await RoundAsync();
            await RoundAsync();
            await RoundAsync();
            costs.Add(rounds);
        }

        // Each round: the same requests and rows whatever the old settled studies (before: 400 more rows a round).
        Assert.Equal(costs[0], costs[1]);
        Assert.All(costs[1], c => Assert.True(c.Rows <= 12, $"a round read {c.Rows} rows"));
    }

    public static TheoryData<bool> Paths => [true, false];

    [Theory]
    [MemberData(nameof(Paths))]
    public async Task Rounds_show_each_change_of_the_studies_of_the_run_and_of_unfinished_old_ones(bool indexed)
    {
        var (studies, _) = await StoreAsync(indexed);
        await studies.TryCreateAsync(Study("lab-a", 1, Old) with { Status = StudyStatus.Completed }, None);
        await studies.TryCreateAsync(Study("lab-a", 2, Old.AddMinutes(1)) with { Status = StudyStatus.Processing }, None);
        await studies.TryCreateAsync(Study("lab-b", 3, Old.AddMinutes(2)) with { Status = StudyStatus.Failed }, None);
        var watch = new StudyProgressWatch(studies, Since);

        // Round 1: the unfinished old study; the settled ones are not news.
        Assert.Equal(("lab-a/2 processing", false), await RoundAsync(watch));

        // A new study queued; nothing else changed.
        await studies.TryCreateAsync(Study("lab-b", 4, Since.AddMinutes(1)), None);
        Assert.Equal(("lab-b/4 queued", false), await RoundAsync(watch));
        Assert.Equal(("", false), await RoundAsync(watch));

        // It is processing, then ingested (slices); the old one completes; a study is created already rejected.
        await SetAsync(studies, "lab-b", 4, StudyStatus.Processing);
        await SetAsync(studies, "lab-a", 2, StudyStatus.Completed);
        await studies.TryCreateAsync(Study("lab-a", 5, Since.AddMinutes(2)) with { Status = StudyStatus.Rejected }, None);
        Assert.Equal(("lab-a/2 completed; lab-b/4 processing; lab-a/5 rejected", false), await RoundAsync(watch));
        await studies.UpdateAsync("lab-b", Id(4), s => s! with { SliceCount = 64, IngestedAt = Since.AddMinutes(3) }, None);
        Assert.Equal(("lab-b/4 processing", false), await RoundAsync(watch));

        // An old settled study uploaded again is unfinished again: shown, and when it settles again.
        await SetAsync(studies, "lab-b", 3, StudyStatus.Processing);
        Assert.Equal(("lab-b/3 processing", false), await RoundAsync(watch));

        // The run's studies all settle: --exit-when-done stops (the old one still processing is not the run's).
        await SetAsync(studies, "lab-b", 4, StudyStatus.Completed);
        Assert.Equal(("lab-b/4 completed", true), await RoundAsync(watch));
        await SetAsync(studies, "lab-b", 3, StudyStatus.Completed);
        Assert.Equal(("lab-b/3 completed", true), await RoundAsync(watch));
        Assert.Equal(("", true), await RoundAsync(watch));
    }

    [Fact]
    public async Task A_run_without_studies_is_not_settled()
    {
        var (studies, _) = await StoreAsync(indexed: true);
        await studies.TryCreateAsync(Study("lab-a", 1, Old) with { Status = StudyStatus.Completed }, None);
        Assert.Equal(("", false), await RoundAsync(new StudyProgressWatch(studies, Since)));
    }

    /// <summary>One round: the studies it shows ("{tenant}/{number} {status}", in order, '; ' between) and whether the run settled.</summary>
    private static async Task<(string Shown, bool RunSettled)> RoundAsync(StudyProgressWatch watch)
    {
        var round = await watch.PollAsync(None);
        return (string.Join("; ", round.Changed.Select(s => $"{s.Tenant}/{int.Parse(s.StudyId[1..], System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture)} {s.Status}")), round.RunSettled);
    }

    private static Task SetAsync(IStudyStore studies, string tenant, int i, string status) =>
        studies.UpdateAsync(tenant, Id(i), s => s! with { Status = status }, None);

    private static string Id(int i) => "s" + i.ToString("x24", System.Globalization.CultureInfo.InvariantCulture);

    private static StudyRecord Study(string tenant, int i, DateTimeOffset createdAt) =>
        new() { Tenant = tenant, StudyId = Id(i), Status = StudyStatus.Queued, CreatedAt = createdAt };

    /// <summary>A table store on a Studies table of its own, counting its requests; indexed: its indexes are complete (every study created through it).</summary>
    private async Task<(TableStudyStore Studies, TableRequestCounter Counter)> StoreAsync(bool indexed)
    {
        var counter = new TableRequestCounter();
        var table = counter.Client(_server!.ConnectionString, "Studies" + Guid.NewGuid().ToString("N")[..16]);
        await table.CreateIfNotExistsAsync(None);
        var studies = new TableStudyStore(table);
        if (indexed)
        {
            Assert.Equal(0, await studies.CompleteListIndexAsync(None));
            Assert.Equal(0, await studies.CompleteStatusIndexAsync(None));
        }

        return (studies, counter);
    }
}
