namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// Within the Function app process an event id names one event (see tests/Shared/LogEventIds.cs): the docs and operators find
/// events by id, and a query on an id two messages share matches both.
/// </summary>
public sealed class LogEventIdTests
{
    [Fact]
    public void Every_event_id_in_the_function_app_process_names_one_event()
    {
        var host = typeof(DeadLetterWriter).Assembly;
        var assemblies = LogEventIds.ProductAssemblies(host);
        var names = assemblies.Select(a => a.GetName().Name!).ToHashSet();

        // The walk reached what the process loads (a missed assembly would pass for free).
        Assert.Superset(
            new HashSet<string> { host.GetName().Name!, "CovidFunctions.Pipeline", "CovidFunctions.Pipeline.Azure", "CovidFunctions.Imaging", "CovidFunctions.Inference" },
            names);
        var events = LogEventIds.Events(assemblies);
        Assert.Contains(events, e => e.Assembly == host);
        Assert.Contains(events, e => e.Assembly.GetName().Name == "CovidFunctions.Imaging");

        var clashes = LogEventIds.Clashes(events);
        Assert.True(clashes.Count == 0, "Event ids used by two different messages:\n" + string.Join("\n", clashes));
    }
}
