using System.Diagnostics;
using System.Text;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// The built covidfn run as a process, the real entry point with its exit code, as a script runs it: the one runner
/// the process tests share (they each had a copy of it).
/// </summary>
internal static class CovidfnProcess
{
    /// <summary>Runs covidfn with <paramref name="args"/> in this process's environment (colour off).</summary>
    public static (int ExitCode, string Stdout, string Stderr) Run(params string[] args) => Run(null, args);

    /// <summary>
    /// Runs covidfn with <paramref name="args"/>; with <paramref name="variables"/> given, no COVIDFN_* or configuration
    /// (Section__Key) variable of this process reaches it but those. UTF-8 output, colour off; a run that has not ended
    /// after 5 minutes is killed (a hang guard, not a speed check).
    /// </summary>
    public static (int ExitCode, string Stdout, string Stderr) Run((string Name, string Value)[]? variables, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "covidfn.dll"), .. args])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        if (variables is not null)
        {
            foreach (var name in psi.Environment.Keys.Where(k => k.StartsWith("COVIDFN_", StringComparison.Ordinal) || k.Contains("__", StringComparison.Ordinal)).ToList())
            {
                psi.Environment.Remove(name);
            }
        }

        psi.Environment["NO_COLOR"] = "1";
        foreach (var (name, value) in variables ?? [])
        {
            psi.Environment[name] = value;
        }

        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("covidfn " + string.Join(' ', args) + " did not exit: " + stderr);
        }

        return (process.ExitCode, stdout.Result, stderr);
    }
}
