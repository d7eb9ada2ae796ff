using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Azure.Data.Tables;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Scoring;
using CovidFunctions.Pipeline.Storage;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Xunit.Abstractions;

namespace CovidFunctions.Pipeline.Azure.Tests.Local;

/// <summary>
/// The production study orchestrator on the local Durable sidecar over Azurite (the task hub's history and instance
/// tables, the Studies table and the results container all real), with a fake scorer that writes each chunk's result
/// document and raises its event through the Durable client, as the scorer and the relay do.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class StudyOrchestrationOnAzuriteTests(AzuriteFixture azurite, ITestOutputHelper output)
{
    private static readonly string[] Classes = ["covid", "cap", "normal"];

    [Theory]
    [InlineData(StudyOrchestrationInput.CurrentRevision)]
    [InlineData(0)]
    public async Task A_600_slice_study_completes_with_one_durable_timer_per_round_and_revision_0_instances_still_replay(int revision)
    {
        // A real chest CT has 300-700 slices; 600 at the default 32 slices per chunk is 19 chunks (the CT the pipeline
        // is built for). The slices can be raised with COVIDFN_MEASURE_SLICES / COVIDFN_MEASURE_CHUNK to measure.
        var sliceCount = int.TryParse(Environment.GetEnvironmentVariable("COVIDFN_MEASURE_SLICES"), out var s) ? s : 600;
        var chunkSize = int.TryParse(Environment.GetEnvironmentVariable("COVIDFN_MEASURE_CHUNK"), out var c) ? c : new PipelineOptions().ChunkSize;
        var chunks = (sliceCount + chunkSize - 1) / chunkSize;
        var hub = "large" + Guid.NewGuid().ToString("N")[..8];
        var tenant = AzuriteFixture.NewTenant();
        var input = new StudyOrchestrationInput(tenant, "s-large", $"{tenant}/s-large/tiles", sliceCount, chunkSize, MaxChunkAttempts: 3, ChunkTimeout: TimeSpan.FromMinutes(10)) { Revision = revision };
        await azurite.Storage.Studies.TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = input.StudyId, CreatedAt = DateTimeOffset.UtcNow }, CancellationToken.None);

        var (outcome, elapsed) = await RunOnSidecarAsync(hub, input, TimeSpan.FromMinutes(9));

        Assert.Equal(StudyStatus.Completed, outcome.Status);
        Assert.Equal(sliceCount, outcome.Diagnosis!.Slices);
        var row = (await azurite.Storage.Studies.GetAsync(tenant, input.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Completed, sliceCount), (row.Status, row.SliceCount));
        var usage = Assert.Single(await azurite.Storage.Usage.GetMonthAsync(tenant, UsageQueries.MonthOf(DateTimeOffset.UtcNow), CancellationToken.None), u => u.StudyId == input.StudyId);
        Assert.Equal(sliceCount, usage.Slices);

        var history = await HistoryAsync(hub, input.InstanceId);
        var timersCreated = history.Count(e => e == "TimerCreated");
        var eventsRaised = history.Count(e => e == "EventRaised");
        output.WriteLine($"revision {revision}: {sliceCount} slices, {chunks} chunks: {elapsed.TotalSeconds:0.0} s start to completion, {history.Count} history rows, {eventsRaised} EventRaised, {timersCreated} TimerCreated, {history.Count(e => e == "TaskScheduled")} TaskScheduled");
        foreach (var group in history.GroupBy(e => e).OrderByDescending(g => g.Count()))
        {
            output.WriteLine($"  {group.Key}: {group.Count()}");
        }

        Assert.Equal(chunks, eventsRaised);

        // One durable timer per collection round (here one round: every chunk answers), not one per awaited event.
        // Revision 0 (instances started before) keeps its timer per awaited event, so its histories still replay.
        Assert.Equal(revision == 0 ? chunks : 1, timersCreated);
    }

    [Fact]
    public async Task Starting_one_study_four_times_at_once_and_once_more_after_it_ended_runs_one_orchestration()
    {
        // Ingest re-deliveries can race (two deliveries of one blob, the watcher and the sweep): the instance id is
        // the keyed study id, so only one orchestration may come of them, and the losers must not fail.
        var hub = "start" + Guid.NewGuid().ToString("N")[..8];
        var tenant = AzuriteFixture.NewTenant();
        var input = new StudyOrchestrationInput(tenant, "s-twice", $"{tenant}/s-twice/tiles", 6, 2, MaxChunkAttempts: 3, ChunkTimeout: TimeSpan.FromMinutes(10));
        await azurite.Storage.Studies.TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = input.StudyId, CreatedAt = DateTimeOffset.UtcNow }, CancellationToken.None);

        var scorer = await WithSidecarAsync(hub, async (client, ct) =>
        {
            var orchestrations = new DurableStudyOrchestrationClient(client);
            var starts = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => orchestrations.StartIfAbsentAsync(input, ct), ct)));
            // Racing callers all pass the existence check and all schedule (before the start tag, all 4 heard
            // "started"); the backend keeps one instance row and one execution (asserted below), and only the caller
            // whose request created that row hears "started".
            output.WriteLine($"starts that said started: {starts.Count(started => started)} of {starts.Length}");
            Assert.Single(starts, started => started);
            var done = await client.WaitForInstanceCompletionAsync(input.InstanceId, getInputsAndOutputs: true, ct);
            Assert.Equal(StudyStatus.Completed, done.ReadOutputAs<StudyOutcome>()!.Status);
            Assert.False(await orchestrations.StartIfAbsentAsync(input, ct));
            Assert.False(await orchestrations.IsRunningAsync(input.InstanceId, ct));
        }, TimeSpan.FromMinutes(4));

        var history = await HistoryAsync(hub, input.InstanceId);
        output.WriteLine($"ExecutionStarted rows: {history.Count(e => e == "ExecutionStarted")}; requests: {string.Join(" ", scorer.Requests.Select(r => (r.ChunkIndex, r.Attempt)).Order())}");
        Assert.Equal(1, history.Count(e => e == "ExecutionStarted"));
        Assert.Equal([(0, 1), (1, 1), (2, 1)], scorer.Requests.Select(r => (r.ChunkIndex, r.Attempt)).Order());
    }

    /// <summary>Starts sidecar and worker on a fresh task hub, runs the study to its end and stops both.</summary>
    private async Task<(StudyOutcome Outcome, TimeSpan Elapsed)> RunOnSidecarAsync(string hub, StudyOrchestrationInput input, TimeSpan limit)
    {
        (StudyOutcome, TimeSpan) outcome = default;
        await WithSidecarAsync(hub, async (client, ct) =>
        {
            var stopwatch = Stopwatch.StartNew();
            Assert.True(await new DurableStudyOrchestrationClient(client).StartIfAbsentAsync(input, ct));
            var done = await client.WaitForInstanceCompletionAsync(input.InstanceId, getInputsAndOutputs: true, ct);
            var elapsed = stopwatch.Elapsed;
            Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
            outcome = (done.ReadOutputAs<StudyOutcome>()!, elapsed);
        }, limit);
        return outcome;
    }

    /// <summary>Sidecar and worker (the study orchestration on Azurite's stores, a fake scorer) on a fresh task hub around <paramref name="body"/>.</summary>
    private async Task<FakeScorer> WithSidecarAsync(string hub, Func<DurableTaskClient, CancellationToken, Task> body, TimeSpan limit)
    {
        using var timeout = new CancellationTokenSource(limit);
        var ct = timeout.Token;
        await using var sidecar = await LocalDurableSidecar.StartAsync(
            new LocalDurableSidecarOptions { StorageConnectionString = azurite.Server.ConnectionString, TaskHubName = hub },
            null,
            ct);
        using var channel = sidecar.CreateChannel();
        var scorer = new FakeScorer(azurite.Storage.BlobContainers);
        using var worker = LocalDurableWorker.BuildHost(channel, tasks => tasks.AddStudyOrchestration(), services =>
        {
            services.AddSingleton(azurite.Storage.BlobContainers);
            services.AddSingleton(azurite.Storage.Studies);
            services.AddSingleton(azurite.Storage.Usage);
            services.AddSingleton<IMessageSender>(scorer);
            services.AddSingleton<IStudyNotifier>(new NoNotifier());
            services.AddSingleton(Options.Create(new PipelineOptions { MontageSlices = 4 }));
            services.AddSingleton(UploadReadKey.From(DeidKey.Generate()));
        });
        await worker.StartAsync(ct);
        try
        {
            var client = worker.Services.GetRequiredService<DurableTaskClient>();
            scorer.Client = client;
            await body(client, ct);
            return scorer;
        }
        finally
        {
            await worker.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>The event types of the instance's history rows in the task hub's History table.</summary>
    private async Task<List<string>> HistoryAsync(string hub, string instanceId)
    {
        var table = azurite.Storage.Tables.GetTableClient(hub + "History");
        var types = new List<string>();
        await foreach (var entity in table.QueryAsync<TableEntity>(e => e.PartitionKey == instanceId, select: ["EventType"]))
        {
            types.Add(entity.GetString("EventType") ?? "?");
        }

        return types;
    }

    /// <summary>Writes the chunk's result document (no overlays or masks, so the montage needs no tiles) and raises its event.</summary>
    private sealed class FakeScorer(IBlobContainers containers) : IMessageSender
    {
        public DurableTaskClient? Client { get; set; }

        public ConcurrentQueue<ChunkRequest> Requests { get; } = new();

        public async Task SendAsync(string queue, QueueMessage message, CancellationToken cancellationToken)
        {
            var request = PipelineJson.Deserialize<ChunkRequest>(message.Body);
            Requests.Enqueue(request);
            var slices = Enumerable.Range(request.FirstSlice, request.SliceCount).Select(slice =>
            {
                var covid = 0.5f + (0.05f * (slice % 3));
                return new SliceScore(slice, 0.01f, 0.001f, 10L * (slice % 7), 1000, [covid, (1 - covid) / 2, (1 - covid) / 2], null, null);
            }).ToList();
            var path = ScoringHandler.ChunkDocumentPath(request.Tenant, request.StudyId, request.ChunkIndex);
            var document = new ChunkResultDocument(request.StudyId, request.ChunkIndex, "fake@000000000000", Classes, slices);
            await containers.Get(PipelineNames.ResultsContainer).WriteAsync(path, new MemoryStream(Encoding.UTF8.GetBytes(PipelineJson.Serialize(document))), cancellationToken);
            var result = new ChunkResult(request.Tenant, request.StudyId, request.OrchestrationId, request.ChunkIndex, request.Attempt, request.SliceCount, path, 0.05, "CPU", null);
            await new DurableStudyOrchestrationClient(Client!).RaiseChunkResultAsync(result, cancellationToken);
        }
    }

    private sealed class NoNotifier : IStudyNotifier
    {
        public Task NotifyAsync(string tenant, string studyId, string eventType, CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
