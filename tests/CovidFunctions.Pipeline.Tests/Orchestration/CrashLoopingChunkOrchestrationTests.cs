using System.Diagnostics;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Relay;
using CovidFunctions.Pipeline.Scoring;
using CovidFunctions.Pipeline.Storage;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Tests.Orchestration;

/// <summary>
/// A chunk the scorer process dies on at every delivery, seen by the study orchestration (in-memory Durable host). The
/// fake scorer drops the chunk (no delivery answers: the process died on each); when the consumer dead-letters it, its
/// hook (<see cref="ChunkDeadLetterHook"/>) sends the error result through the real relay handler. Before the hook the
/// study waited MaxChunkAttempts × ChunkTimeout and failed with "no result for chunk(s) …", re-dispatching the chunk
/// into the same crash each time (CrashLoopingChunkTests on Azurite for the consumer's side).
/// </summary>
public sealed class CrashLoopingChunkOrchestrationTests
{
    private static readonly TimeSpan ChunkTimeout = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task The_study_fails_as_soon_as_the_dead_lettered_chunk_is_answered_not_after_its_timeouts()
    {
        await using var harness = await OrchestrationHarness.StartAsync(r => r.ChunkIndex == 1 ? FakeScorerAction.Drop : FakeScorerAction.Answer);
        var input = await harness.CreateStudyAsync("s-crash", sliceCount: 6, chunkSize: 2, maxAttempts: 3, chunkTimeout: ChunkTimeout);
        var relay = new RelaySender(new ResultRelayHandler(new DurableStudyOrchestrationClient(harness.Client), NullLogger<ResultRelayHandler>.Instance));
        var hook = new ChunkDeadLetterHook(relay, NullLogger<ChunkDeadLetterHook>.Instance, harness.Studies, "CPU");

        var started = Stopwatch.StartNew();
        Assert.True(await new DurableStudyOrchestrationClient(harness.Client).StartIfAbsentAsync(input, CancellationToken.None));
        var crashing = await WaitForRequestAsync(harness, chunk: 1);

        // The consumer's sixth delivery of the chunk (at most 5): dead-lettered, and the hook told.
        const string Location = "dead-letters/slice-requests/s-crash-c0001-a1-6.json";
        await hook.OnDeadLetteredAsync(OverDelivered(crashing, deliveryCount: 6, Location), CancellationToken.None);

        using var patience = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var metadata = await harness.Client.WaitForInstanceCompletionAsync(input.InstanceId, getInputsAndOutputs: true, patience.Token);
        var elapsed = started.Elapsed;
        var outcome = metadata.ReadOutputAs<StudyOutcome>()!;

        Assert.Equal(StudyStatus.Failed, outcome.Status);
        Assert.Equal(
            "chunk 1 (slices 2-3) could not be scored: delivered 5 times without the scorer finishing it (at most 5): the scorer crashed "
            + $"or was killed while scoring it (for example a native ONNX Runtime crash or an out-of-memory kill); the request is dead-lettered at {Location}",
            outcome.Reason);
        Assert.True(elapsed < ChunkTimeout, $"the study failed after {elapsed.TotalSeconds:0.0} s, not before its chunk timeout ({ChunkTimeout.TotalSeconds} s)");
        Assert.Equal([1], harness.Scorer.Requests.Where(r => r.ChunkIndex == 1).Select(r => r.Attempt)); // not re-dispatched into the crash
        var row = await harness.Studies.GetAsync(OrchestrationHarness.Tenant, "s-crash", CancellationToken.None);
        Assert.Equal((StudyStatus.Failed, outcome.Reason), (row!.Status, row.Reason));
        Assert.Empty(harness.Usage.Snapshot());
        Assert.Equal([(OrchestrationHarness.Tenant, "s-crash", StudyEventTypes.Failed)], harness.Notifier.Events);

        // The dead-letter path run again (the consumer died between the hook and the delete; the next delivery is
        // dead-lettered once more): the failed study is not answered again ...
        await hook.OnDeadLetteredAsync(OverDelivered(crashing, deliveryCount: 7, "dead-letters/slice-requests/s-crash-c0001-a1-7.json"), CancellationToken.None);
        Assert.Equal(1, relay.Relayed);

        // ... and an answer sent all the same (a hook that cannot read the row) changes nothing: the ended orchestration
        // drops it, the row keeps its reason and no second study.failed goes out.
        var blind = new ChunkDeadLetterHook(relay, NullLogger<ChunkDeadLetterHook>.Instance, studies: null, "CPU");
        await blind.OnDeadLetteredAsync(OverDelivered(crashing, deliveryCount: 7, "dead-letters/slice-requests/s-crash-c0001-a1-7.json"), CancellationToken.None);
        Assert.Equal(2, relay.Relayed);
        await Task.Delay(TimeSpan.FromSeconds(1));
        Assert.Equal(OrchestrationRuntimeStatus.Completed, (await harness.Client.GetInstanceAsync(input.InstanceId))!.RuntimeStatus);
        row = await harness.Studies.GetAsync(OrchestrationHarness.Tenant, "s-crash", CancellationToken.None);
        Assert.Equal((StudyStatus.Failed, outcome.Reason), (row!.Status, row.Reason));
        Assert.Equal([(OrchestrationHarness.Tenant, "s-crash", StudyEventTypes.Failed)], harness.Notifier.Events);
    }

    private static DeadLetteredMessage OverDelivered(ChunkRequest request, int deliveryCount, string location) =>
        new(PipelineNames.SliceRequestsQueue,
            new ReceivedMessage(request.MessageId, PipelineJson.Serialize(request), deliveryCount),
            DeadLetterCause.OverDelivered,
            $"delivered {deliveryCount} times (max 5) without being settled: its handler kept failing or crashing",
            location,
            MaxDeliveryCount: 5);

    private static async Task<ChunkRequest> WaitForRequestAsync(OrchestrationHarness harness, int chunk)
    {
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            if (harness.Scorer.Requests.FirstOrDefault(r => r.ChunkIndex == chunk) is { } request)
            {
                return request;
            }

            await Task.Delay(50, patience.Token);
        }
    }

    /// <summary>The results queue and its relay in one: each result goes through <see cref="ResultRelayHandler"/> at once.</summary>
    private sealed class RelaySender(ResultRelayHandler relay) : IMessageSender
    {
        private int _relayed;

        public int Relayed => _relayed;

        public async Task SendAsync(string queue, QueueMessage message, CancellationToken cancellationToken)
        {
            Assert.Equal(PipelineNames.SliceResultsQueue, queue);
            var settlement = await relay.HandleAsync(new ReceivedMessage(message.MessageId, message.Body, 1), cancellationToken);
            Assert.Equal(SettlementAction.Complete, settlement.Action);
            Interlocked.Increment(ref _relayed);
        }
    }
}
