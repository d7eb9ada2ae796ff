using System.Diagnostics;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Inference.Tests;

/// <summary>CI training smoke test: python packs a handful of images, trains every stage for 2 steps, exports ONNX;
/// C# loads the result and must reproduce the PyTorch outputs on the synthetic fixtures within 1e-4.</summary>
public sealed class TrainingSmokeTests
{
    [Fact]
    public async Task Smoke_TrainExportLoad_OnnxMatchesPyTorch()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(40));
        using var dir = TestData.CreateTempDirectory();
        var psi = new ProcessStartInfo("/usr/bin/python3")
        {
            WorkingDirectory = Path.Combine(TestData.RepoRoot, "src", "training"),
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in new[] { "-m", "covidfn_train.smoke", "--out", dir.Path, "--shared", TestData.SharedData })
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync(cts.Token);
        var stderr = process.StandardError.ReadToEndAsync(cts.Token);
        await process.WaitForExitAsync(cts.Token);
        var log = await stdout + await stderr;
        Assert.True(process.ExitCode == 0, "smoke failed:\n" + log[Math.Max(0, log.Length - 4000)..]);

        // round 1 layout (one DTCN per graph, fp32) and the shipped round 2 layout (mean of members, fp16 storage)
        foreach (var (modelsFolder, fixturesFolder) in new[] { ("models", "fixtures"), ("models-ensemble", "fixtures-ensemble") })
        {
            var models = Path.Combine(dir.Path, modelsFolder);
            var manifest = ModelManifest.Load(models);
            var input = NpyFormat.Read(Path.Combine(dir.Path, fixturesFolder, "input.npy"));
            var options = new InferenceOptions { ModelsDirectory = models, WarmUp = false };
            foreach (var (name, entry) in manifest.Models)
            {
                using var model = OnnxModel.Create(manifest.PathOf(name), options, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
                var outputs = model.Run(input.ToSingle(), input.Shape[0]);
                foreach (var output in entry.Outputs)
                {
                    var expected = NpyFormat.Read(Path.Combine(dir.Path, fixturesFolder, $"{name}.{output}.npy")).ToSingle();
                    var diff = OnnxModelTests.MaxAbsDiff(expected, outputs[output]);
                    Assert.True(diff <= 1e-4f, $"{modelsFolder}/{name}.{output}: max abs diff {diff}");
                }
            }
        }
    }
}
