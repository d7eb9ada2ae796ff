using CovidFunctions.TestHelpers;

namespace CovidFunctions.Inference.Tests;

public sealed class InputValidationTests
{
    [Fact]
    public void ValidateInput_WrongLength_ThrowsWithExpectedShape()
    {
        var ex = Assert.Throws<InferenceException>(() => OnnxModel.ValidateInput(new float[100], 1));
        Assert.Contains("1×1×352×352", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ValidateInput_NaN_ThrowsNamingSliceAndPixel()
    {
        var x = new float[2 * OnnxModel.Plane];
        x[OnnxModel.Plane + 5] = float.NaN;
        var ex = Assert.Throws<InferenceException>(() => OnnxModel.ValidateInput(x, 2));
        Assert.Contains("slice 1, pixel 5", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ValidateInput_HounsfieldValues_ThrowsNotPreprocessed()
    {
        var x = new float[OnnxModel.Plane];
        x[0] = -1000f;
        var ex = Assert.Throws<InferenceException>(() => OnnxModel.ValidateInput(x, 1));
        Assert.Contains("not lung2d-v1 preprocessed", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ValidateInput_ZeroBatch_Throws()
    {
        Assert.Throws<InferenceException>(() => OnnxModel.ValidateInput([], 0));
    }

    [Fact]
    public void Load_MissingManifest_ThrowsNamingVariable()
    {
        using var dir = TestData.CreateTempDirectory();
        var ex = Assert.Throws<InferenceException>(() => ScreeningModels.Load(new InferenceOptions { ModelsDirectory = dir.Path }));
        Assert.Contains(InferenceOptions.ModelsDirectoryVariable, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_NegativeThreads_ThrowsNamingSetting()
    {
        var ex = Assert.Throws<ArgumentException>(() => new InferenceOptions { IntraOpThreads = -1 }.Validate());
        Assert.Contains("Inference:IntraOpThreads", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PathOf_HashMismatch_Throws()
    {
        using var dir = TestData.CreateTempDirectory();
        File.WriteAllText(Path.Combine(dir.Path, "m.onnx"), "not a model");
        File.WriteAllText(Path.Combine(dir.Path, "manifest.json"),
            """{"preprocessing":"lung2d-v1","classes":["covid","cap","normal"],"models":{"m":{"file":"m.onnx","sha256":"00","outputs":[]}}}""");
        var manifest = ModelManifest.Load(dir.Path);
        var ex = Assert.Throws<InferenceException>(() => manifest.PathOf("m"));
        Assert.Contains("sha256", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_CorruptModel_ThrowsInferenceException()
    {
        using var dir = TestData.CreateTempDirectory();
        var path = Path.Combine(dir.Path, "bad.onnx");
        File.WriteAllText(path, "not a model");
        Assert.Throws<InferenceException>(() => OnnxModel.Create(path, new InferenceOptions { PreferCuda = false, WarmUp = false }, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance));
    }
}
