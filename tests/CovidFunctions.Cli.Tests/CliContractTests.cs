using System.Diagnostics;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// The command-line contract the held-out evaluation relies on, as a script sees it: exit 0 on success, 2 with a
/// message on bad input (1 only for internal errors), and messages that name the user's own files.
/// </summary>
public sealed class CliContractTests
{
    [Theory]
    [InlineData("segment", "IN")]
    [InlineData("classify", "IN")]
    [InlineData("segment", "IN", "--out-dir", "OUT", "--no-such-option")]
    [InlineData("classify", "IN", "--json")]
    [InlineData("segment", "IN", "--out-dir", "OUT", "--threads", "many")]
    public void ParseError_MissingRequiredOption_UnknownOption_OrBadValue_ExitsBadInputWithTheReasonOnStderr(params string[] args)
    {
        // Before: System.CommandLine's own exit 1 (README: internal error), so `covidfn segment x` without --out-dir
        // looked like a crash to a script.
        using var dir = TestData.CreateTempDirectory();
        var resolved = args.Select(a => a switch { "IN" => dir.Path, "OUT" => Path.Combine(dir.Path, "out"), _ => a }).ToArray();

        var (exitCode, stderr) = Covidfn(resolved);

        Assert.True(exitCode == ExitCodes.BadInput, $"exit {exitCode}: {stderr}");
        Assert.Matches("required|Unrecognized|Cannot parse|Required argument missing|expected", stderr);
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "out")));
    }

    [Fact]
    public void Help_AndVersion_StillExitZero()
    {
        Assert.Equal(ExitCodes.Success, Covidfn("segment", "--help").ExitCode);
        Assert.Equal(ExitCodes.Success, Covidfn("version").ExitCode);
    }

    /// <summary>Runs the built covidfn as a process (the real entry point, exit code included); returns the exit code and stderr.</summary>
    private static (int ExitCode, string Stderr) Covidfn(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "covidfn.dll"), .. args])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.Environment["NO_COLOR"] = "1";
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("covidfn " + string.Join(' ', args) + " did not exit: " + stderr);
        }

        _ = stdout.Result;
        return (process.ExitCode, stderr);
    }
}
