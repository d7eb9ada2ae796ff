using System.Globalization;

namespace CovidFunctions.Dicom;

/// <summary>A DICOM attribute tag (group, element). Ordered by its 32-bit value, as datasets are.</summary>
public readonly record struct DicomTag(ushort Group, ushort Element) : IComparable<DicomTag>
{
    /// <summary>Creates a tag from its 32-bit value (group in the high 16 bits).</summary>
    public DicomTag(uint value)
        : this((ushort)(value >> 16), (ushort)value)
    {
    }

    /// <summary>Item (FFFE,E000).</summary>
    public static DicomTag Item => new(0xFFFE, 0xE000);

    /// <summary>Item Delimitation Item (FFFE,E00D).</summary>
    public static DicomTag ItemDelimitationItem => new(0xFFFE, 0xE00D);

    /// <summary>Sequence Delimitation Item (FFFE,E0DD).</summary>
    public static DicomTag SequenceDelimitationItem => new(0xFFFE, 0xE0DD);

    /// <summary>The 32-bit value: group in the high 16 bits, element in the low.</summary>
    public uint Value => ((uint)Group << 16) | Element;

    /// <summary>True for odd groups (private data elements and private creators).</summary>
    public bool IsPrivate => (Group & 1) == 1;

    /// <summary>True for a private creator element: odd group, element 0x0010–0x00FF.</summary>
    public bool IsPrivateCreator => (Group & 1) == 1 && Element >= 0x0010 && Element <= 0x00FF;

    /// <summary>True for a group length element (gggg,0000).</summary>
    public bool IsGroupLength => Element == 0;

    /// <summary>
    /// For a private data element (gggg,xxyy) with xx ≥ 0x10, the creator element (gggg,00xx) that reserves its block;
    /// null for anything else.
    /// </summary>
    public DicomTag? PrivateCreatorTag =>
        IsPrivate && Element >= 0x1000 ? new DicomTag(Group, (ushort)(Element >> 8)) : null;

    /// <summary>The dictionary keyword, or null when the tag is not in the dictionary.</summary>
    public string? Keyword => DicomDictionary.Lookup(this)?.Keyword;

    /// <summary>Formats as <c>(gggg,eeee)</c> in upper-case hex.</summary>
    public override string ToString() => string.Create(11, Value, static (span, v) =>
    {
        span[0] = '(';
        ((ushort)(v >> 16)).TryFormat(span[1..5], out _, "X4", CultureInfo.InvariantCulture);
        span[5] = ',';
        ((ushort)v).TryFormat(span[6..10], out _, "X4", CultureInfo.InvariantCulture);
        span[10] = ')';
    });

    /// <summary>Compares by the 32-bit value.</summary>
    public int CompareTo(DicomTag other) => Value.CompareTo(other.Value);

    public static bool operator <(DicomTag left, DicomTag right) => left.Value < right.Value;

    public static bool operator >(DicomTag left, DicomTag right) => left.Value > right.Value;

    public static bool operator <=(DicomTag left, DicomTag right) => left.Value <= right.Value;

    public static bool operator >=(DicomTag left, DicomTag right) => left.Value >= right.Value;

    /// <summary>
    /// Parses <c>(0010,0010)</c>, <c>0010,0010</c>, <c>00100010</c> (hex, any case, surrounding spaces allowed) or a
    /// dictionary keyword such as <c>PatientName</c>.
    /// </summary>
    /// <exception cref="FormatException">The text is neither a tag nor a known keyword.</exception>
    public static DicomTag Parse(string text) =>
        TryParse(text, out var tag) ? tag : throw new FormatException($"Not a DICOM tag: '{text}'");

    /// <summary>Parses like <see cref="Parse"/>; false when the text is not a tag.</summary>
    public static bool TryParse(string? text, out DicomTag tag)
    {
        tag = default;
        if (text is null)
        {
            return false;
        }

        var s = text.AsSpan().Trim();
        if (s.Length >= 2 && s[0] == '(' && s[^1] == ')')
        {
            s = s[1..^1].Trim();
        }

        ReadOnlySpan<char> g, e;
        var comma = s.IndexOf(',');
        if (comma >= 0)
        {
            g = s[..comma].Trim();
            e = s[(comma + 1)..].Trim();
        }
        else if (s.Length == 8)
        {
            g = s[..4];
            e = s[4..];
        }
        else
        {
            var entry = DicomDictionary.LookupKeyword(s.ToString());
            if (entry is null)
            {
                return false;
            }

            tag = entry.Tag;
            return true;
        }

        if (g.Length is 0 or > 4 || e.Length is 0 or > 4
            || !ushort.TryParse(g, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var group)
            || !ushort.TryParse(e, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var element))
        {
            return false;
        }

        tag = new DicomTag(group, element);
        return true;
    }
}
