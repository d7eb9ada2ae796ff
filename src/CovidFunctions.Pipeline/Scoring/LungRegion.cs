using CovidFunctions.Inference;

namespace CovidFunctions.Pipeline.Scoring;

/// <summary>
/// A rough lung-region estimate from HU, the denominator of the lesion burden: the undilated lung estimate of
/// <see cref="LungRestriction"/> (which bounds the numerator on the same slices), so numerator and denominator come
/// from one rule. Pixels at or below −300 HU (aerated lung is about −900 to −500; no lower bound, so that air and the
/// −1024/−2048 padding outside the reconstruction circle fall in one region with the outside air); only the air
/// inside the body is kept (the largest region the border cannot reach through air: a hollow table's or an arm's
/// enclosed air is dropped); regions touching the border are dropped and holes filled (vessels and nodules enclosed
/// by lung); the caller adds the lesion mask (consolidation is denser than −300 HU). The trachea and bowel gas are
/// counted too; they are small next to the lungs on chest slices.
/// </summary>
public static class LungRegion
{
    /// <summary>Pixels at or below this HU are lung (or air) candidates.</summary>
    public const short AirThresholdHu = (short)LungRestriction.AirThresholdHu;

    /// <summary>The lung mask (255 lung, 0 not) of a row-major HU slice.</summary>
    public static byte[] Estimate(ReadOnlySpan<short> hu, int width, int height)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        if (hu.Length != width * height)
        {
            throw new ArgumentException($"Expected {width}×{height} values, got {hu.Length}.", nameof(hu));
        }

        // No margin: the spacing is then irrelevant (1 mm stands in for it).
        var lung = LungRestriction.Region(hu, width, height, 1, 1, marginMm: 0);
        for (var i = 0; i < lung.Length; i++)
        {
            lung[i] = lung[i] != 0 ? (byte)255 : (byte)0;
        }

        return lung;
    }
}
