using CovidFunctions.Pipeline.Azure.Local;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Azure.Tests.Local;

[Collection(AzuriteCollection.Name)]
public sealed class LocalDurableSidecarTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task A_sidecar_no_worker_ever_connected_to_stops_cleanly()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var sidecar = await LocalDurableSidecar.StartAsync(
            new LocalDurableSidecarOptions { StorageConnectionString = azurite.Server.ConnectionString, TaskHubName = "idletest" },
            null,
            timeout.Token);
        await sidecar.StopAsync(timeout.Token);
        await sidecar.DisposeAsync(); // a second stop is a no-op
    }

    [Fact]
    public async Task The_orchestration_service_is_stopped_once_however_many_callers_stop_it_at_the_same_time()
    {
        // The gRPC server's ApplicationStopping callback and the sidecar's own StopAsync both stop the service; two
        // concurrent AzureStorageOrchestrationService.StopAsync calls can throw from its lease manager.
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await using var sidecar = await LocalDurableSidecar.StartAsync(
            new LocalDurableSidecarOptions { StorageConnectionString = azurite.Server.ConnectionString, TaskHubName = "stoponcetest" },
            null,
            timeout.Token);
        var stopOnce = StopOnceOrchestrationService.Create(sidecar.OrchestrationService, NullLogger.Instance);
        Assert.Equal(sidecar.OrchestrationService.MaxConcurrentTaskActivityWorkItems, stopOnce.MaxConcurrentTaskActivityWorkItems); // forwarded
        await stopOnce.StartAsync();

        var stops = Enumerable.Range(0, 4).Select(i => i % 2 == 0 ? stopOnce.StopAsync() : stopOnce.StopAsync(isForced: false)).ToList<Task>();
        await Task.WhenAll(stops);

        Assert.All(stops, stop => Assert.Same(stops[0], stop));
    }

    [Fact]
    public async Task A_class_based_orchestration_runs_an_activity_and_waits_for_an_external_event_on_azurite()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var ct = timeout.Token;
        await using var sidecar = await LocalDurableSidecar.StartAsync(
            new LocalDurableSidecarOptions { StorageConnectionString = azurite.Server.ConnectionString, TaskHubName = "sidecartest" },
            null,
            ct);
        using var channel = sidecar.CreateChannel();
        using var worker = LocalDurableWorker.BuildHost(channel, tasks => tasks.AddOrchestrator<GreetingOrchestrator>().AddActivity<GreetActivity>());
        await worker.StartAsync(ct);
        try
        {
            var client = worker.Services.GetRequiredService<DurableTaskClient>();
            var instanceId = "greeting-" + Guid.NewGuid().ToString("N")[..8];
            await client.ScheduleNewOrchestrationInstanceAsync(nameof(GreetingOrchestrator), "azurite", new StartOrchestrationOptions(instanceId), ct);
            await client.WaitForInstanceStartAsync(instanceId, ct);
            await client.RaiseEventAsync(instanceId, GreetingOrchestrator.ApprovalEvent, "approved", ct);

            var done = await client.WaitForInstanceCompletionAsync(instanceId, getInputsAndOutputs: true, ct);

            Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
            Assert.Equal("hello azurite: approved", done.ReadOutputAs<string>());
        }
        finally
        {
            // The worker host first, then the sidecar (a connected worker makes the sidecar's shutdown wait).
            await worker.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task An_orchestration_waiting_for_an_event_survives_a_restart_of_worker_and_sidecar()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        var ct = timeout.Token;
        var options = new LocalDurableSidecarOptions { StorageConnectionString = azurite.Server.ConnectionString, TaskHubName = "restarttest" };
        var instanceId = "restart-" + Guid.NewGuid().ToString("N")[..8];

        // First run: start the orchestration, let its activity finish, then stop everything while it waits for the event.
        await using (var sidecar = await LocalDurableSidecar.StartAsync(options, null, ct))
        {
            using var channel = sidecar.CreateChannel();
            using var worker = LocalDurableWorker.BuildHost(channel, tasks => tasks.AddOrchestrator<GreetingOrchestrator>().AddActivity<GreetActivity>());
            await worker.StartAsync(ct);
            var client = worker.Services.GetRequiredService<DurableTaskClient>();
            await client.ScheduleNewOrchestrationInstanceAsync(nameof(GreetingOrchestrator), "again", new StartOrchestrationOptions(instanceId), ct);
            while ((await client.GetInstanceAsync(instanceId, getInputsAndOutputs: true, ct)) is not { RuntimeStatus: OrchestrationRuntimeStatus.Running } running
                   || !(running.SerializedCustomStatus ?? "").Contains("greeted", StringComparison.Ordinal))
            {
                await Task.Delay(250, ct);
            }

            await worker.StopAsync(ct);
            await sidecar.StopAsync(ct);
        }

        // Second run: a new sidecar and worker on the same Azurite pick the instance up where it was.
        await using (var sidecar = await LocalDurableSidecar.StartAsync(options, null, ct))
        {
            using var channel = sidecar.CreateChannel();
            using var worker = LocalDurableWorker.BuildHost(channel, tasks => tasks.AddOrchestrator<GreetingOrchestrator>().AddActivity<GreetActivity>());
            await worker.StartAsync(ct);
            try
            {
                var client = worker.Services.GetRequiredService<DurableTaskClient>();
                await client.RaiseEventAsync(instanceId, GreetingOrchestrator.ApprovalEvent, "after restart", ct);
                var done = await client.WaitForInstanceCompletionAsync(instanceId, getInputsAndOutputs: true, ct);
                Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
                Assert.Equal("hello again: after restart", done.ReadOutputAs<string>());
            }
            finally
            {
                await worker.StopAsync(CancellationToken.None);
            }
        }
    }

    private sealed class GreetingOrchestrator : TaskOrchestrator<string, string>
    {
        public const string ApprovalEvent = "approval";

        public override async Task<string> RunAsync(TaskOrchestrationContext context, string input)
        {
            var greeting = await context.CallActivityAsync<string>(nameof(GreetActivity), input);
            context.SetCustomStatus("greeted");
            var approval = await context.WaitForExternalEvent<string>(ApprovalEvent, TimeSpan.FromMinutes(2));
            return $"{greeting}: {approval}";
        }
    }

    private sealed class GreetActivity : TaskActivity<string, string>
    {
        public override Task<string> RunAsync(TaskActivityContext context, string input) => Task.FromResult($"hello {input}");
    }
}
