using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// <c>covidfn dump</c> on a file that is not DICOM at all said "malformed DICOM: not a DICOM file (…)": the file is not
/// a malformed DICOM file, and the reason already says what it is (walkthrough audit). The reason now reads once; a
/// DICOM file that is really malformed keeps the "malformed DICOM:" prefix.
/// </summary>
public sealed class DumpNotDicomMessageTests
{
    [Fact]
    public void A_file_that_is_not_dicom_is_called_so_once()
    {
        using var temp = TestData.CreateTempDirectory();
        var path = Path.Combine(temp.Path, "notes.dcm");
        File.WriteAllText(path, "this is not a DICOM file at all, just some text that goes on for a while");

        var (rc, stderr) = Covidfn("dump", path);

        Assert.True(rc == 2, $"exit {rc}: {stderr}");
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"dump: {path}: not a DICOM file (", line, StringComparison.Ordinal);
        Assert.DoesNotContain("malformed", line, StringComparison.Ordinal);
    }

    [Fact]
    public void An_empty_file_is_called_not_dicom_once()
    {
        using var temp = TestData.CreateTempDirectory();
        var path = Path.Combine(temp.Path, "empty.dcm");
        File.WriteAllBytes(path, []);

        var (rc, stderr) = Covidfn("dump", path);

        Assert.True(rc == 2, $"exit {rc}: {stderr}");
        Assert.StartsWith($"dump: {path}: empty input, not a DICOM file", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_dicom_file_that_is_cut_short_is_still_called_malformed()
    {
        var path = TestData.Shared("dicom", "conformance", "pydicom-testfiles", "test_files", "rtplan_truncated.dcm");

        var (rc, stderr) = Covidfn("dump", path);

        Assert.True(rc == 2, $"exit {rc}: {stderr}");
        Assert.StartsWith($"dump: {path}: malformed DICOM: ", stderr, StringComparison.Ordinal);
    }

    private static (int ExitCode, string Stderr) Covidfn(params string[] args)
    {
        var (exitCode, _, stderr) = CovidfnProcess.Run(args);
        return (exitCode, stderr);
    }
}
