using System.Globalization;
using CovidFunctions.Imaging.Series;

namespace CovidFunctions.Inference;

/// <summary>
/// Whether a CT series shows lungs at all, before it is screened: the largest lung estimate (the one
/// <see cref="LungRestriction"/> uses: pixels at or below −300 HU enclosed by the body) on up to
/// <see cref="MaxSampledSlices"/> evenly spaced slices, in cm². The networks answer for any input; on a head CT they
/// still give class probabilities (GE head-tilt series: "covid" 0.51), which mean nothing. Measured with this rule:
/// chest CT slices through the lungs 85–207 cm² (lung-pet-ct-dx, COVID-19-NY-SBU, the synthetic phantom), a lung-base
/// slice 26 cm², a head CT 2.6 cm² (paranasal sinuses), an NY-SBU slice below the lungs 0.6 cm².
/// </summary>
public sealed record ChestCoverage(int SlicesExamined, int SliceCount, double LargestLungAreaCm2, int LargestAtSlice)
{
    /// <summary>The least lung area some slice must show for the series to be screened.</summary>
    public const double MinLungAreaCm2 = 10;

    /// <summary>At most this many slices are examined (evenly spaced, first and last included).</summary>
    public const int MaxSampledSlices = 32;

    /// <summary>Whether some examined slice shows at least <see cref="MinLungAreaCm2"/> of lung.</summary>
    public bool ShowsLungs => LargestLungAreaCm2 >= MinLungAreaCm2;

    /// <summary>Why the series is not screened (for <see cref="ShowsLungs"/> false).</summary>
    public string Reason => string.Create(
        CultureInfo.InvariantCulture,
        $"no lungs on any of the {SlicesExamined} slice(s) examined of {SliceCount}: the largest air-filled region inside the body is {LargestLungAreaCm2:0.#} cm² (slice {LargestAtSlice + 1}), where a chest CT shows {MinLungAreaCm2:0} cm² or more on some slice. It is not a chest CT, or it covers only a region above or below the lungs.");

    /// <summary>Measures a series in Hounsfield units; null for a series of 2-D images (no HU, nothing to measure).</summary>
    public static ChestCoverage? Measure(AssembledSeries series)
    {
        ArgumentNullException.ThrowIfNull(series);
        if (series.ValueKind != Imaging.Tiles.TileKinds.Hu || series.SliceCount == 0)
        {
            return null;
        }

        var g = series.Geometry;
        var (rowSpacing, columnSpacing) = LungRestriction.SpacingOrAssumed(g.RowSpacing, g.ColumnSpacing, series.Columns, series.Rows);
        var pixelCm2 = rowSpacing * columnSpacing / 100.0;
        var n = series.SliceCount;
        var sampled = n <= MaxSampledSlices
            ? Enumerable.Range(0, n).ToArray()
            : Enumerable.Range(0, MaxSampledSlices).Select(i => (int)Math.Round(i * (n - 1) / (double)(MaxSampledSlices - 1))).Distinct().ToArray();
        double largest = -1;
        var at = 0;
        foreach (var k in sampled)
        {
            var (lung, _) = LungRestriction.LungAndRegion(series.ReadHu(k), series.Columns, series.Rows, rowSpacing, columnSpacing, restrict: false);
            var area = LungMask.Area(lung) * pixelCm2;
            if (area > largest)
            {
                (largest, at) = (area, k);
            }
        }

        return new ChestCoverage(sampled.Length, n, largest, at);
    }
}
