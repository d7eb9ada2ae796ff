using System.Diagnostics;
using Azure.Messaging.ServiceBus;
using CovidFunctions.Pipeline.Azure.Messaging;
using CovidFunctions.Pipeline.Messaging;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Azure.Tests.Messaging;

/// <summary>
/// A handler the gate takes as hung is logged (event 2401, a warning) with its message id, delivery and how long it
/// ran, and nothing else (no body); a handler that finishes within the bound is not. Before, nothing said that a chunk
/// had been taken as hung and that a redelivered one might now run beside it. The bound is short here; on Azurite, the
/// Storage-queue transport builds its gate with <see cref="ConsumerOptions.HungAfter"/> (the scorer's
/// <c>Scorer:HungChunkAfter</c>), where before it always used the 2-min default.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class HungHandlerLogTests(AzuriteFixture azurite)
{
    private static readonly TimeSpan Soon = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_handler_taken_as_hung_is_logged_once_with_its_message_id_delivery_and_time_run()
    {
        var logger = new EventLogger();
        var bound = TimeSpan.FromMilliseconds(300);
        var gate = new DeliveryGate(bound, logger: logger);
        var clock = Stopwatch.StartNew();
        using var hung = gate.Admit(1, "study-a-c0003-a1");
        await hung.WaitAsync(CancellationToken.None).WaitAsync(Soon);

        var logged = await logger.Hung.Task.WaitAsync(Soon);
        var seen = clock.Elapsed;
        Assert.Equal((2401, LogLevel.Warning), (logged.Id, logged.Level));
        Assert.Equal("study-a-c0003-a1", logged.Values["MessageId"]);
        Assert.Equal(1, logged.Values["DeliveryCount"]);
        Assert.InRange((double)logged.Values["Seconds"]!, bound.TotalSeconds - 0.05, seen.TotalSeconds); // no earlier than the bound
        Assert.Equal(bound.TotalSeconds, logged.Values["BoundSeconds"]);
        Assert.Contains("study-a-c0003-a1 (delivery 1)", logged.Text, StringComparison.Ordinal);
        Assert.Equal(1, gate.Hung);

        hung.Dispose();
        Assert.Single(logger.Events);
    }

    [Fact]
    public async Task A_handler_that_finishes_within_the_bound_is_not_logged()
    {
        var logger = new EventLogger();
        var gate = new DeliveryGate(TimeSpan.FromMilliseconds(200), logger: logger);
        var quick = gate.Admit(1, "study-a-c0000-a1");
        await quick.WaitAsync(CancellationToken.None).WaitAsync(Soon);
        quick.Dispose();

        // A hung one admitted after it is logged; had the first one's timer been left running, it would be logged first.
        using var hung = gate.Admit(2, "study-b-c0001-a1");
        await hung.WaitAsync(CancellationToken.None).WaitAsync(Soon);
        var logged = await logger.Hung.Task.WaitAsync(Soon);
        Assert.Equal("study-b-c0001-a1", logged.Values["MessageId"]);
        Assert.Equal(2, logged.Values["DeliveryCount"]);
        Assert.Single(logger.Events);
    }

    [Fact]
    public async Task The_service_bus_callback_names_the_hung_message_by_its_id()
    {
        var logger = new EventLogger();
        var gate = new DeliveryGate(TimeSpan.FromMilliseconds(300), logger: logger);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var message = ServiceBusModelFactory.ServiceBusReceivedMessage(body: BinaryData.FromString("{\"patient\":\"not logged\"}"), messageId: "study-c-c0002-a1", deliveryCount: 1, lockTokenGuid: Guid.NewGuid());
        var handling = ServiceBusTransport.ProcessAsync(new ProcessMessageEventArgs(message, new CompletingReceiver(), CancellationToken.None), async (_, _) =>
        {
            await release.Task;
            return Settlement.Complete;
        }, maxDeliveryCount: 5, gate: gate);

        var logged = await logger.Hung.Task.WaitAsync(Soon);
        release.TrySetResult();
        await handling.WaitAsync(Soon);

        Assert.Equal(2401, logged.Id);
        Assert.Equal("study-c-c0002-a1", logged.Values["MessageId"]);
        Assert.DoesNotContain("patient", logged.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_storage_queue_transport_takes_a_handler_as_hung_after_the_consumers_bound_and_logs_it()
    {
        var queue = AzuriteFixture.NewQueue();
        var logger = new EventLogger();
        var transport = azurite.Storage.CreateQueueTransport(logger);
        await transport.SendAsync(queue, new QueueMessage("study-d-c0000-a1", "{}"), CancellationToken.None);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var stop = new CancellationTokenSource();
        var run = transport.RunAsync(queue, async (_, _) =>
        {
            await release.Task;
            return Settlement.Complete;
        }, new ConsumerOptions
        {
            MaxConcurrency = 2,
            PollInterval = TimeSpan.FromMilliseconds(100),
            VisibilityTimeout = TimeSpan.FromSeconds(30),
            HungAfter = TimeSpan.FromSeconds(1),
        }, stop.Token);

        try
        {
            // With the default bound (2 min) this wait would run out first.
            var logged = await logger.Hung.Task.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal("study-d-c0000-a1", logged.Values["MessageId"]);
            Assert.Equal(1, logged.Values["DeliveryCount"]);
            Assert.Equal(1.0, logged.Values["BoundSeconds"]);
        }
        finally
        {
            release.TrySetResult();
            await stop.CancelAsync();
            await run.WaitAsync(TimeSpan.FromMinutes(1));
        }
    }

    /// <summary>Records each event with its id and structured values; <see cref="Hung"/> completes on the first 2401.</summary>
    private sealed class EventLogger : ILogger
    {
        public List<Event> Events { get; } = [];

        public TaskCompletionSource<Event> Hung { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Id != 2401)
            {
                return;
            }

            var values = state is IEnumerable<KeyValuePair<string, object?>> pairs ? pairs.ToDictionary(p => p.Key, p => p.Value) : [];
            var logged = new Event(eventId.Id, logLevel, formatter(state, exception), values);
            lock (Events)
            {
                Events.Add(logged);
            }

            Hung.TrySetResult(logged);
        }
    }

    private sealed record Event(int Id, LogLevel Level, string Text, Dictionary<string, object?> Values);

    private sealed class CompletingReceiver : ServiceBusReceiver
    {
        public override Task CompleteMessageAsync(ServiceBusReceivedMessage message, CancellationToken cancellationToken = default) => Task.CompletedTask;
    }
}
