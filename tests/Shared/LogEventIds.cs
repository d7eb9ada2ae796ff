using System.Reflection;
using Microsoft.Extensions.Logging;
using Xunit;

namespace CovidFunctions.Tests.Shared;

/// <summary>
/// The <c>[LoggerMessage]</c> events one host process can write, read by reflection from the product assemblies it
/// loads: the host's own (covidfn for the Cli) and every <c>CovidFunctions.*</c> assembly it references, transitively.
/// Operators (and the docs) find an event by its id, so within one process an id must name one event: two messages
/// under one id make a query match both. Linked into the Function app, covidfn (Cli) and scorer test projects, one
/// test per host.
/// </summary>
internal static class LogEventIds
{
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
}
