using CovidFunctions.Pipeline.Metering;

namespace CovidFunctions.Pipeline.Storage;

/// <summary>
/// The <c>Usage</c> table in memory (thread-safe), with the table's rules: one record per (tenant, study, stage) whatever
/// its time, and every record of a study filed under the study's billing month, the UTC month of its first record
/// (see <see cref="IUsageStore"/>).
/// </summary>
public sealed class InMemoryUsageStore : IUsageStore
{
    private readonly Dictionary<(string Tenant, string StudyId, string Stage), (string Month, UsageRecord Record)> _records = [];
    private readonly Dictionary<(string Tenant, string StudyId), string> _billingMonths = [];
    private readonly Lock _gate = new();

    /// <summary>Every record, in tenant, month, study and stage order (a snapshot).</summary>
    public IReadOnlyList<UsageRecord> Snapshot()
    {
        lock (_gate)
        {
            return [.. _records.OrderBy(r => r.Key.Tenant, StringComparer.Ordinal)
                .ThenBy(r => r.Value.Month, StringComparer.Ordinal)
                .ThenBy(r => r.Key.StudyId, StringComparer.Ordinal)
                .ThenBy(r => r.Key.Stage, StringComparer.Ordinal)
                .Select(r => r.Value.Record)];
        }
    }

    public Task<bool> TryRecordAsync(UsageRecord record, CancellationToken cancellationToken)
    {
        UsageRecord.Validate(record);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            if (!_billingMonths.TryGetValue((record.Tenant, record.StudyId), out var month))
            {
                month = UsageQueries.MonthOf(record.At);
                _billingMonths.Add((record.Tenant, record.StudyId), month);
            }

            return Task.FromResult(_records.TryAdd((record.Tenant, record.StudyId, record.Stage), (month, record)));
        }
    }

    public Task<IReadOnlyList<UsageRecord>> GetMonthAsync(string tenant, string month, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            IReadOnlyList<UsageRecord> records = [.. _records
                .Where(r => r.Key.Tenant == tenant && r.Value.Month == month)
                .Select(r => r.Value.Record)
                .OrderBy(r => r.StudyId, StringComparer.Ordinal)
                .ThenBy(r => r.Stage, StringComparer.Ordinal)];
            return Task.FromResult(records);
        }
    }

    public Task<IReadOnlyList<string>> GetTenantsAsync(string month, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            IReadOnlyList<string> tenants = [.. _records.Where(r => r.Value.Month == month).Select(r => r.Key.Tenant).Distinct().Order(StringComparer.Ordinal)];
            return Task.FromResult(tenants);
        }
    }
}
