using System.Diagnostics;
using System.IO.Compression;
using System.Text.Json;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// The <c>covidfn deid INPUT OUTDIR [--key-file F] [--report F.json]</c> contract, run as a process exactly as the
/// independent evaluation calls it.
/// </summary>
public sealed class DeidCommandTests
{
    private static string Sbu(params string[] parts) => TestData.Shared(["dicom", "chest-ct", "covid19-ny-sbu", .. parts]);

    [Fact]
    public void Deid_Directory_WritesUidNamedFilesAndAPhiFreeReport()
    {
        using var temp = TestData.CreateTempDirectory();
        var input = Directory.CreateDirectory(Path.Combine(temp.Path, "in", "nested")).FullName;
        File.Copy(Sbu("A002304", "axial", "19001231-076.dcm"), Path.Combine(input, "a.dcm"));
        File.Copy(Sbu("A002304", "axial", "19010112-135.dcm"), Path.Combine(input, "b.dcm"));
        File.Copy(Sbu("A002304", "coronal", "19001231-076.dcm"), Path.Combine(input, "c.dcm")); // DERIVED\SECONDARY: refused
        File.WriteAllText(Path.Combine(input, "notes.txt"), "not dicom");
        var outdir = Path.Combine(temp.Path, "out");
        var report = Path.Combine(temp.Path, "report.json");

        var (rc, output) = Covidfn("deid", Path.Combine(temp.Path, "in"), outdir, "--key-file", Path.Combine(temp.Path, "deid.key"), "--report", report);

        Assert.True(rc == 0, output); // two inputs refused, the run completed (DeidExitCodeTests)
        var written = Directory.GetFiles(outdir);
        Assert.Equal(2, written.Length);
        Assert.All(written, f => Assert.Matches(@"^2\.25\.\d+\.dcm$", Path.GetFileName(f)));
        using var json = JsonDocument.Parse(File.ReadAllText(report));
        var inputs = json.RootElement.GetProperty("inputs").EnumerateArray().ToList();
        Assert.Equal(4, inputs.Count);
        Assert.Equal(2, inputs.Count(i => i.GetProperty("status").GetString() == "accepted"));
        var refused = inputs.Single(i => i.GetProperty("input").GetString() == "nested/c.dcm");
        Assert.Equal("rejected", refused.GetProperty("status").GetString());
        Assert.Equal("not-original-primary", refused.GetProperty("reasonCode").GetString());

        // No PHI values in the report: patient ID, study date, original UIDs of the inputs.
        var text = File.ReadAllText(report);
        Assert.DoesNotContain("A002304", text, StringComparison.Ordinal);
        Assert.DoesNotContain("19001231", text, StringComparison.Ordinal);
        Assert.DoesNotContain("1.3.6.1.4.1.14519", text, StringComparison.Ordinal);
        foreach (var f in written)
        {
            var (dumpRc, dump) = Run("dcmdump", "-q", f);
            Assert.True(dumpRc == 0, dump);
        }
    }

    [Fact]
    public void Deid_Zip_RefusesTraversalEntriesAndReadsTheRest()
    {
        using var temp = TestData.CreateTempDirectory();
        var zipPath = Path.Combine(temp.Path, "study.zip");
        using (var zip = ZipFile.Open(zipPath, ZipArchiveMode.Create))
        {
            zip.CreateEntryFromFile(Sbu("A027284", "axial", "19000925-116.dcm"), "series/1.dcm");
            zip.CreateEntryFromFile(Sbu("A027284", "axial", "19001231-131.dcm"), "../../escape.dcm");
            zip.CreateEntryFromFile(Sbu("A027284", "axial", "19001231-131.dcm"), "/abs.dcm");
        }

        var outdir = Path.Combine(temp.Path, "out");
        var report = Path.Combine(temp.Path, "r.json");
        var (rc, output) = Covidfn("deid", zipPath, outdir, "--key-file", Path.Combine(temp.Path, "k"), "--report", report);

        Assert.True(rc == 0, output); // two entries refused
        Assert.Single(Directory.GetFiles(outdir));
        Assert.False(File.Exists(Path.Combine(temp.Path, "escape.dcm")));
        using var json = JsonDocument.Parse(File.ReadAllText(report));
        var inputs = json.RootElement.GetProperty("inputs").EnumerateArray().ToList();
        var codes = inputs.Select(i => i.TryGetProperty("reasonCode", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : "accepted").ToList();
        Assert.Equal(2, codes.Count(c => c == "unsafe-archive-entry"));
        // Each line names the archive it came from, as for a zip inside a folder.
        Assert.All(inputs, i => Assert.StartsWith("study.zip!/", i.GetProperty("input").GetString(), StringComparison.Ordinal));
        Assert.Contains(inputs, i => i.GetProperty("input").GetString() == "study.zip!/series/1.dcm");
    }

    [Fact]
    public void Deid_DirectoryWithZipByContentAndJunkDcm_ExpandsTheZipAndRefusesTheJunk()
    {
        using var temp = TestData.CreateTempDirectory();
        var input = Path.Combine(temp.Path, "in");
        Directory.CreateDirectory(input);
        File.Copy(Sbu("A027284", "axial", "19000925-116.dcm"), Path.Combine(input, "a.dcm"));
        File.WriteAllText(Path.Combine(input, "junk.dcm"), "not dicom");
        using (var zip = ZipFile.Open(Path.Combine(input, "study.bin"), ZipArchiveMode.Create))
        {
            zip.CreateEntryFromFile(Sbu("A027284", "axial", "19001231-131.dcm"), "series/1.dcm");
        }

        var outdir = Path.Combine(temp.Path, "out");
        var report = Path.Combine(temp.Path, "r.json");
        var (rc, output) = Covidfn("deid", input, outdir, "--key-file", Path.Combine(temp.Path, "k"), "--report", report);

        Assert.True(rc == 0, output); // junk.dcm refused
        Assert.Equal(2, Directory.GetFiles(outdir).Length);
        using var json = JsonDocument.Parse(File.ReadAllText(report));
        var entries = json.RootElement.GetProperty("inputs").EnumerateArray()
            .Select(i => (Input: i.GetProperty("input").GetString(), Status: i.GetProperty("status").GetString()))
            .ToList();
        Assert.Equal([("a.dcm", "accepted"), ("junk.dcm", "rejected"), ("study.bin!/series/1.dcm", "accepted")], entries);
    }

    [Fact]
    public void Deid_SameInputTwice_SameKey_GivesIdenticalOutputs()
    {
        using var temp = TestData.CreateTempDirectory();
        var key = Path.Combine(temp.Path, "k");
        var input = Sbu("A046441", "axial");
        Assert.Equal(0, Covidfn("deid", input, Path.Combine(temp.Path, "o1"), "--key-file", key).ExitCode);
        Assert.Equal(0, Covidfn("deid", input, Path.Combine(temp.Path, "o2"), "--key-file", key).ExitCode);

        var first = Directory.GetFiles(Path.Combine(temp.Path, "o1")).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        var second = Directory.GetFiles(Path.Combine(temp.Path, "o2")).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(first, second);
        foreach (var name in first)
        {
            Assert.Equal(File.ReadAllBytes(Path.Combine(temp.Path, "o1", name!)), File.ReadAllBytes(Path.Combine(temp.Path, "o2", name!)));
        }
    }

    [Fact]
    public void Deid_RetainSafePrivate_KeepsOnlyTablePrivatesAndRecordsTheOption()
    {
        using var temp = TestData.CreateTempDirectory();
        var key = Path.Combine(temp.Path, "deid.key");
        var input = Sbu("A002304", "axial", "19001231-076.dcm"); // GE, ~125 private elements
        var plainOut = Path.Combine(temp.Path, "plain");
        var safeOut = Path.Combine(temp.Path, "safe");

        var (rcPlain, outPlain) = Covidfn("deid", input, plainOut, "--key-file", key);
        var (rcSafe, outSafe) = Covidfn("deid", input, safeOut, "--key-file", key, "--retain-safe-private");

        Assert.True(rcPlain == 0, outPlain);
        Assert.True(rcSafe == 0, outSafe);
        var (_, plainDump) = Run("dcmdump", "-q", Directory.GetFiles(plainOut).Single());
        var (_, safeDump) = Run("dcmdump", "-q", Directory.GetFiles(safeOut).Single());
        // The option's code (DCM 113111) as a Code Value: bare digits would also match inside a random 2.25 UID
        // (a fresh key each run) and fail the first assertion now and then.
        Assert.DoesNotContain("SH [113111]", plainDump, StringComparison.Ordinal);
        Assert.Contains("SH [113111]", safeDump, StringComparison.Ordinal);
        Assert.Equal(0, CountPrivateElements(plainDump));
        // The GE source holds many private elements; only those of PS3.15 Table E.3.10-1 (and their creators) remain.
        Assert.InRange(CountPrivateElements(safeDump), 2, 124);
        Assert.Contains("(0019,0010) LO [GEMS_ACQU_01]", safeDump, StringComparison.Ordinal);
        Assert.Contains("(0019,1023) DS", safeDump, StringComparison.Ordinal); // GEMS_ACQU_01 table speed: a safe row
    }

    private static int CountPrivateElements(string dcmdump) =>
        dcmdump.Split('\n').Count(line => System.Text.RegularExpressions.Regex.IsMatch(line.TrimStart(), "^\\([0-9a-f]{3}[13579bdf],"));

    [Fact]
    public void Deid_MissingInput_ExitsTwo()
    {
        using var temp = TestData.CreateTempDirectory();
        Assert.Equal(2, Covidfn("deid", Path.Combine(temp.Path, "nope"), Path.Combine(temp.Path, "out"), "--key-file", Path.Combine(temp.Path, "k")).ExitCode);
    }

    [Fact]
    public void Deid_UnusableKey_ExitsTwo()
    {
        using var temp = TestData.CreateTempDirectory();
        var garbage = Path.Combine(temp.Path, "bad.key");
        File.WriteAllText(garbage, "short");
        var input = Sbu("A002304", "axial", "19001231-076.dcm");
        Assert.Equal(2, Covidfn("deid", input, Path.Combine(temp.Path, "out"), "--key-file", garbage).ExitCode);
        var blocker = Path.Combine(temp.Path, "file");
        File.WriteAllText(blocker, "x");
        Assert.Equal(2, Covidfn("deid", input, Path.Combine(temp.Path, "out"), "--key-file", Path.Combine(blocker, "sub", "k")).ExitCode);
    }

    private static (int ExitCode, string Output) Covidfn(params string[] args) =>
        Run("dotnet", [Path.Combine(AppContext.BaseDirectory, "covidfn.dll"), .. args]);

    private static (int ExitCode, string Output) Run(string exe, params string[] args)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result + stderr);
    }
}
