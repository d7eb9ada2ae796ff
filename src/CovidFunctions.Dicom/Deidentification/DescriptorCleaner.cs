using System.Collections.Frozen;
using System.Text;

namespace CovidFunctions.Dicom.Deidentification;

/// <summary>
/// The C (clean) action for descriptive text: keeps only tokens from a closed vocabulary of chest-CT protocol words,
/// small numbers with units and reconstruction-kernel codes; everything else (names, IDs, dates, places) is dropped.
/// A description like <c>"ThoraxRoutine 8.0 B70f Smith^John"</c> becomes <c>"B70f"</c>-like residue at worst.
/// </summary>
public static class DescriptorCleaner
{
    private static readonly FrozenSet<string> Vocabulary = new[]
    {
        "CT", "CHEST", "THORAX", "THORACIC", "LUNG", "LUNGS", "PULMONARY", "ABDOMEN", "PELVIS", "HEAD", "NECK", "BODY", "WHOLE",
        "AXIAL", "AX", "CORONAL", "COR", "SAGITTAL", "SAG", "MPR", "MIP", "MINIP", "VRT", "3D", "2D", "HRCT", "HR", "LOW", "DOSE",
        "LD", "LDCT", "STANDARD", "STD", "ROUTINE", "HIGH", "RESOLUTION", "SOFT", "TISSUE", "BONE", "MEDIASTINUM", "MEDIASTINAL",
        "WINDOW", "KERNEL", "SHARP", "SMOOTH", "THIN", "THICK", "SLICE", "SLICES", "RECON", "RECONSTRUCTION", "ITERATIVE",
        "CONTRAST", "NONCONTRAST", "NON", "WITH", "WITHOUT", "W", "WO", "W/O", "W/", "C+", "C-", "IV", "ORAL", "ENHANCED",
        "UNENHANCED", "ANGIO", "CTA", "PE", "PROTOCOL", "SCOUT", "TOPOGRAM", "LOCALIZER", "SURVIEW", "SCANOGRAM", "HELICAL",
        "SPIRAL", "SEQUENTIAL", "INSPIRATION", "EXPIRATION", "INSP", "EXP", "PRONE", "SUPINE", "ARTERIAL", "VENOUS", "PORTAL",
        "DELAYED", "PHASE", "SCREENING", "COVID", "COVID-19", "COVID19", "PNEUMONIA", "AND", "OR", "OF", "THE", "TO", "AT", "IN",
        "ON", "FOR", "MM", "ASIR", "ASIR-V", "ADMIRE", "SAFIRE", "IDOSE", "AIDR", "LUNGS", "THORAXROUTINE", "CHESTROUTINE",
        "IMAGE", "IMAGES", "SERIES", "STUDY", "FOLLOW-UP", "FOLLOWUP", "ACQUISITION", "PRIMARY", "ORIGINAL", "DETAIL", "PLUS",
        "NONE", "YES", "NO", "UNKNOWN", "MEDIUM", "SMALL", "LARGE", "ADULT", "PEDIATRIC", "PAEDIATRIC",
    }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    private static readonly FrozenSet<string> KernelPrefixes = new[]
    {
        "B", "C", "D", "H", "I", "Q", "S", "Y", "BR", "BL", "BV", "HR", "QR", "FC", "FL",
    }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    /// <summary>Returns the cleaned text (possibly empty): allow-listed tokens joined by single spaces.</summary>
    public static string Clean(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var sb = new StringBuilder(text.Length);
        foreach (var value in text.Split('\\'))
        {
            if (sb.Length > 0)
            {
                sb.Append('\\');
            }

            var first = true;
            var tokens = value.Split([' ', '\t', '\r', '\n', '_', ',', ';', ':', '(', ')', '[', ']', '"', '\'', '^', '='], StringSplitOptions.RemoveEmptyEntries);
            for (var t = 0; t < tokens.Length; t++)
            {
                var token = tokens[t];
                if (!IsAllowed(token) || InNumberRun(tokens, t))
                {
                    continue;
                }

                if (!first)
                {
                    sb.Append(' ');
                }

                sb.Append(token);
                first = false;
            }
        }

        return sb.ToString().Trim('\\');
    }

    /// <summary>
    /// True when the token is a bare number next to another bare number: an identifier written in groups ("987 654 321",
    /// "12 03 1965", "555_867_5309") would otherwise survive as small numbers. A lone number ("1.0", "5mm") stays.
    /// </summary>
    private static bool InNumberRun(string[] tokens, int index) =>
        IsBareNumber(tokens[index])
        && ((index > 0 && IsBareNumber(tokens[index - 1])) || (index + 1 < tokens.Length && IsBareNumber(tokens[index + 1])));

    private static bool IsBareNumber(string token)
    {
        foreach (var ch in token)
        {
            if (!char.IsAsciiDigit(ch) && ch is not ('.' or '-' or '/' or '+'))
            {
                return false;
            }
        }

        return token.Any(char.IsAsciiDigit);
    }

    /// <summary>True when a token is allowed to survive cleaning.</summary>
    public static bool IsAllowed(string token)
    {
        if (token.Length == 0 || token.Length > 16)
        {
            return false;
        }

        foreach (var ch in token)
        {
            if (ch > 0x7E)
            {
                return false;
            }
        }

        return Vocabulary.Contains(token) || IsSmallNumber(token) || IsKernel(token);
    }

    // 1-3 digits, optional decimal part of 1-2 digits, optional unit: "5", "1.25", "8mm", "120kV".
    private static bool IsSmallNumber(string token)
    {
        var i = 0;
        var digits = 0;
        while (i < token.Length && char.IsAsciiDigit(token[i]))
        {
            i++;
            digits++;
        }

        if (digits is 0 or > 3)
        {
            return false;
        }

        if (i < token.Length && token[i] == '.')
        {
            i++;
            var fraction = 0;
            while (i < token.Length && char.IsAsciiDigit(token[i]))
            {
                i++;
                fraction++;
            }

            if (fraction is 0 or > 2)
            {
                return false;
            }
        }

        var unit = token[i..];
        return unit.Length == 0 || unit.Equals("mm", StringComparison.OrdinalIgnoreCase) || unit.Equals("kv", StringComparison.OrdinalIgnoreCase)
            || unit.Equals("mas", StringComparison.OrdinalIgnoreCase) || unit.Equals("s", StringComparison.OrdinalIgnoreCase);
    }

    // Reconstruction kernels: B70f, Br36d, I30f, FC13, YA... : a known prefix, two digits, an optional letter.
    private static bool IsKernel(string token)
    {
        var i = 0;
        while (i < token.Length && char.IsAsciiLetter(token[i]))
        {
            i++;
        }

        if (i is 0 or > 2 || !KernelPrefixes.Contains(token[..i]))
        {
            return false;
        }

        var rest = token.AsSpan(i);
        return (rest.Length == 2 && char.IsAsciiDigit(rest[0]) && char.IsAsciiDigit(rest[1]))
            || (rest.Length == 3 && char.IsAsciiDigit(rest[0]) && char.IsAsciiDigit(rest[1]) && char.IsAsciiLetter(rest[2]));
    }
}
