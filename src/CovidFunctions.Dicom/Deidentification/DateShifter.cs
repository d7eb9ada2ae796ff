using System.Globalization;
using System.Text;

namespace CovidFunctions.Dicom.Deidentification;

/// <summary>
/// Shifts DA and DT values by a whole number of days, keeping each value's precision and, for DT, its time part and UTC
/// offset. TM values need no change under a whole-day shift, so date + time pairs stay consistent. Partial dates (YYYY,
/// YYYYMM) are completed with the first month/day, shifted, and cut back to their precision. Ranges (<c>A-B</c>) and
/// multiple values (<c>\</c>) are shifted part by part. A value that is not a date returns null (the caller empties it).
/// </summary>
public static class DateShifter
{
    /// <summary>Shifts a DA value (possibly multi-valued or a range); null when a part is not a valid date.</summary>
    public static string? ShiftDA(string value, int days) => ShiftEach(value, days, false, ShiftDatePart);

    /// <summary>Shifts a DT value (possibly multi-valued or a range); null when a part is not a valid date-time.</summary>
    public static string? ShiftDT(string value, int days) => ShiftEach(value, days, true, ShiftDateTimePart);

    private static string? ShiftEach(string value, int days, bool isDateTime, Func<string, int, string?> shiftOne)
    {
        var trimmed = value.Trim('\0', ' ');
        if (trimmed.Length == 0)
        {
            return string.Empty;
        }

        var sb = new StringBuilder(trimmed.Length);
        var values = trimmed.Split('\\');
        for (var i = 0; i < values.Length; i++)
        {
            if (i > 0)
            {
                sb.Append('\\');
            }

            var part = values[i].Trim();
            var dash = RangeDash(part, isDateTime);
            if (dash >= 0)
            {
                var left = dash == 0 ? string.Empty : shiftOne(part[..dash], days);
                var right = dash == part.Length - 1 ? string.Empty : shiftOne(part[(dash + 1)..], days);
                if (left is null || right is null)
                {
                    return null;
                }

                sb.Append(left).Append('-').Append(right);
            }
            else
            {
                var shifted = shiftOne(part, days);
                if (shifted is null)
                {
                    return null;
                }

                sb.Append(shifted);
            }
        }

        return sb.ToString();
    }

    // The index of a range dash, or -1. In a DT a '-' followed by exactly four digits (then the end or another '-') after at
    // least four digits is the sign of a UTC offset (&ZZXX), not a range.
    private static int RangeDash(string part, bool isDateTime)
    {
        for (var i = 0; i < part.Length; i++)
        {
            if (part[i] != '-')
            {
                continue;
            }

            var isOffset = isDateTime && i >= 4 && i + 5 <= part.Length
                && part.AsSpan(i + 1, 4).IndexOfAnyExceptInRange('0', '9') < 0
                && (i + 5 == part.Length || part[i + 5] == '-');
            if (!isOffset)
            {
                return i;
            }
        }

        return -1;
    }

    private static string? ShiftDatePart(string date, int days)
    {
        // Also accepts the retired ACR-NEMA form YYYY.MM.DD.
        var digits = date.Length == 10 && date[4] == '.' && date[7] == '.' ? date.Replace(".", string.Empty, StringComparison.Ordinal) : date;
        return ShiftDigits(digits, days);
    }

    private static string? ShiftDateTimePart(string dt, int days)
    {
        var end = 0;
        while (end < dt.Length && end < 8 && char.IsAsciiDigit(dt[end]))
        {
            end++;
        }

        if (end is not (4 or 6 or 8))
        {
            return null;
        }

        var shifted = ShiftDigits(dt[..end], days);
        return shifted is null ? null : shifted + dt[end..];
    }

    private static string? ShiftDigits(string digits, int days)
    {
        if (digits.Length is not (4 or 6 or 8) || digits.AsSpan().IndexOfAnyExceptInRange('0', '9') >= 0)
        {
            return null;
        }

        var year = int.Parse(digits.AsSpan(0, 4), NumberStyles.None, CultureInfo.InvariantCulture);
        var month = digits.Length >= 6 ? int.Parse(digits.AsSpan(4, 2), NumberStyles.None, CultureInfo.InvariantCulture) : 1;
        var day = digits.Length == 8 ? int.Parse(digits.AsSpan(6, 2), NumberStyles.None, CultureInfo.InvariantCulture) : 1;
        if (year < 1 || month is < 1 or > 12 || day < 1 || day > DateTime.DaysInMonth(year, month))
        {
            return null;
        }

        var date = new DateOnly(year, month, day);
        if ((days < 0 && date.DayNumber + days < DateOnly.MinValue.DayNumber) || (days > 0 && date.DayNumber + days > DateOnly.MaxValue.DayNumber))
        {
            return null;
        }

        var shifted = date.AddDays(days);
        var full = shifted.ToString("yyyyMMdd", CultureInfo.InvariantCulture);
        return full[..digits.Length];
    }
}
