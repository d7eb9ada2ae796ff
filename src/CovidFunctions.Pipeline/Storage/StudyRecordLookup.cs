namespace CovidFunctions.Pipeline.Storage;

/// <summary>
/// A study store that finds a study by its id alone with point reads (an index of study id → tenant). Studies written
/// before the index existed are added to it by <see cref="CompleteTenantIndexAsync"/>, a scan of the whole store that
/// <see cref="StudyIdIndexCompletion"/> runs in the background; lookups are answered correctly before it has run.
/// </summary>
public interface IStudyIdIndex
{
    /// <summary>The study of <paramref name="studyId"/> in whichever tenant holds it, or null.</summary>
    Task<StudyRecord?> FindInAnyTenantAsync(string studyId, CancellationToken cancellationToken);

    /// <summary>Whether every study has its index entry (the completion has run to its end once).</summary>
    Task<bool> IsTenantIndexCompleteAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Adds the index entry of every study that lacks one, then records that the index is complete; returns how many
    /// entries it added. Idempotent, and safe while studies are being created.
    /// </summary>
    Task<int> CompleteTenantIndexAsync(CancellationToken cancellationToken);
}

/// <summary>
/// A study store with a time-ordered list index (<see cref="IStudyStore.ListAsync"/> reads about one page of rows per
/// page instead of every matching study). Studies written before the index existed are added to it by
/// <see cref="CompleteListIndexAsync"/>, a scan of the whole store that <see cref="StudyIdIndexCompletion"/> runs in
/// the background; until it has finished, lists are read the slow way (every matching study), so they are never
/// missing a study.
/// </summary>
public interface IStudyListIndex
{
    /// <summary>Whether every study has its list index entry (the completion has run to its end once).</summary>
    Task<bool> IsListIndexCompleteAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Writes the list index entry of every study (idempotent: an entry is its study's place, written again unchanged),
    /// then records that the index is complete; returns how many entries it wrote. Safe while studies are created.
    /// </summary>
    Task<int> CompleteListIndexAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Whether every study has its status index entry (its place in the list of its tenant's studies of its status),
    /// so that a list filtered by status reads about a page of entries instead of every study with that status.
    /// </summary>
    Task<bool> IsStatusIndexCompleteAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Writes the status index entry of every study (idempotent), then records that the status index is complete;
    /// returns how many entries it wrote. Safe while studies are created and change status.
    /// </summary>
    Task<int> CompleteStatusIndexAsync(CancellationToken cancellationToken);

    /// <summary>
    /// The places the index holds for <paramref name="request"/> (its status index when it filters by status), in list
    /// order, without reading the studies: an entry may name a place its study no longer holds (a status it left, a
    /// create that never landed), so a caller reads the study and checks. Only for a complete index
    /// (<see cref="IsListIndexCompleteAsync"/>, and <see cref="IsStatusIndexCompleteAsync"/> with a status).
    /// </summary>
    IAsyncEnumerable<StudyListPlace> ListPlacesAsync(StudyListRequest request, CancellationToken cancellationToken);
}

/// <summary>A study's place in the list (<see cref="StudyListPosition"/>) with its tenant: a list index entry.</summary>
public sealed record StudyListPlace(string Tenant, StudyListPosition Place)
{
    /// <summary>Whether <paramref name="study"/> is this entry's study at this place.</summary>
    public bool IsHeldBy(StudyRecord? study) =>
        study is not null && string.Equals(study.Tenant, Tenant, StringComparison.Ordinal) && StudyListPosition.Of(study).IsSamePlace(Place);
}

/// <summary>
/// Finding a study by its id alone, for callers that may read every tenant (an all-tenant API key; <c>covidfn status
/// ID</c> without <c>--tenant</c>). Study ids are tenant-unique (keyed hashes of tenant and upload path).
/// </summary>
public static class StudyRecordLookup
{
    /// <summary>
    /// The study of <paramref name="studyId"/> in any tenant: through the store's index when it has one
    /// (<see cref="IStudyIdIndex"/>), else <see cref="ScanAsync"/>.
    /// </summary>
    public static Task<StudyRecord?> FindInAnyTenantAsync(IStudyStore studies, string studyId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(studies);
        return studies is IStudyIdIndex index ? index.FindInAnyTenantAsync(studyId, cancellationToken) : ScanAsync(studies, studyId, cancellationToken);
    }

    /// <summary>
    /// The study in the default tenant, else the first row of that id in a scan of every tenant's studies. The scan
    /// reads the whole table: its cost grows with the table (what the index avoids).
    /// </summary>
    public static async Task<StudyRecord?> ScanAsync(IStudyStore studies, string studyId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(studies);
        if (await studies.GetAsync(PipelineNames.DefaultTenant, studyId, cancellationToken).ConfigureAwait(false) is { } inDefault)
        {
            return inDefault;
        }

        await foreach (var study in studies.QueryAsync(null, null, null, null, cancellationToken).ConfigureAwait(false))
        {
            if (string.Equals(study.StudyId, studyId, StringComparison.Ordinal))
            {
                return study;
            }
        }

        return null;
    }
}
