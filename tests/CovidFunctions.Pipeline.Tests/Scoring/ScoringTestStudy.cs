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
/// The set-up the scoring handler's tests share: one study of tenant <c>lab-1</c> whose blobs live in a temporary folder
/// (<see cref="Containers"/>), the tiles of a real chest CT series, chunk requests of the study as the orchestrator sends
/// them, and a 5-minute bound on each test (<see cref="Timeout"/>).
/// </summary>
internal sealed class ScoringTestStudy : IDisposable
{
    public const string Tenant = "lab-1";

    /// <summary>The real series tiled: lung-pet-ct-dx A0002, series 3 (B40f kernel).</summary>
    private static readonly string[] RealSeries = ["dicom", "chest-ct", "lung-pet-ct-dx", "A0002-s3-b40f"];

    private readonly TempDirectory _temp = TestData.CreateTempDirectory();
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(5));

    public ScoringTestStudy(string studyId)
    {
        StudyId = studyId;
        Containers = new FileSystemBlobContainers(_temp.Path);
    }

    public string StudyId { get; }

    /// <summary>Where ingest writes the study's tiles: <c>lab-1/{study}/tiles</c>.</summary>
    public string TilesPrefix => $"{Tenant}/{StudyId}/tiles";

    /// <summary>The folder behind <see cref="Containers"/>.</summary>
    public string Folder => _temp.Path;

    public FileSystemBlobContainers Containers { get; }

    public CancellationToken Timeout => _timeout.Token;

    /// <summary>Tiles the real series under <see cref="TilesPrefix"/> in <paramref name="containers"/> (default: <see cref="Containers"/>).</summary>
    public async Task<TileManifest> WriteRealTilesAsync(IBlobContainers? containers = null)
    {
        using var series = SeriesAssembler.Assemble(TestData.Shared(RealSeries));
        return await SeriesTiles.WriteAsync(series, (containers ?? Containers).Get(PipelineNames.SlicesContainer), TilesPrefix, null, 2, Timeout);
    }

    /// <summary>The request for chunk <paramref name="chunkIndex"/> (slices <paramref name="firstSlice"/> on), first attempt.</summary>
    public ChunkRequest Request(int chunkIndex, int firstSlice, int sliceCount) =>
        new(Tenant, StudyId, StudyIds.OrchestrationId(Tenant, StudyId), TilesPrefix, chunkIndex, firstSlice, sliceCount, Attempt: 1);

    /// <summary><paramref name="request"/> as the consumer hands it to the handler, on its <paramref name="delivery"/>-th delivery.</summary>
    public static ReceivedMessage Message(ChunkRequest request, int delivery = 1) =>
        new(request.MessageId, PipelineJson.Serialize(request), delivery);

    /// <summary>A handler over <paramref name="containers"/> with the committed models (unless <paramref name="models"/> is given).</summary>
    public static ScoringHandler Handler(
        IBlobContainers containers,
        ISliceResultStore sliceResults,
        IMessageSender sender,
        ScoringOptions options,
        ScreeningModels? models = null,
        IStudyStore? studies = null) =>
        new(containers, sliceResults, sender, models ?? ScreeningModels.Load(), Options.Create(options), NullLogger<ScoringHandler>.Instance, studies);

    public void Dispose()
    {
        _timeout.Dispose();
        _temp.Dispose();
    }
}
