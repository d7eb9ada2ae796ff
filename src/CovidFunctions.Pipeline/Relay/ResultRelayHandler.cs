using System.Text.Json;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Orchestration;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Relay;

/// <summary>
/// Turns each chunk result on <see cref="PipelineNames.SliceResultsQueue"/> into the
/// <see cref="PipelineNames.ChunkResultEvent"/> external event of its study's orchestration. Malformed messages are
/// dead-lettered with the reason; a failure to raise propagates (the consumer retries it). Delivering a result twice
/// is harmless: the orchestrator ignores chunks it already has.
/// </summary>
public sealed partial class ResultRelayHandler(IStudyOrchestrationClient orchestrations, ILogger<ResultRelayHandler> logger)
{
    public async Task<Settlement> HandleAsync(ReceivedMessage message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        ChunkResult result;
        try
        {
            result = PipelineJson.Deserialize<ChunkResult>(message.Body);
        }
        catch (JsonException ex)
        {
            Log.Malformed(logger, message.MessageId, ex.Message);
            return new Settlement(SettlementAction.DeadLetter, $"not a chunk result: {ex.Message}");
        }

        var problem = !StudyIds.IsValidTenant(result.Tenant) ? $"tenant '{result.Tenant}' is not valid"
            : string.IsNullOrWhiteSpace(result.StudyId) ? "studyId is missing"
            : string.IsNullOrWhiteSpace(result.OrchestrationId) ? "orchestrationId is missing"
            : result.OrchestrationId != StudyIds.OrchestrationId(result.Tenant, result.StudyId) ? $"orchestrationId '{result.OrchestrationId}' is not the study's"
            : result.ChunkIndex < 0 ? $"chunkIndex {result.ChunkIndex} is negative"
            : result.Error is null && string.IsNullOrWhiteSpace(result.ResultPath) ? "neither resultPath nor error is set"
            : null;
        if (problem is not null)
        {
            Log.Malformed(logger, message.MessageId, problem);
            return new Settlement(SettlementAction.DeadLetter, $"invalid chunk result: {problem}");
        }

        await orchestrations.RaiseChunkResultAsync(result, cancellationToken).ConfigureAwait(false);
        Log.Relayed(logger, result.Tenant, result.StudyId, result.ChunkIndex, result.Attempt);
        return Settlement.Complete;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2301, Level = LogLevel.Warning, Message = "Chunk result {MessageId} is malformed: {Reason}")]
        public static partial void Malformed(ILogger logger, string messageId, string reason);

        [LoggerMessage(EventId = 2302, Level = LogLevel.Debug, Message = "Relayed chunk {Chunk} (attempt {Attempt}) of study {Tenant}/{StudyId}")]
        public static partial void Relayed(ILogger logger, string tenant, string studyId, int chunk, int attempt);
    }
}
