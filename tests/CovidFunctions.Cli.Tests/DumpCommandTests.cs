using System.Text.Json;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary><c>covidfn dump FILE [--json]</c>, run as the built covidfn.dll the way an evaluation calls it.</summary>
public class DumpCommandTests
{
    private static string Charset(string name) => TestData.Shared("dicom", "conformance", "pydicom-testfiles", "charset_files", name);

    private static string TestFile(string name) => TestData.Shared("dicom", "conformance", "pydicom-testfiles", "test_files", name);

    [Fact]
    public void Dump_Json_PrintsMetaAndDatasetAsOneDicomJsonObject()
    {
        var (rc, stdout, stderr) = Covidfn("dump", TestFile("CT_small.dcm"), "--json");

        Assert.True(rc == 0, stderr);
        using var json = JsonDocument.Parse(stdout);
        var root = json.RootElement;
        Assert.Equal("1.2.840.10008.1.2.1", root.GetProperty("00020010").GetProperty("Value")[0].GetString());
        Assert.Equal("UI", root.GetProperty("00020010").GetProperty("vr").GetString());
        Assert.Equal("CompressedSamples^CT1", root.GetProperty("00100010").GetProperty("Value")[0].GetProperty("Alphabetic").GetString());
        Assert.Equal(128, root.GetProperty("00280010").GetProperty("Value")[0].GetInt32());
        Assert.StartsWith("file:///", root.GetProperty("7FE00010").GetProperty("BulkDataURI").GetString(), StringComparison.Ordinal);
        Assert.All(root.EnumerateObject(), p => Assert.Matches("^[0-9A-F]{8}$", p.Name));
    }

    [Fact]
    public void Dump_Json_Iso2022File_DecodesPersonNameGroups()
    {
        var (rc, stdout, stderr) = Covidfn("dump", Charset("chrH31.dcm"), "--json");

        Assert.True(rc == 0, stderr);
        using var json = JsonDocument.Parse(stdout);
        var name = json.RootElement.GetProperty("00100010").GetProperty("Value")[0];
        Assert.Equal("山田^太郎", name.GetProperty("Ideographic").GetString());
        Assert.Equal("やまだ^たろう", name.GetProperty("Phonetic").GetString());
    }

    [Fact]
    public void Dump_Json_SequenceItems_AreNestedObjects()
    {
        var (rc, stdout, stderr) = Covidfn("dump", Charset("chrSQEncoding.dcm"), "--json");

        Assert.True(rc == 0, stderr);
        using var json = JsonDocument.Parse(stdout);
        var item = json.RootElement.GetProperty("00321064").GetProperty("Value")[0];
        Assert.Equal("ﾔﾏﾀﾞ^ﾀﾛｳ", item.GetProperty("00100010").GetProperty("Value")[0].GetProperty("Alphabetic").GetString());
    }

    [Fact]
    public void Dump_Tree_PrintsTagVrKeywordValueAndIndentedItems()
    {
        var (rc, stdout, stderr) = Covidfn("dump", Charset("chrSQEncoding.dcm"));

        Assert.True(rc == 0, stderr);
        Assert.Contains("(0008,0005) CS SpecificCharacterSet [ISO_IR 192]", stdout, StringComparison.Ordinal);
        Assert.Contains("(0032,1064) SQ RequestedProcedureCodeSequence (1 items)", stdout, StringComparison.Ordinal);
        Assert.Contains("  (FFFE,E000) Item #1", stdout, StringComparison.Ordinal);
        Assert.Contains("    (0010,0010) PN PatientName [ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう]", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Dump_MalformedFile_ExitsTwoWithOneLineNamingTheFile()
    {
        var path = TestFile("rtplan_truncated.dcm");

        var (rc, stdout, stderr) = Covidfn("dump", path, "--json");

        Assert.Equal(2, rc);
        Assert.Empty(stdout);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.Contains(path, lines[0], StringComparison.Ordinal);
    }

    [Fact]
    public void Dump_MissingFile_ExitsTwo()
    {
        using var temp = TestData.CreateTempDirectory();
        var path = Path.Combine(temp.Path, "missing.dcm");

        var (rc, stdout, stderr) = Covidfn("dump", path);

        // Before: "dump: PATH: FileNotFoundException: Could not find file 'PATH'." (the .NET type, the path twice).
        Assert.Equal(2, rc);
        Assert.Empty(stdout);
        Assert.Equal($"dump: no such file: {path}", stderr.Trim());
    }

    [Fact]
    public void Dump_MissingFolderOnThePath_OrAFolder_ExitsTwoSayingSo()
    {
        using var temp = TestData.CreateTempDirectory();
        var inMissingFolder = Path.Combine(temp.Path, "no-such-folder", "x.dcm");

        var (rc, _, stderr) = Covidfn("dump", inMissingFolder);
        Assert.Equal(2, rc);
        Assert.Equal($"dump: no such file: {inMissingFolder}", stderr.Trim());

        (rc, _, stderr) = Covidfn("dump", temp.Path);
        Assert.Equal(2, rc);
        Assert.Equal($"dump: {temp.Path}: a folder, not a file (dump prints one DICOM file)", stderr.Trim());
    }

    [Fact]
    public void Dump_NotDicom_ExitsTwo()
    {
        using var temp = TestData.CreateTempDirectory();
        var path = Path.Combine(temp.Path, "text.dcm");
        File.WriteAllText(path, "this is not a DICOM file at all, just some text that goes on for a while");

        var (rc, _, stderr) = Covidfn("dump", path, "--json");

        Assert.Equal(2, rc);
        Assert.Contains(path, stderr, StringComparison.Ordinal);
    }

    private static (int ExitCode, string Stdout, string Stderr) Covidfn(params string[] args) => CovidfnProcess.Run(args);
}
