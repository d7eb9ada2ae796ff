namespace CovidFunctions.Dicom;

/// <summary>One row of the data dictionary (PS3.6, via the generated table).</summary>
public sealed class DicomDictionaryEntry
{
    internal DicomDictionaryEntry(uint tag, string keyword, DicomVR[] vrs, string vm, bool retired, uint mask = 0xFFFFFFFF)
    {
        Tag = new DicomTag(tag);
        Keyword = keyword;
        ValueRepresentations = vrs;
        VM = vm;
        IsRetired = retired;
        Mask = mask;
    }

    /// <summary>The tag (for a repeating group such as 60xx, the first one: (6000,eeee)).</summary>
    public DicomTag Tag { get; }

    /// <summary>The PS3.6 keyword, e.g. <c>PatientName</c>.</summary>
    public string Keyword { get; }

    /// <summary>The first allowed VR (e.g. US for "US or SS", OB for "OB or OW").</summary>
    public DicomVR VR => ValueRepresentations[0];

    /// <summary>All allowed VRs (more than one for "US or SS", "OB or OW", "US or SS or OW").</summary>
    public IReadOnlyList<DicomVR> ValueRepresentations { get; }

    /// <summary>The value multiplicity, e.g. <c>1</c>, <c>1-n</c>, <c>2-2n</c>.</summary>
    public string VM { get; }

    /// <summary>True for retired attributes.</summary>
    public bool IsRetired { get; }

    /// <summary>The bits of a tag that must equal <see cref="Tag"/> for a repeating-group entry; all ones otherwise.</summary>
    public uint Mask { get; }

    /// <summary>True for repeating-group entries (50xx, 60xx, element ranges).</summary>
    public bool IsRepeating => Mask != 0xFFFFFFFF;

    public override string ToString() => $"{Tag} {string.Join(" or ", ValueRepresentations)} {Keyword} {VM}{(IsRetired ? " (retired)" : string.Empty)}";
}

/// <summary>
/// The data dictionary: tag → keyword, VR(s), VM, retired. Generated from the standard's data (see
/// <c>Generated/DicomDictionary.g.cs</c> and <c>tools/dicom-dictgen</c>), plus the rules of PS3.5 7.8 for private
/// creators (LO) and group lengths (UL).
/// </summary>
public static partial class DicomDictionary
{
    private static readonly DicomVR[] LO = [DicomVR.LO];
    private static readonly DicomVR[] UL = [DicomVR.UL];

    private static readonly Lazy<Tables> Data = new(Build);

    /// <summary>The number of exact (non-repeating) entries.</summary>
    public static int Count => Data.Value.ByTag.Count;

    /// <summary>The number of repeating-group entries.</summary>
    public static int RepeatingCount => Data.Value.Masked.Length;

    /// <summary>All entries: exact ones in tag order, then repeating ones.</summary>
    public static IEnumerable<DicomDictionaryEntry> Entries => Data.Value.All;

    /// <summary>
    /// The entry for a tag: exact, else a repeating group match, else the generic private creator (LO) or group length
    /// (UL) entry; null for unknown tags (private data elements included).
    /// </summary>
    public static DicomDictionaryEntry? Lookup(DicomTag tag)
    {
        var data = Data.Value;
        if (data.ByTag.TryGetValue(tag.Value, out var entry))
        {
            return entry;
        }

        foreach (var masked in data.Masked)
        {
            if ((tag.Value & masked.Mask) == masked.Tag.Value)
            {
                return masked;
            }
        }

        if (tag.Element == 0)
        {
            return data.GroupLength;
        }

        return tag.IsPrivateCreator ? data.PrivateCreator : null;
    }

    /// <summary>The entry for a keyword (case-sensitive), or null.</summary>
    public static DicomDictionaryEntry? LookupKeyword(string keyword) =>
        Data.Value.ByKeyword.TryGetValue(keyword, out var entry) ? entry : null;

    /// <summary>
    /// The VR to use when the encoding does not say (implicit VR): the dictionary's first VR; LO for private creators;
    /// UL for group lengths; UN for unknown tags.
    /// </summary>
    public static DicomVR DefaultVR(DicomTag tag) => Lookup(tag)?.VR ?? DicomVR.UN;

    private static Tables Build()
    {
        var exact = CreateEntries();
        var masked = CreateRepeatingEntries();
        var byTag = new Dictionary<uint, DicomDictionaryEntry>(exact.Length);
        var byKeyword = new Dictionary<string, DicomDictionaryEntry>(exact.Length + masked.Length, StringComparer.Ordinal);
        foreach (var e in exact)
        {
            byTag[e.Tag.Value] = e;
            byKeyword.TryAdd(e.Keyword, e);
        }

        foreach (var e in masked)
        {
            byKeyword.TryAdd(e.Keyword, e);
        }

        return new Tables(
            byTag,
            byKeyword,
            masked,
            [.. exact, .. masked],
            new DicomDictionaryEntry(0x00000000, "GroupLength", UL, "1", false, 0x0000FFFF),
            new DicomDictionaryEntry(0x00010010, "PrivateCreator", LO, "1", false, 0x0001FF00));
    }

    private sealed record Tables(
        Dictionary<uint, DicomDictionaryEntry> ByTag,
        Dictionary<string, DicomDictionaryEntry> ByKeyword,
        DicomDictionaryEntry[] Masked,
        DicomDictionaryEntry[] All,
        DicomDictionaryEntry GroupLength,
        DicomDictionaryEntry PrivateCreator);
}
