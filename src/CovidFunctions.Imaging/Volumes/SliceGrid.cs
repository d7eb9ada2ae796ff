namespace CovidFunctions.Imaging.Volumes;

/// <summary>
/// Where the slices of a stack go on a uniform grid, for formats that store one slice step (NIfTI): slice k of the
/// stack is grid slice <see cref="GridIndex"/>[k]; grid slices no stack slice fills (missing slices) are left empty.
/// </summary>
/// <param name="GridIndex">For each stack slice (in stack order), its index on the grid.</param>
/// <param name="GridSlices">The number of grid slices.</param>
/// <param name="Step">The displacement (LPS, mm) from one grid slice to the next: along the slice normal, or sheared
/// when the slices are (gantry tilt).</param>
/// <param name="Uniform">False when the gaps are not whole multiples of the nominal spacing (variable spacing): the
/// grid then has one slice per stack slice at the mean step, and positions between the first and last slice are
/// approximate (<see cref="Note"/> says by how much).</param>
/// <param name="Note">What a reader of the grid should know (missing slices filled, variable spacing), or null.</param>
public sealed record SliceGrid(IReadOnlyList<int> GridIndex, int GridSlices, Vec3 Step, bool Uniform, string? Note)
{
    /// <summary>
    /// Plans the grid for a stack with geometry <paramref name="geometry"/> whose slice <c>k</c> has pixel (0, 0) at
    /// <paramref name="firstPixelPositions"/>[k] (LPS; null when unknown: the displacement is then taken along the
    /// normal; <paramref name="singleSliceThickness"/> is the step of a one-slice stack). A gap is a whole multiple m of the nominal spacing (the median, else the smallest) when it is within
    /// 10 % of the spacing (and 0.1 mm at least) of m·spacing; then m − 1 empty grid slices stand for the missing ones.
    /// </summary>
    public static SliceGrid Plan(VolumeGeometry geometry, IReadOnlyList<Vec3>? firstPixelPositions = null, double? singleSliceThickness = null)
    {
        ArgumentNullException.ThrowIfNull(geometry);
        var n = geometry.Slices;
        var along = geometry.SlicePositions;
        if (n < 2)
        {
            // One slice has no spacing: its thickness (DICOM SliceThickness) is the step, else 1 mm.
            return new SliceGrid([0], 1, geometry.Normal * (singleSliceThickness is > 0 and var t ? t : 1), true, null);
        }

        // The step is the median spacing or, when that fails (as many gaps as steps: 0, 8, 24 has median 16), the
        // smallest one.
        var gaps = Enumerable.Range(1, n - 1).Select(k => Math.Abs(along[k] - along[k - 1])).ToArray();
        var nominal = geometry.SliceSpacing;
        var index = WholeMultiples(gaps, nominal) ?? WholeMultiples(gaps, gaps.Min());
        var uniform = index is not null;
        index ??= Enumerable.Range(0, n).ToArray();

        var count = index[^1] + 1;
        var total = firstPixelPositions is { Count: > 0 } p && p.Count == n
            ? p[^1] - p[0]
            : geometry.Normal * (along[^1] - along[0]);
        var step = total * (1.0 / (count - 1));
        string? note = null;
        if (!uniform)
        {
            var worst = Enumerable.Range(0, n).Max(k => Math.Abs(along[k] - along[0] - (k * (along[^1] - along[0]) / (n - 1))));
            note = FormattableString.Invariant($"slice spacing varies and is not a whole multiple of one spacing (median {nominal:0.###} mm): the {n} slices are stored at an even step of {step.Length:0.###} mm, so a slice's stored position is off by up to {worst:0.###} mm");
        }
        else if (count > n)
        {
            note = FormattableString.Invariant($"{count - n} missing slice position(s) filled with empty slices, so every slice keeps its position on an even {step.Length:0.###} mm grid ({count} slices)");
        }

        return new SliceGrid(index, count, step, uniform, note);
    }

    /// <summary>Grid indices when every gap is a whole multiple (≥ 1) of <paramref name="spacing"/>, else null.</summary>
    private static int[]? WholeMultiples(double[] gaps, double spacing)
    {
        if (spacing <= 0)
        {
            return null;
        }

        var index = new int[gaps.Length + 1];
        for (var k = 0; k < gaps.Length; k++)
        {
            var m = (int)Math.Round(gaps[k] / spacing);
            if (m < 1 || Math.Abs(gaps[k] - (m * spacing)) > Math.Max(0.1, 0.1 * spacing))
            {
                return null;
            }

            index[k + 1] = index[k] + m;
        }

        return index;
    }
}
