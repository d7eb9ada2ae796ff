using CovidFunctions.Inference;

namespace CovidFunctions.Pipeline.Scoring;

/// <summary>
/// A rough lung-region estimate from HU, the denominator of the lesion burden. Rule: pixels at or below −300 HU
/// (aerated lung is about −900 to −500; the rule has no lower bound so that air and the −1024/−2048 padding outside
/// the reconstruction circle fall in one region with the outside air); drop every 4-connected region of them that
/// touches the image border (the air around the patient); fill the holes of what is left (vessels and nodules
/// enclosed by lung); the caller adds the lesion mask (consolidation is denser than −300 HU). The trachea and bowel
/// gas are counted too; they are small next to the lungs on chest slices.
/// </summary>
public static class LungRegion
{
    /// <summary>Pixels at or below this HU are lung (or air) candidates.</summary>
    public const short AirThresholdHu = -300;

    /// <summary>The lung mask (255 lung, 0 not) of a row-major HU slice.</summary>
    public static byte[] Estimate(ReadOnlySpan<short> hu, int width, int height)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        if (hu.Length != width * height)
        {
            throw new ArgumentException($"Expected {width}×{height} values, got {hu.Length}.", nameof(hu));
        }

        var lung = new byte[hu.Length];
        for (var i = 0; i < hu.Length; i++)
        {
            lung[i] = hu[i] <= AirThresholdHu ? (byte)1 : (byte)0;
        }

        // Border air dropped, enclosed holes filled: the same step as the CLI's coarse lung mask.
        LungMask.KeepEnclosedAndFillHoles(lung, width, height);
        for (var i = 0; i < lung.Length; i++)
        {
            lung[i] = lung[i] != 0 ? (byte)255 : (byte)0;
        }

        return lung;
    }
}
