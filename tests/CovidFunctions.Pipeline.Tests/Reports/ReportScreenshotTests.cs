using System.Diagnostics;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Reports;
using CovidFunctions.Pipeline.Tests.Api;
using SkiaSharp;

namespace CovidFunctions.Pipeline.Tests.Reports;

/// <summary>
/// The report as a person sees it: headless Chromium (Debian <c>chromium</c>) renders the HTML to a PNG; Tesseract
/// (Debian <c>tesseract-ocr</c>) reads the diagnosis off the pixels, and the overlay's opaque yellow lesion outline
/// is found in the picture (and is absent from the same report without overlay files). Both tools are installed by
/// infra/scripts/prepare.sh.
/// </summary>
public sealed class ReportScreenshotTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task Report_InHeadlessChromium_ShowsTheDiagnosisAndAnOverlay()
    {
        using var kit = new ApiTestKit();
        var study = await kit.AddCompletedStudyAsync("alpha", "s0000000000000000000000a1");
        var results = kit.Containers.Get(PipelineNames.ResultsContainer);

        var shot = await ScreenshotAsync(kit.Temp.Path, "report", await StudyReportRenderer.RenderAsync(study, results, null, None));
        var text = await RunAsync("tesseract", [shot, "stdout"]);
        Assert.Contains("COVID-19 pneumonia pattern", text, StringComparison.Ordinal);
        Assert.Contains("Lesion burden", text, StringComparison.Ordinal);
        Assert.Contains("Research use only", text, StringComparison.Ordinal);
        var outline = CountOutlinePixels(shot);
        Assert.True(outline > 50, $"only {outline} overlay-outline pixels in {shot}");

        // Control: the same report without its image files has no overlay colour at all.
        var bare = await ScreenshotAsync(kit.Temp.Path, "bare", await StudyReportRenderer.RenderAsync(study, new EmptyBlobStore(), null, None));
        Assert.Equal(0, CountOutlinePixels(bare));

        var keep = Environment.GetEnvironmentVariable("COVIDFN_KEEP_SCREENSHOT");
        if (!string.IsNullOrEmpty(keep))
        {
            File.Copy(shot, keep, overwrite: true);
        }
    }

    /// <summary>Pixels close to the overlay outline colour (255, 220, 0): nothing else on the page is yellow.</summary>
    private static int CountOutlinePixels(string png)
    {
        using var bitmap = SKBitmap.Decode(png) ?? throw new InvalidOperationException($"{png} is not a PNG");
        var count = 0;
        for (var y = 0; y < bitmap.Height; y++)
        {
            for (var x = 0; x < bitmap.Width; x++)
            {
                var c = bitmap.GetPixel(x, y);
                if (c.Red > 200 && c.Green is > 170 and < 245 && c.Blue < 80)
                {
                    count++;
                }
            }
        }

        return count;
    }

    private static async Task<string> ScreenshotAsync(string folder, string name, string html)
    {
        var page = Path.Combine(folder, name + ".html");
        var shot = Path.Combine(folder, name + ".png");
        await File.WriteAllTextAsync(page, html);
        await RunAsync(Chromium(), [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
            "--force-device-scale-factor=1", "--window-size=1100,2600", "--user-data-dir=" + Path.Combine(folder, "chromium-" + name),
            "--screenshot=" + shot, new Uri(page).AbsoluteUri,
        ]);
        Assert.True(File.Exists(shot), $"chromium wrote no screenshot for {page}");
        return shot;
    }

    private static string Chromium()
    {
        foreach (var candidate in new[] { Environment.GetEnvironmentVariable("COVIDFN_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser" })
        {
            if (!string.IsNullOrEmpty(candidate) && File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException("Debian's chromium is not installed: run infra/scripts/prepare.sh (or set COVIDFN_CHROMIUM)");
    }

    private static async Task<string> RunAsync(string file, IReadOnlyList<string> arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{file} did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} did not finish within 3 minutes");
        }

        var output = await stdout;
        Assert.True(process.ExitCode == 0, $"{file} exited {process.ExitCode}: {await stderr}");
        return output;
    }

    /// <summary>A results container with no files (the report then embeds nothing).</summary>
    private sealed class EmptyBlobStore : IBlobStore
    {
        public Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken) => throw new FileNotFoundException(path);

        public Task WriteAsync(string path, Stream content, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task<bool> ExistsAsync(string path, CancellationToken cancellationToken) => Task.FromResult(false);

        public async IAsyncEnumerable<string> ListAsync(string prefix, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
        {
            await Task.CompletedTask;
            yield break;
        }

        public Task DeleteAsync(string path, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task<VersionedStream> OpenReadVersionedAsync(string path, CancellationToken cancellationToken) => throw new FileNotFoundException(path);

        public Task<ConditionalDelete> DeleteIfVersionAsync(string path, string version, CancellationToken cancellationToken) => Task.FromResult(ConditionalDelete.Missing);
    }
}
