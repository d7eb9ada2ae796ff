using CovidFunctions.Pipeline.Messaging;

namespace CovidFunctions.Pipeline.Orchestration;

/// <summary>
/// What a study orchestration returns (its Durable output): the terminal status and, when completed, the diagnosis.
/// The Studies row holds the same values; this copy lets a caller read the result from the orchestration itself.
/// </summary>
public sealed record StudyOutcome(
    string Tenant,
    string StudyId,
    string Status,
    string? Reason,
    StudyDiagnosis? Diagnosis)
{
    /// <summary>
    /// The <see cref="Status"/> of an orchestration that found its study already completed, failed or rejected by
    /// another path (the stuck-study watchdog) and did nothing more: the Studies row holds the study's status.
    /// </summary>
    public const string AlreadySettled = "already-settled";
}

/// <summary>The patient-level result of a completed study.</summary>
/// <param name="Label">The winning class (manifest class names: covid, cap, normal).</param>
/// <param name="Classes">Class names in the order of <paramref name="Probabilities"/>.</param>
/// <param name="Probabilities">Class probabilities of the study rule (StudyAggregator).</param>
/// <param name="LesionBurden">Σ lesion pixels / Σ lung-estimate pixels over all slices, in [0, 1].</param>
/// <param name="Slices">Slices scored.</param>
/// <param name="ModelVersion">The model version the scorer reported.</param>
/// <param name="MontagePath">The montage PNG in the results container.</param>
/// <param name="TopSlices">The most affected slices, most affected first.</param>
public sealed record StudyDiagnosis(
    string Label,
    IReadOnlyList<string> Classes,
    IReadOnlyList<double> Probabilities,
    double LesionBurden,
    int Slices,
    string ModelVersion,
    string? MontagePath,
    IReadOnlyList<TopSlice> TopSlices);

/// <summary>
/// One of the most affected slices (an element of <c>StudyRecord.TopSlicesJson</c>, serialized with
/// <see cref="PipelineJson.Options"/>): the 0-based slice index, its lesion share of the lung estimate in percent,
/// and its overlay PNG in the results container.
/// </summary>
public sealed record TopSlice(int SliceIndex, double LesionPercent, string? OverlayPath);

/// <summary>
/// Input of the AggregateStudy activity: the accepted chunk results (blob references only), stage times, and the
/// scoring usage the study is to be billed (kept on the completed row, <c>StudyRecord.ScoringUsageJson</c>; null from
/// orchestrations scheduled before it was passed).
/// </summary>
public sealed record AggregateStudyInput(
    string Tenant,
    string StudyId,
    string TilesPrefix,
    IReadOnlyList<ChunkResult> Chunks,
    DateTime OrchestrationStartedAt,
    DateTime ScoringFinishedAt,
    RecordUsageInput? Usage = null);

/// <summary>Input of the RecordUsage activity (stage <c>scoring</c>).</summary>
public sealed record RecordUsageInput(
    string Tenant,
    string StudyId,
    DateTime At,
    int Slices,
    double CpuSeconds,
    double GpuSeconds);

/// <summary>Input of the NotifyStudy activity (<see cref="Notifications.StudyEventTypes"/>).</summary>
public sealed record NotifyStudyInput(string Tenant, string StudyId, string EventType);

/// <summary>Input of the FailStudy activity.</summary>
public sealed record FailStudyInput(string Tenant, string StudyId, string Reason);
