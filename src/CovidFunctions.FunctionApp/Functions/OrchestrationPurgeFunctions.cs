using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Orchestration;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CovidFunctions.FunctionApp.Functions;

/// <summary>
/// Purges the task hub of finished study orchestrations (<see cref="OrchestrationHistoryPurge"/>): hourly, those
/// completed, failed or terminated and created at least <see cref="PipelineOptions.OrchestrationHistoryRetention"/>
/// (30 days) ago. Before, nothing purged them and every study's instance and history rows stayed in the task hub's
/// tables for ever. Hourly rather than daily so a first run over a large backlog, cut at <see cref="PurgeTimeLimit"/>
/// (well under host.json's functionTimeout, 60 minutes), finishes within hours.
/// </summary>
public sealed partial class OrchestrationPurgeFunctions(IOptions<PipelineOptions> options, TimeProvider time, ILogger<OrchestrationPurgeFunctions> logger)
{
    public const string PurgeOrchestrationHistoryName = "PurgeOrchestrationHistory";

    /// <summary>How long one purge call may run (well under host.json's functionTimeout, 60 minutes); the rest waits for the next hour.</summary>
    public static readonly TimeSpan PurgeTimeLimit = TimeSpan.FromMinutes(5);

    [Function(PurgeOrchestrationHistoryName)]
    public async Task PurgeOrchestrationHistory(
        [TimerTrigger("0 45 * * * *")] TimerInfo timer,
        [DurableClient] DurableTaskClient durableClient,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(durableClient);
        var retention = options.Value.OrchestrationHistoryRetention;
        if (retention <= TimeSpan.Zero)
        {
            Log.PurgeOff(logger);
            return;
        }

        var outcome = await OrchestrationHistoryPurge.PurgeAsync(durableClient, time.GetUtcNow(), retention, PurgeTimeLimit, cancellationToken).ConfigureAwait(false);
        Log.Purged(logger, outcome.Purged, outcome.CreatedBefore, outcome.IsComplete?.ToString() ?? "not reported");
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 4201, Level = LogLevel.Information, Message = "Purged the Durable history of {Count} finished orchestration(s) created before {CreatedBefore:O} (complete: {Complete})")]
        public static partial void Purged(ILogger logger, int count, DateTimeOffset? createdBefore, string complete);

        [LoggerMessage(EventId = 4202, Level = LogLevel.Information, Message = "Orchestration history purge is off (Pipeline:OrchestrationHistoryRetention 0)")]
        public static partial void PurgeOff(ILogger logger);
    }
}
