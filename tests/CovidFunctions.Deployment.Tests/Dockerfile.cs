using System.Text;
using System.Text.RegularExpressions;

namespace CovidFunctions.Deployment.Tests;

/// <summary>One Dockerfile instruction after line continuations are joined and comments dropped.</summary>
internal sealed record DockerInstruction(string Keyword, string Arguments, int Line);

/// <summary>One build stage: its FROM (with global ARGs substituted), its name and its instructions.</summary>
internal sealed record DockerStage(string Image, string? Name, IReadOnlyList<DockerInstruction> Instructions)
{
    public IEnumerable<DockerInstruction> All(string keyword) =>
        Instructions.Where(i => string.Equals(i.Keyword, keyword, StringComparison.OrdinalIgnoreCase));
}

/// <summary>
/// A Dockerfile parser sufficient for CI checks without a Docker engine: parser directives, comments,
/// backslash continuations, global ARG defaults substituted into FROM, stages.
/// </summary>
internal sealed partial class Dockerfile
{
    private Dockerfile(IReadOnlyList<DockerInstruction> instructions, IReadOnlyDictionary<string, string> globalArgs, IReadOnlyList<DockerStage> stages)
    {
        Instructions = instructions;
        GlobalArgs = globalArgs;
        Stages = stages;
    }

    public IReadOnlyList<DockerInstruction> Instructions { get; }

    public IReadOnlyDictionary<string, string> GlobalArgs { get; }

    public IReadOnlyList<DockerStage> Stages { get; }

    public DockerStage FinalStage => Stages[^1];

    public static Dockerfile Parse(string text)
    {
        var instructions = new List<DockerInstruction>();
        var pending = new StringBuilder();
        var startLine = 0;
        var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            var trimmed = line.TrimStart();
            if (trimmed.StartsWith('#'))
            {
                continue; // comments (and parser directives) are dropped, also inside a continuation
            }

            if (pending.Length == 0)
            {
                if (trimmed.Length == 0)
                {
                    continue;
                }

                startLine = i + 1;
            }

            var continues = line.TrimEnd().EndsWith('\\');
            pending.Append(continues ? line.TrimEnd()[..^1] : line).Append(' ');
            if (!continues)
            {
                instructions.Add(ToInstruction(pending.ToString(), startLine));
                pending.Clear();
            }
        }

        if (pending.Length > 0)
        {
            throw new FormatException($"line {startLine}: continuation runs past the end of the file");
        }

        return Build(instructions);
    }

    private static Dockerfile Build(List<DockerInstruction> instructions)
    {
        var globalArgs = new Dictionary<string, string>(StringComparer.Ordinal);
        var stages = new List<DockerStage>();
        string? image = null;
        string? name = null;
        var body = new List<DockerInstruction>();
        foreach (var instruction in instructions)
        {
            if (instruction.Keyword == "FROM")
            {
                if (image is not null)
                {
                    stages.Add(new DockerStage(image, name, body));
                }

                var parts = instruction.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(p => !p.StartsWith("--", StringComparison.Ordinal)).ToArray();
                image = Substitute(parts[0], globalArgs);
                name = parts.Length == 3 && parts[1].Equals("AS", StringComparison.OrdinalIgnoreCase) ? parts[2] : null;
                body = [];
            }
            else if (image is null)
            {
                if (instruction.Keyword != "ARG")
                {
                    throw new FormatException($"line {instruction.Line}: only ARG may precede the first FROM");
                }

                var (argName, value) = SplitArg(instruction.Arguments);
                globalArgs[argName] = value ?? string.Empty;
            }
            else
            {
                body.Add(instruction);
            }
        }

        if (image is null)
        {
            throw new FormatException("no FROM instruction");
        }

        stages.Add(new DockerStage(image, name, body));
        return new Dockerfile(instructions, globalArgs, stages);
    }

    public static (string Name, string? Value) SplitArg(string arguments)
    {
        var eq = arguments.IndexOf('=', StringComparison.Ordinal);
        return eq < 0 ? (arguments.Trim(), null) : (arguments[..eq].Trim(), arguments[(eq + 1)..].Trim().Trim('"'));
    }

    private static DockerInstruction ToInstruction(string text, int line)
    {
        var trimmed = Whitespace().Replace(text.Trim(), " ");
        var space = trimmed.IndexOf(' ', StringComparison.Ordinal);
        return space < 0
            ? new DockerInstruction(trimmed.ToUpperInvariant(), string.Empty, line)
            : new DockerInstruction(trimmed[..space].ToUpperInvariant(), trimmed[(space + 1)..], line);
    }

    private static string Substitute(string value, IReadOnlyDictionary<string, string> args) =>
        Variable().Replace(value, m => args.TryGetValue(m.Groups["name"].Value, out var v) ? v : m.Value);

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();

    [GeneratedRegex(@"\$\{(?<name>[A-Za-z_][A-Za-z0-9_]*)\}|\$(?<name>[A-Za-z_][A-Za-z0-9_]*)")]
    private static partial Regex Variable();
}
