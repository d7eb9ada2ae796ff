namespace CovidFunctions.Imaging.Preprocessing;

/// <summary>A display window in Hounsfield units: values map linearly from <c>[Level − Width/2, Level + Width/2]</c> to [0, 1].</summary>
public readonly record struct WindowSettings(double Level, double Width)
{
    /// <summary>The lung window of preprocessing "lung2d-v1": level −600 HU, width 1500 HU.</summary>
    public static WindowSettings Lung { get; } = new(-600, 1500);

    /// <summary>The lowest HU of the window (maps to 0).</summary>
    public double Lower => Level - (Width / 2);

    /// <summary>The highest HU of the window (maps to 1).</summary>
    public double Upper => Level + (Width / 2);
}

/// <summary>
/// Where the resized image sits inside the S×S model input: rows <c>[Top, Top + Height)</c>, columns
/// <c>[Left, Left + Width)</c>.
/// </summary>
public readonly record struct LetterboxBox(int Top, int Left, int Height, int Width);

/// <summary>One preprocessed slice: the 1×1×S×S tensor data and its letterbox box.</summary>
public sealed record PreprocessedImage(float[] Tensor, int Size, LetterboxBox Box, int SourceHeight, int SourceWidth);

/// <summary>A batch of preprocessed slices: an N×1×S×S tensor and one letterbox box per slice.</summary>
public sealed record PreprocessedBatch(float[] Tensor, int Count, int Size, IReadOnlyList<LetterboxBox> Boxes);
