namespace CovidFunctions.Pipeline.Scoring;

/// <summary>Scorer settings (configuration section <c>Scoring</c>).</summary>
public sealed record ScoringOptions
{
    public const string SectionName = "Scoring";

    /// <summary>Slices preprocessed and sent to the model at once (bounds memory: 8 × 352² floats per batch).</summary>
    public int BatchSize { get; init; } = 8;
}
