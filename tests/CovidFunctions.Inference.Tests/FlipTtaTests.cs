using CovidFunctions.Imaging.Tiles;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Inference.Tests;

/// <summary>Horizontal-flip test-time augmentation of <see cref="ScreeningModels"/> on the committed model.</summary>
public sealed class FlipTtaTests
{
    private const int Side = 352;

    private static InferenceOptions Options(bool tta) =>
        new() { ModelsDirectory = Path.Combine(TestData.RepoRoot, "models"), PreferCuda = false, MaxBatch = 2, FlipTestTimeAugmentation = tta };

    private static float[] MirrorRows(float[] planes)
    {
        var m = (float[])planes.Clone();
        for (var row = 0; row < m.Length / Side; row++)
        {
            m.AsSpan(row * Side, Side).Reverse();
        }

        return m;
    }

    [Fact]
    public void Predict_WithFlipTta_IsTheMeanOfTheImageAndItsMirror_AndMirrorInvariant()
    {
        var input = NpyFormat.Read(TestData.Local("inference", "input.npy"));
        var count = input.Shape[0];
        var x = input.ToSingle();
        var mirrored = MirrorRows(x);
        var plain = ScreeningModels.Load(Options(tta: false));
        var tta = ScreeningModels.Load(Options(tta: true));

        var a = plain.Predict(x, count);
        var b = plain.Predict(mirrored, count);
        var t = tta.Predict(x, count);
        var tm = tta.Predict(mirrored, count);

        Assert.True(tta.FlipTestTimeAugmentation);
        for (var n = 0; n < count; n++)
        {
            for (var k = 0; k < 3; k++)
            {
                Assert.Equal(0.5f * (a[n].ClassProbabilities[k] + b[n].ClassProbabilities[k]), t[n].ClassProbabilities[k], 5);
                Assert.Equal(t[n].ClassProbabilities[k], tm[n].ClassProbabilities[k], 5);
            }

            var lesionOfMirror = MirrorRows(tm[n].LesionProbability);
            var bBack = MirrorRows(b[n].LesionProbability);
            for (var i = 0; i < Side * Side; i += 97)
            {
                Assert.Equal(0.5f * (a[n].LesionProbability[i] + bBack[i]), t[n].LesionProbability[i], 5);
                Assert.Equal(t[n].LesionProbability[i], lesionOfMirror[i], 5);
            }
        }
    }
}
