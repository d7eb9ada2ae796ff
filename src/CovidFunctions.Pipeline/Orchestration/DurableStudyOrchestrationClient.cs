using CovidFunctions.Pipeline.Messaging;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;

namespace CovidFunctions.Pipeline.Orchestration;

/// <summary><see cref="IStudyOrchestrationClient"/> over a <see cref="DurableTaskClient"/> (Durable Functions or the local sidecar).</summary>
public sealed class DurableStudyOrchestrationClient(DurableTaskClient client) : IStudyOrchestrationClient
{
    /// <summary>The orchestrator's registered name (the class name; the Function app registers the same).</summary>
    public const string OrchestratorName = "StudyOrchestrator";

    /// <summary>
    /// The instance tag that names the start call whose request created the instance: each call tags its request with
    /// a fresh id, and only the creating request's tags are kept in the instance row.
    /// </summary>
    public const string StartTag = "covidfn.start";

    /// <remarks>
    /// Racing starts all pass the existence check and all schedule, and scheduling does not say who lost: the Azure
    /// Storage backend (DurableTask.AzureStorage, Durable Functions' default and the local sidecar's) sends each start
    /// message to the control queue and then inserts the instance row; the losers' inserts conflict (409) and are
    /// dropped inside the backend without an error (SetNewExecutionAsync's false is ignored by
    /// CreateTaskOrchestrationAsync), the gRPC CreateInstance answer is only the instance id, and the dedupe-status
    /// check before it is a read, not a condition on the insert. So each call tags its request with a fresh
    /// <see cref="StartTag"/> and reads the instance back: the row holds the tags of the request that inserted it, and
    /// the one call that finds its own tag answers true. Where the executing start message is another racer's than the
    /// inserting one, the backend's first episode rewrites the row's tags to that message's, and a call reading after
    /// it sees that racer's tag instead (each call sends its message before its insert, so the first to send is
    /// normally the first to insert; not seen in the measurement). A host that does not keep tags leaves none in the
    /// row; then the answer is true, as before the tag. The answer is for logs and the ingest outcome only.
    /// </remarks>
    public async Task<bool> StartIfAbsentAsync(StudyOrchestrationInput input, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        var existing = await client.GetInstanceAsync(input.InstanceId, getInputsAndOutputs: false, cancellationToken).ConfigureAwait(false);
        if (existing is not null)
        {
            return false;
        }

        var startId = Guid.NewGuid().ToString("N");
        try
        {
            await client.ScheduleNewOrchestrationInstanceAsync(
                OrchestratorName,
                input,
                new StartOrchestrationOptions(input.InstanceId) { Tags = new Dictionary<string, string>(StringComparer.Ordinal) { [StartTag] = startId } },
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // A backend that refuses a second start of an existing id: the loser finds the instance and stops here.
            var raced = await client.GetInstanceAsync(input.InstanceId, getInputsAndOutputs: false, cancellationToken).ConfigureAwait(false);
            if (raced is not null)
            {
                return false;
            }

            throw;
        }

        var created = await client.GetInstanceAsync(input.InstanceId, getInputsAndOutputs: false, cancellationToken).ConfigureAwait(false);
        return created?.Tags is not { } tags || !tags.TryGetValue(StartTag, out var creator) || string.Equals(creator, startId, StringComparison.Ordinal);
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
