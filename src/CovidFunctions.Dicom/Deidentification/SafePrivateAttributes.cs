using System.Collections.Frozen;
using System.Text.RegularExpressions;

namespace CovidFunctions.Dicom.Deidentification;

/// <summary>One row of PS3.15 Table E.3.10-1: a private attribute that the standard lists as safe to retain.</summary>
/// <param name="Group">The odd group.</param>
/// <param name="Offset">The element's low byte; its high byte is the creator block (<c>xx</c>), assigned per instance.</param>
/// <param name="Tag">The tag as written in the standard, e.g. <c>(0019,xx23)</c>.</param>
/// <param name="Creator">The private creator string (case-sensitive, without padding).</param>
/// <param name="VR">The VR, empty where the standard gives none.</param>
/// <param name="VM">The VM.</param>
/// <param name="Meaning">The meaning column.</param>
public sealed record SafePrivateAttribute(ushort Group, byte Offset, string Tag, string Creator, string VR, string VM, string Meaning);

/// <summary>
/// PS3.15 Table E.3.10-1 "Safe Private Attributes" (generated rows in <c>Generated/SafePrivateAttributes.g.cs</c>), used
/// by the Retain Safe Private Option (113111): a private element is safe when its group, its resolved private creator and
/// its element offset match a row; the creator block byte does not matter.
/// </summary>
public static partial class SafePrivateAttributes
{
    private static readonly FrozenDictionary<(ushort Group, string Creator, byte Offset), SafePrivateAttribute> Keys;

    static SafePrivateAttributes()
    {
        Rows = CreateStandardRows();
        var keys = new Dictionary<(ushort, string, byte), SafePrivateAttribute>();
        foreach (var row in Rows)
        {
            keys.TryAdd((row.Group, row.Creator, row.Offset), row);
        }

        Keys = keys.ToFrozenDictionary();
    }

    /// <summary>Every row, in the order of the standard.</summary>
    public static IReadOnlyList<SafePrivateAttribute> Rows { get; }

    /// <summary>
    /// True when (group, creator, offset) is a row of the table. <paramref name="creator"/> is compared case-sensitively
    /// after trimming leading/trailing spaces and NULs (value padding).
    /// </summary>
    public static bool IsSafe(ushort group, string? creator, byte offset) => Find(group, creator, offset) is not null;

    /// <summary>
    /// True when <paramref name="value"/> is what <paramref name="row"/> says it holds, so that "safe" is not taken on the
    /// tag's word: binary numbers (FL FD SL SS UL US) a whole number of values, no more than the row's VM allows, that
    /// read as numbers, not text (<see cref="KeptValueForms.ReadsAsNumbers"/>); DS, IS and UI text only of their VR's
    /// characters and lengths, no more values than the VM allows (an empty value fits); CS rows only their terms
    /// (<see cref="CsTerms"/>; a CS row without terms is never kept); text rows (LO SH LT) the form of
    /// their row (<see cref="TextForms"/>: a pulse sequence name, a pitch ratio, a version, a unit), and a text row with
    /// no form that can be stated is never kept; OB rows only the Padding row, as padding (NUL or space bytes): the others
    /// are vendor payloads (compressed images, acoustic data, application state) no rule can read. A row the standard
    /// gives no VR, or an SQ row (whose items the engine de-identifies when it was read as a sequence), never fits as a value.
    /// </summary>
    public static bool ValueFits(SafePrivateAttribute row, ReadOnlySpan<byte> value)
    {
        ArgumentNullException.ThrowIfNull(row);
        var maxVm = MaxValues(row.VM);
        var unit = row.VR switch { "FL" or "SL" or "UL" => 4, "FD" => 8, "SS" or "US" => 2, _ => 0 };
        if (unit > 0)
        {
            return value.Length % unit == 0 && value.Length / unit <= maxVm && KeptValueForms.ReadsAsNumbers(DicomVR.Parse(row.VR), value);
        }

        switch (row.VR)
        {
            case "LO" or "SH" or "LT":
                var written = System.Text.Encoding.Latin1.GetString(value).TrimEnd('\0', ' ').Trim();
                return written.Length == 0
                    || (TextForms.TryGetValue((row.Group, row.Creator, row.Offset), out var form) && form(written));
            case "OB":
                return row.Meaning == "Padding" && value.IndexOfAnyExcept((byte)0, (byte)' ') < 0;
            case "" or "SQ":
                return false;
            case "CS":
                // Held to CS characters only until session 22, so an upper-case name passed: now each CS row keeps only
                // its terms (CsTerms), and a row without terms that can be stated is never kept.
                var coded = System.Text.Encoding.Latin1.GetString(value).TrimEnd('\0', ' ');
                var codes = coded.Split('\\');
                return coded.Length == 0
                    || (CsTerms.TryGetValue((row.Group, row.Creator, row.Offset), out var terms) && codes.Length <= maxVm
                        && codes.All(c => c.Trim(' ') is var t && (t.Length == 0 || terms.Contains(t))));
        }

        var (maxLength, allowed) = row.VR switch
        {
            "DS" => (16, "0123456789+-.eE "),
            "IS" => (12, "0123456789+- "),
            "UI" => (64, "0123456789."),
            _ => (0, string.Empty),
        };
        if (maxLength == 0)
        {
            return true;
        }

        var text = System.Text.Encoding.Latin1.GetString(value).TrimEnd('\0', ' ');
        var values = text.Split('\\');
        return text.Length == 0
            || (values.Length <= maxVm && values.All(v => v.Length <= maxLength && v.All(c => allowed.Contains(c, StringComparison.Ordinal))));
    }

    /// <summary>
    /// The terms of each CS row of Table E.3.10-1 (2017c) that has them, keyed by group, creator and offset. Not listed,
    /// so never kept: SC2000 (0129,xx30) Raw Data Object Type (ultrasound raw data labels the standard does not describe,
    /// as the other SC2000 text rows).
    /// </summary>
    private static readonly FrozenDictionary<(ushort Group, string Creator, byte Offset), FrozenSet<string>> CsTerms =
        new Dictionary<(ushort, string, byte), FrozenSet<string>>
        {
            // ELSCINT1 Acquisition Type: the corpus's SLICES, the standard's Acquisition Type (0018,9302) terms and the
            // CT acquisition kinds (spiral, axial, scanogram/surview, dynamic, cine, volume).
            [(0x01F1, "ELSCINT1", 0x01)] = Codes(
                "SLICES", "SPIRAL", "HELICAL", "AXIAL", "SEQUENCED", "CONSTANT_ANGLE", "STATIONARY", "FREE", "SCANOGRAM",
                "SURVIEW", "DYNAMIC", "CINE", "VOLUME"),
            // ELSCINT1 Phantom Type: the CTDI dosimetry phantoms (PS3.16 CID 4052: IEC head, IEC body), or none.
            [(0x01E1, "ELSCINT1", 0x26)] = Codes("HEAD", "BODY", "NONE"),
            // Philips Diffusion Direction: one direction letter (I isotropic, O oblique, R/L, A/P, F/H, S).
            [(0x2001, "Philips Imaging DD 001", 0x04)] = Codes("I", "O", "R", "L", "A", "P", "F", "H", "S"),
            // SIEMENS MR HEADER Diffusion Directionality: the terms of the standard's (0018,9075).
            [(0x0019, "SIEMENS MR HEADER", 0x0D)] = Codes("DIRECTIONAL", "BMATRIX", "ISOTROPIC", "NONE"),
        }.ToFrozenDictionary();

    private static FrozenSet<string> Codes(params string[] codes) => codes.ToFrozenSet(StringComparer.Ordinal);

    /// <summary>Units a quantitative result is given in (NQHeader Units): lengths, volumes, masses, ratios.</summary>
    private static readonly FrozenSet<string> Units = new[]
    {
        "mm", "cm", "m", "mm2", "cm2", "mm3", "cm3", "mm^3", "cm^3", "ml", "cc", "l", "dl", "ul", "g", "mg", "kg", "%", "ratio",
        "s", "ms", "HU", "1", "none", "voxels", "mm^2", "cm^2",
    }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// GE pulse sequence family names (Internal Pulse Sequence Name holds one, e.g. <c>EFGRE3D</c>, <c>FSE-XL</c>).
    /// </summary>
    private static readonly FrozenSet<string> PulseSequenceWords = new[]
    {
        "SE", "FSE", "FRFSE", "SSFSE", "XL", "IR", "FSEIR", "FLAIR", "GRE", "FGRE", "EFGRE", "MPGR", "SPGR", "FSPGR", "MFGRE",
        "EPI", "DWI", "DTI", "FIESTA", "FIESTAC", "BRAVO", "CUBE", "PROPELLER", "LAVA", "VIBRANT", "TOF", "PC", "SWAN", "IDEAL",
        "TRICKS", "MERGE", "COSMIC", "PLANE", "SCOUT", "CINE", "FASTCINE", "SSFP", "ASL", "PRESS", "STEAM", "MRS",
    }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// The form of each text row of Table E.3.10-1 (2017c) that has one, keyed by group, creator and offset; a text row
    /// not listed has no form that can be stated and is never kept: Hologic Codec Content Type (it types the Codec Content,
    /// an OB row that is never kept), NQHeader Return Message (a free-text message), SC2000 Acoustic Stream Type and the
    /// unnamed (0119,xx21) (ultrasound stream labels the standard does not describe).
    /// </summary>
    private static readonly FrozenDictionary<(ushort Group, string Creator, byte Offset), Func<string, bool>> TextForms =
        new Dictionary<(ushort, string, byte), Func<string, bool>>
        {
            [(0x0019, "GEMS_ACQU_01", 0x9E)] = IsPulseSequenceName, // Internal Pulse Sequence Name (LO)
            [(0x0043, "GEMS_PARM_01", 0x27)] = v => PitchRatio().IsMatch(v), // Scan Pitch Ratio "n.nnn:1" (SH; "/1.3:1" in the corpus)
            [(0x7E01, "HOLOGIC, Inc.", 0x01)] = IsVersion, // Codec Version (LO)
            [(0x0099, "NQHeader", 0x20)] = v => Units.Contains(v), // Units (SH)
            [(0x0119, "SIEMENS Ultrasound SC2000", 0x00)] = IsVersion, // Acoustic Meta Information Version (LO)
        }.ToFrozenDictionary();

    /// <summary>
    /// A pulse sequence name: one token (at most 16 characters) of family words (<see cref="PulseSequenceWords"/>) joined
    /// by '-' or '_', with an optional 2D/3D before or after and an optional single digit at the end (EFGRE3D, FSE-XL, EPI2,
    /// 3-PLANE). A name, a date or an ID is not one.
    /// </summary>
    private static bool IsPulseSequenceName(string value)
    {
        if (value.Length > 16 || value.Any(c => !char.IsAsciiLetterOrDigit(c) && c is not ('-' or '_')))
        {
            return false;
        }

        var rest = value.ToUpperInvariant();
        foreach (var prefix in new[] { "2D", "3D", "3-", "2-" })
        {
            if (rest.StartsWith(prefix, StringComparison.Ordinal))
            {
                rest = rest[prefix.Length..];
                break;
            }
        }

        if (rest.EndsWith("2D", StringComparison.Ordinal) || rest.EndsWith("3D", StringComparison.Ordinal))
        {
            rest = rest[..^2];
        }
        else if (rest.Length > 0 && char.IsAsciiDigit(rest[^1]))
        {
            rest = rest[..^1];
        }

        var words = rest.Split(['-', '_'], StringSplitOptions.RemoveEmptyEntries);
        return words.Length > 0 && words.All(PulseSequenceWords.Contains);
    }

    /// <summary>
    /// A version: an optional V, one to four dot-separated numbers of at most three digits, an optional letter, and no
    /// more than five digits in all (<c>1.0</c>, <c>V2.3.1b</c>); a date (<c>1931.04.17</c>, <c>31.04.17</c>) or an ID is not.
    /// </summary>
    private static bool IsVersion(string value) =>
        VersionForm().IsMatch(value) && value.Count(char.IsAsciiDigit) <= 5;

    [GeneratedRegex("^/?[0-9]{1,2}(\\.[0-9]{1,4})?:1$", RegexOptions.CultureInvariant)]
    private static partial Regex PitchRatio();

    [GeneratedRegex("^[Vv]?[0-9]{1,3}(\\.[0-9]{1,3}){0,3}[A-Za-z]?$", RegexOptions.CultureInvariant)]
    private static partial Regex VersionForm();

    /// <summary>The largest number of values the row's VM allows ("1", "3-4", "1-n").</summary>
    private static int MaxValues(string vm)
    {
        var parts = vm.Split('-');
        var last = parts[^1];
        return int.TryParse(last, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var max) ? max : int.MaxValue;
    }

    /// <summary>The row for (group, creator, offset), or null; creator compared as in <see cref="IsSafe"/>.</summary>
    public static SafePrivateAttribute? Find(ushort group, string? creator, byte offset) =>
        creator is not null && Keys.TryGetValue((group, creator.Trim(' ', '\0'), offset), out var row) ? row : null;
}
