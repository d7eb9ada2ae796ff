using System.Text.Json.Serialization;
using CovidFunctions.Pipeline.Messaging;

namespace CovidFunctions.Pipeline.Orchestration;

/// <summary>
/// The two things handlers ask of the orchestration engine. <see cref="DurableStudyOrchestrationClient"/> implements
/// it over Microsoft.DurableTask's <c>DurableTaskClient</c> (Durable Functions in Azure, the gRPC sidecar locally).
/// </summary>
public interface IStudyOrchestrationClient
{
    /// <summary>
    /// Starts the study orchestration under its deterministic instance id unless an instance with that id exists. The
    /// backend runs at most one execution per instance id, whoever calls. True when this call's request created the
    /// instance; false when an instance was already there or a racing call's request created it. Racing callers all
    /// pass the existence check and all schedule; <see cref="DurableStudyOrchestrationClient"/> tells them apart by a
    /// per-call instance tag (measured on the local sidecar over Azurite: four racing starts, one true, one execution,
    /// in 5 of 5 runs; before the tag all four answered true). It is what the caller logs and reports in
    /// <c>IngestOutcome.OrchestrationStarted</c>; nothing decides on it, and nothing should (see the implementation's
    /// remarks for the interleavings the backend leaves open).
    /// </summary>
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
    /// <summary>
    /// The orchestrator revision that new instances run. An orchestration replays its history against the code, so
    /// a change to the sequence of durable actions (activities, timers, events) would break instances started before
    /// it; such a change gets a new revision and the orchestrator keeps the old sequence for inputs of older revisions
    /// until none can still be in flight. 0: one durable timer per awaited chunk result (inputs written before the
    /// revision existed carry none); 1: one durable timer per collection round.
    /// </summary>
    public const int CurrentRevision = 1;

    /// <summary>
    /// Used by the JSON serializer only: an input without <c>revision</c> (started by code older than the revision)
    /// is revision 0, while inputs built in code are <see cref="CurrentRevision"/>.
    /// </summary>
    [JsonConstructor]
    public StudyOrchestrationInput(string tenant, string studyId, string tilesPrefix, int sliceCount, int chunkSize, int maxChunkAttempts, TimeSpan chunkTimeout, int revision)
        : this(tenant, studyId, tilesPrefix, sliceCount, chunkSize, maxChunkAttempts, chunkTimeout)
    {
        Revision = revision;
    }

    /// <summary>The orchestrator revision this instance runs (<see cref="CurrentRevision"/>).</summary>
    public int Revision { get; init; } = CurrentRevision;

    public string InstanceId => StudyIds.OrchestrationId(Tenant, StudyId);
}
