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

    /// <summary>
    /// A real patient folder (COVID-19-NY-SBU A002304: two time points, each an axial slice plus coronal and sagittal
    /// reformats) screens one series of one study; the console says that the other five files were not screened and why,
    /// and where their reasons are. Before, the summary said nothing: a user screening a patient folder got one diagnosis
    /// and had no sign that the other time point was left out (only reason.json under --out-dir named it). Found in H5's
    /// README walkthrough (session 21).
    /// </summary>
    [Fact]
    public async Task Screen_of_a_folder_with_two_studies_says_which_files_were_not_screened()
    {
        using var temp = TestData.CreateTempDirectory();
        var patient = TestData.Shared("dicom", "chest-ct", "covid19-ny-sbu", "A002304");
        var outDir = Path.Combine(temp.Path, "out");

        var kept = new StringWriter();
        var rc = await ScreenCommand.RunAsync(
            new ScreenCommand.ScreenArguments(patient, null, null, "lab-s", outDir, Path.Combine(temp.Path, "deid.key"), Path.Combine(TestData.RepoRoot, "models"), 0),
            kept, new StringWriter(), CancellationToken.None);

        Assert.Equal(ExitCodes.Success, rc);
        var lines = kept.ToString().Split('\n');
        var notScreened = Assert.Single(lines, l => l.StartsWith("  not screened: ", StringComparison.Ordinal));
        Assert.StartsWith("  not screened: 5 file(s) of the input", notScreened, StringComparison.Ordinal);
        var reasons = Directory.GetFiles(Path.Combine(outDir, "quarantine"), "reason.json", SearchOption.AllDirectories);
        Assert.Contains(Assert.Single(reasons), notScreened, StringComparison.Ordinal);
        Assert.Contains(lines, l => l.StartsWith("    axial/", StringComparison.Ordinal) && l.Contains(": another study in the same upload", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("    coronal/", StringComparison.Ordinal) && l.Contains("Image Type is not ORIGINAL", StringComparison.Ordinal));

        // Without --out-dir the files are not kept: the line says how to keep them.
        var temporary = new StringWriter();
        rc = await ScreenCommand.RunAsync(
            new ScreenCommand.ScreenArguments(patient, null, null, "lab-s", null, Path.Combine(temp.Path, "deid.key"), Path.Combine(TestData.RepoRoot, "models"), 0),
            temporary, new StringWriter(), CancellationToken.None);

        Assert.Equal(ExitCodes.Success, rc);
        Assert.Contains("  not screened: 5 file(s) of the input", temporary.ToString(), StringComparison.Ordinal);
        Assert.Contains("--out-dir", temporary.ToString(), StringComparison.Ordinal);
    }
}
