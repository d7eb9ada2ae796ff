namespace CovidFunctions.Imaging.Preprocessing;

/// <summary>
/// A single-channel float32 image, row-major (<c>Pixels[y * Width + x]</c>). After <see cref="ImageLoader"/> or
/// <see cref="LungPreprocessor.WindowHu(ReadOnlySpan{float}, int, int, WindowSettings?)"/> the values are in [0, 1].
/// </summary>
public sealed class GreyImage
{
    public GreyImage(int width, int height, float[] pixels, string? source = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentNullException.ThrowIfNull(pixels);
        if (pixels.Length != (long)width * height)
        {
            throw new ArgumentException($"Expected {width}×{height} = {(long)width * height} pixels, got {pixels.Length}.", nameof(pixels));
        }

        Width = width;
        Height = height;
        Pixels = pixels;
        Source = source;
    }

    public int Width { get; }

    public int Height { get; }

    /// <summary>Row-major samples.</summary>
    public float[] Pixels { get; }

    /// <summary>Where the image came from (a file path or archive entry), for messages only.</summary>
    public string? Source { get; }

    public float this[int y, int x] => Pixels[(y * Width) + x];
}
