using System.Runtime.CompilerServices;

namespace CovidFunctions.Pipeline.Storage;

/// <summary>
/// What one page of the studies list asks the store for: the studies of <see cref="Tenants"/> (null: every tenant) in
/// list order (<see cref="StudyListPosition"/>) after <see cref="After"/>, filtered by status and creation time
/// (both bounds inclusive). <see cref="PageSize"/> is how many the caller will read at most (it reads one more to know
/// whether there is a next page): a store may read about that many rows ahead, never fewer than it yields.
/// </summary>
public sealed record StudyListRequest(
    IReadOnlyList<string>? Tenants,
    string? Status = null,
    DateTimeOffset? From = null,
    DateTimeOffset? To = null,
    StudyListPosition? After = null,
    int PageSize = 50);

/// <summary>The studies list read through <see cref="IStudyStore.QueryAsync"/>, and the merge of several tenants' lists.</summary>
public static class StudyListing
{
    /// <summary>
    /// The list by <see cref="IStudyStore.QueryAsync"/>: each listed tenant's studies that match the filters, newest
    /// first (the store reads and sorts all of them: the cost of a page grows with the tenant's history, whatever the
    /// page size), several tenants merged in list order. After a position, only studies created up to it are asked for
    /// (plus a second, should a store's time filter be coarser than its stored times); the exact cut is made here.
    /// </summary>
    public static IAsyncEnumerable<StudyRecord> ScanAsync(IStudyStore studies, StudyListRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(studies);
        ArgumentNullException.ThrowIfNull(request);
        var to = request.To;
        if (request.After is { } after && (to is null || to > after.CreatedAt.AddSeconds(1)))
        {
            to = after.CreatedAt.AddSeconds(1);
        }

        var listed = request.Tenants switch
        {
            null => studies.QueryAsync(null, request.Status, request.From, to, cancellationToken),
            [var only] => studies.QueryAsync(only, request.Status, request.From, to, cancellationToken),
            var several => MergeInListOrder([.. several.Select(t => studies.QueryAsync(t, request.Status, request.From, to, cancellationToken))], StudyListPosition.Of, cancellationToken),
        };
        return CutAsync(listed, request, cancellationToken);
    }

    /// <summary>Studies point-read at once by <see cref="ReadStudiesAsync"/>.</summary>
    public const int PointReadConcurrency = 16;

    /// <summary>
    /// The studies of <paramref name="keys"/> by point reads, <see cref="PointReadConcurrency"/> at once (the studies an
    /// index lists, which holds keys only): element i is the study of key i, null where there is none.
    /// </summary>
    public static async Task<StudyRecord?[]> ReadStudiesAsync(IStudyStore studies, IReadOnlyList<(string Tenant, string StudyId)> keys, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(studies);
        ArgumentNullException.ThrowIfNull(keys);
        var found = new StudyRecord?[keys.Count];
        await Parallel.ForEachAsync(Enumerable.Range(0, keys.Count), new ParallelOptions { MaxDegreeOfParallelism = PointReadConcurrency, CancellationToken = cancellationToken }, async (i, token) =>
            found[i] = await studies.GetAsync(keys[i].Tenant, keys[i].StudyId, token).ConfigureAwait(false)).ConfigureAwait(false);
        return found;
    }

    /// <summary>
    /// Lists each already in list order merged into one list in that order (among items at the same place, the earlier
    /// list first), reading each only as far as the merged list is read. The first item of every list is asked for at
    /// once (a request per list when they are store queries), the rest one list at a time as the merge needs them.
    /// </summary>
    public static IAsyncEnumerable<T> MergeInListOrder<T>(IReadOnlyList<IAsyncEnumerable<T>> lists, Func<T, StudyListPosition> positionOf, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(positionOf);
        return MergeAsync(lists, (a, b) => positionOf(a).Precedes(positionOf(b)), cancellationToken);
    }

    /// <summary>
    /// Lists each already in one order (<paramref name="before"/>: whether the first item comes strictly before the
    /// second) merged into one list in that order, among equal items the earlier list's first; each list is read only
    /// as far as the merged list is read, the first item of every list asked for at once.
    /// </summary>
    public static async IAsyncEnumerable<T> MergeAsync<T>(IReadOnlyList<IAsyncEnumerable<T>> lists, Func<T, T, bool> before, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(lists);
        ArgumentNullException.ThrowIfNull(before);
        var enumerators = lists.Select(l => l.GetAsyncEnumerator(cancellationToken)).ToList();
        var heads = new List<IAsyncEnumerator<T>>();
        try
        {
            var started = await Task.WhenAll(enumerators.Select(e => e.MoveNextAsync().AsTask())).ConfigureAwait(false);
            heads.AddRange(enumerators.Where((_, i) => started[i]));
            while (heads.Count > 0)
            {
                var first = heads[0];
                foreach (var head in heads.Skip(1))
                {
                    if (before(head.Current, first.Current))
                    {
                        first = head;
                    }
                }

                yield return first.Current;
                if (!await first.MoveNextAsync().ConfigureAwait(false))
                {
                    heads.Remove(first);
                }
            }
        }
        finally
        {
            foreach (var enumerator in enumerators)
            {
                await enumerator.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private static async IAsyncEnumerable<StudyRecord> CutAsync(IAsyncEnumerable<StudyRecord> listed, StudyListRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var study in listed.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            if ((request.After is null || request.After.Precedes(study)) && (request.To is not { } end || study.CreatedAt <= end))
            {
                yield return study;
            }
        }
    }
}
