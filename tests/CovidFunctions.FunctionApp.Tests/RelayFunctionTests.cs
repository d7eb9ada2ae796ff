using Azure.Storage.Queues.Models;
using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Azure.Messaging;
using CovidFunctions.Pipeline.Messaging;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Microsoft.DurableTask.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// The queue-triggered relay, called directly as the host would call it: a chunk result envelope becomes the
/// external event of its study's orchestration (a real Durable client from the in-process test host), and a
/// malformed message is dead-lettered with its reason in Azurite's dead-letters container.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class RelayFunctionTests(AzuriteFixture azurite)
{
    private const string Tenant = "relay-tests";

    [Fact]
    public async Task Relay_RaisesTheChunkResultAsTheOrchestrationsEvent()
    {
        await using var durable = await DurableTaskTestHost.StartAsync(registry => registry.AddOrchestrator<AwaitChunkResult>());
        var studyId = StudyIds.ForUpload(StudyIdKey.From(CovidFunctions.Dicom.Deidentification.DeidKey.Generate()), Tenant, "relay.zip");
        var instanceId = StudyIds.OrchestrationId(Tenant, studyId);
        await durable.Client.ScheduleNewOrchestrationInstanceAsync(nameof(AwaitChunkResult), new StartOrchestrationOptions(instanceId));
        await durable.Client.WaitForInstanceStartAsync(instanceId);

        var result = new ChunkResult(Tenant, studyId, instanceId, 2, 1, 32, $"{Tenant}/{studyId}/chunks/0002.json", 1.5, "CPUExecutionProvider", null);
        var functions = new RelayFunctions(new ResultRelayHandlerFactory(NullLogger<Pipeline.Relay.ResultRelayHandler>.Instance), DeadLetters());
        await functions.RelayChunkResult(Message(StorageQueueEnvelope.Serialize(new Pipeline.Messaging.QueueMessage(result.MessageId, PipelineJson.Serialize(result)))), durable.Client, CancellationToken.None);

        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var completed = await durable.Client.WaitForInstanceCompletionAsync(instanceId, getInputsAndOutputs: true, timeout.Token);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, completed.RuntimeStatus);
        Assert.Equal(result, completed.ReadOutputAs<ChunkResult>());
    }

    [Fact]
    public async Task Relay_DeadLettersAMalformedMessageWithTheReason()
    {
        await using var durable = await DurableTaskTestHost.StartAsync(_ => { });
        var functions = new RelayFunctions(new ResultRelayHandlerFactory(NullLogger<Pipeline.Relay.ResultRelayHandler>.Instance), DeadLetters());
        var messageId = "relay-bad-" + Guid.NewGuid().ToString("N")[..8];
        var envelope = StorageQueueEnvelope.Serialize(new Pipeline.Messaging.QueueMessage(messageId, "{\"tenant\":\"Not Valid\"}"));

        await functions.RelayChunkResult(Message(envelope), durable.Client, CancellationToken.None);

        var path = DeadLetterRecord.PathOf(PipelineNames.SliceResultsQueue, messageId, 1);
        var record = await ReadDeadLetterAsync(path);
        Assert.Equal(messageId, record.MessageId);
        Assert.StartsWith("invalid chunk result", record.Reason, StringComparison.Ordinal);

        // Not an envelope at all: refused under the queue's own message id.
        await functions.RelayChunkResult(Message("plain text", "raw-id-1"), durable.Client, CancellationToken.None);
        Assert.Contains("envelope", (await ReadDeadLetterAsync(DeadLetterRecord.PathOf(PipelineNames.SliceResultsQueue, "raw-id-1", 1))).Reason, StringComparison.Ordinal);
    }

    private DeadLetterWriter DeadLetters() => new(azurite.Storage.BlobContainers, NullLogger<DeadLetterWriter>.Instance);

    private async Task<DeadLetterRecord> ReadDeadLetterAsync(string path)
    {
        await using var stream = await azurite.Storage.BlobContainers.Get(PipelineNames.DeadLetterContainer).OpenReadAsync(path, CancellationToken.None);
        using var reader = new StreamReader(stream);
        return PipelineJson.Deserialize<DeadLetterRecord>(await reader.ReadToEndAsync());
    }

    private static Azure.Storage.Queues.Models.QueueMessage Message(string text, string id = "queue-message-1") =>
        QueuesModelFactory.QueueMessage(id, "pop", BinaryData.FromString(text), dequeueCount: 1);

    /// <summary>Stands in for the study orchestrator: returns the first chunk-result event it receives.</summary>
    private sealed class AwaitChunkResult : TaskOrchestrator<object?, ChunkResult>
    {
        public override Task<ChunkResult> RunAsync(TaskOrchestrationContext context, object? input) =>
            context.WaitForExternalEvent<ChunkResult>(PipelineNames.ChunkResultEvent);
    }
}
