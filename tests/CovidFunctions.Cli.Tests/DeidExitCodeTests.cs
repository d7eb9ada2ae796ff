using System.Text.Json;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// <c>covidfn deid</c>'s exit code when some inputs are refused, run as a process: as <c>segment</c> and <c>classify</c>
/// do with an image they cannot read, the accepted instances are written, each refused input is named on stderr with its
/// reason. The exit stays 0, as issue #3's contract says ("Exit 0 when the run completed (even with rejects)"); before,
/// the refusals were said only in the counts line and the report.
/// </summary>
public sealed class DeidExitCodeTests
{
    private static string Sbu(params string[] parts) => TestData.Shared(["dicom", "chest-ct", "covid19-ny-sbu", .. parts]);

    [Fact]
    public void A_run_that_refuses_an_input_writes_the_others_names_it_on_stderr_and_exits_0()
    {
        using var temp = TestData.CreateTempDirectory();
        var input = Directory.CreateDirectory(Path.Combine(temp.Path, "in")).FullName;
        File.Copy(Sbu("A002304", "axial", "19001231-076.dcm"), Path.Combine(input, "a.dcm"));
        File.Copy(Sbu("A002304", "coronal", "19001231-076.dcm"), Path.Combine(input, "reformat.dcm")); // DERIVED\SECONDARY
        File.WriteAllText(Path.Combine(input, "notes.dcm"), "not dicom");
        var outdir = Path.Combine(temp.Path, "out");
        var report = Path.Combine(temp.Path, "report.json");

        var (rc, stdout, stderr) = CovidfnProcess.Run("deid", input, outdir, "--key-file", Path.Combine(temp.Path, "k"), "--report", report);

        Assert.True(rc == ExitCodes.Success, stdout + stderr);
        Assert.Contains("deid: 1 accepted, 2 rejected, 3 input(s).", stdout, StringComparison.Ordinal);
        Assert.Single(Directory.GetFiles(outdir)); // the accepted instance is still written
        Assert.Contains("deid: 2 input(s) not de-identified, nothing written for them:", stderr, StringComparison.Ordinal);
        Assert.Contains("deid:   notes.dcm: unreadable: ", stderr, StringComparison.Ordinal);
        Assert.Contains("deid:   reformat.dcm: not-original-primary: ", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("A002304", stderr, StringComparison.Ordinal); // reasons quote no dataset value
        using var json = JsonDocument.Parse(File.ReadAllText(report)); // the report is written as before
        Assert.Equal(2, json.RootElement.GetProperty("rejected").GetInt32());
    }

    [Fact]
    public void Many_refusals_are_named_up_to_ten_and_the_rest_counted()
    {
        using var temp = TestData.CreateTempDirectory();
        var input = Directory.CreateDirectory(Path.Combine(temp.Path, "in")).FullName;
        for (var i = 0; i < 12; i++)
        {
            File.WriteAllText(Path.Combine(input, $"junk{i:D2}.dcm"), "not dicom");
        }

        var (rc, stdout, stderr) = CovidfnProcess.Run("deid", input, Path.Combine(temp.Path, "out"), "--key-file", Path.Combine(temp.Path, "k"));

        Assert.True(rc == ExitCodes.Success, stdout + stderr);
        Assert.Equal(10, stderr.Split('\n').Count(l => l.StartsWith("deid:   junk", StringComparison.Ordinal)));
        Assert.Contains("deid:   ... and 2 more (--report F.json lists every input with its reason)", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_run_that_de_identifies_every_input_exits_0_with_nothing_on_stderr()
    {
        using var temp = TestData.CreateTempDirectory();
        var (rc, stdout, stderr) = CovidfnProcess.Run("deid", Sbu("A002304", "axial", "19001231-076.dcm"), Path.Combine(temp.Path, "out"), "--key-file", Path.Combine(temp.Path, "k"));

        Assert.True(rc == ExitCodes.Success, stdout + stderr);
        Assert.DoesNotContain("not de-identified", stderr, StringComparison.Ordinal);
    }
}
