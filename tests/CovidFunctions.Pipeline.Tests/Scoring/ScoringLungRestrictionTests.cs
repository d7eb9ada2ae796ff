using System.Globalization;
using CovidFunctions.Imaging.Series;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Inference;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Scoring;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Xunit.Abstractions;

namespace CovidFunctions.Pipeline.Tests.Scoring;

/// <summary>
/// The scorer keeps lesion output inside the lungs on HU tiles with the same <see cref="LungRestriction"/> as
/// <c>covidfn segment</c> on a series, and leaves 2-D image tiles as they were.
/// </summary>
public sealed class ScoringLungRestrictionTests(ITestOutputHelper output) : IDisposable
{
    private const string Tenant = "lab-1";
    private readonly TempDirectory _temp = TestData.CreateTempDirectory();
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(10));
    private FileSystemBlobContainers Containers => new(_temp.Path);

    public void Dispose()
    {
        _timeout.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public async Task RealSeries_MasksBurdenAndRankingKeyRestricted_SameAsSeriesScreening()
    {
        const int first = 10, count = 10;
        using var series = SeriesAssembler.Assemble(TestData.Shared("dicom", "chest-ct", "lung-pet-ct-dx", "A0002-s3-b40f"));
        // Each study's chunk reads its own tiles (the scorer refuses a request for tiles outside its study's folder).
        var manifest = await SeriesTiles.WriteAsync(series, Containers.Get(PipelineNames.SlicesContainer), "lab-1/s-off/tiles", null, 2, _timeout.Token);
        await SeriesTiles.WriteAsync(series, Containers.Get(PipelineNames.SlicesContainer), "lab-1/s-on/tiles", null, 2, _timeout.Token);
        var restricting = ScreeningModels.Load(new InferenceOptions { RestrictLesionsToLungs = true });
        var off = await ScoreAsync("s-off", "lab-1/s-off/tiles", first, count, ScreeningModels.Load(new InferenceOptions { RestrictLesionsToLungs = false }));
        var on = await ScoreAsync("s-on", "lab-1/s-on/tiles", first, count, restricting);
        var screened = SeriesScreening.Screen(series, restricting);

        var reader = await TileSeriesReader.OpenAsync(Containers.Get(PipelineNames.SlicesContainer), "lab-1/s-off/tiles", _timeout.Token);
        var tiles = await TileSlices.ReadAsync(reader, Enumerable.Range(first, count), _timeout.Token);
        long before = 0, after = 0, outsideBefore = 0, outsideAfter = 0;
        for (var n = 0; n < count; n++)
        {
            var (width, height) = (manifest.Columns, manifest.Rows);
            var region = LungRestriction.Region(tiles[n].Hu!, width, height, manifest.PixelSpacing![0], manifest.PixelSpacing[1]);
            var maskOff = await ReadMaskAsync(off[n], width, height);
            var maskOn = await ReadMaskAsync(on[n], width, height);
            var kept = LungRestriction.KeptRegion(maskOff, region, width, height);
            for (var i = 0; i < region.Length; i++)
            {
                Assert.True(maskOn[i] == (kept[i] != 0 ? maskOff[i] : 0));
                before += maskOff[i] != 0 ? 1 : 0;
                after += maskOn[i] != 0 ? 1 : 0;
                outsideBefore += maskOff[i] != 0 && region[i] == 0 ? 1 : 0;
                outsideAfter += maskOn[i] != 0 && region[i] == 0 ? 1 : 0;
            }

            // Burden numerator, overlay presence and ranking key follow the restricted mask and map.
            Assert.Equal(maskOn.Count(v => v != 0), on[n].LesionPixels);
            Assert.Equal(on[n].LesionPixels > 0, on[n].OverlayPath is not null);
            Assert.True(on[n].LesionMeanProbability <= off[n].LesionMeanProbability);

            // One implementation: the CLI's series path gives the same mask and summary for the slice.
            var cli = screened.Slices[first + n];
            Assert.Equal(cli.Mask, maskOn);
            Assert.Equal(cli.Summary.LesionMeanProbability, on[n].LesionMeanProbability, 6);
            Assert.Equal(cli.Summary.LesionFraction, on[n].LesionFraction, 6);
        }

        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"scorer, lung-pet-ct-dx/A0002-s3-b40f slices {first}-{first + count - 1}: lesion pixels {before} → {after}; outside the dilated lungs {outsideBefore} → {outsideAfter}"));
        Assert.True(after < before, "the network marks some pixels outside the lungs on this series");
        Assert.True(outsideAfter < outsideBefore);
    }

    [Fact]
    public async Task TwoDimensionalImageTiles_AreNotRestricted()
    {
        using var images = TestData.CreateTempDirectory();
        foreach (var name in new[] { "a.jpg", "b.jpg" })
        {
            File.Copy(TestData.Shared("seg", "covid-semiseg", "train", "images", "0.jpg"), Path.Combine(images.Path, name));
        }

        using var series = SeriesAssembler.Assemble(images.Path);
        var manifest = await SeriesTiles.WriteAsync(series, Containers.Get(PipelineNames.SlicesContainer), "lab-1/u-off/tiles", null, 2, _timeout.Token);
        await SeriesTiles.WriteAsync(series, Containers.Get(PipelineNames.SlicesContainer), "lab-1/u-on/tiles", null, 2, _timeout.Token);
        Assert.Equal(TileKinds.Unit, manifest.Kind);

        var off = await ScoreAsync("u-off", "lab-1/u-off/tiles", 0, 2, ScreeningModels.Load(new InferenceOptions { RestrictLesionsToLungs = false }));
        var on = await ScoreAsync("u-on", "lab-1/u-on/tiles", 0, 2, ScreeningModels.Load(new InferenceOptions { RestrictLesionsToLungs = true }));

        Assert.Contains(on, s => s.LesionPixels > 0);
        for (var n = 0; n < 2; n++)
        {
            Assert.Equal((off[n].LesionPixels, off[n].LungPixels, off[n].LesionMeanProbability, off[n].LesionFraction), (on[n].LesionPixels, on[n].LungPixels, on[n].LesionMeanProbability, on[n].LesionFraction));
            Assert.Equal(await ReadMaskAsync(off[n], manifest.Columns, manifest.Rows), await ReadMaskAsync(on[n], manifest.Columns, manifest.Rows));
            if (off[n].OverlayPath is { } overlayOff)
            {
                Assert.Equal(await File.ReadAllBytesAsync(Link(overlayOff)), await File.ReadAllBytesAsync(Link(on[n].OverlayPath!)));
            }
        }
    }

    private async Task<IReadOnlyList<SliceScore>> ScoreAsync(string studyId, string tilesPrefix, int firstSlice, int sliceCount, ScreeningModels models)
    {
        var sender = new DiscardingSender();
        var handler = new ScoringHandler(Containers, new InMemorySliceResultStore(), sender, models, Options.Create(new ScoringOptions()), NullLogger<ScoringHandler>.Instance);
        var request = new ChunkRequest(Tenant, studyId, StudyIds.OrchestrationId(Tenant, studyId), tilesPrefix, 0, firstSlice, sliceCount, 1);
        var settlement = await handler.HandleAsync(new ReceivedMessage(request.MessageId, PipelineJson.Serialize(request), 1), _timeout.Token);
        Assert.Equal(SettlementAction.Complete, settlement.Action);
        var document = PipelineJson.Deserialize<ChunkResultDocument>(await File.ReadAllTextAsync(Link(ScoringHandler.ChunkDocumentPath(Tenant, studyId, 0)), _timeout.Token));
        return document.Slices;
    }

    private async Task<byte[]> ReadMaskAsync(SliceScore score, int width, int height)
    {
        if (score.MaskPath is null)
        {
            return new byte[width * height];
        }

        var (mask, w, h) = MaskPng.Decode(await File.ReadAllBytesAsync(Link(score.MaskPath), _timeout.Token), score.MaskPath);
        Assert.Equal((width, height), (w, h));
        return mask;
    }

    private string Link(string resultsPath) => Containers.LinkTo(PipelineNames.ResultsContainer, resultsPath);

    private sealed class DiscardingSender : IMessageSender
    {
        public Task SendAsync(string queue, QueueMessage message, CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
