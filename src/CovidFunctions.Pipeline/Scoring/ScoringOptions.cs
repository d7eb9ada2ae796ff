namespace CovidFunctions.Pipeline.Scoring;

/// <summary>Scorer settings (configuration section <c>Scoring</c>).</summary>
public sealed record ScoringOptions
{
    public const string SectionName = "Scoring";

    /// <summary>Slices preprocessed and sent to the model at once (bounds memory: 8 × 352² floats per batch).</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>
    /// The consumer's deliveries per chunk message before it is dead-lettered (ScorerOptions.MaxDeliveryCount in the
    /// scorer, PipelineOptions.MaxDeliveryCount locally; both 5 by default). On that last delivery a failing chunk is
    /// answered with an error result, so its study fails at once with the cause instead of waiting out every
    /// re-dispatch timeout. The scorer host and <c>covidfn up</c> set it from the consumer's value; a larger one would
    /// only lose that shortcut, a smaller one would fail a chunk the consumer still retries.
    /// </summary>
    public int MaxDeliveryCount { get; init; } = 5;

    /// <summary>Throws <see cref="ArgumentException"/> naming the setting when a value is out of range (at start-up).</summary>
    public void Validate()
    {
        // The same bound as the inference session's MaxBatch, which the hosts set from BatchSize.
        if (BatchSize is < 1 or > 1024)
        {
            throw new ArgumentException($"{SectionName}:{nameof(BatchSize)} must be in 1..1024 (got {BatchSize}).");
        }

        if (MaxDeliveryCount < 1)
        {
            throw new ArgumentException($"{SectionName}:{nameof(MaxDeliveryCount)} must be at least 1 (got {MaxDeliveryCount}).");
        }
    }
}
