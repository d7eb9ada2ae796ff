using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.Imaging.Series;
using CovidFunctions.Imaging.Tiles;

namespace CovidFunctions.Inference;

/// <summary>
/// One screened slice of a series: its summary for the study rule, its label, its binary lesion mask on the slice
/// grid (0/255, rows × columns of the series) and the lesion share of the lung in percent. On HU series the lung is
/// the undilated <see cref="LungRestriction"/> estimate plus the lesion itself (consolidation is denser than the air
/// threshold), the same rule as the pipeline's lesion burden (<see cref="LungRestriction.LesionAndLungArea"/>), so
/// <c>covidfn segment</c> and a screened study report the same percentages; 0 when the slice has no lung. On 2-D
/// images (no HU) it is the share of the whole image.
/// </summary>
public sealed record ScreenedSlice(int Index, SliceSummary Summary, string Label, byte[] Mask, double LesionPercent);

/// <summary>A screened series: every slice (feet to head) and the patient-level result of <see cref="StudyAggregator"/>.</summary>
public sealed record ScreenedSeries(IReadOnlyList<ScreenedSlice> Slices, StudyPrediction Study, int Rows, int Columns);

/// <summary>
/// Runs DFSN + DTCN over every slice of an assembled 3-D series with the same preprocessing as 2-D input (HU →
/// lung window → lung2d-v1 letterbox), brings each lesion map back to the slice grid, keeps it inside the lungs on HU
/// series (<see cref="LungRestriction"/>, when <see cref="ScreeningModels.RestrictLesionsToLungs"/>), and aggregates
/// the study.
/// </summary>
public static class SeriesScreening
{
    /// <summary>
    /// Screens <paramref name="series"/> in batches of <paramref name="batchSize"/> slices. <paramref name="onSlice"/>
    /// (optional) sees each slice's windowed image with its result as soon as it is scored, so callers can write
    /// overlays without keeping every image in memory.
    /// </summary>
    public static ScreenedSeries Screen(AssembledSeries series, ScreeningModels models, int batchSize = 8, Action<ScreenedSlice, GreyImage>? onSlice = null)
    {
        ArgumentNullException.ThrowIfNull(series);
        ArgumentNullException.ThrowIfNull(models);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        if (series.SliceCount == 0)
        {
            throw new InferenceException("The series has no slices.");
        }

        var rows = series.Rows;
        var columns = series.Columns;
        var (rowSpacing, columnSpacing) = LungRestriction.SpacingOrAssumed(series.Geometry.RowSpacing, series.Geometry.ColumnSpacing, columns, rows);
        var slices = new List<ScreenedSlice>(series.SliceCount);
        for (var start = 0; start < series.SliceCount; start += batchSize)
        {
            var count = Math.Min(batchSize, series.SliceCount - start);
            var images = new GreyImage[count];
            var lungs = new byte[count][];
            var regions = new byte[]?[count];
            for (var n = 0; n < count; n++)
            {
                if (series.ValueKind == TileKinds.Unit)
                {
                    // 2-D research images are already windowed and carry no HU: the percentage is of the whole image.
                    images[n] = series.ReadUnit(start + n);
                    lungs[n] = []; // an empty lung mask means the whole image (LungRestriction.LesionAndLungArea)
                    continue;
                }

                var hu = series.ReadHu(start + n);
                images[n] = LungPreprocessor.WindowHu(hu, columns, rows);
                (lungs[n], regions[n]) = LungRestriction.LungAndRegion(hu, columns, rows, rowSpacing, columnSpacing, models.RestrictLesionsToLungs);
            }

            var batch = LungPreprocessor.ToTensor(images);
            var predictions = models.Predict(batch.Tensor, count);
            for (var n = 0; n < count; n++)
            {
                var index = start + n;
                var output = LungRestriction.Apply(index, predictions[n], batch.Boxes[n], rows, columns, models.LesionThreshold, regions[n]);
                var (lesion, lung) = LungRestriction.LesionAndLungArea(output.Mask, lungs[n]);
                var percent = lung == 0 ? 0 : 100.0 * lesion / lung;
                var slice = new ScreenedSlice(index, output.Summary, predictions[n].Label, output.Mask, percent);
                slices.Add(slice);
                onSlice?.Invoke(slice, images[n]);
            }
        }

        var study = StudyAggregator.Aggregate(slices.Select(s => s.Summary).ToList(), models.Classes);
        return new ScreenedSeries(slices, study, rows, columns);
    }

}

/// <summary>
/// Mask steps shared by the lung estimate of <see cref="LungRestriction"/> (and through it the pipeline's lesion-burden
/// denominator): keeping enclosed air and filling its holes, and counting a mask's area.
/// </summary>
public static class LungMask
{
    /// <summary>
    /// The enclosed-air step of a threshold lung mask, in place on a 0/1 <paramref name="mask"/> of air-like pixels:
    /// regions 4-connected to the image border (the air around the body) become 0, and the holes of what is left
    /// (vessels, nodules, dense lesions enclosed by lung: 0-pixels the border cannot reach through 0-pixels) become 1.
    /// Shared by the lung estimate of <see cref="LungRestriction"/>.
    /// </summary>
    public static void KeepEnclosedAndFillHoles(byte[] mask, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(mask);
        var plane = width * height;

        // Air connected to the border is outside the body.
        FillFromBorder(mask, width, height, value: 1, replacement: 0);

        // Holes: non-lung pixels that the border cannot reach through non-lung pixels.
        var outside = new byte[plane];
        for (var i = 0; i < plane; i++)
        {
            outside[i] = mask[i] == 0 ? (byte)1 : (byte)0;
        }

        FillFromBorder(outside, width, height, value: 1, replacement: 2);
        for (var i = 0; i < plane; i++)
        {
            if (outside[i] == 1)
            {
                mask[i] = 1;
            }
        }
    }

    /// <summary>The number of lung pixels of a mask.</summary>
    public static int Area(ReadOnlySpan<byte> mask)
    {
        var area = 0;
        foreach (var v in mask)
        {
            area += v != 0 ? 1 : 0;
        }

        return area;
    }

    private static void FillFromBorder(byte[] mask, int width, int height, byte value, byte replacement)
    {
        for (var x = 0; x < width; x++)
        {
            Flood(mask, width, height, x, value, replacement, null);
            Flood(mask, width, height, ((height - 1) * width) + x, value, replacement, null);
        }

        for (var y = 0; y < height; y++)
        {
            Flood(mask, width, height, y * width, value, replacement, null);
            Flood(mask, width, height, (y * width) + width - 1, value, replacement, null);
        }
    }

    /// <summary>4-connected flood fill of <paramref name="value"/> from <paramref name="seed"/>, writing <paramref name="replacement"/>.</summary>
    private static void Flood(byte[] mask, int width, int height, int seed, byte value, byte replacement, List<int>? visited)
    {
        if (mask[seed] != value)
        {
            return;
        }

        var plane = width * height;
        var stack = new Stack<int>();
        mask[seed] = replacement;
        stack.Push(seed);
        while (stack.Count > 0)
        {
            var i = stack.Pop();
            visited?.Add(i);
            var x = i % width;
            if (x > 0 && mask[i - 1] == value)
            {
                mask[i - 1] = replacement;
                stack.Push(i - 1);
            }

            if (x < width - 1 && mask[i + 1] == value)
            {
                mask[i + 1] = replacement;
                stack.Push(i + 1);
            }

            if (i >= width && mask[i - width] == value)
            {
                mask[i - width] = replacement;
                stack.Push(i - width);
            }

            if (i < plane - width && mask[i + width] == value)
            {
                mask[i + width] = replacement;
                stack.Push(i + width);
            }
        }
    }
}
