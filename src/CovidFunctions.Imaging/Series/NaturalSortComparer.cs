namespace CovidFunctions.Imaging.Series;

/// <summary>
/// Orders file names as people number slices: runs of ASCII digits compare by numeric value (<c>slice2</c> before
/// <c>slice10</c>), everything else character by character ignoring case (invariant upper case). When two names are
/// equal under that rule (<c>img01</c> and <c>img1</c>, <c>A.png</c> and <c>a.png</c>) the one with fewer leading
/// zeros in its first differing number comes first, then ordinal order decides, so the order is total and stable.
/// </summary>
public sealed class NaturalSortComparer : IComparer<string>
{
    public static NaturalSortComparer Instance { get; } = new();

    public int Compare(string? x, string? y)
    {
        if (ReferenceEquals(x, y))
        {
            return 0;
        }

        if (x is null)
        {
            return -1;
        }

        if (y is null)
        {
            return 1;
        }

        var i = 0;
        var j = 0;
        var zerosTieBreak = 0;
        while (i < x.Length && j < y.Length)
        {
            if (char.IsAsciiDigit(x[i]) && char.IsAsciiDigit(y[j]))
            {
                var (xStart, xEnd, xZeros) = DigitRun(x, i);
                var (yStart, yEnd, yZeros) = DigitRun(y, j);
                var xDigits = x.AsSpan(xStart, xEnd - xStart);
                var yDigits = y.AsSpan(yStart, yEnd - yStart);

                // Significant digits: a longer run is a larger number; equal lengths compare digit by digit.
                var c = xDigits.Length.CompareTo(yDigits.Length);
                if (c == 0)
                {
                    c = xDigits.SequenceCompareTo(yDigits);
                }

                if (c != 0)
                {
                    return c;
                }

                if (zerosTieBreak == 0)
                {
                    zerosTieBreak = xZeros.CompareTo(yZeros);
                }

                i = xEnd;
                j = yEnd;
                continue;
            }

            var a = char.ToUpperInvariant(x[i]);
            var b = char.ToUpperInvariant(y[j]);
            if (a != b)
            {
                return a.CompareTo(b);
            }

            i++;
            j++;
        }

        var remaining = (x.Length - i).CompareTo(y.Length - j);
        if (remaining != 0)
        {
            return remaining;
        }

        return zerosTieBreak != 0 ? zerosTieBreak : string.CompareOrdinal(x, y);
    }

    /// <summary>The significant digits <c>[start, end)</c> of the digit run at <paramref name="at"/> and its leading zeros.</summary>
    private static (int Start, int End, int LeadingZeros) DigitRun(string s, int at)
    {
        var end = at;
        while (end < s.Length && char.IsAsciiDigit(s[end]))
        {
            end++;
        }

        var start = at;
        while (start < end - 1 && s[start] == '0')
        {
            start++;
        }

        return (start, end, start - at);
    }
}
