using System.CommandLine;
using System.CommandLine.Help;
using System.Reflection;
using System.Text.RegularExpressions;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Deployment.Tests;

/// <summary>
/// README and docs/ against the CLI a reader runs: every <c>covidfn</c> command and option the docs name exists with that
/// spelling, and README's command table lists every command and every visible option (the commands come from
/// <c>CommandCatalog</c>, the list <c>covidfn</c> itself is built from, not from a copy here).
/// </summary>
public sealed partial class DocumentationConsistencyTests
{
    /// <summary>The top-level commands of <c>covidfn</c>, as its Program adds them.</summary>
    private static readonly Lazy<RootCommand> Cli = new(() =>
    {
        var catalog = typeof(CovidFunctions.Cli.Commands.InferenceSettings).Assembly.GetType("CovidFunctions.Cli.CommandCatalog", throwOnError: true)!;
        var root = new RootCommand();
        foreach (var command in (IEnumerable<Command>)catalog.GetMethod("All", BindingFlags.Public | BindingFlags.Static)!.Invoke(null, null)!)
        {
            root.Subcommands.Add(command);
        }

        return root;
    });

    [Fact]
    public void Readme_CommandTable_IsTheCliCatalog()
    {
        var problems = CommandTableProblems(File.ReadAllText(Path.Combine(TestData.RepoRoot, "README.md")), Cli.Value);
        Assert.True(problems.Count == 0, "README 'What works now' and the CLI disagree:\n" + string.Join("\n", problems));
    }

    [Fact]
    public void Docs_CovidfnCommandLines_NameCommandsAndOptionsTheCliHas()
    {
        var problems = new List<string>();
        foreach (var file in DocumentFiles())
        {
            problems.AddRange(CommandLineProblems(File.ReadAllText(file), Cli.Value).Select(p => $"{Path.GetRelativePath(TestData.RepoRoot, file)}: {p}"));
        }

        Assert.True(problems.Count == 0, "docs name covidfn commands or options that do not exist:\n" + string.Join("\n", problems));
    }

    [Fact]
    public void Checks_FailOnPlantedMismatches()
    {
        // Guards the two checks above: each planted mismatch must be reported (they otherwise pass vacuously when
        // the parsing no longer finds the table or the command lines).
        var root = Cli.Value;
        static string Table(string row) => $"## What works now\n\n| command | what it does | issue |\n| --- | --- | --- |\n{row}\n\n## Next\n";

        Assert.Contains(CommandTableProblems(Table("| `covidfn phantom OUT [--slice N] [--matrix M] [--spacing MM] [--normal] [--seed S]` | x | |"), root), p => p.Contains("phantom: README lists --slice,", StringComparison.Ordinal));
        Assert.Contains(CommandTableProblems(Table("| `covidfn phantom OUT [--matrix M] [--spacing MM] [--normal] [--seed S]` | x | |"), root), p => p.Contains("phantom: option --slices is not in", StringComparison.Ordinal));
        Assert.Contains(CommandTableProblems(Table("| `covidfn dump [--json]` | x | |"), root), p => p.Contains("dump: README shows 0 argument(s)", StringComparison.Ordinal));
        Assert.Contains(CommandTableProblems(Table("| `covidfn status STUDY [--tenant T] [--json] [--data-dir D]` | x | |"), root), p => p.Contains("argument study is optional", StringComparison.Ordinal));
        Assert.Contains(CommandTableProblems(Table("| `covidfn segment INPUT [--out-dir D] [--overlays DIR] [--montage F.png] [--mask-out F] [--models DIR] [--threads N]` | x | |"), root), p => p.Contains("--out-dir is required", StringComparison.Ordinal));
        Assert.Contains(CommandTableProblems(Table("| `covidfn dump FILE [--json]` | x | |"), root), p => p.Contains("covidfn version has no row", StringComparison.Ordinal));
        Assert.Contains(CommandTableProblems(Table("| `covidfn webhooks add URL [--tenant T] [--events E] [--secret S]` / `lst [--json]` (all with `[--data-dir D]`) | x | |"), root), p => p.Contains("'lst [--json]': no such command", StringComparison.Ordinal));
        Assert.DoesNotContain(CommandTableProblems(Table("| `covidfn webhooks add URL [--tenant T] [--events E] [--secret S]` / `list [--tenant T] [--json]` (all with `[--data-dir D]`) | x | |"), root), p => p.StartsWith("covidfn webhooks add:", StringComparison.Ordinal) || p.StartsWith("covidfn webhooks list:", StringComparison.Ordinal));
        Assert.Contains(CommandLineProblems("Run `covidfn status STUDY --jsn`.", root), p => p.Contains("--jsn", StringComparison.Ordinal));
        Assert.Contains(CommandLineProblems("```bash\ncovidfn screem x --report r.html\n```", root), p => p.Contains("screem", StringComparison.Ordinal));
        Assert.Contains(CommandLineProblems("`covidfn webhooks delete ID`", root), p => p.Contains("delete", StringComparison.Ordinal));
        Assert.Empty(CommandLineProblems("`covidfn usage close --month 2026-10 --data-dir D` and `./artifacts/covidfn/covidfn --help`", root));
    }

    /// <summary>README and every page under docs/.</summary>
    private static IEnumerable<string> DocumentFiles() =>
        new[] { Path.Combine(TestData.RepoRoot, "README.md") }
            .Concat(Directory.EnumerateFiles(Path.Combine(TestData.RepoRoot, "docs"), "*.md", SearchOption.AllDirectories).Order(StringComparer.Ordinal));

    /// <summary>
    /// README's "What works now" rows against the CLI. A row's first cell names one command with its arguments and
    /// options (<c>`covidfn usage close --month yyyy-MM [--tenant T]`</c>), optionally its siblings
    /// (<c>/ `list [--tenant T]`</c>) and options shared by all of them (<c>(all with `[--data-dir D]`)</c>).
    /// </summary>
    private static List<string> CommandTableProblems(string readme, RootCommand root)
    {
        var problems = new List<string>();
        var start = readme.IndexOf("## What works now", StringComparison.Ordinal);
        if (start < 0)
        {
            return ["README has no 'What works now' section"];
        }

        var end = readme.IndexOf("\n## ", start + 1, StringComparison.Ordinal);
        var rows = readme[start..(end < 0 ? readme.Length : end)].Split('\n').Where(l => l.StartsWith("| `covidfn ", StringComparison.Ordinal)).ToList();
        var documented = new HashSet<Command>();
        foreach (var row in rows)
        {
            var firstCell = row[2..row.IndexOf(" | ", 2, StringComparison.Ordinal)];
            var spans = BacktickSpan().Matches(firstCell).Select(m => m.Groups[1].Value).ToList();
            var shared = spans.Where(s => s.StartsWith('[')).SelectMany(Tokens).ToList();
            var entries = new List<(Command Command, List<string> Tokens)>();
            var parent = (Command)root;
            foreach (var span in spans.Where(s => !s.StartsWith('[')))
            {
                var tokens = Tokens(span).ToList();
                var command = span.StartsWith("covidfn ", StringComparison.Ordinal) ? root : parent;
                var i = span.StartsWith("covidfn ", StringComparison.Ordinal) ? 1 : 0;
                var walked = 0;
                while (i < tokens.Count && command.Subcommands.FirstOrDefault(c => c.Name == tokens[i]) is { } sub)
                {
                    parent = command;
                    command = sub;
                    i++;
                    walked++;
                }

                if (walked == 0)
                {
                    problems.Add($"'{span}': no such command (known: {string.Join(", ", (span.StartsWith("covidfn ", StringComparison.Ordinal) ? root : parent).Subcommands.Select(c => c.Name))})");
                    continue;
                }

                entries.Add((command, tokens[i..]));
                documented.Add(command);
            }

            foreach (var (command, tokens) in entries)
            {
                var name = FullName(command, root);
                var options = tokens.Concat(shared).Select(OptionName).Where(t => t is not null).Select(t => t!).ToHashSet(StringComparer.Ordinal);
                foreach (var option in options.Where(o => FindOption(command, o) is null))
                {
                    problems.Add($"{name}: README lists {option}, which the command does not have");
                }

                foreach (var option in command.Options.Where(o => !o.Hidden && !IsBuiltIn(o) && !options.Contains(o.Name)))
                {
                    problems.Add($"{name}: option {option.Name} is not in README's row");
                }

                // Arguments are the upper-case placeholders before the first option: FILE, INPUT OUTDIR, [STUDY].
                var placeholders = tokens.TakeWhile(t => OptionName(t) is null).ToList();
                if (placeholders.Count != command.Arguments.Count)
                {
                    problems.Add($"{name}: README shows {placeholders.Count} argument(s) ({string.Join(" ", placeholders)}), the command takes {command.Arguments.Count} ({string.Join(" ", command.Arguments.Select(a => a.Name))})");
                    continue;
                }

                foreach (var (placeholder, argument) in placeholders.Zip(command.Arguments))
                {
                    var optional = argument.Arity.MinimumNumberOfValues == 0;
                    if (placeholder.StartsWith('[') != optional)
                    {
                        problems.Add($"{name}: argument {argument.Name} is {(optional ? "optional" : "required")}, README shows it as {placeholder}");
                    }
                }

                foreach (var required in command.Options.Where(o => o.Required && !o.Hidden))
                {
                    if (tokens.Any(t => t == "[" + required.Name))
                    {
                        problems.Add($"{name}: option {required.Name} is required, README shows it in brackets");
                    }
                }
            }
        }

        // A command with subcommands and no options of its own (webhooks) is documented through its subcommands.
        foreach (var command in AllCommands(root).Where(c => c.Subcommands.Count == 0 || c.Options.Any(o => !o.Hidden && !IsBuiltIn(o))))
        {
            if (!documented.Contains(command))
            {
                problems.Add($"{FullName(command, root)} has no row in README's command table");
            }
        }

        return problems;
    }

    /// <summary>
    /// Every <c>covidfn …</c> in a code block or an inline code span (and <c>dotnet run … -- up …</c>): the command path
    /// must exist, and each <c>--option</c> after it must be one of that command's.
    /// </summary>
    private static List<string> CommandLineProblems(string markdown, RootCommand root)
    {
        var problems = new List<string>();
        var lines = FencedBlock().Matches(markdown).SelectMany(m => m.Groups[1].Value.Split('\n'))
            .Concat(BacktickSpan().Matches(FencedBlock().Replace(markdown, string.Empty)).Select(m => m.Groups[1].Value));
        foreach (var line in lines)
        {
            foreach (Match invocation in Invocation().Matches(line))
            {
                var tokens = invocation.Groups[1].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList();
                if (tokens.Count == 0)
                {
                    continue;
                }

                Command command = root;
                var i = 0;
                while (i < tokens.Count && command.Subcommands.FirstOrDefault(c => c.Name == tokens[i]) is { } sub)
                {
                    command = sub;
                    i++;
                }

                // A lower-case word where a subcommand belongs (covidfn screem, covidfn webhooks delete) names none.
                if (i < tokens.Count && command.Subcommands.Count > 0 && command.Arguments.Count == 0 && CommandWord().IsMatch(tokens[i]))
                {
                    problems.Add($"'{invocation.Value.Trim()}': {FullName(command, root)} has no command '{tokens[i]}'");
                    continue;
                }

                foreach (var option in tokens.Skip(i).Select(OptionName).Where(t => t is not null && FindOption(command, t) is null))
                {
                    problems.Add($"'{invocation.Value.Trim()}': {FullName(command, root)} has no option {option}");
                }
            }
        }

        return problems;
    }

    /// <summary>The option of that name on the command, or a built-in one (--help, and --version on the root).</summary>
    private static Option? FindOption(Command command, string name) =>
        command.Options.FirstOrDefault(o => o.Name == name || o.Aliases.Contains(name))
        ?? (name is "--help" or "-h" or "-?" || (name == "--version" && command is RootCommand) ? new HelpOption() : null);

    private static bool IsBuiltIn(Option option) => option is HelpOption or VersionOption;

    private static IEnumerable<Command> AllCommands(Command command) =>
        command.Subcommands.SelectMany(c => new[] { c }.Concat(AllCommands(c)));

    private static string FullName(Command command, RootCommand root)
    {
        var path = new List<string>();
        for (var c = command; c is not null && c != root; c = c.Parents.OfType<Command>().FirstOrDefault())
        {
            path.Insert(0, c.Name);
        }

        return "covidfn " + string.Join(" ", path);
    }

    /// <summary>The option a token names (<c>--json</c>, <c>[--json</c>, <c>[--json]</c>), or null for a placeholder or value.</summary>
    private static string? OptionName(string token)
    {
        var trimmed = token.TrimStart('[').TrimEnd(']', ',', '.', ')');
        return OptionWord().IsMatch(trimmed) ? trimmed : null;
    }

    private static IEnumerable<string> Tokens(string span) => span.Split(' ', StringSplitOptions.RemoveEmptyEntries);

    [GeneratedRegex(@"`([^`\n]+)`", RegexOptions.CultureInvariant)]
    private static partial Regex BacktickSpan();

    [GeneratedRegex(@"```[a-z]*\n(.*?)```", RegexOptions.CultureInvariant | RegexOptions.Singleline)]
    private static partial Regex FencedBlock();

    /// <summary><c>covidfn</c> (or the Cli project after <c>dotnet run … --</c>) and what follows, up to a comment, pipe or separator.</summary>
    [GeneratedRegex(@"(?:(?<=^|[\s(/])covidfn|src/CovidFunctions\.Cli(?: -c Release)? --)(?= |$)((?: +[^\s#|;&`]+)*)", RegexOptions.CultureInvariant)]
    private static partial Regex Invocation();

    [GeneratedRegex(@"^[a-z][a-z-]*$", RegexOptions.CultureInvariant)]
    private static partial Regex CommandWord();

    [GeneratedRegex(@"^--[a-z][a-z-]*$", RegexOptions.CultureInvariant)]
    private static partial Regex OptionWord();
}
