using System.Globalization;
using System.Text.Json;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Scoring;

/// <summary>
/// The scorer consumer's <see cref="IDeadLetterHook"/>: a chunk request the consumer dead-letters by its own decision is
/// answered with an error <see cref="ChunkResult"/> on <see cref="PipelineNames.SliceResultsQueue"/>, so the study's
/// orchestration fails it at once with the cause (and <c>study.failed</c> goes out) instead of re-dispatching the chunk
/// after each <c>Pipeline:ChunkTimeout</c>, which crash-looped the scorer again on every attempt.
/// <para>
/// The case it is for: the scorer process stops on a chunk on every delivery (a native ONNX Runtime crash, an
/// out-of-memory kill on a poison input). No delivery is settled, so <see cref="ScoringHandler"/>'s last-delivery answer
/// never runs; the consumer sees the message once more than allowed and dead-letters it before scoring it again
/// (<see cref="DeadLetterCause.OverDelivered"/>). It also answers when the handler threw on its last delivery without
/// answering (its own error result could not be sent: <see cref="DeadLetterCause.FailedOnLastDelivery"/>).
/// </para>
/// <para>
/// Not answered: a request that is not a valid chunk request (the handler's own rule, <see cref="ScoringHandler"/>): the
/// orchestrator never sends one, so nothing waits for it, and its fields cannot be trusted to name the study to fail.
/// A study already settled (its row failed, completed or rejected) is not answered either: its orchestration has ended.
/// Idempotent: the answer's message id is the chunk's and attempt's (<see cref="ChunkResult.MessageId"/>), and the
/// orchestrator takes the first result of a chunk and ignores later ones (an ended orchestration drops them).
/// </para>
/// </summary>
public sealed partial class ChunkDeadLetterHook(
    IMessageSender sender,
    ILogger<ChunkDeadLetterHook> logger,
    IStudyStore? studies = null,
    string device = "none") : IDeadLetterHook
{
    /// <summary>The error the answer carries (the orchestrator prefixes "chunk N (slices a-b) could not be scored: ").</summary>
    public static string ErrorOf(DeadLetteredMessage deadLettered)
    {
        ArgumentNullException.ThrowIfNull(deadLettered);
        var unsettled = deadLettered.Message.DeliveryCount - 1;
        var error = deadLettered.Cause == DeadLetterCause.OverDelivered
            ? string.Create(CultureInfo.InvariantCulture,
                $"delivered {(unsettled == 1 ? "once" : $"{unsettled} times")} without the scorer finishing it (at most {deadLettered.MaxDeliveryCount}): the scorer crashed or was killed while scoring it (for example a native ONNX Runtime crash or an out-of-memory kill); the request is dead-lettered at {deadLettered.Location}")
            : $"{deadLettered.Reason}; the request is dead-lettered at {deadLettered.Location}";
        return error.Length > ScoringHandler.MaxErrorLength ? error[..(ScoringHandler.MaxErrorLength - 1)] + "…" : error;
    }

    public async Task OnDeadLetteredAsync(DeadLetteredMessage deadLettered, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(deadLettered);
        ChunkRequest request;
        try
        {
            request = PipelineJson.Deserialize<ChunkRequest>(deadLettered.Message.Body);
        }
        catch (JsonException ex)
        {
            Log.NotAnswered(logger, deadLettered.Message.MessageId, $"not a chunk request: {ex.Message}");
            return;
        }

        if (ScoringHandler.Problem(request) is { } problem)
        {
            Log.NotAnswered(logger, deadLettered.Message.MessageId, $"invalid chunk request: {problem}");
            return;
        }

        if (await ScoringHandler.SettledStatusAsync(studies, request, logger, cancellationToken).ConfigureAwait(false) is { } settled)
        {
            Log.AlreadySettled(logger, request.Tenant, request.StudyId, request.ChunkIndex, request.Attempt, settled);
            return;
        }

        var error = ErrorOf(deadLettered);
        var result = new ChunkResult(request.Tenant, request.StudyId, request.OrchestrationId, request.ChunkIndex, request.Attempt, request.SliceCount, null, 0, device, error);
        await sender.SendAsync(PipelineNames.SliceResultsQueue, new QueueMessage(result.MessageId, PipelineJson.Serialize(result)), cancellationToken).ConfigureAwait(false);
        Log.Answered(logger, request.Tenant, request.StudyId, request.ChunkIndex, request.Attempt, error);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2208, Level = LogLevel.Error, Message = "Study {Tenant}/{StudyId} chunk {Chunk} (attempt {Attempt}) was dead-lettered without an answer from the scorer; answered with an error result: {Error}")]
        public static partial void Answered(ILogger logger, string tenant, string studyId, int chunk, int attempt, string error);

        [LoggerMessage(EventId = 2209, Level = LogLevel.Information, Message = "Study {Tenant}/{StudyId} chunk {Chunk} (attempt {Attempt}) was dead-lettered; not answered: the study is already {Status}")]
        public static partial void AlreadySettled(ILogger logger, string tenant, string studyId, int chunk, int attempt, string status);

        [LoggerMessage(EventId = 2210, Level = LogLevel.Warning, Message = "Dead-lettered message {MessageId} names no study to answer: {Reason}")]
        public static partial void NotAnswered(ILogger logger, string messageId, string reason);
    }
}
