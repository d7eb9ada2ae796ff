using CovidFunctions.Pipeline.Messaging;

namespace CovidFunctions.Pipeline.Orchestration;

/// <summary>
/// The two things handlers ask of the orchestration engine. <see cref="DurableStudyOrchestrationClient"/> implements
/// it over Microsoft.DurableTask's <c>DurableTaskClient</c> (Durable Functions in Azure, the gRPC sidecar locally).
/// </summary>
public interface IStudyOrchestrationClient
{
    /// <summary>Starts the study orchestration under its deterministic instance id unless an instance with that id exists; true when started.</summary>
    Task<bool> StartIfAbsentAsync(StudyOrchestrationInput input, CancellationToken cancellationToken);

    /// <summary>Raises a chunk result as the <see cref="PipelineNames.ChunkResultEvent"/> event of its orchestration.</summary>
    Task RaiseChunkResultAsync(ChunkResult result, CancellationToken cancellationToken);

    /// <summary>
    /// Whether the orchestration instance exists and has not ended (pending, running or suspended): true or false, or
    /// null where this client cannot tell (then nothing is decided on it: the stuck-study watchdog leaves the study).
    /// </summary>
    Task<bool?> IsRunningAsync(string instanceId, CancellationToken cancellationToken) => Task.FromResult<bool?>(null);
}

/// <summary>The orchestration's input: references only.</summary>
public sealed record StudyOrchestrationInput(
    string Tenant,
    string StudyId,
    string TilesPrefix,
    int SliceCount,
    int ChunkSize,
    int MaxChunkAttempts,
    TimeSpan ChunkTimeout)
{
    public string InstanceId => StudyIds.OrchestrationId(Tenant, StudyId);
}
