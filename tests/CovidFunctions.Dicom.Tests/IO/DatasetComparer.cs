using System.Text;

namespace CovidFunctions.Dicom.Tests.IO;

/// <summary>Structural comparison of datasets for round-trip tests; returns the first difference or null.</summary>
internal static class DatasetComparer
{
    /// <param name="a">Expected.</param>
    /// <param name="b">Actual.</param>
    /// <param name="compareVR">Compare VRs (false when one side went through implicit VR).</param>
    /// <param name="tolerateOddPadding">Treat an odd-length value and the same value plus one padding byte as equal.</param>
    public static string? Difference(DicomDataset a, DicomDataset b, bool compareVR = true, bool tolerateOddPadding = true, string path = "")
    {
        var left = a.Where(e => !e.Tag.IsGroupLength).ToList();
        var right = b.Where(e => !e.Tag.IsGroupLength).ToList();
        if (left.Count != right.Count)
        {
            var missing = left.Select(e => e.Tag).Except(right.Select(e => e.Tag)).Concat(right.Select(e => e.Tag).Except(left.Select(e => e.Tag)));
            return $"{path}: {left.Count} vs {right.Count} elements (differing: {string.Join(", ", missing.Take(5))})";
        }

        for (var i = 0; i < left.Count; i++)
        {
            var x = left[i];
            var y = right[i];
            var here = path + x.Tag;
            if (x.Tag != y.Tag)
            {
                return $"{here}: tag {x.Tag} vs {y.Tag}";
            }

            if (compareVR && x.VR != y.VR)
            {
                return $"{here}: VR {x.VR} vs {y.VR}";
            }

            switch (x, y)
            {
                case (DicomValueElement v, DicomValueElement w):
                    var p = v.RawValue.Span;
                    var q = w.RawValue.Span;
                    if (!p.SequenceEqual(q))
                    {
                        var paddedEqual = tolerateOddPadding && Math.Abs(p.Length - q.Length) == 1
                            && (p.Length < q.Length ? q[..p.Length].SequenceEqual(p) : p[..q.Length].SequenceEqual(q));
                        if (!paddedEqual)
                        {
                            return $"{here}: value {Show(p)} vs {Show(q)}";
                        }
                    }

                    break;
                case (DicomSequence s, DicomSequence t):
                    if (s.Items.Count != t.Items.Count)
                    {
                        return $"{here}: {s.Items.Count} vs {t.Items.Count} items";
                    }

                    for (var k = 0; k < s.Items.Count; k++)
                    {
                        if (Difference(s.Items[k], t.Items[k], compareVR, tolerateOddPadding, $"{here}[{k}].") is { } d)
                        {
                            return d;
                        }
                    }

                    break;
                case (DicomFragmentSequence f, DicomFragmentSequence g):
                    if (!f.BasicOffsetTable.Span.SequenceEqual(g.BasicOffsetTable.Span) || f.Fragments.Count != g.Fragments.Count)
                    {
                        return $"{here}: offset table or fragment count differs";
                    }

                    for (var k = 0; k < f.Fragments.Count; k++)
                    {
                        if (!f.Fragments[k].RawValue.Span.SequenceEqual(g.Fragments[k].RawValue.Span))
                        {
                            return $"{here}: fragment {k} differs";
                        }
                    }

                    break;
                default:
                    return $"{here}: {x.GetType().Name} vs {y.GetType().Name}";
            }
        }

        return null;
    }

    private static string Show(ReadOnlySpan<byte> bytes)
    {
        var sb = new StringBuilder();
        sb.Append('[').Append(bytes.Length).Append("] ");
        sb.Append(Convert.ToHexString(bytes[..Math.Min(bytes.Length, 16)]));
        return sb.ToString();
    }
}
