using System.Collections.Frozen;

namespace CovidFunctions.Dicom.Deidentification;

/// <summary>
/// PS3.15 Table E.1-1: the generated rows of the pinned edition (<c>Generated/AnnexEActionTable.g.cs</c>) merged with the
/// hand-written rows of later editions (<see cref="AnnexESupplement"/>). Lookup is by exact tag in a frozen dictionary;
/// only the repeating groups (50xx, 60xx) and private groups go through the few pattern rows.
/// </summary>
public static partial class AnnexEActionTable
{
    private static readonly FrozenDictionary<uint, AnnexERow> ExactRows;
    private static readonly AnnexERow[] RepeatingGroupRows;
    private static readonly AnnexERow PrivateRow;

    static AnnexEActionTable()
    {
        StandardRows = CreateStandardRows();
        var merged = new Dictionary<string, AnnexERow>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (var row in StandardRows)
        {
            merged[row.Tag] = row;
            order.Add(row.Tag);
        }

        foreach (var row in AnnexESupplement.Rows(StandardRows))
        {
            if (!merged.ContainsKey(row.Tag))
            {
                order.Add(row.Tag);
            }

            merged[row.Tag] = row;
        }

        Rows = [.. order.Select(t => merged[t])];
        ExactRows = Rows.Where(r => r.IsExactTag).ToFrozenDictionary(r => r.PatternValue);
        RepeatingGroupRows = [.. Rows.Where(r => !r.IsExactTag && r.PatternMask != 0x00010000)];
        PrivateRow = Rows.Single(r => r.PatternMask == 0x00010000);
    }

    /// <summary>The rows of the pinned edition, in the standard's order, as generated.</summary>
    public static IReadOnlyList<AnnexERow> StandardRows { get; }

    /// <summary>The rows in force: the standard's, with supplement rows replacing or extending them.</summary>
    public static IReadOnlyList<AnnexERow> Rows { get; }

    /// <summary>The row that governs <paramref name="tag"/> (group &lt;&lt; 16 | element), or null when none does.</summary>
    public static AnnexERow? Find(uint tag)
    {
        if ((tag & 0x00010000) != 0)
        {
            return PrivateRow;
        }

        if (ExactRows.TryGetValue(tag, out var row))
        {
            return row;
        }

        var groupHigh = tag >> 24;
        if (groupHigh is 0x50 or 0x60)
        {
            foreach (var candidate in RepeatingGroupRows)
            {
                if (candidate.Matches(tag))
                {
                    return candidate;
                }
            }
        }

        return null;
    }
}
