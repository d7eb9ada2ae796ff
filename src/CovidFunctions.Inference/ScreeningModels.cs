using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Inference;

/// <summary>Per-slice result: lesion probability map (352×352, letterboxed) and class probabilities (manifest order).</summary>
public sealed record SlicePrediction(float[] LesionProbability, IReadOnlyList<float> ClassProbabilities, string Label);

/// <summary>
/// DFSN + DTCN served from the models directory: either the combined graph (one backbone pass gives both outputs)
/// or two graphs. Sessions are process-wide (<see cref="OnnxModel.GetOrCreate"/>).
/// </summary>
public sealed class ScreeningModels
{
    private readonly OnnxModel? _combined;
    private readonly OnnxModel? _segmenter;
    private readonly OnnxModel? _classifier;

    private readonly bool _flipTta;

    private ScreeningModels(ModelManifest manifest, OnnxModel? combined, OnnxModel? segmenter, OnnxModel? classifier, bool flipTta, bool restrictLesionsToLungs)
    {
        _flipTta = flipTta;
        RestrictLesionsToLungs = restrictLesionsToLungs;
        Manifest = manifest;
        _combined = combined;
        _segmenter = segmenter;
        _classifier = classifier;
    }

    /// <summary>The manifest in use.</summary>
    public ModelManifest Manifest { get; }

    /// <summary>Class names in output order (covid, cap, normal).</summary>
    public IReadOnlyList<string> Classes => Manifest.Classes;

    /// <summary>The execution provider of the (first) session.</summary>
    public string Provider => (_combined ?? _segmenter ?? _classifier)!.Provider;

    /// <summary>The lesion threshold of the manifest.</summary>
    public float LesionThreshold => Manifest.LesionThreshold;

    /// <summary>Loads the manifest and creates (or reuses) the sessions.</summary>
    public static ScreeningModels Load(InferenceOptions? options = null, ILogger? logger = null)
    {
        options ??= new InferenceOptions();
        options.Validate();
        logger ??= NullLogger.Instance;
        var manifest = ModelManifest.Load(ModelManifest.ResolveDirectory(options));
        var layout = options.Layout ?? (manifest.DefaultModels is { } d && d.TryGetValue("classify", out var c) && c != "dfsn_dtcn"
            ? ModelLayout.Separate : ModelLayout.Combined);
        if (layout == ModelLayout.Combined)
        {
            var combined = OnnxModel.GetOrCreate(manifest.PathOf("dfsn_dtcn"), options, logger);
            RequireOutputs(combined, "lesion_prob", "class_prob");
            RequireClassCount(combined, manifest);
            return new ScreeningModels(manifest, combined, null, null, options.FlipTestTimeAugmentation, options.RestrictLesionsToLungs);
        }

        var seg = OnnxModel.GetOrCreate(manifest.PathOf("dfsn"), options, logger);
        var cls = OnnxModel.GetOrCreate(manifest.PathOf("dtcn"), options, logger);
        RequireOutputs(seg, "lesion_prob");
        RequireOutputs(cls, "class_prob");
        RequireClassCount(cls, manifest);
        return new ScreeningModels(manifest, null, seg, cls, options.FlipTestTimeAugmentation, options.RestrictLesionsToLungs);
    }

    private static void RequireOutputs(OnnxModel model, params string[] names)
    {
        foreach (var name in names)
        {
            if (!model.OutputNames.Contains(name))
            {
                throw new InferenceException($"Model {model.Path} has no output '{name}' (has: {string.Join(", ", model.OutputNames)}).") { ModelPath = model.Path };
            }
        }
    }

    /// <summary>
    /// The manifest's class list must match the width of <c>class_prob</c>: a shorter list would label every slice from
    /// the wrong probabilities (slice n's read from slice n+1's), a longer one would read past the output.
    /// </summary>
    private static void RequireClassCount(OnnxModel model, ModelManifest manifest)
    {
        var shape = model.OutputShapes["class_prob"];
        if (manifest.Classes.Count == 0)
        {
            throw new InferenceException($"{Path.Combine(manifest.Directory, ModelManifest.FileName)} lists no classes.") { ModelPath = model.Path };
        }

        // A symbolic width (−1) is checked on each run instead (Predict).
        var width = shape.Count == 2 ? shape[1] : -1;
        if (width > 0 && width != manifest.Classes.Count)
        {
            throw new InferenceException($"Model {model.Path} gives {width} class probabilities, but {Path.Combine(manifest.Directory, ModelManifest.FileName)} lists {manifest.Classes.Count} classes ({string.Join(", ", manifest.Classes)}).") { ModelPath = model.Path };
        }
    }

    /// <summary>Whether horizontal-flip test-time augmentation is on (<see cref="InferenceOptions.FlipTestTimeAugmentation"/>).</summary>
    public bool FlipTestTimeAugmentation => _flipTta;

    /// <summary>Whether lesion output on HU inputs is kept inside the lungs (<see cref="InferenceOptions.RestrictLesionsToLungs"/>).</summary>
    public bool RestrictLesionsToLungs { get; }

    /// <summary>Lesion probability maps only (N×352×352 flattened).</summary>
    public float[] Segment(ReadOnlyMemory<float> input, int count)
    {
        var model = _combined ?? _segmenter!;
        var lesion = model.Run(input, count)["lesion_prob"];
        if (_flipTta)
        {
            AverageMirrored(lesion, model.Run(Mirror(input.Span, count), count)["lesion_prob"], count);
        }

        return lesion;
    }

    /// <summary>Both outputs for each slice.</summary>
    public IReadOnlyList<SlicePrediction> Predict(ReadOnlyMemory<float> input, int count)
    {
        var (lesion, probs) = RunBoth(input, count);
        if (_flipTta)
        {
            var (mirroredLesion, mirroredProbs) = RunBoth(Mirror(input.Span, count), count);
            AverageMirrored(lesion, mirroredLesion, count);
            for (var i = 0; i < probs.Length; i++)
            {
                probs[i] = 0.5f * (probs[i] + mirroredProbs[i]);
            }
        }

        var k = Classes.Count;
        if (probs.Length != (long)count * k || lesion.Length != (long)count * OnnxModel.Plane)
        {
            throw new InferenceException($"The model gave {probs.Length} class probabilities and {lesion.Length} lesion values for {count} slice(s); expected {count}×{k} ({string.Join(", ", Classes)}) and {count}×{OnnxModel.Side}×{OnnxModel.Side}.");
        }

        var result = new SlicePrediction[count];
        for (var n = 0; n < count; n++)
        {
            var p = probs.AsSpan(n * k, k).ToArray();
            var best = 0;
            for (var j = 1; j < k; j++)
            {
                if (p[j] > p[best])
                {
                    best = j;
                }
            }

            result[n] = new SlicePrediction(lesion.AsSpan(n * OnnxModel.Plane, OnnxModel.Plane).ToArray(), p, Classes[best]);
        }

        return result;
    }

    private (float[] Lesion, float[] Probs) RunBoth(ReadOnlyMemory<float> input, int count)
    {
        if (_combined is not null)
        {
            var r = _combined.Run(input, count);
            return (r["lesion_prob"], r["class_prob"]);
        }

        return (_segmenter!.Run(input, count)["lesion_prob"], _classifier!.Run(input, count)["class_prob"]);
    }

    /// <summary>The N×1×S×S input mirrored left-right (each row reversed).</summary>
    private static float[] Mirror(ReadOnlySpan<float> input, int count)
    {
        const int side = LungPreprocessorSide;
        var mirrored = input[..(count * side * side)].ToArray();
        for (var row = 0; row < count * side; row++)
        {
            mirrored.AsSpan(row * side, side).Reverse();
        }

        return mirrored;
    }

    /// <summary><paramref name="lesion"/> ← ½(lesion + mirror(mirroredLesion)), per map.</summary>
    private static void AverageMirrored(float[] lesion, float[] mirroredLesion, int count)
    {
        const int side = LungPreprocessorSide;
        for (var row = 0; row < count * side; row++)
        {
            var a = lesion.AsSpan(row * side, side);
            var b = mirroredLesion.AsSpan(row * side, side);
            for (var x = 0; x < side; x++)
            {
                a[x] = 0.5f * (a[x] + b[side - 1 - x]);
            }
        }
    }

    private const int LungPreprocessorSide = Imaging.Preprocessing.LungPreprocessor.InputSize;
}
