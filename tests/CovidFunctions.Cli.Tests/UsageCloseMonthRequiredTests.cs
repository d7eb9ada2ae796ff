
namespace CovidFunctions.Cli.Tests;

/// <summary>
/// <c>covidfn usage close</c> cannot run without <c>--month</c>, and says so where a user looks first: its --help marks
/// the option required (it did not: the check was in the action), and a missing one is System.CommandLine's standard
/// "required" parse error, exit 2 (README: 2 for a required option missing), before any storage is opened.
/// </summary>
public sealed class UsageCloseMonthRequiredTests
{
    [Fact]
    public void Help_marks_month_as_required()
    {
        var (rc, stdout, stderr) = Covidfn("usage", "close", "--help");

        Assert.True(rc == 0, stderr);
        var line = Assert.Single(stdout.Split('\n'), l => l.TrimStart().StartsWith("--month", StringComparison.Ordinal));
        Assert.Contains("(REQUIRED)", line, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_month_is_the_standard_required_option_error_exit_2()
    {
        var (rc, _, stderr) = Covidfn("usage", "close", "--tenant", "lab-a");

        Assert.True(rc == 2, $"exit {rc}: {stderr}");
        Assert.Contains("Option '--month' is required.", stderr, StringComparison.Ordinal);
    }

    private static (int ExitCode, string Stdout, string Stderr) Covidfn(params string[] args) => CovidfnProcess.Run(args);
}
