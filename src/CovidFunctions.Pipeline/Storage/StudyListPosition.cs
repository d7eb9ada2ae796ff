namespace CovidFunctions.Pipeline.Storage;

/// <summary>
/// A study's place in the studies list, the one definition of its order (<c>GET /api/studies</c>, docs/api.md):
/// newest first by creation time, then by study id (ordinal) among studies created at the same instant. The API's
/// continuation token is the last listed study's place; the table store's list index keys sort in this order
/// (<c>TableStudyStore.ListIndexRowKey</c>, whose test checks that the two agree).
/// </summary>
public sealed record StudyListPosition(DateTimeOffset CreatedAt, string StudyId)
{
    /// <summary>The place of <paramref name="study"/> in the list.</summary>
    public static StudyListPosition Of(StudyRecord study)
    {
        ArgumentNullException.ThrowIfNull(study);
        return new(study.CreatedAt, study.StudyId);
    }

    /// <summary>Whether <paramref name="study"/> comes after this place in the list.</summary>
    public bool Precedes(StudyRecord study) => Precedes(Of(study));

    /// <summary>Whether <paramref name="other"/> comes after this place in the list.</summary>
    public bool Precedes(StudyListPosition other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return other.CreatedAt < CreatedAt || (other.CreatedAt == CreatedAt && string.CompareOrdinal(other.StudyId, StudyId) > 0);
    }

    /// <summary>Whether both name the same place (the same instant, to the tick, and the same study id).</summary>
    public bool IsSamePlace(StudyListPosition other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return other.CreatedAt.UtcTicks == CreatedAt.UtcTicks && string.Equals(other.StudyId, StudyId, StringComparison.Ordinal);
    }
}
