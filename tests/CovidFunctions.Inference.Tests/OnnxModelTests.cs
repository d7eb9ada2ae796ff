using CovidFunctions.Imaging.Tiles;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Inference.Tests;

/// <summary>Committed models (models/) against the PyTorch outputs saved by export_onnx.py (tests/data/inference/).</summary>
public sealed class OnnxModelTests
{
    private const float Tolerance = 1e-4f;

    private static string ModelsDir => Path.Combine(TestData.RepoRoot, "models");

    private static InferenceOptions Options => new() { ModelsDirectory = ModelsDir, PreferCuda = true, MaxBatch = 2 };

    [Fact]
    public void Run_CommittedModelsOnFixtures_MatchPyTorchWithin1e4()
    {
        var manifest = ModelManifest.Load(ModelsDir);
        var input = NpyFormat.Read(TestData.Local("inference", "input.npy"));
        var count = input.Shape[0];
        var x = input.ToSingle();
        foreach (var (name, entry) in manifest.Models)
        {
            var model = OnnxModel.GetOrCreate(manifest.PathOf(name), Options);
            var outputs = model.Run(x, count);
            foreach (var output in entry.Outputs)
            {
                var expected = NpyFormat.Read(TestData.Local("inference", $"{name}.{output}.npy")).ToSingle();
                var actual = outputs[output];
                Assert.Equal(expected.Length, actual.Length);
                var maxDiff = MaxAbsDiff(expected, actual);
                Assert.True(maxDiff <= Tolerance, $"{name}.{output}: max abs diff {maxDiff} > {Tolerance}");
            }
        }
    }

    [Fact]
    public void Load_CommittedModels_UsesCpuProviderWhenCudaMissingAndPredictsProbabilities()
    {
        var models = ScreeningModels.Load(Options);
        var x = NpyFormat.Read(TestData.Local("inference", "input.npy"));
        var predictions = models.Predict(x.ToSingle(), x.Shape[0]);
        Assert.Equal(x.Shape[0], predictions.Count);
        Assert.Contains(models.Provider, new[] { "CPU", "CUDA" });
        foreach (var p in predictions)
        {
            Assert.Equal(3, p.ClassProbabilities.Count);
            Assert.InRange(p.ClassProbabilities.Sum(), 0.999f, 1.001f);
            Assert.Equal(OnnxModel.Plane, p.LesionProbability.Length);
            Assert.All(p.LesionProbability, v => Assert.InRange(v, 0f, 1f));
            Assert.Contains(p.Label, models.Classes);
        }
    }

    [Fact]
    public void GetOrCreate_SameFileAndOptions_ReturnsOneSessionPerProcess()
    {
        var manifest = ModelManifest.Load(ModelsDir);
        var path = manifest.PathOf(manifest.Models.Keys.First());
        Assert.Same(OnnxModel.GetOrCreate(path, Options), OnnxModel.GetOrCreate(path, Options));
    }

    [Fact]
    public void Manifest_CommittedModels_AreUnder25MegabytesAndUseLung2dV1()
    {
        var manifest = ModelManifest.Load(ModelsDir);
        Assert.Equal("lung2d-v1", manifest.Preprocessing);
        Assert.Equal(new[] { "covid", "cap", "normal" }, manifest.Classes);
        foreach (var (name, _) in manifest.Models)
        {
            Assert.True(new FileInfo(manifest.PathOf(name)).Length < 25_000_000, name);
        }
    }

    internal static float MaxAbsDiff(float[] a, float[] b)
    {
        var m = 0f;
        for (var i = 0; i < a.Length; i++)
        {
            m = Math.Max(m, Math.Abs(a[i] - b[i]));
        }

        return m;
    }
}
