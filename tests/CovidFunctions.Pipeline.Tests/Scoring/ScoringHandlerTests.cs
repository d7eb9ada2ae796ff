using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Inference;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Scoring;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Tests.Scoring;

/// <summary>The scorer's handler on tiles of a real chest CT series with the committed model.</summary>
public sealed class ScoringHandlerTests : IDisposable
{
    private const string Tenant = ScoringTestStudy.Tenant;
    private const string StudyId = "s-real";
    private readonly ScoringTestStudy _study = new(StudyId);
    private readonly InMemorySliceResultStore _sliceResults = new();
    private readonly RecordingSender _sender = new();

    public void Dispose() => _study.Dispose();

    [Fact]
    public async Task ScoresAChunkOfARealSeries()
    {
        var manifest = await _study.WriteRealTilesAsync();
        var models = ScreeningModels.Load();
        var handler = CreateHandler(models);
        var request = _study.Request(chunkIndex: 3, firstSlice: 12, sliceCount: 4);

        var settlement = await handler.HandleAsync(ScoringTestStudy.Message(request), _study.Timeout);

        Assert.Equal(SettlementAction.Complete, settlement.Action);
        var message = Assert.Single(_sender.Sent);
        Assert.Equal(PipelineNames.SliceResultsQueue, Assert.Single(_sender.Queues));
        var result = PipelineJson.Deserialize<ChunkResult>(message.Body);
        Assert.Equal(result.MessageId, message.MessageId);
        Assert.Null(result.Error);
        Assert.Equal((3, 1, 4, models.Provider), (result.ChunkIndex, result.Attempt, result.SliceCount, result.Device));
        Assert.True(result.ScoringSeconds > 0);
        Assert.Equal("lab-1/s-real/chunks/0003.json", result.ResultPath);

        var document = PipelineJson.Deserialize<ChunkResultDocument>(await ReadTextAsync(result.ResultPath!));
        Assert.Equal(ScoringHandler.ModelVersionOf(models.Manifest), document.ModelVersion);
        Assert.Equal(models.Classes, document.Classes);
        Assert.Equal([12, 13, 14, 15], document.Slices.Select(s => s.SliceIndex));
        var plane = (long)manifest.Rows * manifest.Columns;
        foreach (var slice in document.Slices)
        {
            Assert.Equal(1.0, slice.ClassProbabilities.Sum(), 4);
            Assert.InRange(slice.LesionMeanProbability, 0, 1);
            // A chest slice: the lung estimate is a real part of the image but far from all of it.
            Assert.InRange(slice.LungPixels, plane / 20, plane / 2);
            Assert.InRange(slice.LesionPixels, 0, slice.LungPixels);
            Assert.Equal(slice.LesionPixels > 0, slice.OverlayPath is not null);
            Assert.Equal(slice.LesionPixels > 0, slice.MaskPath is not null);
        }

        var withLesion = document.Slices.Where(s => s.LesionPixels > 0).ToList();
        Assert.NotEmpty(withLesion);
        foreach (var slice in withLesion)
        {
            var overlay = ImageLoader.Decode(await File.ReadAllBytesAsync(Link(slice.OverlayPath!)), slice.OverlayPath);
            Assert.Equal((manifest.Columns, manifest.Rows), (overlay.Width, overlay.Height));
            var (mask, width, height) = MaskPng.Decode(await File.ReadAllBytesAsync(Link(slice.MaskPath!)), slice.MaskPath);
            Assert.Equal((manifest.Columns, manifest.Rows), (width, height));
            Assert.Equal(slice.LesionPixels, mask.Count(m => m != 0));
        }

        var rows = await _sliceResults.GetAsync(Tenant, StudyId, _study.Timeout);
        Assert.Equal([12, 13, 14, 15], rows.Select(r => r.SliceIndex).Order());
        Assert.All(rows, r => Assert.Equal(3, r.ChunkIndex));

        // A re-delivery overwrites the same document and rows with the same values.
        var firstDocument = await ReadTextAsync(result.ResultPath!);
        Assert.Equal(SettlementAction.Complete, (await handler.HandleAsync(ScoringTestStudy.Message(request, delivery: 2), _study.Timeout)).Action);
        Assert.Equal(firstDocument, await ReadTextAsync(result.ResultPath!));
        Assert.Equal(4, (await _sliceResults.GetAsync(Tenant, StudyId, _study.Timeout)).Count);
        Assert.Equal(2, _sender.Sent.Count);
    }

    [Fact]
    public async Task UnitTilesTakeTheWholeImageAsTheBurdenDenominator()
    {
        const int rows = 40, columns = 56;
        var writer = new TileSeriesWriter(_study.Containers.Get(PipelineNames.SlicesContainer), "lab-1/s-unit/tiles", new TileManifest { Kind = TileKinds.Unit, Rows = rows, Columns = columns });
        for (var s = 0; s < 2; s++)
        {
            await writer.AddSliceAsync(Enumerable.Range(0, rows * columns).Select(i => ((i % columns) + (s * 7)) / (float)(columns + 7)).ToArray(), _study.Timeout);
        }

        await writer.CompleteAsync(_study.Timeout);
        var handler = CreateHandler(ScreeningModels.Load());
        var request = new ChunkRequest(Tenant, "s-unit", StudyIds.OrchestrationId(Tenant, "s-unit"), "lab-1/s-unit/tiles", 0, 0, 2, 1);

        Assert.Equal(SettlementAction.Complete, (await handler.HandleAsync(ScoringTestStudy.Message(request), _study.Timeout)).Action);

        var result = PipelineJson.Deserialize<ChunkResult>(Assert.Single(_sender.Sent).Body);
        var document = PipelineJson.Deserialize<ChunkResultDocument>(await ReadTextAsync(result.ResultPath!));
        Assert.Equal([0, 1], document.Slices.Select(s => s.SliceIndex));
        Assert.All(document.Slices, s => Assert.Equal(rows * columns, s.LungPixels));
        Assert.All(document.Slices, s => Assert.Equal(1.0, s.ClassProbabilities.Sum(), 4));
    }

    [Fact]
    public async Task MissingTilesAnswerWithAnErrorSoTheStudyFailsFast()
    {
        var handler = CreateHandler(ScreeningModels.Load());
        var request = new ChunkRequest(Tenant, "s-none", StudyIds.OrchestrationId(Tenant, "s-none"), "lab-1/s-none/tiles", 0, 0, 2, 1);

        var settlement = await handler.HandleAsync(ScoringTestStudy.Message(request), _study.Timeout);

        Assert.Equal(SettlementAction.Complete, settlement.Action);
        var result = PipelineJson.Deserialize<ChunkResult>(Assert.Single(_sender.Sent).Body);
        Assert.Null(result.ResultPath);
        Assert.Equal("tiles not found under slices/lab-1/s-none/tiles", result.Error);
    }

    [Fact]
    public async Task SlicesOutsideTheSeriesAnswerWithAnError()
    {
        var manifest = await _study.WriteRealTilesAsync();
        var handler = CreateHandler(ScreeningModels.Load());
        var request = _study.Request(chunkIndex: 1, firstSlice: manifest.SliceCount - 1, sliceCount: 2);

        Assert.Equal(SettlementAction.Complete, (await handler.HandleAsync(ScoringTestStudy.Message(request), _study.Timeout)).Action);

        var result = PipelineJson.Deserialize<ChunkResult>(Assert.Single(_sender.Sent).Body);
        Assert.Contains($"outside the series of {manifest.SliceCount} slices", result.Error);
    }

    [Theory]
    [InlineData("{not json")]
    [InlineData("null")]
    [InlineData("{\"tenant\":\"lab-1\",\"studyId\":\"\",\"orchestrationId\":\"x\",\"tilesPrefix\":\"p\",\"chunkIndex\":0,\"firstSlice\":0,\"sliceCount\":1,\"attempt\":1}")]
    [InlineData("{\"tenant\":\"Bad Tenant\",\"studyId\":\"s\",\"orchestrationId\":\"x\",\"tilesPrefix\":\"p\",\"chunkIndex\":0,\"firstSlice\":0,\"sliceCount\":1,\"attempt\":1}")]
    // Requests the orchestrator never sends (it sends study-{tenant}-{study} and {tenant}/{study}/tiles): before, each was
    // scored (or answered "tiles not found" and completed) instead of being refused as malformed.
    [InlineData("{\"tenant\":\"lab-1\",\"studyId\":\"s\",\"orchestrationId\":\"study-lab-1-other\",\"tilesPrefix\":\"lab-1/s/tiles\",\"chunkIndex\":0,\"firstSlice\":0,\"sliceCount\":1,\"attempt\":1}")]
    [InlineData("{\"tenant\":\"lab-1\",\"studyId\":\"s\",\"orchestrationId\":\"study-lab-1-s\",\"tilesPrefix\":\"lab-2/s/tiles\",\"chunkIndex\":0,\"firstSlice\":0,\"sliceCount\":1,\"attempt\":1}")]
    [InlineData("{\"tenant\":\"lab-1\",\"studyId\":\"s/../../lab-2/t\",\"orchestrationId\":\"study-lab-1-s/../../lab-2/t\",\"tilesPrefix\":\"lab-1/s/../../lab-2/t/tiles\",\"chunkIndex\":0,\"firstSlice\":0,\"sliceCount\":1,\"attempt\":1}")]
    [InlineData("{\"tenant\":\"lab-1\",\"studyId\":\"s\",\"orchestrationId\":\"study-lab-1-s\",\"tilesPrefix\":\"lab-1/s/tiles\",\"chunkIndex\":0,\"firstSlice\":2147483647,\"sliceCount\":2,\"attempt\":1}")]
    public async Task MalformedRequestsAreDeadLetteredWithAReason(string body)
    {
        var handler = CreateHandler(ScreeningModels.Load());

        var settlement = await handler.HandleAsync(new ReceivedMessage("m1", body, 1), _study.Timeout);

        Assert.Equal(SettlementAction.DeadLetter, settlement.Action);
        Assert.False(string.IsNullOrEmpty(settlement.Reason));
        Assert.Empty(_sender.Sent);
    }

    [Fact]
    public async Task A_request_naming_another_study_s_tiles_is_dead_lettered_and_reads_and_writes_nothing()
    {
        // The tiles exist (s-real's); a request for study s-other pointing at them would have scored s-real's slices and
        // stored them as s-other's results, served to whoever may read s-other.
        await _study.WriteRealTilesAsync();
        var handler = CreateHandler(ScreeningModels.Load());
        var request = new ChunkRequest(Tenant, "s-other", StudyIds.OrchestrationId(Tenant, "s-other"), _study.TilesPrefix, 0, 0, 2, 1);

        var settlement = await handler.HandleAsync(ScoringTestStudy.Message(request), _study.Timeout);

        Assert.Equal(SettlementAction.DeadLetter, settlement.Action);
        Assert.Equal($"invalid chunk request: tilesPrefix '{_study.TilesPrefix}' is not under the study's folder 'lab-1/s-other/'", settlement.Reason);
        Assert.Empty(_sender.Sent);
        Assert.False(Directory.Exists(Path.Combine(_study.Folder, PipelineNames.ResultsContainer)));
    }

    private ScoringHandler CreateHandler(ScreeningModels models) =>
        ScoringTestStudy.Handler(_study.Containers, _sliceResults, _sender, new ScoringOptions { BatchSize = 3 }, models);

    private string Link(string resultsPath) => _study.Containers.LinkTo(PipelineNames.ResultsContainer, resultsPath);

    private Task<string> ReadTextAsync(string resultsPath) => File.ReadAllTextAsync(Link(resultsPath), _study.Timeout);
}
