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

    private ScreeningModels(ModelManifest manifest, OnnxModel? combined, OnnxModel? segmenter, OnnxModel? classifier)
    {
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
            return new ScreeningModels(manifest, combined, null, null);
        }

        var seg = OnnxModel.GetOrCreate(manifest.PathOf("dfsn"), options, logger);
        var cls = OnnxModel.GetOrCreate(manifest.PathOf("dtcn"), options, logger);
        RequireOutputs(seg, "lesion_prob");
        RequireOutputs(cls, "class_prob");
        return new ScreeningModels(manifest, null, seg, cls);
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

    /// <summary>Lesion probability maps only (N×352×352 flattened).</summary>
    public float[] Segment(ReadOnlyMemory<float> input, int count)
    {
        var model = _combined ?? _segmenter!;
        return model.Run(input, count)["lesion_prob"];
    }

    /// <summary>Both outputs for each slice.</summary>
    public IReadOnlyList<SlicePrediction> Predict(ReadOnlyMemory<float> input, int count)
    {
        float[] lesion;
        float[] probs;
        if (_combined is not null)
        {
            var r = _combined.Run(input, count);
            lesion = r["lesion_prob"];
            probs = r["class_prob"];
        }
        else
        {
            lesion = _segmenter!.Run(input, count)["lesion_prob"];
            probs = _classifier!.Run(input, count)["class_prob"];
        }

        var k = Classes.Count;
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
}
