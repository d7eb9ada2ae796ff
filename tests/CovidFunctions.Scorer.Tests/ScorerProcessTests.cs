using Azure.Storage.Queues;
using CovidFunctions.Imaging.Series;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Azure.Messaging;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.TestHelpers;
using Xunit.Abstractions;

namespace CovidFunctions.Scorer.Tests;

/// <summary>
/// The scorer as the container runs it (<see cref="ScorerProcess"/>), on CPU with the Storage-queue transport against
/// Azurite: it becomes ready, SIGTERM ends it cleanly through the drain path, and a replica killed with SIGKILL in
/// the middle of a chunk loses nothing: the chunk comes back after its visibility timeout and another replica
/// scores it.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class ScorerProcessTests(AzuriteFixture azurite, ITestOutputHelper output)
{
    private const string Tenant = "lab";

    [Fact]
    public async Task EntryPoint_OnCpuWithStorageQueues_BecomesReadyAndDrainsOnSigterm()
    {
        using var scorer = await ScorerProcess.StartReadyAsync(ScorerEnvironment("proc-" + Guid.NewGuid().ToString("N")[..8], "res-proc"));
        await scorer.TerminateAsync();

        Assert.Equal(0, scorer.ExitCode);
        Assert.Contains("Scorer ready on CPU", scorer.Output, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("Scorer drained", scorer.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_worker_that_cannot_start_ends_the_process_with_a_non_zero_exit_code()
    {
        // Before: the host logged "BackgroundService failed", stopped, and the process exited 0, which reads as a clean
        // stop in Container Apps' logs and is not restarted by an on-failure policy.
        var environment = ScorerEnvironment("req-fatal-" + Guid.NewGuid().ToString("N")[..8], "res-fatal");
        environment["Scorer__ModelDirectory"] = Path.Combine(Path.GetTempPath(), "no-models-" + Guid.NewGuid().ToString("N"));
        using var scorer = ScorerProcess.Start(environment);
        await scorer.WaitForExitAsync();

        Assert.Contains("Model manifest not found", scorer.Output, StringComparison.Ordinal);
        Assert.Equal(1, scorer.ExitCode);
    }

    [Fact]
    public async Task Sigkill_MidChunk_TheChunkReturnsAndASecondReplicaScoresIt_OneResultNothingLost()
    {
        // A whole 30-slice series in one chunk: seconds of CPU scoring, so the kill lands while it is in flight.
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var (requests, results) = ($"req-kill-{suffix}", $"res-kill-{suffix}");
        var studyId = StudyIds.ForUpload(StudyIdKey.From(CovidFunctions.Dicom.Deidentification.DeidKey.Generate()), Tenant, "kill-test.zip");
        var (tilesPrefix, sliceCount) = await WriteTilesAsync(studyId);
        var request = new ChunkRequest(Tenant, studyId, StudyIds.OrchestrationId(Tenant, studyId), tilesPrefix, 0, 0, sliceCount, 1);
        await azurite.Storage.CreateQueueTransport().SendAsync(requests, new QueueMessage(request.MessageId, PipelineJson.Serialize(request)), CancellationToken.None);
        var requestQueue = azurite.Storage.Queues.GetQueueClient(requests);
        var resultQueue = azurite.Storage.Queues.GetQueueClient(results);

        using (var first = await ScorerProcess.StartReadyAsync(ScorerEnvironment(requests, results)))
        {
            // Received = still in the queue but no longer visible (the replica holds it for its visibility timeout).
            await TestWaits.UntilAsync(async () => (await requestQueue.PeekMessagesAsync(1)).Value.Length == 0, "the first replica to receive the chunk");
            await Task.Delay(TimeSpan.FromSeconds(1));
            await first.KillAsync();
            Assert.NotEqual(0, first.ExitCode);
        }

        Assert.Equal(0, await CountAsync(resultQueue)); // killed before it could post a result
        Assert.Equal(1, (await requestQueue.GetPropertiesAsync()).Value.ApproximateMessagesCount); // not lost: invisible until the timeout ends

        using var second = await ScorerProcess.StartReadyAsync(ScorerEnvironment(requests, results));
        ChunkResult? result = null;
        await TestWaits.UntilAsync(async () =>
        {
            if (!(await resultQueue.ExistsAsync()).Value)
            {
                return false;
            }

            var message = (await resultQueue.PeekMessagesAsync(1)).Value.SingleOrDefault();
            result = message is null ? null : PipelineJson.Deserialize<ChunkResult>(StorageQueueEnvelope.TryParse(message.MessageText)!.Body);
            return result is not null;
        }, "the second replica's result");
        await second.TerminateAsync();
        output.WriteLine(second.Output);

        Assert.Equal(0, second.ExitCode);
        Assert.NotNull(result);
        Assert.Null(result.Error);
        Assert.Equal((request.OrchestrationId, 0, sliceCount), (result.OrchestrationId, result.ChunkIndex, result.SliceCount));
        Assert.Equal(1, await CountAsync(resultQueue)); // exactly one result for the chunk
        Assert.Equal(0, (await requestQueue.GetPropertiesAsync()).Value.ApproximateMessagesCount); // settled once scored
        Assert.Equal(sliceCount, (await azurite.Storage.SliceResults.GetAsync(Tenant, studyId, CancellationToken.None)).Count);
    }

    [Fact]
    public async Task Sigkill_OnEveryAllowedDelivery_TheNextReplicaDeadLettersTheChunkAndAnswersTheStudyWithAnError()
    {
        // A chunk the process dies on (a native ONNX Runtime crash, an out-of-memory kill): here its one allowed
        // delivery (Scorer__MaxDeliveryCount 1) ends with SIGKILL mid-chunk. Before, the next replica dead-lettered the
        // message and told nobody: the study waited out every chunk timeout (30 min) and each re-dispatch crashed the
        // scorer again. Now the scorer's consumer hook answers with an error result naming the dead-letter record.
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var (requests, results) = ($"req-crash-{suffix}", $"res-crash-{suffix}");
        var studyId = StudyIds.ForUpload(StudyIdKey.From(CovidFunctions.Dicom.Deidentification.DeidKey.Generate()), Tenant, "crash-test.zip");
        var (tilesPrefix, sliceCount) = await WriteTilesAsync(studyId);
        var request = new ChunkRequest(Tenant, studyId, StudyIds.OrchestrationId(Tenant, studyId), tilesPrefix, 0, 0, sliceCount, 1);
        await azurite.Storage.CreateQueueTransport().SendAsync(requests, new QueueMessage(request.MessageId, PipelineJson.Serialize(request)), CancellationToken.None);
        var requestQueue = azurite.Storage.Queues.GetQueueClient(requests);
        var resultQueue = azurite.Storage.Queues.GetQueueClient(results);
        var environment = ScorerEnvironment(requests, results);
        environment["Scorer__MaxDeliveryCount"] = "1";
        environment["Scorer__MessageLockDuration"] = "00:00:10";

        using (var first = await ScorerProcess.StartReadyAsync(environment))
        {
            await TestWaits.UntilAsync(async () => (await requestQueue.PeekMessagesAsync(1)).Value.Length == 0, "the first replica to receive the chunk");
            await Task.Delay(TimeSpan.FromSeconds(1));
            await first.KillAsync();
        }

        Assert.Equal(0, await CountAsync(resultQueue));

        using var second = await ScorerProcess.StartReadyAsync(environment);
        ChunkResult? result = null;
        await TestWaits.UntilAsync(async () =>
        {
            var message = (await resultQueue.ExistsAsync()).Value ? (await resultQueue.PeekMessagesAsync(1)).Value.SingleOrDefault() : null;
            result = message is null ? null : PipelineJson.Deserialize<ChunkResult>(StorageQueueEnvelope.TryParse(message.MessageText)!.Body);
            return result is not null;
        }, "the second replica's error result");
        await second.TerminateAsync();
        output.WriteLine(second.Output);

        var path = DeadLetterRecord.PathOf(requests, request.MessageId, 2);
        Assert.NotNull(result);
        Assert.Equal((request.OrchestrationId, 0, 1, (string?)null), (result.OrchestrationId, result.ChunkIndex, result.Attempt, result.ResultPath));
        Assert.Equal(
            $"delivered once without the scorer finishing it (at most 1): the scorer crashed or was killed while scoring it (for example a native ONNX Runtime crash or an out-of-memory kill); the request is dead-lettered at dead-letters/{path}",
            result.Error);
        Assert.True((await azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.DeadLetterContainer).GetBlobClient(path).ExistsAsync()).Value);
        Assert.Equal(0, await CountAsync(requestQueue)); // dead-lettered, not scored a second time
        Assert.Empty(await azurite.Storage.SliceResults.GetAsync(Tenant, studyId, CancellationToken.None));
    }

    [Fact]
    public async Task Sigterm_MidChunk_PastTheDrainTimeout_ReleasesTheChunkAtOnce_NotAfterItsVisibilityTimeout()
    {
        // The drain ends at once (DrainTimeout 0), so the chunk in flight is cancelled: its message must go straight
        // back to the queue for another replica, not stay invisible for the rest of its (5 min) visibility timeout,
        // and the process must still exit cleanly (Container Apps' SIGKILL comes terminationGracePeriodSeconds later).
        // Regression cover for the drain-timeout path (it held before this test was written).
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var (requests, results) = ($"req-term-{suffix}", $"res-term-{suffix}");
        var studyId = StudyIds.ForUpload(StudyIdKey.From(CovidFunctions.Dicom.Deidentification.DeidKey.Generate()), Tenant, "term-test.zip");
        var (tilesPrefix, sliceCount) = await WriteTilesAsync(studyId);
        var request = new ChunkRequest(Tenant, studyId, StudyIds.OrchestrationId(Tenant, studyId), tilesPrefix, 0, 0, sliceCount, 1);
        await azurite.Storage.CreateQueueTransport().SendAsync(requests, new QueueMessage(request.MessageId, PipelineJson.Serialize(request)), CancellationToken.None);
        var requestQueue = azurite.Storage.Queues.GetQueueClient(requests);
        var environment = ScorerEnvironment(requests, results);
        environment["Scorer__DrainTimeout"] = "00:00:00";
        environment["Scorer__MessageLockDuration"] = "00:05:00";

        using var scorer = await ScorerProcess.StartReadyAsync(environment);
        await TestWaits.UntilAsync(async () => (await requestQueue.PeekMessagesAsync(1)).Value.Length == 0, "the replica to receive the chunk");
        await Task.Delay(TimeSpan.FromSeconds(2));
        await scorer.TerminateAsync();
        output.WriteLine(scorer.Output);

        Assert.Equal(0, scorer.ExitCode);
        Assert.Contains("Drain timeout: cancelling 1 in-flight chunk(s); each message goes back to the queue as its chunk stops", scorer.Output, StringComparison.Ordinal);
        Assert.Equal(0, await CountAsync(azurite.Storage.Queues.GetQueueClient(results)));

        // Visible again now (Peek sees only visible messages), with its delivery not lost.
        var back = Assert.Single((await requestQueue.PeekMessagesAsync(1)).Value);
        Assert.Equal(request.MessageId, StorageQueueEnvelope.TryParse(back.MessageText)!.MessageId);
    }

    private Dictionary<string, string> ScorerEnvironment(string requests, string results) => new()
    {
        ["Scorer__StorageConnectionString"] = azurite.Server.ConnectionString,
        ["Scorer__SliceTransport"] = "StorageQueue",
        ["Scorer__SliceQueueName"] = requests,
        ["Scorer__ResultQueueName"] = results,
        ["Scorer__ExecutionProvider"] = "Cpu",
        ["Scorer__IntraOpThreads"] = "1",
        ["Scorer__MaxConcurrentCalls"] = "1",
        ["Scorer__PollInterval"] = "00:00:00.200",

        // The visibility timeout a killed replica's message waits out before it is delivered again (renewed every
        // half of it while a replica is alive and scoring). Short here so the test does not wait five minutes.
        ["Scorer__MessageLockDuration"] = "00:00:20",
    };

    private async Task<(string Prefix, int Slices)> WriteTilesAsync(string studyId)
    {
        using var series = SeriesAssembler.Assemble(TestData.Shared("dicom", "chest-ct", "lung-pet-ct-dx", "A0002-s3-b40f"));
        var prefix = $"{Tenant}/{studyId}/tiles";
        await SeriesTiles.WriteAsync(series, azurite.Storage.BlobContainers.Get(PipelineNames.SlicesContainer), prefix, mapUid: null, parallelism: 1, CancellationToken.None);
        return (prefix, series.SliceCount);
    }

    private static async Task<int> CountAsync(QueueClient queue) =>
        (await queue.ExistsAsync()).Value ? (await queue.GetPropertiesAsync()).Value.ApproximateMessagesCount : 0;
}
