using System.Buffers.Binary;
using System.Collections.Frozen;
using System.Text.RegularExpressions;

namespace CovidFunctions.Dicom.Deidentification;

/// <summary>
/// The attributes the Retain Patient Characteristics Option (113108) keeps are characteristics with a closed form: sex,
/// age, size, weight, smoking status, sex neutered, pregnancy status. The option keeps those, not whatever text a writer
/// put in their place: a value that does not have the form (a name in Patient's Sex, an MRN in Patient's Age) is emptied.
/// Ethnic Group (SH, free text by definition) keeps a value only when every word is an ethnic or racial group term
/// (<see cref="IsEthnicGroup"/>); a name, a date or an ID written there is emptied like any other misfit.
/// </summary>
public static partial class PatientCharacteristics
{
    private static readonly FrozenDictionary<uint, Func<string, bool>> TextForms = new Dictionary<uint, Func<string, bool>>
    {
        [0x00100040] = v => v is "M" or "F" or "O", // Patient's Sex
        [0x00101010] = v => AgeString().IsMatch(v), // Patient's Age
        [0x00101020] = IsDecimal, // Patient's Size (m)
        [0x00101030] = IsDecimal, // Patient's Weight (kg)
        [0x001021A0] = v => v is "YES" or "NO" or "UNKNOWN", // Smoking Status
        [0x00102203] = v => v is "ALTERED" or "UNALTERED", // Patient's Sex Neutered
        [0x00102160] = IsEthnicGroup, // Ethnic Group
    }.ToFrozenDictionary();

    /// <summary>
    /// The words of Ethnic Group values: the US OMB / CDC race and ethnicity categories (White, Black or African American,
    /// Asian, American Indian or Alaska Native, Native Hawaiian or Other Pacific Islander, Hispanic or Latino), the
    /// meanings of PS3.16 CID 6099 Racial Group (Caucasian, Black, Asian, American Indian or Alaska Native, Native
    /// Hawaiian or Pacific Islander), the broad groups other registries use (Arab, Middle Eastern, South Asian, ...),
    /// answers such as Unknown / Declined / Other / Mixed, and their usual abbreviations. Compared case-insensitively.
    /// </summary>
    private static readonly FrozenSet<string> EthnicGroupWords = new[]
    {
        "WHITE", "CAUCASIAN", "CAUCASOID", "EUROPEAN", "BLACK", "AFRICAN", "AMERICAN", "AFRO", "AFRICAN-AMERICAN",
        "AFROAMERICAN", "CARIBBEAN", "ASIAN", "ORIENTAL", "EAST", "SOUTH", "SOUTHEAST", "CENTRAL", "NORTH", "WEST", "INDIAN",
        "PACIFIC", "ISLANDER", "ISLANDERS", "NATIVE", "HAWAIIAN", "ALASKA", "ALASKAN", "ABORIGINAL", "INDIGENOUS",
        "HISPANIC", "LATINO", "LATINA", "LATINX", "NON", "NON-HISPANIC", "NOT", "OR", "AND", "OTHER", "MIXED", "MULTIRACIAL",
        "MULTIPLE", "BIRACIAL", "RACE", "RACES", "ETHNICITY", "UNKNOWN", "UNK", "UNSPECIFIED", "UNAVAILABLE", "UNREPORTED",
        "DECLINED", "REFUSED", "NONE", "ARAB", "MIDDLE", "EASTERN", "JEWISH", "CHINESE", "JAPANESE", "KOREAN", "FILIPINO",
        "VIETNAMESE", "MELANESIAN", "POLYNESIAN", "MAORI", "AA", "AI", "AN", "PI", "NH", "NHW", "NHB", "API", "NA", "N/A",
    }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Words of <see cref="EthnicGroupWords"/> that name no group by themselves: directions and connectives (West Indian,
    /// South Asian, Middle Eastern, Non Hispanic, Asian or Pacific Islander). A value made only of them (West, North,
    /// South West) is not a group; alone, several are surnames (West is in the Faker locales' surname lists).
    /// </summary>
    private static readonly FrozenSet<string> EthnicGroupModifiers = new[]
    {
        "NORTH", "SOUTH", "EAST", "WEST", "SOUTHEAST", "CENTRAL", "MIDDLE", "NON", "NOT", "OR", "AND", "RACE", "RACES",
        "ETHNICITY",
    }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    private static readonly char[] EthnicGroupSeparators = [' ', ',', ';', '/', '-', '_', '(', ')', '.'];

    private const uint PregnancyStatus = 0x001021C0;

    /// <summary>True when the tag is one of the characteristics checked here.</summary>
    public static bool IsChecked(uint tag) => tag == PregnancyStatus || TextForms.ContainsKey(tag);

    /// <summary>
    /// True when the element's value has the characteristic's form (an empty value does). <paramref name="text"/> is the
    /// decoded value of a text attribute (padding trimmed); Pregnancy Status is checked on its raw bytes (US, 1-4).
    /// </summary>
    public static bool Fits(uint tag, DicomValueElement element, string? text)
    {
        ArgumentNullException.ThrowIfNull(element);
        if (element.Length == 0)
        {
            return true;
        }

        if (tag == PregnancyStatus)
        {
            var raw = element.RawValue.Span;
            return raw.Length == 2 && BinaryPrimitives.ReadUInt16LittleEndian(raw) is >= 1 and <= 4;
        }

        return text is not null && TextForms.TryGetValue(tag, out var form) && form(text.Trim());
    }

    /// <summary>
    /// True when an Ethnic Group value (SH, VM 1) is a single letter (the one-letter codes W, B, A, H, O, U, ...) or every
    /// word of it (split at spaces, commas, slashes, hyphens, ...) is a group term of <see cref="EthnicGroupWords"/>, not
    /// all of them directions or connectives (<see cref="EthnicGroupModifiers"/>: West alone is a surname, not a group).
    /// A name, a date or an ID is not; initials written as two letters are not either.
    /// </summary>
    public static bool IsEthnicGroup(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return value.Split('\\').All(one =>
        {
            var text = one.Trim(' ', '\0');
            if (text.Length == 0 || (text.Length == 1 && char.IsAsciiLetter(text[0])))
            {
                return true;
            }

            string[] words = EthnicGroupWords.Contains(text) ? [text] : text.Split(EthnicGroupSeparators, StringSplitOptions.RemoveEmptyEntries);
            return words.All(EthnicGroupWords.Contains) && !words.All(EthnicGroupModifiers.Contains);
        });
    }

    private static bool IsDecimal(string value) =>
        value.Length is > 0 and <= 16 && double.TryParse(value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out _);

    [GeneratedRegex("^[0-9]{3}[DWMY]$", RegexOptions.CultureInvariant)]
    private static partial Regex AgeString();
}
