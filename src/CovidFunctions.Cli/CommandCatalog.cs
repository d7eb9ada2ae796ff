using System.CommandLine;

namespace CovidFunctions.Cli;

/// <summary>Every top-level <c>covidfn</c> command. Add new commands here.</summary>
internal static class CommandCatalog
{
    public static IEnumerable<Command> All()
    {
        yield return Commands.VersionCommand.Create();
        yield return Commands.DumpCommand.Create();
        yield return Commands.DeidCommand.Create();
        yield return Commands.SegmentCommand.Create();
        yield return Commands.ClassifyCommand.Create();
        yield return Commands.UpCommand.Create();
        yield return Commands.ScreenCommand.Create();
        yield return Commands.SubmitCommand.Create();
        yield return Commands.StatusCommand.Create();
        yield return Commands.PhantomCommand.Create();
        yield return Commands.WebhooksCommand.Create();
        yield return Commands.UsageCommand.Create();
        yield return Commands.QuarantineCommand.Create();
    }
}
