using System.Diagnostics;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Dicom.Tests.Deidentification;

/// <summary>Reruns a generator of tools/deid-tablegen on the shared part15.xml and compares with the committed table.</summary>
internal static class TableGenerator
{
    public static void AssertRerunGivesNoDiff(string script, string generatedFileName)
    {
        using var temp = TestData.CreateTempDirectory();
        var output = Path.Combine(temp.Path, generatedFileName);
        var psi = new ProcessStartInfo("/usr/bin/python3")
        {
            ArgumentList = { Path.Combine(TestData.RepoRoot, "tools", "deid-tablegen", script), TestData.Shared("standard", "part15.xml"), output },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, stdout.GetAwaiter().GetResult() + stderr);
        var committed = File.ReadAllText(Path.Combine(
            TestData.RepoRoot, "src", "CovidFunctions.Dicom", "Deidentification", "Generated", generatedFileName));
        Assert.Equal(committed, File.ReadAllText(output));
    }
}
