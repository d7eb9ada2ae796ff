namespace CovidFunctions.Dicom;

/// <summary>
/// Private data elements that are sequences, by private creator (from DCMTK's private.dic, generated). Used to read
/// implicit VR private sequences as DCMTK does; every other private element of an implicit VR dataset stays UN.
/// </summary>
internal static partial class DicomPrivateSequences
{
    private static readonly Lazy<Dictionary<string, Row[]>> ByCreator = new(() =>
    {
        var map = new Dictionary<string, Row[]>(StringComparer.Ordinal);
        foreach (var group in CreateRows().GroupBy(r => r.Creator, StringComparer.Ordinal))
        {
            map[group.Key] = [.. group];
        }

        return map;
    });

    /// <summary>True when element byte <paramref name="element"/> of <paramref name="creator"/>'s block in <paramref name="group"/> is a sequence.</summary>
    public static bool IsSequence(ushort group, string creator, byte element)
    {
        if (!ByCreator.Value.TryGetValue(creator, out var rows))
        {
            return false;
        }

        foreach (var row in rows)
        {
            if (row.Element == element && group >= row.GroupLow && group <= row.GroupHigh && (group & 1) == 1)
            {
                return true;
            }
        }

        return false;
    }

    private readonly record struct Row(ushort GroupLow, ushort GroupHigh, string Creator, byte Element);
}
