using System.Diagnostics;
using System.Text.Json;
using CovidFunctions.Dicom;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// <c>covidfn deid</c> over inputs that share a SOP Instance UID, as a probe set derived from one base file does: every
/// accepted input keeps its own output. Before, all of them were written to <c>&lt;uid&gt;.dcm</c>, the last of the parallel
/// workers winning, while the report named that one file for each input.
/// </summary>
public sealed class DeidSharedUidTests
{
    [Fact]
    public void Deid_InputsSharingASopInstanceUid_EachKeepTheirOwnOutput_Deterministically()
    {
        using var temp = TestData.CreateTempDirectory();
        var input = Directory.CreateDirectory(Path.Combine(temp.Path, "in")).FullName;
        var source = TestData.Shared(["dicom", "chest-ct", "covid19-ny-sbu", "A002304", "axial", "19001231-076.dcm"]);
        File.Copy(source, Path.Combine(input, "a.dcm"));
        File.Copy(source, Path.Combine(input, "a-copy.dcm")); // byte-identical: one output is enough
        var variant = DicomFile.Open(source);
        variant.Dataset.SetString(new DicomTag(0x0018, 0x0050), DicomVR.DS, "7.5"); // kept attribute: the outputs differ
        variant.Save(Path.Combine(input, "b.dcm"));
        var key = Path.Combine(temp.Path, "deid.key");

        var first = RunDeid(input, Path.Combine(temp.Path, "out1"), key);
        var second = RunDeid(input, Path.Combine(temp.Path, "out2"), key);

        Assert.Equal(3, first.Count);
        Assert.Equal(first["a.dcm"], first["a-copy.dcm"]);
        Assert.NotEqual(first["a.dcm"], first["b.dcm"]);
        Assert.Matches(@"^2\.25\.\d+-[0-9a-f]{12}\.dcm$", first["a.dcm"]);
        Assert.Equal(2, Directory.GetFiles(Path.Combine(temp.Path, "out1")).Length); // no staged leftovers
        Assert.Equal(first, second); // the names depend on the outputs, not on which worker finished first
        Assert.Equal("7.5", DicomFile.Open(Path.Combine(temp.Path, "out1", first["b.dcm"])).Dataset.GetString(new DicomTag(0x0018, 0x0050)));
        Assert.NotEqual("7.5", DicomFile.Open(Path.Combine(temp.Path, "out1", first["a.dcm"])).Dataset.GetString(new DicomTag(0x0018, 0x0050)));
    }

    /// <summary>Runs <c>covidfn deid</c> and returns each input's output file name from the report.</summary>
    private static Dictionary<string, string> RunDeid(string input, string outdir, string key)
    {
        var report = outdir + ".json";
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "covidfn.dll"), "deid", input, outdir, "--key-file", key, "--report", report })
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, stdout.Result + stderr);
        using var json = JsonDocument.Parse(File.ReadAllText(report));
        return json.RootElement.GetProperty("inputs").EnumerateArray()
            .Where(e => e.GetProperty("status").GetString() == "accepted")
            .ToDictionary(e => e.GetProperty("input").GetString()!, e => Path.GetFileName(e.GetProperty("output").GetString()!));
    }
}
