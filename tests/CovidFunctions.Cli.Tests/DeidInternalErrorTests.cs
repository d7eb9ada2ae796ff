using System.Text.Json;
using CovidFunctions.Cli.Commands;
using CovidFunctions.Dicom;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// <c>covidfn deid</c> when processing one instance throws an exception nobody expected (a defect in the reader, the
/// engine or the writer on one hostile file, injected here through <see cref="DeidCommand.Run"/>'s test seam): that
/// instance is refused as <c>internal-error</c>, nothing is written for it, and the run completes (exit 0). Before, the exception
/// left <c>Parallel.For</c> and ended the command: no report, and the other instances' staged outputs never named.
/// </summary>
public sealed class DeidInternalErrorTests
{
    [Fact]
    public void Deid_OneInstanceThrowsUnexpectedly_IsRefusedAsInternalError_OthersWritten_Exit0()
    {
        using var temp = TestData.CreateTempDirectory();
        var input = Directory.CreateDirectory(Path.Combine(temp.Path, "in")).FullName;
        var source = TestData.Shared(["dicom", "chest-ct", "covid19-ny-sbu", "A002304", "axial", "19001231-076.dcm"]);
        foreach (var (name, uid) in new[] { ("a.dcm", "1.2.826.0.1.3680043.99.101"), ("b.dcm", "1.2.826.0.1.3680043.99.102"), ("c.dcm", "1.2.826.0.1.3680043.99.103") })
        {
            var file = DicomFile.Open(source);
            file.Dataset.SetString(new DicomTag(0x0008, 0x0018), DicomVR.UI, uid); // three instances, three outputs
            file.Save(Path.Combine(input, name));
        }

        var outdir = Path.Combine(temp.Path, "out");
        var report = Path.Combine(temp.Path, "report.json");
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        var exit = DeidCommand.Run(input, outdir, Path.Combine(temp.Path, "deid.key"), report, stdout, stderr, instanceHook: (stage, path) =>
        {
            // b fails inside de-identification, c after its output was staged: neither may leave a file behind.
            if (stage == "deidentify" && path == "b.dcm")
            {
                throw new InvalidOperationException("PATIENTVALUE-IN-MESSAGE");
            }

            if (stage == "written" && path == "c.dcm")
            {
                throw new NullReferenceException("PATIENTVALUE-IN-MESSAGE");
            }
        });

        Assert.True(exit == ExitCodes.Success, stdout.ToString() + stderr); // the run completed (issue #3's contract); the refusal is in the report
        Assert.Contains("1 accepted, 2 rejected, 3 input(s)", stdout.ToString(), StringComparison.Ordinal);
        var written = Directory.GetFiles(outdir);
        Assert.Single(written); // a's output, no staged leftovers of b or c
        Assert.EndsWith(".dcm", written[0], StringComparison.Ordinal);
        var reportText = File.ReadAllText(report);
        Assert.DoesNotContain("PATIENTVALUE", reportText, StringComparison.Ordinal); // the exception's type only
        using var json = JsonDocument.Parse(reportText);
        var inputs = json.RootElement.GetProperty("inputs").EnumerateArray().ToDictionary(e => e.GetProperty("input").GetString()!);
        Assert.Equal("accepted", inputs["a.dcm"].GetProperty("status").GetString());
        Assert.Equal(written[0], inputs["a.dcm"].GetProperty("output").GetString());
        foreach (var (name, type) in new[] { ("b.dcm", "InvalidOperationException"), ("c.dcm", "NullReferenceException") })
        {
            Assert.Equal("rejected", inputs[name].GetProperty("status").GetString());
            Assert.Equal("internal-error", inputs[name].GetProperty("reasonCode").GetString());
            Assert.Contains(type, inputs[name].GetProperty("reason").GetString(), StringComparison.Ordinal);
            Assert.False(inputs[name].TryGetProperty("output", out _));
        }
    }
}
