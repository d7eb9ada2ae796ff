using System.Globalization;

namespace CovidFunctions.Pipeline.Storage;

/// <summary>
/// The <c>Usage</c> table in memory (thread-safe). Keyed like the table: partition "{tenant}|{yyyy-MM}" of the
/// record's time (UTC), row "{studyId}|{stage}"; a second record with the same keys is refused, so duplicates count
/// once (as in the table, a duplicate filed in another month would be a separate row: callers pass a stable time).
/// </summary>
public sealed class InMemoryUsageStore : IUsageStore
{
    private readonly Dictionary<(string Tenant, string Month, string StudyId, string Stage), UsageRecord> _records = [];
    private readonly Lock _gate = new();

    /// <summary>Every record, in tenant, study and stage order (a snapshot).</summary>
    public IReadOnlyList<UsageRecord> Snapshot()
    {
        lock (_gate)
        {
            return [.. _records.OrderBy(r => r.Key.Tenant, StringComparer.Ordinal)
                .ThenBy(r => r.Key.Month, StringComparer.Ordinal)
                .ThenBy(r => r.Key.StudyId, StringComparer.Ordinal)
                .ThenBy(r => r.Key.Stage, StringComparer.Ordinal)
                .Select(r => r.Value)];
        }
    }

    public Task<bool> TryRecordAsync(UsageRecord record, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            return Task.FromResult(_records.TryAdd((record.Tenant, MonthOf(record.At), record.StudyId, record.Stage), record));
        }
    }

    public Task<IReadOnlyList<UsageRecord>> GetMonthAsync(string tenant, string month, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            IReadOnlyList<UsageRecord> records = [.. _records.Values
                .Where(r => r.Tenant == tenant && MonthOf(r.At) == month)
                .OrderBy(r => r.StudyId, StringComparer.Ordinal)
                .ThenBy(r => r.Stage, StringComparer.Ordinal)];
            return Task.FromResult(records);
        }
    }

    /// <summary>The <c>yyyy-MM</c> month (UTC) a usage record is filed under.</summary>
    public static string MonthOf(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM", CultureInfo.InvariantCulture);
}
