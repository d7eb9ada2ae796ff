using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Azure.Messaging;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Relay;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.Logging;
using StorageQueueMessage = Azure.Storage.Queues.Models.QueueMessage;

namespace CovidFunctions.FunctionApp.Functions;

/// <summary>
/// The result relay: each chunk result on the Storage queue <c>slice-results</c> becomes its orchestration's
/// external event (<see cref="ResultRelayHandler"/>). Settlement in the Functions queue trigger: a completed message
/// returns; a retry throws, so the host makes it visible again and moves it to <c>slice-results-poison</c> after
/// <c>maxDequeueCount</c> (host.json); a dead-lettered one is stored with its reason in <c>dead-letters</c> and
/// removed.
/// </summary>
public sealed class RelayFunctions(ResultRelayHandlerFactory handlers, DeadLetterWriter deadLetters)
{
    public const string RelayChunkResultName = "RelayChunkResult";

    [Function(RelayChunkResultName)]
    public async Task RelayChunkResult(
        [QueueTrigger(PipelineNames.SliceResultsQueue, Connection = FunctionAppSettings.StorageConnection)] StorageQueueMessage message,
        [DurableClient] DurableTaskClient durableClient,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        var text = message.Body.ToString();
        var deliveryCount = (int)Math.Min(message.DequeueCount, int.MaxValue);

        // The transports wrap each message in an envelope carrying its deterministic id (Storage queues have no
        // sender-controlled id); a message that is not one is refused with the reason.
        if (StorageQueueEnvelope.TryParse(text) is not { } envelope)
        {
            await deadLetters.WriteAsync(PipelineNames.SliceResultsQueue, new ReceivedMessage(message.MessageId, text, deliveryCount), "malformed message: not a {messageId, body} envelope", cancellationToken).ConfigureAwait(false);
            return;
        }

        var received = new ReceivedMessage(envelope.MessageId, envelope.Body, deliveryCount);
        var settlement = await handlers.Create(new DurableStudyOrchestrationClient(durableClient)).HandleAsync(received, cancellationToken).ConfigureAwait(false);
        await SettleAsync(PipelineNames.SliceResultsQueue, received, settlement, deadLetters, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Applies a handler's settlement inside a queue-triggered function (see the class remarks).</summary>
    internal static async Task SettleAsync(string queue, ReceivedMessage message, Settlement settlement, DeadLetterWriter deadLetters, CancellationToken cancellationToken)
    {
        switch (settlement.Action)
        {
            case SettlementAction.Complete:
                return;
            case SettlementAction.DeadLetter:
                await deadLetters.WriteAsync(queue, message, settlement.Reason ?? "dead-lettered by its handler", cancellationToken).ConfigureAwait(false);
                return;
            default:
                throw new RetryableMessageException($"message {message.MessageId} on {queue} asked for a retry: {settlement.Reason ?? "no reason given"}");
        }
    }
}

/// <summary>Thrown so that the Functions host retries a queue message (and poisons it after maxDequeueCount).</summary>
public sealed class RetryableMessageException(string message) : Exception(message);

/// <summary>Creates the relay handler over a binding-provided Durable client.</summary>
public sealed class ResultRelayHandlerFactory(ILogger<ResultRelayHandler> logger)
{
    public ResultRelayHandler Create(IStudyOrchestrationClient orchestrations) => new(orchestrations, logger);
}
