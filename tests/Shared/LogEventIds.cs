using System.Reflection;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Microsoft.Extensions.Logging;
using Xunit;

namespace CovidFunctions.Tests.Shared;

/// <summary>
/// The <c>[LoggerMessage]</c> events one host process can write, read by reflection from the product assemblies it
/// loads: the host's own (covidfn for the Cli) and every <c>CovidFunctions.*</c> assembly it references, transitively.
/// Operators (and the docs) find an event by its id, so within one process an id must name one event: two messages
/// under one id make a query match both. Linked into the Function app, covidfn (Cli) and scorer test projects, one
/// test per host. <see cref="AssertProductWide"/> checks the whole product (every src project) from its sources.
/// </summary>
internal static partial class LogEventIds
{
    /// <summary>
    /// Ids that one event of the product has in two assemblies on purpose, with the assemblies that declare it: 4102,
    /// one upload's ingest outcome, in the Function app (IngestFunctions) and covidfn's upload watcher, so one query
    /// finds it wherever the upload was ingested (3a2ef3a).
    /// </summary>
    public static readonly IReadOnlyDictionary<int, string[]> SharedIds = new Dictionary<int, string[]>
    {
        [4102] = ["CovidFunctions.Cli", "CovidFunctions.FunctionApp"],
    };

    /// <summary>
    /// Blocks of 100 ids that two assemblies use, on purpose, each with its own tens (<see cref="AssertProductWide"/>);
    /// every other block belongs to one assembly, so an assembly's next event has room beside its own. 30xx: the
    /// scorer's events (3011-3016) beside those of the Inference library it hosts (3000-3002; 3b09cdb). 41xx: the two
    /// hosts' ingest events (Function app 4101-4107, covidfn's upload watcher 4111-4114, 4102 shared). 81xx: the
    /// webhook events, the domain's and its Azure adapter's (Pipeline.Azure's delivery-log backfill 8131-8132).
    /// </summary>
    public static readonly IReadOnlyDictionary<int, string[]> SharedBlocks = new Dictionary<int, string[]>
    {
        [30] = ["CovidFunctions.Inference", "CovidFunctions.Scorer"],
        [41] = ["CovidFunctions.Cli", "CovidFunctions.FunctionApp"],
        [81] = ["CovidFunctions.Pipeline", "CovidFunctions.Pipeline.Azure"],
    };

    /// <summary>One <c>[LoggerMessage]</c> with an explicit event id as written in a src project.</summary>
    internal sealed record SourceEvent(string Project, string AssemblyName, string File, int Line, string Method, int Id)
    {
        public override string ToString() => $"{Project}: {Method} ({File}:{Line})";
    }

    internal sealed record LogEvent(Assembly Assembly, string Method, int Id, string Message)
    {
        public override string ToString() => $"{Assembly.GetName().Name}: {Method} \"{Message}\"";
    }

    /// <summary>The host assembly and the product assemblies it loads (src projects: CovidFunctions.*).</summary>
    public static IReadOnlyList<Assembly> ProductAssemblies(Assembly host)
    {
        var found = new Dictionary<string, Assembly>(StringComparer.Ordinal);
        var pending = new Stack<Assembly>([host]);
        while (pending.TryPop(out var assembly))
        {
            if (!found.TryAdd(assembly.GetName().Name!, assembly))
            {
                continue;
            }

            foreach (var reference in assembly.GetReferencedAssemblies())
            {
                if (reference.Name!.StartsWith("CovidFunctions.", StringComparison.Ordinal) && !found.ContainsKey(reference.Name))
                {
                    pending.Push(Assembly.Load(reference));
                }
            }
        }

        return [.. found.Values.OrderBy(a => a.GetName().Name, StringComparer.Ordinal)];
    }

    /// <summary>Every <c>[LoggerMessage]</c> with an explicit event id in <paramref name="assemblies"/>.</summary>
    public static IReadOnlyList<LogEvent> Events(IEnumerable<Assembly> assemblies)
    {
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly;
        var events = new List<LogEvent>();
        foreach (var assembly in assemblies)
        {
            Type?[] types;
            try
            {
                types = assembly.GetTypes();
            }
            catch (ReflectionTypeLoadException ex)
            {
                types = ex.Types;
            }

            foreach (var type in types.OfType<Type>())
            {
                foreach (var method in type.GetMethods(all))
                {
                    // EventId -1: none given; the generator then derives one from the method's name.
                    if (method.GetCustomAttribute<LoggerMessageAttribute>() is { EventId: >= 0 } attribute)
                    {
                        events.Add(new LogEvent(assembly, $"{type.FullName}.{method.Name}", attribute.EventId, attribute.Message));
                    }
                }
            }
        }

        return events;
    }

    /// <summary>
    /// Asserts that within <paramref name="host"/>'s process every event id names one event. The walk must reach what every
    /// host loads (Pipeline, Pipeline.Azure, Imaging, Inference) and find events in the host and in Imaging, the library
    /// whose 4xxx ids the hosts' ranges sit beside: a missed assembly would let the check pass for nothing.
    /// </summary>
    public static void AssertEachIdNamesOneEvent(Assembly host)
    {
        var assemblies = ProductAssemblies(host);
        var names = assemblies.Select(a => a.GetName().Name!).ToHashSet();
        Assert.Superset(
            new HashSet<string> { host.GetName().Name!, "CovidFunctions.Pipeline", "CovidFunctions.Pipeline.Azure", "CovidFunctions.Imaging", "CovidFunctions.Inference" },
            names);
        var events = Events(assemblies);
        Assert.Contains(events, e => e.Assembly == host);
        Assert.Contains(events, e => e.Assembly.GetName().Name == "CovidFunctions.Imaging");

        var clashes = Clashes(events);
        Assert.True(clashes.Count == 0, "Event ids used by two different messages:\n" + string.Join("\n", clashes));
    }

    /// <summary>One line per id that two different messages use, naming both declarations; empty when none does.</summary>
    public static IReadOnlyList<string> Clashes(IEnumerable<LogEvent> events) =>
        [.. events
            .GroupBy(e => e.Id)
            .Where(g => g.Select(e => e.Message).Distinct(StringComparer.Ordinal).Count() > 1)
            .OrderBy(g => g.Key)
            .Select(g => $"event id {g.Key}: {string.Join(" | ", g.Select(e => e.ToString()))}")];

    /// <summary>
    /// Every <c>[LoggerMessage]</c> with an explicit event id in the C# sources of every src project (each folder of
    /// <c>src/</c> with a .csproj; bin and obj left out): the hosts are separate executables no test project loads
    /// together, so their assemblies cannot all be reflected over in one process. An attribute the scan cannot read
    /// fails the scan, naming the file and line, rather than being skipped.
    /// </summary>
    public static IReadOnlyList<SourceEvent> SourceEvents(string repoRoot)
    {
        var events = new List<SourceEvent>();
        foreach (var project in Directory.EnumerateFiles(Path.Combine(repoRoot, "src"), "*.csproj", SearchOption.AllDirectories))
        {
            var folder = Path.GetDirectoryName(project)!;
            var name = Path.GetFileNameWithoutExtension(project);
            var assemblyName = XDocument.Load(project).Descendants("AssemblyName").FirstOrDefault()?.Value ?? name;
            foreach (var file in Directory.EnumerateFiles(folder, "*.cs", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            {
                var relative = Path.GetRelativePath(folder, file);
                if (relative.StartsWith("bin" + Path.DirectorySeparatorChar, StringComparison.Ordinal) || relative.StartsWith("obj" + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                {
                    continue;
                }

                var text = File.ReadAllText(file);
                foreach (Match attribute in AttributeStart().Matches(text))
                {
                    var line = text.AsSpan(0, attribute.Index).Count('\n') + 1;
                    var where = $"{Path.GetRelativePath(repoRoot, file)}:{line}";
                    var (arguments, end) = ArgumentsOf(text, attribute.Index + attribute.Length, where);
                    var named = NamedEventId().Match(arguments);
                    var positional = PositionalEventId().Match(arguments);
                    if (!named.Success && !positional.Success)
                    {
                        continue; // no id given: the generator derives one from the method's name
                    }

                    var method = MethodAfter().Match(text, end);
                    Assert.True(method.Success, $"no method after [LoggerMessage] at {where}");
                    var id = int.Parse((named.Success ? named : positional).Groups["id"].Value, System.Globalization.CultureInfo.InvariantCulture);
                    events.Add(new SourceEvent(name, assemblyName, Path.GetRelativePath(repoRoot, file), line, method.Groups["name"].Value, id));
                }
            }
        }

        return events;
    }

    /// <summary>
    /// Across the whole product an id names one event: one declaration, except the <see cref="SharedIds"/> (declared by
    /// exactly the assemblies listed). Logs of every host reach one workspace in Azure, so an id two events share makes
    /// a query match both even when the two never run in one process. And the ids are laid out so that no assembly's
    /// next event lands on another's: each block of 100 belongs to one assembly, except the <see cref="SharedBlocks"/>,
    /// where each ten belongs to one of the assemblies listed.
    /// </summary>
    public static void AssertProductWide(IReadOnlyList<SourceEvent> events)
    {
        var problems = new List<string>();
        foreach (var group in events.GroupBy(e => e.Id).OrderBy(g => g.Key))
        {
            if (SharedIds.TryGetValue(group.Key, out var sharedBy))
            {
                if (!group.Select(e => e.Project).Order(StringComparer.Ordinal).SequenceEqual(sharedBy.Order(StringComparer.Ordinal)))
                {
                    problems.Add($"event id {group.Key} is shared on purpose by {string.Join(" and ", sharedBy)} only, once each; declared by: {string.Join(" | ", group)}");
                }
            }
            else if (group.Count() > 1)
            {
                problems.Add($"event id {group.Key} names {group.Count()} events: {string.Join(" | ", group)}");
            }
        }

        foreach (var block in events.GroupBy(e => e.Id / 100).OrderBy(g => g.Key))
        {
            var users = block.Select(e => e.Project).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
            if (users.Length == 1)
            {
                continue;
            }

            if (!SharedBlocks.TryGetValue(block.Key, out var sharedBy) || users.Except(sharedBy, StringComparer.Ordinal).Any())
            {
                problems.Add($"ids {block.Key * 100}-{(block.Key * 100) + 99} are used by {string.Join(", ", users)}: a block of 100 belongs to one assembly ({string.Join(" | ", block.OrderBy(e => e.Id).Select(e => $"{e.Id} {e}"))})");
                continue;
            }

            foreach (var ten in block.Where(e => !SharedIds.ContainsKey(e.Id)).GroupBy(e => e.Id / 10))
            {
                var owners = ten.Select(e => e.Project).Distinct(StringComparer.Ordinal).ToArray();
                if (owners.Length > 1)
                {
                    problems.Add($"ids {ten.Key * 10}-{(ten.Key * 10) + 9} are used by {string.Join(", ", owners)}: in a shared block each ten belongs to one assembly");
                }
            }
        }

        Assert.True(problems.Count == 0, "Log event ids across the product:\n" + string.Join("\n", problems));
    }

    /// <summary>
    /// The text between an attribute's parentheses, and where the attribute ends: string literals may hold parentheses
    /// ("({Reason})").
    /// </summary>
    private static (string Arguments, int End) ArgumentsOf(string text, int start, string where)
    {
        var depth = 1;
        var inString = false;
        for (var i = start; i < text.Length; i++)
        {
            var c = text[i];
            if (inString)
            {
                if (c == '\\')
                {
                    i++;
                }
                else if (c == '"')
                {
                    inString = false;
                }
            }
            else if (c == '"')
            {
                inString = true;
            }
            else if (c == '(')
            {
                depth++;
            }
            else if (c == ')' && --depth == 0)
            {
                return (text[start..i], i + 1);
            }
        }

        Assert.Fail($"[LoggerMessage( at {where} is not closed");
        return ("", text.Length);
    }

    [GeneratedRegex(@"\[LoggerMessage\(")]
    private static partial Regex AttributeStart();

    [GeneratedRegex(@"\bEventId\s*=\s*(?<id>\d+)")]
    private static partial Regex NamedEventId();

    [GeneratedRegex(@"^\s*(?<id>\d+)\s*,")]
    private static partial Regex PositionalEventId();

    // The declaration after the attribute: "]\n    public static partial void Name(".
    [GeneratedRegex(@"\G[^;{]*?\b(?<name>\w+)\s*\(")]
    private static partial Regex MethodAfter();
}
