using CovidFunctions.Imaging.Preprocessing;

namespace CovidFunctions.Inference;

/// <summary>
/// Keeps lesion output inside the lungs on inputs that carry HU (CT volumes and DICOM series). The lesion network was
/// trained on 2-D lung crops; on a full chest slice it also marks some body wall, table, arms and bowel, which nobody
/// reads as lesion. The lung estimate: pixels at or below <see cref="AirThresholdHu"/> inside the body (the largest
/// region the border cannot reach through air, so the air inside a hollow table or between arm and chest is not lung),
/// regions touching the border dropped and enclosed holes filled (<see cref="LungMask.KeepEnclosedAndFillHoles"/>),
/// also the lesion share's denominator (<see cref="LesionAndLungArea"/>); the region (<c>Region</c>) is that estimate dilated by
/// <see cref="MarginMm"/> in physical units. <see cref="Apply"/> keeps a predicted lesion component whole when at least
/// <see cref="AnchorFraction"/> of it lies in the region, and otherwise only its pixels inside the region; the
/// probability map the study rule ranks slices by is zeroed outside what is kept. 2-D images (no HU) are never
/// restricted. The one implementation shared by <see cref="SeriesScreening"/> (CLI) and the pipeline scorer.
/// Known limit: bowel gas below the diaphragm is enclosed air inside the body and counts as lung.
/// </summary>
public static class LungRestriction
{
    /// <summary>Pixels at or below this HU are lung (or air) candidates.</summary>
    public const float AirThresholdHu = -300f;

    /// <summary>
    /// Margin around the lung estimate, in mm. COVID-19 opacities are typically peripheral and juxtapleural: pure
    /// ground glass is below −300 HU and lies inside the estimate anyway, but subpleural consolidation, bands and
    /// the partial-volume rim at the pleura are denser and sit on the estimate's edge, and the lesion map is
    /// resampled from the 352² model grid (≈1.5 source pixels per model pixel), which blurs that edge by 1–2 pixels.
    /// 5 mm (about 7 pixels at 0.7 mm) keeps those; the chest wall outside the pleura (ribs, muscle, fat: 1–4 cm),
    /// the table and the abdomen below the lungs stay outside it.
    /// </summary>
    public const double MarginMm = 5.0;

    /// <summary>
    /// A predicted lesion component (8-connected) with at least this share of its pixels in the region is kept whole.
    /// Dense consolidation (above −300 HU) that fills the dependent lung against the pleura is not in the HU lung
    /// estimate and can be centimetres deep, more than any margin that still excludes the chest wall; it is connected
    /// to the ground glass and aerated lung around it, so the component it belongs to lies largely in the region
    /// (measured on COVID-19-NY-SBU slices: a pixel-wise cut removed up to a third of such lesions). Components mostly
    /// outside (table, arms, body wall, bowel away from the lungs) keep only their pixels inside the region.
    /// </summary>
    public const double AnchorFraction = 0.25;

    /// <summary>Pixel spacing assumed when a series does not record one: a 350 mm chest field of view over the longer side.</summary>
    public const double AssumedFieldOfViewMm = 350.0;

    /// <summary>The largest margin radius in pixels (guards against nonsense spacings such as 0.001 mm).</summary>
    public const int MaxRadiusPixels = 64;

    /// <summary>The dilated lung region (1 = inside, 0 = outside) of a row-major HU slice.</summary>
    public static byte[] Region(ReadOnlySpan<float> hu, int width, int height, double rowSpacingMm, double columnSpacingMm, double marginMm = MarginMm)
    {
        var air = Prepare(hu.Length, width, height);
        for (var i = 0; i < air.Length; i++)
        {
            air[i] = hu[i] <= AirThresholdHu ? (byte)1 : (byte)0;
        }

        return Finish(air, width, height, rowSpacingMm, columnSpacingMm, marginMm);
    }

    /// <summary>The dilated lung region (1 = inside, 0 = outside) of a row-major 16-bit HU slice (the tiles' form).</summary>
    public static byte[] Region(ReadOnlySpan<short> hu, int width, int height, double rowSpacingMm, double columnSpacingMm, double marginMm = MarginMm)
    {
        var air = Prepare(hu.Length, width, height);
        for (var i = 0; i < air.Length; i++)
        {
            air[i] = hu[i] <= AirThresholdHu ? (byte)1 : (byte)0;
        }

        return Finish(air, width, height, rowSpacingMm, columnSpacingMm, marginMm);
    }

    /// <summary>
    /// The undilated lung estimate (1 = lung) of a row-major 16-bit HU slice and, when <paramref name="restrict"/>, the
    /// restriction region: that estimate dilated by <see cref="MarginMm"/>, which is exactly
    /// <see cref="Region(ReadOnlySpan{short}, int, int, double, double, double)"/> with the margin, so one estimate
    /// serves the restriction and the lesion share's denominator (<see cref="LesionAndLungArea"/>).
    /// </summary>
    public static (byte[] Lung, byte[]? Region) LungAndRegion(ReadOnlySpan<short> hu, int width, int height, double rowSpacingMm, double columnSpacingMm, bool restrict)
    {
        var lung = Region(hu, width, height, rowSpacingMm, columnSpacingMm, marginMm: 0);
        return (lung, restrict ? Dilate(lung, width, height, rowSpacingMm, columnSpacingMm, MarginMm) : null);
    }

    /// <summary>As <see cref="LungAndRegion(ReadOnlySpan{short}, int, int, double, double, bool)"/> for a float HU slice.</summary>
    public static (byte[] Lung, byte[]? Region) LungAndRegion(ReadOnlySpan<float> hu, int width, int height, double rowSpacingMm, double columnSpacingMm, bool restrict)
    {
        var lung = Region(hu, width, height, rowSpacingMm, columnSpacingMm, marginMm: 0);
        return (lung, restrict ? Dilate(lung, width, height, rowSpacingMm, columnSpacingMm, MarginMm) : null);
    }

    /// <summary>
    /// The lesion share's numerator and denominator: lesion pixels, and the pixels of the lung estimate with the lesion
    /// added (consolidation is denser than the air threshold, so the estimate alone misses it). An empty
    /// <paramref name="lung"/> means the whole slice (2-D images carry no HU). The one rule behind the scorer's lesion
    /// burden and the lesion percentages of <c>covidfn segment</c>/<c>classify</c> on series.
    /// </summary>
    public static (long Lesion, long LungWithLesion) LesionAndLungArea(ReadOnlySpan<byte> lesion, ReadOnlySpan<byte> lung)
    {
        if (!lung.IsEmpty && lung.Length != lesion.Length)
        {
            throw new ArgumentException($"{lung.Length} lung pixels for {lesion.Length} lesion pixels.", nameof(lung));
        }

        long lesionPixels = 0, area = 0;
        for (var i = 0; i < lesion.Length; i++)
        {
            var isLesion = lesion[i] != 0;
            lesionPixels += isLesion ? 1 : 0;
            area += isLesion || lung.IsEmpty || lung[i] != 0 ? 1 : 0;
        }

        return (lesionPixels, area);
    }

    /// <summary>
    /// A usable (row, column) pixel spacing: the recorded one when both values are positive and finite, else
    /// <see cref="AssumedFieldOfViewMm"/> over the longer side for both.
    /// </summary>
    public static (double Row, double Column) SpacingOrAssumed(double? rowSpacingMm, double? columnSpacingMm, int width, int height)
    {
        static bool Usable(double? v) => v is { } d && double.IsFinite(d) && d > 0;
        if (Usable(rowSpacingMm) && Usable(columnSpacingMm))
        {
            return (rowSpacingMm!.Value, columnSpacingMm!.Value);
        }

        var assumed = AssumedFieldOfViewMm / Math.Max(1, Math.Max(width, height));
        return (assumed, assumed);
    }

    /// <summary>
    /// Dilates a 0/1 (or 0/non-zero) mask by an ellipse of <paramref name="marginMm"/> in physical units (radius
    /// <c>margin / spacing</c> pixels along each axis); returns a new 0/1 mask.
    /// </summary>
    public static byte[] Dilate(ReadOnlySpan<byte> mask, int width, int height, double rowSpacingMm, double columnSpacingMm, double marginMm)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(marginMm);
        var (rowSpacing, columnSpacing) = SpacingOrAssumed(rowSpacingMm, columnSpacingMm, width, height);
        var plane = width * height;
        var result = new byte[plane];
        for (var i = 0; i < plane; i++)
        {
            result[i] = mask[i] != 0 ? (byte)1 : (byte)0;
        }

        var ry = Math.Min(MaxRadiusPixels, (int)Math.Floor(marginMm / rowSpacing));
        var rx = Math.Min(MaxRadiusPixels, (int)Math.Floor(marginMm / columnSpacing));
        if (rx == 0 && ry == 0)
        {
            return result;
        }

        // Half-width of the structuring ellipse on each row offset: (dx·cs)² + (dy·rs)² ≤ margin².
        var halfWidth = new int[(2 * ry) + 1];
        for (var dy = -ry; dy <= ry; dy++)
        {
            var remaining = (marginMm * marginMm) - ((dy * rowSpacing) * (dy * rowSpacing));
            halfWidth[dy + ry] = remaining < 0 ? -1 : Math.Min(rx, (int)Math.Floor(Math.Sqrt(remaining) / columnSpacing));
        }

        // Only edge pixels (inside, with a 4-neighbour outside) can add anything: stamp the ellipse's row spans there.
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                var i = (y * width) + x;
                if (mask[i] == 0)
                {
                    continue;
                }

                var edge = (x > 0 && mask[i - 1] == 0) || (x < width - 1 && mask[i + 1] == 0)
                    || (y > 0 && mask[i - width] == 0) || (y < height - 1 && mask[i + width] == 0);
                if (!edge)
                {
                    continue;
                }

                for (var dy = -ry; dy <= ry; dy++)
                {
                    var yy = y + dy;
                    var hw = halfWidth[dy + ry];
                    if (yy < 0 || yy >= height || hw < 0)
                    {
                        continue;
                    }

                    var from = Math.Max(0, x - hw);
                    var to = Math.Min(width - 1, x + hw);
                    result.AsSpan((yy * width) + from, to - from + 1).Fill(1);
                }
            }
        }

        return result;
    }

    /// <summary>
    /// The shared last step of both serving paths for one slice: its <see cref="SliceSummary"/> for the study rule
    /// and its binary lesion mask (0/255) on the <paramref name="height"/>×<paramref name="width"/> slice grid. With
    /// <paramref name="region"/> null (2-D images, or the restriction off) exactly the unrestricted output; otherwise
    /// mask pixels outside <see cref="KeptRegion"/> (the region plus the lesion components anchored in it) are 0, and
    /// the summary (ranking key and lesion fraction) is computed on the model-grid map with every pixel outside the
    /// kept region (brought to the model grid with the same letterbox resize, any overlap counting as inside) set to 0.
    /// </summary>
    public static RestrictedSlice Apply(int sliceIndex, SlicePrediction prediction, LetterboxBox box, int height, int width, float threshold, byte[]? region)
    {
        ArgumentNullException.ThrowIfNull(prediction);
        var mask = LungPreprocessor.MaskToImage(prediction.LesionProbability, box, height, width, threshold);
        if (region is null)
        {
            return new RestrictedSlice(SliceSummary.From(sliceIndex, prediction, threshold), mask, prediction);
        }

        if (region.Length != mask.Length)
        {
            throw new ArgumentException($"The lung region has {region.Length} pixels, the slice {width}×{height}.", nameof(region));
        }

        var kept = KeptRegion(mask, region, width, height);
        for (var i = 0; i < mask.Length; i++)
        {
            if (kept[i] == 0)
            {
                mask[i] = 0;
            }
        }

        var restricted = RestrictMap(prediction.LesionProbability, kept, width, height);
        var restrictedPrediction = prediction with { LesionProbability = restricted };
        return new RestrictedSlice(SliceSummary.From(sliceIndex, restrictedPrediction, threshold), mask, restrictedPrediction);
    }

    /// <summary>
    /// Where lesion output is kept on a slice: <paramref name="region"/> plus every 8-connected component of
    /// <paramref name="mask"/> with at least <see cref="AnchorFraction"/> of its pixels in the region (0/1).
    /// </summary>
    public static byte[] KeptRegion(ReadOnlySpan<byte> mask, ReadOnlySpan<byte> region, int width, int height)
    {
        var plane = width * height;
        var kept = new byte[plane];
        for (var i = 0; i < plane; i++)
        {
            kept[i] = region[i] != 0 ? (byte)1 : (byte)0;
        }

        var visited = new bool[plane];
        var component = new List<int>();
        var stack = new Stack<int>();
        for (var seed = 0; seed < plane; seed++)
        {
            if (mask[seed] == 0 || visited[seed])
            {
                continue;
            }

            component.Clear();
            visited[seed] = true;
            stack.Push(seed);
            var inside = 0;
            while (stack.Count > 0)
            {
                var i = stack.Pop();
                component.Add(i);
                inside += region[i] != 0 ? 1 : 0;
                int x = i % width, y = i / width;
                for (var dy = -1; dy <= 1; dy++)
                {
                    for (var dx = -1; dx <= 1; dx++)
                    {
                        int xx = x + dx, yy = y + dy;
                        if (xx < 0 || yy < 0 || xx >= width || yy >= height)
                        {
                            continue;
                        }

                        var j = (yy * width) + xx;
                        if (mask[j] != 0 && !visited[j])
                        {
                            visited[j] = true;
                            stack.Push(j);
                        }
                    }
                }
            }

            if (inside < component.Count && inside >= AnchorFraction * component.Count)
            {
                foreach (var i in component)
                {
                    kept[i] = 1;
                }
            }
        }

        return kept;
    }

    /// <summary>The S×S probability map with every pixel outside the (slice-grid) region's letterboxed image set to 0.</summary>
    public static float[] RestrictMap(ReadOnlySpan<float> probability, ReadOnlySpan<byte> region, int width, int height)
    {
        var regionImage = new float[width * height];
        for (var i = 0; i < regionImage.Length; i++)
        {
            regionImage[i] = region[i] != 0 ? 1f : 0f;
        }

        var size = LungPreprocessor.InputSize;
        var onModelGrid = new float[size * size];
        LungPreprocessor.ToTensor(new GreyImage(width, height, regionImage), onModelGrid, size);
        var restricted = probability.ToArray();
        for (var i = 0; i < restricted.Length; i++)
        {
            if (onModelGrid[i] <= 0f)
            {
                restricted[i] = 0f;
            }
        }

        return restricted;
    }

    private static byte[] Prepare(int length, int width, int height)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        if (length < width * height)
        {
            throw new ArgumentException($"{length} values for a {width}×{height} slice.");
        }

        return new byte[width * height];
    }

    private static byte[] Finish(byte[] air, int width, int height, double rowSpacingMm, double columnSpacingMm, double marginMm)
    {
        KeepBodyAir(air, width, height);
        LungMask.KeepEnclosedAndFillHoles(air, width, height);
        return Dilate(air, width, height, rowSpacingMm, columnSpacingMm, marginMm);
    }

    /// <summary>
    /// In place on a 0/1 air mask: keeps the air inside the body, the largest 4-connected region of pixels that the
    /// border cannot reach through air. Other such regions (a hollow table, arms, blankets) lose their air.
    /// </summary>
    private static void KeepBodyAir(byte[] air, int width, int height)
    {
        var plane = width * height;

        // 0 = not yet visited, −1 = border-connected air, k > 0 = k-th region not reachable from the border through air.
        var label = new int[plane];
        var stack = new Stack<int>();
        void Flood(int seed, int value, Func<int, bool> member, ref int count)
        {
            label[seed] = value;
            stack.Push(seed);
            while (stack.Count > 0)
            {
                var i = stack.Pop();
                count++;
                var x = i % width;
                ReadOnlySpan<int> next = [x > 0 ? i - 1 : -1, x < width - 1 ? i + 1 : -1, i >= width ? i - width : -1, i < plane - width ? i + width : -1];
                foreach (var j in next)
                {
                    if (j >= 0 && label[j] == 0 && member(j))
                    {
                        label[j] = value;
                        stack.Push(j);
                    }
                }
            }
        }

        var ignored = 0;
        for (var i = 0; i < plane; i++)
        {
            var x = i % width;
            var y = i / width;
            var onBorder = x == 0 || y == 0 || x == width - 1 || y == height - 1;
            if (onBorder && air[i] != 0 && label[i] == 0)
            {
                Flood(i, -1, j => air[j] != 0, ref ignored);
            }
        }

        int regions = 0, largest = 0, largestSize = 0;
        for (var i = 0; i < plane; i++)
        {
            if (label[i] != 0)
            {
                continue;
            }

            var size = 0;
            Flood(i, ++regions, j => true, ref size);
            if (size > largestSize)
            {
                (largest, largestSize) = (regions, size);
            }
        }

        for (var i = 0; i < plane; i++)
        {
            if (label[i] != largest)
            {
                air[i] = 0;
            }
        }
    }
}

/// <summary>One slice after <see cref="LungRestriction.Apply"/>: the study-rule summary, the 0/255 mask on the slice grid and the (restricted) prediction.</summary>
public sealed record RestrictedSlice(SliceSummary Summary, byte[] Mask, SlicePrediction Prediction);
