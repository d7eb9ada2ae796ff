using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Scorer;

/// <summary>
/// Used when the scorer is given no table endpoint (neither Scorer:TableServiceUri nor a connection string): the
/// chunk result document in the results container carries the same per-slice values and the orchestrator
/// aggregates from it, so scoring still works; only the SliceResults rows are missing then.
/// </summary>
internal sealed partial class SkippedSliceResultStore(ILogger<SkippedSliceResultStore> logger) : ISliceResultStore
{
    private int _logged;

    public Task UpsertAsync(IReadOnlyList<SliceResultRecord> records, CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _logged, 1) == 0)
        {
            Log.Skipped(logger);
        }

        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<SliceResultRecord>> GetAsync(string tenant, string studyId, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<SliceResultRecord>>([]);

    private static partial class Log
    {
        [LoggerMessage(EventId = 3101, Level = LogLevel.Information, Message = "No table endpoint configured (Scorer:TableServiceUri): SliceResults rows are not written by the scorer; chunk documents hold the per-slice values")]
        public static partial void Skipped(ILogger logger);
    }
}
