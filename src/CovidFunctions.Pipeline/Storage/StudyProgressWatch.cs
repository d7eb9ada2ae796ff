namespace CovidFunctions.Pipeline.Storage;

/// <summary>The studies of one round of <see cref="StudyProgressWatch"/>.</summary>
/// <param name="Changed">The studies to show (new to the view or changed since the last round), oldest first.</param>
/// <param name="RunSettled">Whether at least one study was created since the watch's start and every such study is settled.</param>
public sealed record StudyProgressRound(IReadOnlyList<StudyRecord> Changed, bool RunSettled);

/// <summary>
/// What <c>covidfn up</c>'s progress view reads each round (every 2 s): the studies to show, each time one is new to
/// the view or changes (status, slices, ingest time), except a study already settled before the watch began (not news),
/// and whether every study created since then has settled (<c>--exit-when-done</c>).
/// <para>
/// With the store's list and status indexes complete (<see cref="IStudyListIndex"/>, the table store) a round reads
/// what can have changed, not the table: the unfinished studies of every tenant (the status index's queued and
/// processing entries, whatever their age: a study this run resumes, an old upload dropped again), the places of the
/// studies created since the start (the list index from the start on, keys only) with a point read of those new to the
/// view, and a point read of each study the last round saw unfinished that is no longer listed so (it settled). A
/// settled study is not read again unless it becomes unfinished again; studies settled before the start are never read.
/// Before, every round read every study of every tenant (thousands of rows every 2 s on a long-used data folder). A
/// settled study whose slices or ingest time change while it stays settled is not shown again (none of the pipeline's
/// writers does that).
/// </para>
/// <para>
/// Without the indexes (another store, or a data folder whose studies the start-up completion is still indexing) a round
/// reads every study, as before.
/// </para>
/// </summary>
public sealed class StudyProgressWatch(IStudyStore studies, DateTimeOffset since)
{
    /// <summary>Entries per index query (the Table service's most).</summary>
    private const int KeysPerQuery = 1000;

    /// <summary>Each study's state when last shown or passed over ({tenant}/{id} → status, slices, ingest time).</summary>
    private readonly Dictionary<string, string> _seen = new(StringComparer.Ordinal);

    /// <summary>The studies last seen unfinished, to read once more when they leave the unfinished lists.</summary>
    private readonly Dictionary<string, (string Tenant, string StudyId)> _unfinished = new(StringComparer.Ordinal);

    /// <summary>The studies seen settled: read again only when listed unfinished.</summary>
    private readonly HashSet<string> _settled = new(StringComparer.Ordinal);

    /// <summary>The studies created since the start, with whether each is settled (as last read).</summary>
    private readonly Dictionary<string, bool> _run = new(StringComparer.Ordinal);

    /// <summary>One round: reads the studies (see the class remarks) and says which to show. Storage errors propagate.</summary>
    public async Task<StudyProgressRound> PollAsync(CancellationToken cancellationToken)
    {
        var read = await ReadAsync(cancellationToken).ConfigureAwait(false);
        var changed = new List<StudyRecord>();
        foreach (var s in read.OrderBy(s => s.CreatedAt))
        {
            var key = KeyOf(s.Tenant, s.StudyId);
            var terminal = StudyStatus.IsTerminal(s.Status);
            if (terminal)
            {
                _unfinished.Remove(key);
                _settled.Add(key);
            }
            else
            {
                _unfinished[key] = (s.Tenant, s.StudyId);
                _settled.Remove(key);
            }

            if (s.CreatedAt >= since)
            {
                _run[key] = terminal;
            }

            var state = $"{s.Status}|{s.SliceCount}|{s.IngestedAt}";
            if (_seen.TryGetValue(key, out var before) && before == state)
            {
                continue;
            }

            var first = before is null;
            _seen[key] = state;
            if (first && terminal && s.CreatedAt < since)
            {
                continue; // finished before this run: not news
            }

            changed.Add(s);
        }

        return new StudyProgressRound(changed, _run.Count > 0 && _run.Values.All(settled => settled));
    }

    private async Task<IReadOnlyCollection<StudyRecord>> ReadAsync(CancellationToken cancellationToken)
    {
        if (studies is not IStudyListIndex index
            || !await index.IsListIndexCompleteAsync(cancellationToken).ConfigureAwait(false)
            || !await index.IsStatusIndexCompleteAsync(cancellationToken).ConfigureAwait(false))
        {
            var all = new List<StudyRecord>();
            await foreach (var study in studies.QueryAsync(null, null, null, null, cancellationToken).ConfigureAwait(false))
            {
                all.Add(study);
            }

            return all;
        }

        // The tenants once for the round's three lists (each would otherwise find them again).
        var tenants = new List<string>();
        await foreach (var tenant in studies.ListTenantsAsync(cancellationToken).ConfigureAwait(false))
        {
            tenants.Add(tenant);
        }

        var records = new Dictionary<string, StudyRecord>(StringComparer.Ordinal);
        foreach (var status in new[] { StudyStatus.Queued, StudyStatus.Processing })
        {
            await foreach (var study in studies.ListAsync(new StudyListRequest(tenants, status, PageSize: KeysPerQuery - 1), cancellationToken).ConfigureAwait(false))
            {
                records[KeyOf(study.Tenant, study.StudyId)] = study;
            }
        }

        var toRead = new Dictionary<string, (string Tenant, string StudyId)>(StringComparer.Ordinal);
        await foreach (var entry in index.ListPlacesAsync(new StudyListRequest(tenants, From: since, PageSize: KeysPerQuery - 1), cancellationToken).ConfigureAwait(false))
        {
            var key = KeyOf(entry.Tenant, entry.Place.StudyId);
            if (!records.ContainsKey(key) && !_settled.Contains(key))
            {
                toRead[key] = (entry.Tenant, entry.Place.StudyId);
            }
        }

        foreach (var (key, study) in _unfinished)
        {
            if (!records.ContainsKey(key))
            {
                toRead[key] = study;
            }
        }

        var reads = toRead.Values.ToList();
        var found = await StudyListing.ReadStudiesAsync(studies, reads, cancellationToken).ConfigureAwait(false);
        for (var i = 0; i < reads.Count; i++)
        {
            var key = KeyOf(reads[i].Tenant, reads[i].StudyId);
            if (found[i] is { } study)
            {
                records[key] = study;
            }
            else if (_unfinished.Remove(key))
            {
                // Seen before and gone now (deleted): no longer followed, nor waited for. A place whose study is not
                // there (yet: the list entry is written before the study's row) is read again next round.
                _run.Remove(key);
            }
        }

        return records.Values;
    }

    private static string KeyOf(string tenant, string studyId) => tenant + "/" + studyId;
}
