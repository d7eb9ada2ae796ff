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

        var candidate = new bool[hu.Length];
        for (var i = 0; i < hu.Length; i++)
        {
            candidate[i] = hu[i] <= AirThresholdHu;
        }

        // Air connected to the border is outside the patient.
        var outside = FloodFromBorder(candidate, width, height);
        var lung = new byte[hu.Length];
        var notLung = new bool[hu.Length];
        for (var i = 0; i < hu.Length; i++)
        {
            var isLung = candidate[i] && !outside[i];
            lung[i] = isLung ? (byte)255 : (byte)0;
            notLung[i] = !isLung;
        }

        // Non-lung pixels the border cannot reach are enclosed by lung: holes to fill.
        var reachable = FloodFromBorder(notLung, width, height);
        for (var i = 0; i < hu.Length; i++)
        {
            if (notLung[i] && !reachable[i])
            {
                lung[i] = 255;
            }
        }

        return lung;
    }

    /// <summary>The pixels of <paramref name="passable"/> 4-connected to a passable border pixel.</summary>
    private static bool[] FloodFromBorder(bool[] passable, int width, int height)
    {
        var reached = new bool[passable.Length];
        var stack = new Stack<int>();
        void Seed(int i)
        {
            if (passable[i] && !reached[i])
            {
                reached[i] = true;
                stack.Push(i);
            }
        }

        for (var x = 0; x < width; x++)
        {
            Seed(x);
            Seed(((height - 1) * width) + x);
        }

        for (var y = 0; y < height; y++)
        {
            Seed(y * width);
            Seed((y * width) + width - 1);
        }

        while (stack.Count > 0)
        {
            var i = stack.Pop();
            int x = i % width, y = i / width;
            if (x > 0)
            {
                Seed(i - 1);
            }

            if (x < width - 1)
            {
                Seed(i + 1);
            }

            if (y > 0)
            {
                Seed(i - width);
            }

            if (y < height - 1)
            {
                Seed(i + width);
            }
        }

        return reached;
    }
}
