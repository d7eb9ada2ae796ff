using System.CommandLine;
using System.Reflection;

namespace CovidFunctions.Cli.Commands;

/// <summary><c>covidfn version</c>: prints the tool version.</summary>
internal static class VersionCommand
{
    public static Command Create()
    {
        var command = new Command("version", "Print the covidfn version.");
        command.SetAction(parseResult =>
        {
            var version = typeof(VersionCommand).Assembly
                .GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
            parseResult.InvocationConfiguration.Output.WriteLine(version);
            return ExitCodes.Success;
        });
        return command;
    }
}
