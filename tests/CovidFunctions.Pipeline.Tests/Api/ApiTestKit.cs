using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.Imaging.Rendering;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.Pipeline.Tests.Notifications;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Pipeline.Tests.Api;

/// <summary>
/// The results API over in-memory tables and a file-system results container holding real overlay PNGs (a COVID-SemiSeg
/// CT slice with its doctor-drawn lesion mask, rendered by OverlayRenderer).
/// </summary>
public sealed class ApiTestKit : IDisposable
{
    public ApiTestKit()
    {
        Containers = new FileSystemBlobContainers(Temp.Path);
        Webhooks = new WebhookTestKit();
        Api = new ResultsApi(Webhooks.Studies, Containers, new UsageQueries(Usage, Webhooks.Studies), Webhooks.Manager, new ResultsApiOptions { PublicBaseUrl = new Uri("http://127.0.0.1:7071") });
    }

    public TempDirectory Temp { get; } = TestData.CreateTempDirectory();

    public FileSystemBlobContainers Containers { get; }

    public WebhookTestKit Webhooks { get; }

    public InMemoryStudyStore Studies => Webhooks.Studies;

    public InMemoryUsageStore Usage { get; } = new();

    public ResultsApi Api { get; }

    /// <summary>A real overlay: the CT slice <c>covid-semiseg/train/images/{n}.jpg</c> with its lesion mask drawn over.</summary>
    public static byte[] RealOverlayPng(int n = 0)
    {
        var image = ImageLoader.Load(TestData.Shared("seg", "covid-semiseg", "train", "images", $"{n}.jpg"));
        var maskImage = ImageLoader.Load(TestData.Shared("seg", "covid-semiseg", "train", "masks", $"{n}.png"));
        var mask = maskImage.Pixels.Select(p => p > 0.5f ? (byte)1 : (byte)0).ToArray();
        Assert.Equal(image.Width * image.Height, mask.Length);
        return OverlayRenderer.RenderOverlayPng(image, mask);
    }

    /// <summary>Stores a completed study with its overlay and montage files; returns the row.</summary>
    public async Task<StudyRecord> AddCompletedStudyAsync(string tenant, string studyId, DateTimeOffset? createdAt = null)
    {
        var study = WebhookTestKit.CompletedStudy(tenant, studyId) with { CreatedAt = createdAt ?? DateTimeOffset.UtcNow, TimingsJson = "{\"ingest\":1.25,\"scoring\":7.5,\"total\":9.9}", SeriesJson = "{\"selected\":{\"seriesInstanceUid\":\"2.25.1\",\"slices\":64}}" };
        await Studies.TryCreateAsync(study, CancellationToken.None);
        var results = Containers.Get(PipelineNames.ResultsContainer);
        var png = RealOverlayPng();
        await results.WriteAsync($"{tenant}/{studyId}/overlays/0031.png", new MemoryStream(png), CancellationToken.None);
        await results.WriteAsync($"{tenant}/{studyId}/montage.png", new MemoryStream(png), CancellationToken.None);
        return study;
    }

    public void Dispose()
    {
        Webhooks.Dispose();
        Temp.Dispose();
    }
}
