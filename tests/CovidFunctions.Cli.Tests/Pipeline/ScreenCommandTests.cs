using System.Text.Json;
using CovidFunctions.Cli.Commands;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests.Pipeline;

/// <summary><c>covidfn screen</c>: the pipeline's stages in-process on real CT slices, no storage services.</summary>
public sealed class ScreenCommandTests
{
    [Fact]
    public async Task Screen_real_slices_writes_the_status_document_and_a_report()
    {
        using var temp = TestData.CreateTempDirectory();
        var series = PipelineFixture.RealSubset(Path.Combine(temp.Path, "series"), 3);
        var json = Path.Combine(temp.Path, "out.json");
        var report = Path.Combine(temp.Path, "report.html");
        var output = new StringWriter();
        var error = new StringWriter();

        var rc = await ScreenCommand.RunAsync(
            new ScreenCommand.ScreenArguments(series, json, report, "lab-s", null, Path.Combine(temp.Path, "deid.key"), Path.Combine(TestData.RepoRoot, "models"), 0),
            output, error, CancellationToken.None);

        Assert.True(rc == ExitCodes.Success, error.ToString());
        var document = JsonDocument.Parse(await File.ReadAllTextAsync(json)).RootElement;
        Assert.Equal(["study", "tenant", "status", "reason", "diagnosis"], document.EnumerateObject().Select(p => p.Name));
        Assert.Equal("completed", document.GetProperty("status").GetString());
        Assert.Equal("lab-s", document.GetProperty("tenant").GetString());
        Assert.Equal(3, document.GetProperty("diagnosis").GetProperty("slices").GetInt32());
        Assert.Contains("diagnosis:", output.ToString(), StringComparison.Ordinal);
        Assert.StartsWith("<!DOCTYPE html>", await File.ReadAllTextAsync(report), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Screen_out_dir_keeps_no_folder_named_after_the_upload()
    {
        // Before: --out-dir kept ct-uploads/{tenant}/{time}-{input folder name}/ (emptied by ingest, but named after the
        // input, which is often the patient's name) beside the de-identified results.
        using var temp = TestData.CreateTempDirectory();
        var series = PipelineFixture.RealSubset(Path.Combine(temp.Path, "DOE_JOHN", "CT chest"), 2);
        var outDir = Path.Combine(temp.Path, "out");

        var rc = await ScreenCommand.RunAsync(
            new ScreenCommand.ScreenArguments(Path.Combine(temp.Path, "DOE_JOHN"), null, null, "lab-s", outDir, Path.Combine(temp.Path, "deid.key"), Path.Combine(TestData.RepoRoot, "models"), 0),
            new StringWriter(), new StringWriter(), CancellationToken.None);

        Assert.Equal(ExitCodes.Success, rc);
        Assert.True(File.Exists(Path.Combine(series, Path.GetFileName(Directory.GetFiles(series)[0]))), "the input is left alone");
        var named = Directory.GetFileSystemEntries(outDir, "*", SearchOption.AllDirectories).Select(p => Path.GetRelativePath(outDir, p)).Where(p => p.Contains("DOE", StringComparison.Ordinal)).ToList();
        Assert.True(named.Count == 0, "kept under --out-dir: " + string.Join(", ", named));
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(outDir, "results"), "montage.png", SearchOption.AllDirectories));
    }
}
