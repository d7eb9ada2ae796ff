using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.Pipeline.Azure.Messaging;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Pipeline.Azure.Tests.Local;

[Collection(AzuriteCollection.Name)]
public sealed class AzuriteServerTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task The_probe_sees_the_running_server_and_not_a_free_port()
    {
        Assert.True(await AzuriteServer.IsRunningAtAsync(azurite.Server.Ports, CancellationToken.None));
        Assert.False(await AzuriteServer.IsRunningAtAsync(AzuriteServer.FreePorts(), CancellationToken.None));
        Assert.NotNull(azurite.Server.ProcessId);
        Assert.Contains($"BlobEndpoint=http://127.0.0.1:{azurite.Server.Ports.Blob}/devstoreaccount1", azurite.Server.ConnectionString, StringComparison.Ordinal);
        Assert.True(File.Exists(azurite.Server.LogPath));
    }

    [Fact]
    public void The_recorded_process_is_node_in_its_own_session_so_a_terminal_ctrl_c_does_not_reach_it()
    {
        var pid = azurite.Server.ProcessId!.Value;
        Assert.Equal("node", System.Diagnostics.Process.GetProcessById(pid).ProcessName);

        // /proc/PID/stat: "pid (comm) state ppid pgrp session ..." — the session leader is the server itself.
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        Assert.Equal(pid.ToString(System.Globalization.CultureInfo.InvariantCulture), fields[3]);
    }

    [Fact]
    public async Task Starting_on_a_taken_port_fails_with_the_port_in_the_message()
    {
        using var data = TestData.CreateTempDirectory();
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            AzuriteServer.StartAsync(new AzuriteServerOptions { DataDirectory = data.Path, Ports = azurite.Server.Ports }, null, CancellationToken.None));
        Assert.Contains(azurite.Server.Ports.Blob.ToString(System.Globalization.CultureInfo.InvariantCulture), error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_restart_keeps_blobs_rows_and_queued_messages_and_stop_ends_the_process()
    {
        using var data = TestData.CreateTempDirectory();
        await using var server = await AzuriteServer.StartAsync(new AzuriteServerOptions { DataDirectory = data.Path, Ports = AzuriteServer.FreePorts() }, null, CancellationToken.None);
        var storage = PipelineStorage.FromConnectionString(server.ConnectionString);
        await storage.EnsureCreatedAsync(CancellationToken.None);
        await storage.BlobContainers.Get(PipelineNames.ResultsContainer).WriteAsync("t/s/x.json", new MemoryStream("{\"a\":1}"u8.ToArray()), CancellationToken.None);
        await storage.Usage.TryRecordAsync(new UsageRecord("t", "s", "scoring", DateTimeOffset.UtcNow, 1, 1, 0, 1), CancellationToken.None);
        var transport = storage.CreateQueueTransport();
        await transport.SendAsync(PipelineNames.SliceRequestsQueue, new QueueMessage("m1", "{\"chunk\":1}"), CancellationToken.None);
        var pid = server.ProcessId!.Value;

        await server.RestartAsync(CancellationToken.None);

        Assert.NotEqual(pid, server.ProcessId);
        Assert.True(await storage.BlobContainers.Get(PipelineNames.ResultsContainer).ExistsAsync("t/s/x.json", CancellationToken.None));
        Assert.Single(await storage.Usage.GetMonthAsync("t", TableUsageStore.MonthOf(DateTimeOffset.UtcNow), CancellationToken.None));
        var peeked = await storage.Queues.GetQueueClient(PipelineNames.SliceRequestsQueue).PeekMessagesAsync(10);
        Assert.Equal("m1", StorageQueueEnvelope.TryParse(peeked.Value.Single().MessageText)!.MessageId);

        await server.StopAsync(CancellationToken.None);
        Assert.Null(server.ProcessId);
        Assert.False(await AzuriteServer.IsRunningAtAsync(server.Ports, CancellationToken.None));
        Assert.Throws<ArgumentException>(() => System.Diagnostics.Process.GetProcessById(pid));
    }

    [Fact]
    public async Task A_running_queue_consumer_rides_out_an_azurite_restart()
    {
        using var data = TestData.CreateTempDirectory();
        await using var server = await AzuriteServer.StartAsync(new AzuriteServerOptions { DataDirectory = data.Path, Ports = AzuriteServer.FreePorts() }, null, CancellationToken.None);
        var storage = PipelineStorage.FromConnectionString(server.ConnectionString);
        var transport = storage.CreateQueueTransport(options: new StorageQueueTransportOptions { ErrorBackoff = TimeSpan.FromMilliseconds(200) });
        await transport.SendAsync("restart-q", new QueueMessage("before", "{}"), CancellationToken.None);
        var seen = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var both = new TaskCompletionSource();
        using var stop = new CancellationTokenSource();
        var consumer = transport.RunAsync("restart-q", (message, _) =>
        {
            seen.Enqueue(message.MessageId);
            if (seen.Count == 2)
            {
                both.TrySetResult();
            }

            return Task.FromResult(Settlement.Complete);
        }, new ConsumerOptions { PollInterval = TimeSpan.FromMilliseconds(100) }, stop.Token);
        while (seen.IsEmpty)
        {
            await Task.Delay(100);
        }

        await server.RestartAsync(CancellationToken.None);
        await transport.SendAsync("restart-q", new QueueMessage("after", "{}"), CancellationToken.None);

        var finished = await Task.WhenAny(both.Task, Task.Delay(TimeSpan.FromSeconds(60)));
        await stop.CancelAsync();
        await consumer;
        Assert.Same(both.Task, finished);
        Assert.Equal(["before", "after"], seen);
    }

    [Fact]
    public async Task The_server_ends_itself_when_the_process_that_started_it_is_gone()
    {
        using var data = TestData.CreateTempDirectory();
        using var parent = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("sleep", "600") { UseShellExecute = false })!;
        await using var server = await AzuriteServer.StartAsync(
            new AzuriteServerOptions { DataDirectory = data.Path, Ports = AzuriteServer.FreePorts(), ParentProcessId = parent.Id },
            null,
            CancellationToken.None);
        Assert.NotNull(server.ProcessId);

        // The "parent" dies without stopping the server (as a killed test run or covidfn up would).
        parent.Kill();
        await parent.WaitForExitAsync();
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (server.ProcessId is not null && waited.Elapsed < TimeSpan.FromSeconds(60))
        {
            await Task.Delay(200);
        }

        Assert.Null(server.ProcessId);
        Assert.False(await AzuriteServer.IsRunningAtAsync(server.Ports, CancellationToken.None));
    }

    [Fact]
    public async Task The_pipeline_clients_and_the_durable_backend_work_with_an_azurite_that_checks_api_versions()
    {
        using var data = TestData.CreateTempDirectory();
        await using var server = await AzuriteServer.StartAsync(
            new AzuriteServerOptions { DataDirectory = data.Path, Ports = AzuriteServer.FreePorts(), SkipApiVersionCheck = false },
            null,
            CancellationToken.None);

        // The SDK default (2026-10-06) is refused by this Azurite: the unpinned client fails, the pipeline's do not.
        var unpinned = new global::Azure.Storage.Blobs.BlobServiceClient(server.ConnectionString);
        await Assert.ThrowsAsync<global::Azure.RequestFailedException>(() => unpinned.GetBlobContainerClient("probe").CreateIfNotExistsAsync());

        var storage = PipelineStorage.FromConnectionString(server.ConnectionString);
        await storage.EnsureCreatedAsync(CancellationToken.None);
        await storage.BlobContainers.Get(PipelineNames.SlicesContainer).WriteAsync("t/s/a.json", new MemoryStream("{}"u8.ToArray()), CancellationToken.None);
        Assert.Equal(["t/s/a.json"], await storage.BlobContainers.Get(PipelineNames.SlicesContainer).ListAsync("t/", CancellationToken.None).ToListAsync());
        await storage.CreateQueueTransport().SendAsync(PipelineNames.SliceResultsQueue, new QueueMessage("m", "{}"), CancellationToken.None);
        Assert.True(await storage.Usage.TryRecordAsync(new UsageRecord("t", "s", "ingest", DateTimeOffset.UtcNow, 1, 0, 0, 0), CancellationToken.None));

        await using var sidecar = await LocalDurableSidecar.StartAsync(new LocalDurableSidecarOptions { StorageConnectionString = server.ConnectionString }, null, CancellationToken.None);
        Assert.True(sidecar.Port > 0);
    }

    [Fact]
    public void The_repository_root_is_found_from_the_test_binaries()
    {
        var root = AzuriteServer.FindRepoRoot();
        Assert.True(File.Exists(Path.Combine(root, "infra", "azurite", "package-lock.json")));
    }
}
