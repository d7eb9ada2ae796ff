using System.Collections.Frozen;

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
    /// tag's word: binary numbers (FL FD SL SS UL US) a whole number of values, no more than the row's VM allows; DS, IS,
    /// CS and UI text only of their VR's characters and lengths, no more values than the VM allows (an empty value fits). Text rows (LO SH LT), OB and SQ are not checked here.
    /// </summary>
    public static bool ValueFits(SafePrivateAttribute row, ReadOnlySpan<byte> value)
    {
        ArgumentNullException.ThrowIfNull(row);
        var maxVm = MaxValues(row.VM);
        var unit = row.VR switch { "FL" or "SL" or "UL" => 4, "FD" => 8, "SS" or "US" => 2, _ => 0 };
        if (unit > 0)
        {
            return value.Length % unit == 0 && value.Length / unit <= maxVm;
        }

        var (maxLength, allowed) = row.VR switch
        {
            "DS" => (16, "0123456789+-.eE "),
            "IS" => (12, "0123456789+- "),
            "CS" => (16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_ "),
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
