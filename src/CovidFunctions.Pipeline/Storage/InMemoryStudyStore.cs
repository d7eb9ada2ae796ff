using System.Globalization;
using System.Runtime.CompilerServices;

namespace CovidFunctions.Pipeline.Storage;

/// <summary>
/// The <c>Studies</c> table in memory: the store of <c>covidfn screen</c> and of unit tests. Thread-safe, with the
/// table's optimistic concurrency: every stored row carries a version ETag, and <see cref="UpdateAsync"/> applies its
/// update to a snapshot outside the lock and writes back only when the row is still at that version, otherwise it
/// re-reads and re-applies (so, like the table store, an update function can run more than once).
/// </summary>
public sealed class InMemoryStudyStore : IStudyStore
{
    private readonly Dictionary<(string Tenant, string StudyId), StudyRecord> _rows = [];
    private readonly Lock _gate = new();
    private long _version;

    /// <summary>Every row, in tenant and study order (a snapshot).</summary>
    public IReadOnlyList<StudyRecord> Snapshot()
    {
        lock (_gate)
        {
            return [.. _rows.OrderBy(r => r.Key.Tenant, StringComparer.Ordinal).ThenBy(r => r.Key.StudyId, StringComparer.Ordinal).Select(r => r.Value)];
        }
    }

    public Task<StudyRecord?> GetAsync(string tenant, string studyId, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            return Task.FromResult(_rows.GetValueOrDefault((tenant, studyId)));
        }
    }

    public Task<bool> TryCreateAsync(StudyRecord record, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            var key = (record.Tenant, record.StudyId);
            if (_rows.ContainsKey(key))
            {
                return Task.FromResult(false);
            }

            _rows[key] = record with { ETag = NextETag() };
            return Task.FromResult(true);
        }
    }

    public Task<StudyRecord> UpdateAsync(string tenant, string studyId, Func<StudyRecord?, StudyRecord> update, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(update);
        var key = (tenant, studyId);
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            StudyRecord? current;
            lock (_gate)
            {
                current = _rows.GetValueOrDefault(key);
            }

            var updated = update(current);
            if (updated.Tenant != tenant || updated.StudyId != studyId)
            {
                throw new InvalidOperationException($"an update of study {tenant}/{studyId} returned study {updated.Tenant}/{updated.StudyId}");
            }

            lock (_gate)
            {
                var now = _rows.GetValueOrDefault(key);
                // The row changed (or appeared, or vanished) since the read: another writer won; re-read and re-apply.
                if (now?.ETag != current?.ETag)
                {
                    continue;
                }

                var stored = updated with { ETag = NextETag() };
                _rows[key] = stored;
                return Task.FromResult(stored);
            }
        }
    }

    public async IAsyncEnumerable<StudyRecord> QueryAsync(string? tenant, string? status, DateTimeOffset? from, DateTimeOffset? to, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await Task.Yield();
        List<StudyRecord> matches;
        lock (_gate)
        {
            matches = [.. _rows.Values
                .Where(r => tenant is null || r.Tenant == tenant)
                .Where(r => status is null || r.Status == status)
                .Where(r => from is null || r.CreatedAt >= from)
                .Where(r => to is null || r.CreatedAt <= to)
                .OrderByDescending(r => r.CreatedAt)
                .ThenBy(r => r.StudyId, StringComparer.Ordinal)];
        }

        foreach (var record in matches)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return record;
        }
    }

    // Called under _gate.
    private string NextETag() => "W/\"" + (++_version).ToString(CultureInfo.InvariantCulture) + "\"";
}
