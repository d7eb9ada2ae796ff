namespace CovidFunctions.Dicom;

/// <summary>
/// A value representation (PS3.5 6.2): the closed set of the current standard. Instances are compared by reference;
/// there is one per code.
/// </summary>
public sealed class DicomVR
{
    private DicomVR(string code, Kind kind, int unitSize, bool longLength, int maxLength, bool multiValued = true)
    {
        Code = code;
        ValueKind = kind;
        UnitSize = unitSize;
        HasLongExplicitLength = longLength;
        MaxLength = maxLength;
        IsMultiValuedString = kind is Kind.String && multiValued;
        Code16 = (ushort)(code[0] | (code[1] << 8));
    }

    internal enum Kind : byte
    {
        String,
        Number,
        Attribute,
        Other,
        Sequence,
    }

    public static DicomVR AE { get; } = new("AE", Kind.String, 1, false, 16);
    public static DicomVR AS { get; } = new("AS", Kind.String, 1, false, 4);
    public static DicomVR AT { get; } = new("AT", Kind.Attribute, 2, false, 4);
    public static DicomVR CS { get; } = new("CS", Kind.String, 1, false, 16);
    public static DicomVR DA { get; } = new("DA", Kind.String, 1, false, 8);
    public static DicomVR DS { get; } = new("DS", Kind.String, 1, false, 16);
    public static DicomVR DT { get; } = new("DT", Kind.String, 1, false, 26);
    public static DicomVR FD { get; } = new("FD", Kind.Number, 8, false, 8);
    public static DicomVR FL { get; } = new("FL", Kind.Number, 4, false, 4);
    public static DicomVR IS { get; } = new("IS", Kind.String, 1, false, 12);
    public static DicomVR LO { get; } = new("LO", Kind.String, 1, false, 64);
    public static DicomVR LT { get; } = new("LT", Kind.String, 1, false, 10240, multiValued: false);
    public static DicomVR OB { get; } = new("OB", Kind.Other, 1, true, -1);
    public static DicomVR OD { get; } = new("OD", Kind.Other, 8, true, -1);
    public static DicomVR OF { get; } = new("OF", Kind.Other, 4, true, -1);
    public static DicomVR OL { get; } = new("OL", Kind.Other, 4, true, -1);
    public static DicomVR OV { get; } = new("OV", Kind.Other, 8, true, -1);
    public static DicomVR OW { get; } = new("OW", Kind.Other, 2, true, -1);
    public static DicomVR PN { get; } = new("PN", Kind.String, 1, false, 64 * 5);
    public static DicomVR SH { get; } = new("SH", Kind.String, 1, false, 16);
    public static DicomVR SL { get; } = new("SL", Kind.Number, 4, false, 4);
    public static DicomVR SQ { get; } = new("SQ", Kind.Sequence, 1, true, -1);
    public static DicomVR SS { get; } = new("SS", Kind.Number, 2, false, 2);
    public static DicomVR ST { get; } = new("ST", Kind.String, 1, false, 1024, multiValued: false);
    public static DicomVR SV { get; } = new("SV", Kind.Number, 8, true, 8);
    public static DicomVR TM { get; } = new("TM", Kind.String, 1, false, 14);
    public static DicomVR UC { get; } = new("UC", Kind.String, 1, true, -1);
    public static DicomVR UI { get; } = new("UI", Kind.String, 1, false, 64);
    public static DicomVR UL { get; } = new("UL", Kind.Number, 4, false, 4);
    public static DicomVR UN { get; } = new("UN", Kind.Other, 1, true, -1);
    public static DicomVR UR { get; } = new("UR", Kind.String, 1, true, -1, multiValued: false);
    public static DicomVR US { get; } = new("US", Kind.Number, 2, false, 2);
    public static DicomVR UT { get; } = new("UT", Kind.String, 1, true, -1, multiValued: false);
    public static DicomVR UV { get; } = new("UV", Kind.Number, 8, true, 8);

    /// <summary>Every VR of the current standard, in alphabetical order.</summary>
    public static IReadOnlyList<DicomVR> All { get; } =
    [
        AE, AS, AT, CS, DA, DS, DT, FD, FL, IS, LO, LT, OB, OD, OF, OL, OV, OW, PN, SH, SL, SQ, SS, ST, SV, TM, UC, UI,
        UL, UN, UR, US, UT, UV,
    ];

    // Declared after All: static initializers run in text order.
    private static readonly DicomVR?[] Table = BuildTable();

    /// <summary>The two-letter code, e.g. <c>PN</c>.</summary>
    public string Code { get; }

    /// <summary>True for the character-string VRs (AE AS CS DA DS DT IS LO LT PN SH ST TM UC UI UR UT).</summary>
    public bool IsString => ValueKind == Kind.String;

    /// <summary>True for the "other" binary VRs OB OD OF OL OV OW UN.</summary>
    public bool IsBinary => ValueKind == Kind.Other;

    /// <summary>True for binary numbers FD FL SL SS SV UL US UV (fixed-size, multi-valued by count).</summary>
    public bool IsBinaryNumber => ValueKind == Kind.Number;

    /// <summary>
    /// True when explicit VR encoding uses 2 reserved bytes and a 32-bit length (OB OD OF OL OV OW SQ UC UN UR UT SV UV);
    /// false for the 16-bit length form.
    /// </summary>
    public bool HasLongExplicitLength { get; }

    /// <summary>The padding byte for odd-length values: space for strings, NUL for UI and binary VRs.</summary>
    public char PaddingByte => ValueKind == Kind.String && this != UI ? ' ' : '\0';

    /// <summary>The size in bytes of one value word: the unit of byte swapping between endiannesses (1 = none).</summary>
    public int UnitSize { get; }

    /// <summary>Maximum length of one value in bytes (characters for PN per component group), -1 when unbounded.</summary>
    public int MaxLength { get; }

    /// <summary>True for string VRs whose values are separated by backslash (every string VR except LT, ST, UR, UT).</summary>
    public bool IsMultiValuedString { get; }

    internal Kind ValueKind { get; }

    /// <summary>The code's two ASCII bytes as a little-endian 16-bit value (first letter in the low byte).</summary>
    internal ushort Code16 { get; }

    /// <summary>Parses a two-letter code (upper case).</summary>
    /// <exception cref="FormatException">Not a VR of the standard.</exception>
    public static DicomVR Parse(string code) =>
        TryParse(code, out var vr) ? vr : throw new FormatException($"Not a DICOM VR: '{code}'");

    /// <summary>Parses a two-letter code; false when it is not a VR of the standard.</summary>
    public static bool TryParse(string? code, out DicomVR vr)
    {
        if (code is { Length: 2 } && TryFromBytes((byte)code[0], (byte)code[1], out vr!) && code[0] < 128 && code[1] < 128)
        {
            return true;
        }

        vr = null!;
        return false;
    }

    /// <summary>Looks up the VR for two ASCII bytes as they appear in an explicit VR header.</summary>
    internal static bool TryFromBytes(byte first, byte second, out DicomVR? vr)
    {
        var a = first - 'A';
        var b = second - 'A';
        if ((uint)a < 26 && (uint)b < 26)
        {
            vr = Table[(a * 26) + b];
            return vr is not null;
        }

        vr = null;
        return false;
    }

    private static DicomVR?[] BuildTable()
    {
        var table = new DicomVR?[26 * 26];
        foreach (var vr in All)
        {
            table[((vr.Code[0] - 'A') * 26) + (vr.Code[1] - 'A')] = vr;
        }

        return table;
    }

    /// <summary>The code.</summary>
    public override string ToString() => Code;
}
