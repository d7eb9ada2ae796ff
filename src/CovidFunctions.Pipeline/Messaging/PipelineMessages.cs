using System.Text.Json;
using System.Text.Json.Serialization;

namespace CovidFunctions.Pipeline.Messaging;

/// <summary>
/// One chunk of a study for the scorer: a claim check (blob references only, never pixels). Slices
/// <c>[FirstSlice, FirstSlice + SliceCount)</c> of the tiled series under <see cref="TilesPrefix"/> in the slices
/// container. <see cref="Attempt"/> counts orchestrator re-dispatches (1 first).
/// </summary>
public sealed record ChunkRequest(
    string Tenant,
    string StudyId,
    string OrchestrationId,
    string TilesPrefix,
    int ChunkIndex,
    int FirstSlice,
    int SliceCount,
    int Attempt)
{
    [JsonIgnore]
    public string MessageId => StudyIds.ChunkMessageId(StudyId, ChunkIndex, Attempt);
}

/// <summary>
/// The scorer's answer for one chunk: where its per-slice results are (<see cref="ResultPath"/>, a
/// <see cref="ChunkResultDocument"/> JSON in the results container), how long scoring took and on what device.
/// <see cref="Error"/> is set when the chunk cannot be scored (bad tiles): the orchestrator fails the study.
/// </summary>
public sealed record ChunkResult(
    string Tenant,
    string StudyId,
    string OrchestrationId,
    int ChunkIndex,
    int Attempt,
    int SliceCount,
    string? ResultPath,
    double ScoringSeconds,
    string Device,
    string? Error)
{
    [JsonIgnore]
    public string MessageId => $"{StudyId}-r{ChunkIndex:D4}-a{Attempt}";
}

/// <summary>Per-slice model output of one chunk, stored as JSON in the results container.</summary>
public sealed record ChunkResultDocument(
    string StudyId,
    int ChunkIndex,
    string ModelVersion,
    IReadOnlyList<string> Classes,
    IReadOnlyList<SliceScore> Slices);

/// <summary>
/// One slice's scores. Pixel counts are in the original slice grid: <see cref="LesionPixels"/> (lesion mask),
/// <see cref="LungPixels"/> (the lung estimate the burden divides by). <see cref="OverlayPath"/> is the overlay PNG
/// in the results container (null when none was written).
/// </summary>
public sealed record SliceScore(
    int SliceIndex,
    float LesionMeanProbability,
    float LesionFraction,
    long LesionPixels,
    long LungPixels,
    IReadOnlyList<float> ClassProbabilities,
    string? OverlayPath,
    string? MaskPath);

/// <summary>One JSON convention for every message, document and orchestration payload.</summary>
public static class PipelineJson
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static string Serialize<T>(T value) => JsonSerializer.Serialize(value, Options);

    /// <summary>Deserializes or throws <see cref="JsonException"/> (a null document is refused).</summary>
    public static T Deserialize<T>(string json) =>
        JsonSerializer.Deserialize<T>(json, Options) ?? throw new JsonException($"empty {typeof(T).Name} document");
}
