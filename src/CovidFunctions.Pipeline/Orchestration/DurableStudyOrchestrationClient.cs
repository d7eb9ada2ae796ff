using CovidFunctions.Pipeline.Messaging;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;

namespace CovidFunctions.Pipeline.Orchestration;

/// <summary><see cref="IStudyOrchestrationClient"/> over a <see cref="DurableTaskClient"/> (Durable Functions or the local sidecar).</summary>
public sealed class DurableStudyOrchestrationClient(DurableTaskClient client) : IStudyOrchestrationClient
{
    /// <summary>The orchestrator's registered name (the class name; the Function app registers the same).</summary>
    public const string OrchestratorName = "StudyOrchestrator";

    public async Task<bool> StartIfAbsentAsync(StudyOrchestrationInput input, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        var existing = await client.GetInstanceAsync(input.InstanceId, getInputsAndOutputs: false, cancellationToken).ConfigureAwait(false);
        if (existing is not null)
        {
            return false;
        }

        try
        {
            await client.ScheduleNewOrchestrationInstanceAsync(
                OrchestratorName,
                input,
                new StartOrchestrationOptions(input.InstanceId),
                cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Two ingest deliveries can race past the existence check; the loser finds the instance and stops here.
            var raced = await client.GetInstanceAsync(input.InstanceId, getInputsAndOutputs: false, cancellationToken).ConfigureAwait(false);
            if (raced is not null)
            {
                return false;
            }

            throw;
        }
    }

    /// <summary>An instance that exists and is not completed, failed or terminated (purged or never started: false).</summary>
    public async Task<bool?> IsRunningAsync(string instanceId, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(instanceId);
        var instance = await client.GetInstanceAsync(instanceId, getInputsAndOutputs: false, cancellationToken).ConfigureAwait(false);
        return instance is not null && !instance.IsCompleted;
    }

    /// <remarks>
    /// A result that arrives after its study finished (a duplicate delivery, or a re-dispatched chunk answering twice)
    /// is dropped: where the engine refuses events for finished instances, the refusal is swallowed once the instance
    /// is confirmed terminal. Any other failure propagates, so the relay's consumer retries it.
    /// </remarks>
    public async Task RaiseChunkResultAsync(ChunkResult result, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(result);
        try
        {
            await client.RaiseEventAsync(result.OrchestrationId, PipelineNames.ChunkResultEvent, result, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            var instance = await client.GetInstanceAsync(result.OrchestrationId, getInputsAndOutputs: false, cancellationToken).ConfigureAwait(false);
            if (instance is null || !instance.IsCompleted)
            {
                throw;
            }
        }
    }
}
