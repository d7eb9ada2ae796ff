using Spectre.Console;

namespace CovidFunctions.Cli.Commands;

/// <summary>The Spectre console the commands write progress and tables through.</summary>
public static class CliConsole
{
    /// <summary>The console width when not writing to a terminal: wide enough that no line wraps.</summary>
    private const int UnwrappedWidth = 1 << 16;

    /// <summary>
    /// A console on <paramref name="output"/>. Redirected to a file or pipe (a script, <c>nohup</c>, a service log), it does
    /// not wrap: Spectre wraps at 80 columns when it knows no terminal width, which split montage URLs, ids, paths and
    /// reasons across lines (a URL broken in the middle cannot be copied or grepped). On a terminal, the terminal's width.
    /// </summary>
    public static IAnsiConsole For(TextWriter output)
    {
        var terminal = ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected;
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
        });
        if (!terminal)
        {
            console.Profile.Width = UnwrappedWidth;
        }

        return console;
    }
}
