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
        LogEventIds.AssertEachIdNamesOneEvent(typeof(DeadLetterWriter).Assembly);
    }
}
