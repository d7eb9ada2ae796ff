namespace CovidFunctions.Pipeline.Storage;

/// <summary>The <c>SliceResults</c> table in memory (thread-safe; the same slice index overwrites, as the table's upsert does).</summary>
public sealed class InMemorySliceResultStore : ISliceResultStore
{
    private readonly Dictionary<(string Tenant, string StudyId), SortedDictionary<int, SliceResultRecord>> _studies = [];
    private readonly Lock _gate = new();

    public Task UpsertAsync(IReadOnlyList<SliceResultRecord> records, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(records);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            foreach (var record in records)
            {
                var key = (record.Tenant, record.StudyId);
                if (!_studies.TryGetValue(key, out var slices))
                {
                    slices = [];
                    _studies[key] = slices;
                }

                slices[record.SliceIndex] = record;
            }
        }

        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<SliceResultRecord>> GetAsync(string tenant, string studyId, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            IReadOnlyList<SliceResultRecord> slices = _studies.TryGetValue((tenant, studyId), out var found) ? [.. found.Values] : [];
            return Task.FromResult(slices);
        }
    }
}
