using System.Reflection;
using System.Text.Json.Nodes;
using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Azure.Local;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// The hourly purge of finished orchestrations (<see cref="OrchestrationPurgeFunctions.PurgeOrchestrationHistory"/>),
/// called directly against DurableTask.AzureStorage on Azurite through the local gRPC sidecar (the backend
/// <c>covidfn up</c> runs; the Function app's is the same AzureStorage provider behind the Durable extension), in a task
/// hub of its own: completed, failed and terminated instances older than the retention are purged, a running one never
/// is, younger ones stay, and the count is logged. Before, nothing purged the task hub.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class OrchestrationPurgeFunctionTests(AzuriteFixture azurite)
{
    private const string Done = nameof(PurgeTestDone);
    private const string Fails = nameof(PurgeTestFails);
    private const string Waits = nameof(PurgeTestWaits);

    [Fact]
    public async Task Finished_instances_older_than_the_retention_are_purged_and_a_running_one_is_kept()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        var ct = timeout.Token;
        await using var sidecar = await LocalDurableSidecar.StartAsync(
            new LocalDurableSidecarOptions { StorageConnectionString = azurite.Server.ConnectionString, TaskHubName = "purge" + Guid.NewGuid().ToString("N")[..10] },
            null,
            ct);
        using var channel = sidecar.CreateChannel();
        using var worker = LocalDurableWorker.BuildHost(channel, tasks => tasks
            .AddOrchestrator<PurgeTestDone>()
            .AddOrchestrator<PurgeTestFails>()
            .AddOrchestrator<PurgeTestWaits>());
        await worker.StartAsync(ct);
        try
        {
            var client = worker.Services.GetRequiredService<DurableTaskClient>();
            var completed = await RunToEndAsync(client, Done, ct);
            var failed = await RunToEndAsync(client, Fails, ct);
            var terminated = await client.ScheduleNewOrchestrationInstanceAsync(Waits, ct);
            await client.WaitForInstanceStartAsync(terminated, ct);
            await client.TerminateInstanceAsync(terminated, ct);
            await client.WaitForInstanceCompletionAsync(terminated, ct);
            var running = await client.ScheduleNewOrchestrationInstanceAsync(Waits, ct);
            await client.WaitForInstanceStartAsync(running, ct);
            var all = new[] { completed, failed, terminated, running };
            var retention = TimeSpan.FromDays(30);

            // 29 days on, none is old enough.
            var young = new CapturingLogger();
            await Functions(retention, TimeSpan.FromDays(29), young).PurgeOrchestrationHistory(new TimerInfo(), client, ct);
            Assert.Contains("Purged the Durable history of 0 finished orchestration(s)", Assert.Single(young.Messages), StringComparison.Ordinal);
            foreach (var id in all)
            {
                Assert.NotNull(await client.GetInstanceAsync(id, ct));
            }

            // 31 days on, the three finished ones go, history and all; the running one stays, whatever its age.
            var old = new CapturingLogger();
            await Functions(retention, TimeSpan.FromDays(31), old).PurgeOrchestrationHistory(new TimerInfo(), client, ct);
            Assert.Contains("Purged the Durable history of 3 finished orchestration(s)", Assert.Single(old.Messages), StringComparison.Ordinal);
            foreach (var id in new[] { completed, failed, terminated })
            {
                Assert.Null(await client.GetInstanceAsync(id, ct));
            }

            Assert.Equal(OrchestrationRuntimeStatus.Running, (await client.GetInstanceAsync(running, ct))?.RuntimeStatus);

            // Retention 0 turns the purge off.
            var off = new CapturingLogger();
            await client.TerminateInstanceAsync(running, ct);
            await client.WaitForInstanceCompletionAsync(running, ct);
            await Functions(TimeSpan.Zero, TimeSpan.FromDays(365), off).PurgeOrchestrationHistory(new TimerInfo(), client, ct);
            Assert.Contains("purge is off", Assert.Single(off.Messages), StringComparison.Ordinal);
            Assert.NotNull(await client.GetInstanceAsync(running, ct));
        }
        finally
        {
            // The worker host first, then the sidecar (a connected worker makes the sidecar's shutdown wait).
            await worker.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public void The_purge_is_an_hourly_timer_in_the_function_metadata()
    {
        var output = typeof(OrchestrationPurgeFunctionTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "FunctionAppOutput").Value!;
        var function = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "functions.metadata")))!.AsArray()
            .Select(f => f!.AsObject()).Single(f => (string?)f["name"] == OrchestrationPurgeFunctions.PurgeOrchestrationHistoryName);
        var bindings = function["bindings"]!.AsArray().Select(b => b!.AsObject()).ToList();

        var trigger = Assert.Single(bindings, b => (string?)b["type"] == "timerTrigger");
        Assert.Equal("0 45 * * * *", (string?)trigger["schedule"]);
        Assert.Single(bindings, b => (string?)b["type"] == "durableClient");
    }

    private static async Task<string> RunToEndAsync(DurableTaskClient client, string name, CancellationToken ct)
    {
        var id = await client.ScheduleNewOrchestrationInstanceAsync(name, ct);
        await client.WaitForInstanceCompletionAsync(id, ct);
        return id;
    }

    private static OrchestrationPurgeFunctions Functions(TimeSpan retention, TimeSpan clockAhead, CapturingLogger logger) =>
        new(Options.Create(new PipelineOptions { OrchestrationHistoryRetention = retention }), new ClockAhead(clockAhead), logger);

    private sealed class PurgeTestDone : TaskOrchestrator<string?, string>
    {
        public override Task<string> RunAsync(TaskOrchestrationContext context, string? input) => Task.FromResult("done");
    }

    private sealed class PurgeTestFails : TaskOrchestrator<string?, string>
    {
        public override Task<string> RunAsync(TaskOrchestrationContext context, string? input) => throw new InvalidOperationException("the study failed");
    }

    private sealed class PurgeTestWaits : TaskOrchestrator<string?, string>
    {
        public override Task<string> RunAsync(TaskOrchestrationContext context, string? input) => context.WaitForExternalEvent<string>("never");
    }

    private sealed class ClockAhead(TimeSpan ahead) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + ahead;
    }

    private sealed class CapturingLogger : ILogger<OrchestrationPurgeFunctions>
    {
        private readonly List<string> _messages = [];

        public IReadOnlyList<string> Messages
        {
            get
            {
                lock (_messages)
                {
                    return [.. _messages];
                }
            }
        }

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (_messages)
            {
                _messages.Add(formatter(state, exception));
            }
        }
    }
}
