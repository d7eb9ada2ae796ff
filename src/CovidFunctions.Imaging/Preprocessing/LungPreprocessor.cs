namespace CovidFunctions.Imaging.Preprocessing;

/// <summary>
/// Preprocessing "lung2d-v1" (docs/design/preprocessing.md), the C# twin of
/// <c>src/training/covidfn_train/preprocess.py</c>: HU window to [0, 1], aspect-preserving antialiased
/// triangle-filter resize so the longer side is S, letterbox to S×S; and the inverse for masks.
/// </summary>
/// <remarks>
/// WARNING: changing any arithmetic here changes what the deployed models see; the parity test against the Python
/// fixtures (tests/data/preprocessing) must stay within 1e-5, and a real change needs a new preprocessing id.
/// </remarks>
public static class LungPreprocessor
{
    /// <summary>The identifier recorded in tiles manifests and model manifests.</summary>
    public const string PreprocessingId = "lung2d-v1";

    /// <summary>The model input side S.</summary>
    public const int InputSize = 352;

    /// <summary>The default mask threshold when the model manifest gives none.</summary>
    public const float DefaultThreshold = 0.5f;

    /// <summary>Step 1 for CT: <c>clamp((hu − (L − W/2)) / W, 0, 1)</c> as float32.</summary>
    public static GreyImage WindowHu(ReadOnlySpan<float> hu, int width, int height, WindowSettings? window = null)
    {
        var pixels = new float[CheckedArea(width, height, hu.Length)];
        WindowHu(hu, pixels, window ?? WindowSettings.Lung);
        return new GreyImage(width, height, pixels);
    }

    /// <summary>Step 1 for CT from 16-bit HU values (the common in-memory form of a CT slice).</summary>
    public static GreyImage WindowHu(ReadOnlySpan<short> hu, int width, int height, WindowSettings? window = null)
    {
        var pixels = new float[CheckedArea(width, height, hu.Length)];
        var w = window ?? WindowSettings.Lung;
        var lower = (float)w.Lower;
        var range = (float)w.Width;
        for (var i = 0; i < pixels.Length; i++)
        {
            pixels[i] = Math.Clamp((hu[i] - lower) / range, 0f, 1f);
        }

        return new GreyImage(width, height, pixels);
    }

    /// <summary>Step 1 for CT into a caller's buffer.</summary>
    public static void WindowHu(ReadOnlySpan<float> hu, Span<float> destination, WindowSettings window)
    {
        if (window.Width <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(window), window.Width, "Window width must be positive.");
        }

        if (destination.Length < hu.Length)
        {
            throw new ArgumentException("Destination is shorter than the input.", nameof(destination));
        }

        var lower = (float)window.Lower;
        var range = (float)window.Width;
        for (var i = 0; i < hu.Length; i++)
        {
            destination[i] = Math.Clamp((hu[i] - lower) / range, 0f, 1f);
        }
    }

    /// <summary>Step 2's target size: the longer side becomes <paramref name="size"/>, rounding half away from zero.</summary>
    public static (int Height, int Width) ResizedShape(int height, int width, int size = InputSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        var scale = (double)size / Math.Max(height, width);
        var nh = Math.Max(1, (int)Math.Round(height * scale, MidpointRounding.AwayFromZero));
        var nw = Math.Max(1, (int)Math.Round(width * scale, MidpointRounding.AwayFromZero));
        return (nh, nw);
    }

    /// <summary>Steps 2–4 for one image: the 1×1×S×S tensor and its letterbox box.</summary>
    public static PreprocessedImage ToTensor(GreyImage image, int size = InputSize)
    {
        ArgumentNullException.ThrowIfNull(image);
        var tensor = new float[size * size];
        var box = ToTensor(image, tensor, size);
        return new PreprocessedImage(tensor, size, box, image.Height, image.Width);
    }

    /// <summary>Steps 2–4 for a batch: the N×1×S×S tensor (slices in order) and their boxes.</summary>
    public static PreprocessedBatch ToTensor(IReadOnlyList<GreyImage> images, int size = InputSize)
    {
        ArgumentNullException.ThrowIfNull(images);
        var plane = size * size;
        var tensor = new float[(long)images.Count * plane];
        var boxes = new LetterboxBox[images.Count];
        for (var n = 0; n < images.Count; n++)
        {
            boxes[n] = ToTensor(images[n], tensor.AsSpan(n * plane, plane), size);
        }

        return new PreprocessedBatch(tensor, images.Count, size, boxes);
    }

    /// <summary>Steps 2–4 into a caller's S×S plane (cleared first); returns the letterbox box.</summary>
    public static LetterboxBox ToTensor(GreyImage image, Span<float> destination, int size = InputSize)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        if (destination.Length != size * size)
        {
            throw new ArgumentException($"Destination must hold {size}×{size} values.", nameof(destination));
        }

        var (nh, nw) = ResizedShape(image.Height, image.Width, size);
        var resized = Resize(image.Pixels, image.Height, image.Width, nh, nw);
        var top = (size - nh) / 2;
        var left = (size - nw) / 2;
        destination.Clear();
        for (var y = 0; y < nh; y++)
        {
            resized.AsSpan(y * nw, nw).CopyTo(destination.Slice(((top + y) * size) + left, nw));
        }

        return new LetterboxBox(top, left, nh, nw);
    }

    /// <summary>
    /// Step 5: crop the letterbox box out of the S×S probability map, resize it to <paramref name="height"/>×
    /// <paramref name="width"/> with the same filter, and threshold (<c>p ≥ threshold</c> → 255, else 0).
    /// </summary>
    public static byte[] MaskToImage(ReadOnlySpan<float> probability, LetterboxBox box, int height, int width, float threshold = DefaultThreshold, int size = InputSize)
    {
        var resized = ProbabilityToImage(probability, box, height, width, size);
        var mask = new byte[resized.Length];
        for (var i = 0; i < mask.Length; i++)
        {
            mask[i] = resized[i] >= threshold ? (byte)255 : (byte)0;
        }

        return mask;
    }

    /// <summary>Step 5 without the threshold: the probability map brought back to the source image grid.</summary>
    public static float[] ProbabilityToImage(ReadOnlySpan<float> probability, LetterboxBox box, int height, int width, int size = InputSize)
    {
        if (probability.Length != size * size)
        {
            throw new ArgumentException($"Probability map must hold {size}×{size} values, got {probability.Length}.", nameof(probability));
        }

        if (box.Top < 0 || box.Left < 0 || box.Height < 1 || box.Width < 1 || box.Top + box.Height > size || box.Left + box.Width > size)
        {
            throw new ArgumentOutOfRangeException(nameof(box), box, $"Letterbox box does not fit in {size}×{size}.");
        }

        var crop = new float[box.Height * box.Width];
        for (var y = 0; y < box.Height; y++)
        {
            probability.Slice(((box.Top + y) * size) + box.Left, box.Width).CopyTo(crop.AsSpan(y * box.Width, box.Width));
        }

        return Resize(crop, box.Height, box.Width, height, width);
    }

    /// <summary>
    /// The antialiased triangle-filter resize of step 2 (PIL <c>Image.resize(BILINEAR)</c> on float images):
    /// horizontal pass first, then vertical, float64 accumulation, float32 storage after each pass.
    /// </summary>
    public static float[] Resize(ReadOnlySpan<float> source, int height, int width, int newHeight, int newWidth)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(newHeight, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(newWidth, 1);
        CheckedArea(width, height, source.Length);

        // Horizontal: width → newWidth, for every source row.
        var horizontal = TriangleKernel.Create(width, newWidth);
        var temp = new float[height * newWidth];
        for (var y = 0; y < height; y++)
        {
            var row = source.Slice(y * width, width);
            var outRow = temp.AsSpan(y * newWidth, newWidth);
            for (var i = 0; i < newWidth; i++)
            {
                var start = horizontal.Start[i];
                var weights = horizontal.WeightsOf(i);
                double acc = 0;
                for (var k = 0; k < weights.Length; k++)
                {
                    acc += row[start + k] * weights[k];
                }

                outRow[i] = (float)acc;
            }
        }

        // Vertical: height → newHeight, for every column of the intermediate.
        var vertical = TriangleKernel.Create(height, newHeight);
        var result = new float[newHeight * newWidth];
        var accRow = new double[newWidth];
        for (var i = 0; i < newHeight; i++)
        {
            Array.Clear(accRow);
            var start = vertical.Start[i];
            var weights = vertical.WeightsOf(i);
            for (var k = 0; k < weights.Length; k++)
            {
                var wk = weights[k];
                var inRow = temp.AsSpan((start + k) * newWidth, newWidth);
                for (var x = 0; x < newWidth; x++)
                {
                    accRow[x] += inRow[x] * wk;
                }
            }

            var outRow = result.AsSpan(i * newWidth, newWidth);
            for (var x = 0; x < newWidth; x++)
            {
                outRow[x] = (float)accRow[x];
            }
        }

        return result;
    }

    private static int CheckedArea(int width, int height, int length)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        var area = (long)width * height;
        if (area != length)
        {
            throw new ArgumentException($"Expected {width}×{height} = {area} values, got {length}.");
        }

        return (int)area;
    }

    /// <summary>Per-output-index taps and normalised weights of the triangle filter along one axis.</summary>
    internal sealed class TriangleKernel
    {
        private readonly double[] _weights;
        private readonly int[] _count;
        private readonly int _stride;

        private TriangleKernel(int[] start, int[] count, double[] weights, int stride)
        {
            Start = start;
            _count = count;
            _weights = weights;
            _stride = stride;
        }

        public int[] Start { get; }

        public ReadOnlySpan<double> WeightsOf(int i) => _weights.AsSpan(i * _stride, _count[i]);

        public static TriangleKernel Create(int inLength, int outLength)
        {
            var f = (double)inLength / outLength;
            var support = Math.Max(f, 1.0);
            var stride = (int)Math.Ceiling(support * 2) + 2;
            var start = new int[outLength];
            var count = new int[outLength];
            var weights = new double[outLength * stride];
            for (var i = 0; i < outLength; i++)
            {
                var centre = (i + 0.5) * f;
                var lo = Math.Max(0, (int)Math.Floor(centre - support + 0.5));
                var hi = Math.Min(inLength, (int)Math.Floor(centre + support + 0.5));
                var n = Math.Max(0, hi - lo);
                var w = weights.AsSpan(i * stride, n);
                double sum = 0;
                for (var j = 0; j < n; j++)
                {
                    var x = (lo + j + 0.5 - centre) / support;
                    var v = Math.Max(0.0, 1.0 - Math.Abs(x));
                    w[j] = v;
                    sum += v;
                }

                if (sum > 0)
                {
                    for (var j = 0; j < n; j++)
                    {
                        w[j] /= sum;
                    }
                }

                start[i] = lo;
                count[i] = n;
            }

            return new TriangleKernel(start, count, weights, stride);
        }
    }
}
