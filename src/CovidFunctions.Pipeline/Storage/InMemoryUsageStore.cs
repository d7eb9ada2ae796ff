using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Orchestration;

namespace CovidFunctions.Pipeline.Storage;

/// <summary>
/// The <c>Usage</c> table in memory (thread-safe), with the table's rules: one record per (tenant, study, stage) whatever
/// its time, every record of a study filed under the study's billing month, the UTC month of its first record (see
/// <see cref="IUsageStore"/>), and closed months: a record for a study whose billing month is closed is carried into
/// the first open month after it (with the study's earlier records when the closed bill did not bill it).
/// </summary>
public sealed class InMemoryUsageStore : IUsageStore
{
    private readonly Dictionary<(string Tenant, string Month, string StudyId, string Stage), FiledUsage> _records = [];
    private readonly Dictionary<(string Tenant, string StudyId), string> _billingMonths = [];
    private readonly Dictionary<(string Tenant, string Month), DateTimeOffset> _fences = [];
    private readonly Dictionary<(string Tenant, string Month), UsageTotals> _closed = [];
    private readonly Lock _gate = new();

    /// <summary>Every record, in tenant, month, study and stage order (a snapshot).</summary>
    public IReadOnlyList<UsageRecord> Snapshot()
    {
        lock (_gate)
        {
            return [.. _records.OrderBy(r => r.Key.Tenant, StringComparer.Ordinal)
                .ThenBy(r => r.Key.Month, StringComparer.Ordinal)
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

            if (!_fences.ContainsKey((record.Tenant, month)))
            {
                return Task.FromResult(_records.TryAdd((record.Tenant, month, record.StudyId, record.Stage), new FiledUsage(record, null)));
            }

            // The billing month is closed: the record goes to the first open month after it, unless a closed month on
            // the way already bills this stage (a retry of a record in a closed bill, or one carried before).
            var earlier = new List<UsageRecord>();
            var to = month;
            for (; _fences.ContainsKey((record.Tenant, to)); to = UsageQueries.Next(to))
            {
                var bill = _records.Where(r => r.Key.Tenant == record.Tenant && r.Key.Month == to && r.Key.StudyId == record.StudyId).Select(r => r.Value.Record).ToList();
                if (bill.Any(r => r.Stage == record.Stage))
                {
                    return Task.FromResult(false);
                }

                earlier.AddRange(bill);
            }

            if (earlier.All(r => r.Stage != StudyOrchestration.UsageStage))
            {
                // The closed bill did not bill the study (it was still running): it is billed whole where it completes.
                foreach (var e in earlier.DistinctBy(r => r.Stage))
                {
                    _records.TryAdd((e.Tenant, to, e.StudyId, e.Stage), new FiledUsage(e, month));
                }
            }

            return Task.FromResult(_records.TryAdd((record.Tenant, to, record.StudyId, record.Stage), new FiledUsage(record, month)));
        }
    }

    public async Task<IReadOnlyList<UsageRecord>> GetMonthAsync(string tenant, string month, CancellationToken cancellationToken) =>
        [.. (await GetFiledAsync(tenant, month, cancellationToken).ConfigureAwait(false)).Select(f => f.Record)];

    public Task<IReadOnlyList<FiledUsage>> GetFiledAsync(string tenant, string month, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            // Nothing is filed under a month after its fence here (one lock), so every record filed is in the bill.
            IReadOnlyList<FiledUsage> filed = [.. _records
                .Where(r => r.Key.Tenant == tenant && r.Key.Month == month)
                .Select(r => r.Value)
                .OrderBy(f => f.Record.StudyId, StringComparer.Ordinal)
                .ThenBy(f => f.Record.Stage, StringComparer.Ordinal)];
            return Task.FromResult(filed);
        }
    }

    public Task<IReadOnlyList<string>> GetTenantsAsync(string month, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            IReadOnlyList<string> tenants = [.. _records.Keys.Where(k => k.Month == month).Select(k => k.Tenant).Distinct().Order(StringComparer.Ordinal)];
            return Task.FromResult(tenants);
        }
    }

    public Task<DateTimeOffset?> GetClosingAsync(string tenant, string month, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return Task.FromResult<DateTimeOffset?>(_fences.TryGetValue((tenant, month), out var at) ? at : null);
        }
    }

    public Task<DateTimeOffset> BeginCloseAsync(string tenant, string month, DateTimeOffset at, CancellationToken cancellationToken)
    {
        StudyIds.RequireTenant(tenant);
        lock (_gate)
        {
            _fences.TryAdd((tenant, month), at.ToUniversalTime());
            return Task.FromResult(_fences[(tenant, month)]);
        }
    }

    public Task<UsageTotals?> GetClosedAsync(string tenant, string month, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return Task.FromResult(_closed.GetValueOrDefault((tenant, month)));
        }
    }

    public Task<UsageTotals> AddClosedIfAbsentAsync(UsageTotals closed, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(closed);
        lock (_gate)
        {
            _closed.TryAdd((closed.Tenant, closed.Month), closed);
            return Task.FromResult(_closed[(closed.Tenant, closed.Month)]);
        }
    }
}
