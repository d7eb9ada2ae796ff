using System.Reflection;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Deployment.Tests;

/// <summary>
/// The Bicep CLI from the NuGet package Azure.Bicep.CommandLine.linux-x64 (downloaded by the test project's
/// PackageDownload). NuGet does not preserve the executable bit on every machine, so it is set here.
/// </summary>
internal static class BicepCli
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(5);
    private static readonly Lazy<string> ExecutableLazy = new(LocateExecutable);

    public static string Executable => ExecutableLazy.Value;

    public static string BicepDirectory => Path.Combine(TestData.RepoRoot, "bicep");

    public static Task<ProcessResult> RunAsync(string workingDirectory, params string[] arguments) =>
        ProcessRunner.RunAsync(
            Executable,
            arguments,
            workingDirectory,
            Timeout,
            new Dictionary<string, string>
            {
                // No telemetry, no first-run prompts; the CLI is self-contained, so it needs no runtime lookup.
                ["BICEP_TELEMETRY_ENABLED"] = "false",
                ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
            });

    /// <summary>Diagnostic lines ("file(line,col) : Warning|Error|Info CODE: message") in CLI output.</summary>
    public static IReadOnlyList<string> Diagnostics(ProcessResult result) =>
        result.Combined
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(line => line.Contains(" : Warning ", StringComparison.Ordinal)
                || line.Contains(" : Error ", StringComparison.Ordinal)
                || line.Contains(" : Info ", StringComparison.Ordinal))
            .ToList();

    private static string LocateExecutable()
    {
        var path = typeof(BicepCli).Assembly
            .GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "BicepExecutable")
            .Value ?? throw new InvalidOperationException("BicepExecutable metadata is empty");
        if (!File.Exists(path))
        {
            throw new FileNotFoundException("Bicep CLI not found; restore tests/CovidFunctions.Deployment.Tests (PackageDownload).", path);
        }

        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("the Bicep package referenced here is Azure.Bicep.CommandLine.linux-x64");
        }

        var mode = File.GetUnixFileMode(path);
        const UnixFileMode executable = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
        if ((mode & UnixFileMode.UserExecute) == 0)
        {
            File.SetUnixFileMode(path, mode | executable);
        }

        return path;
    }
}
