using System.Text.Json;
using CovidFunctions.Cli.Commands;
using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary><c>covidfn segment</c> / <c>covidfn classify</c> on the committed models (models/, copied to the output).</summary>
public sealed class ScreeningCommandTests
{
    private static string Models => Path.Combine(TestData.RepoRoot, "models");

    private static string WriteSyntheticPng(string dir, string relative, int width, int height)
    {
        var path = Path.Combine(dir, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var pixels = new byte[width * height];
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                var dx = (x - (width / 2.0)) / (width * 0.45);
                var dy = (y - (height / 2.0)) / (height * 0.35);
                pixels[(y * width) + x] = (byte)((dx * dx) + (dy * dy) <= 1 ? 140 : 10);
            }
        }

        ScreeningInputs.WriteGreyPng(path, pixels, width, height);
        return path;
    }

    [Fact]
    public void Segment_FolderOfImages_WritesBinaryMaskOfInputSizePerStem()
    {
        using var dir = TestData.CreateTempDirectory();
        var input = Path.Combine(dir.Path, "in");
        WriteSyntheticPng(input, "a.png", 300, 200);
        WriteSyntheticPng(input, "sub/b.png", 120, 160);
        var outDir = Path.Combine(dir.Path, "out");

        var rc = SegmentCommand.Run(input, outDir, Models, 0, TextWriter.Null, TextWriter.Null);

        Assert.Equal(ExitCodes.Success, rc);
        var a = ImageLoader.Load(Path.Combine(outDir, "a.png"));
        var b = ImageLoader.Load(Path.Combine(outDir, "b.png"));
        Assert.Equal((300, 200), (a.Width, a.Height));
        Assert.Equal((120, 160), (b.Width, b.Height));
        Assert.All(a.Pixels, v => Assert.True(v == 0f || v == 1f));
    }

    [Fact]
    public void Segment_RealTrainingSlice_MaskOverlapsDoctorLabel()
    {
        // A slice the model was trained on: a chain check (C# preprocessing + ONNX + mask back), not an accuracy claim.
        var image = TestData.Shared("seg", "covid-semiseg", "train", "images", "0.jpg");
        var label = ImageLoader.Load(TestData.Shared("seg", "covid-semiseg", "train", "masks", "0.png"));
        using var dir = TestData.CreateTempDirectory();

        var rc = SegmentCommand.Run(image, dir.Path, Models, 0, TextWriter.Null, TextWriter.Null);

        Assert.Equal(ExitCodes.Success, rc);
        var mask = ImageLoader.Load(Path.Combine(dir.Path, "0.png"));
        double inter = 0, sum = 0;
        for (var i = 0; i < mask.Pixels.Length; i++)
        {
            var p = mask.Pixels[i] > 0.5f;
            var g = label.Pixels[i] > 0.5f;
            inter += p && g ? 1 : 0;
            sum += (p ? 1 : 0) + (g ? 1 : 0);
        }

        Assert.True(sum == 0 || 2 * inter / sum > 0.5, $"Dice {2 * inter / sum}");
    }

    [Fact]
    public void Classify_Folder_WritesItemsWithRelativePathsProbabilitiesAndLabel()
    {
        using var dir = TestData.CreateTempDirectory();
        var input = Path.Combine(dir.Path, "in");
        WriteSyntheticPng(input, "x.png", 200, 200);
        WriteSyntheticPng(input, "deeper/y.png", 100, 80);
        var json = Path.Combine(dir.Path, "r.json");

        var rc = ClassifyCommand.Run(input, json, Models, 0, TextWriter.Null, TextWriter.Null);

        Assert.Equal(ExitCodes.Success, rc);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var items = doc.RootElement.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(new[] { "deeper/y.png", "x.png" }, items.Select(i => i.GetProperty("path").GetString()).ToArray());
        foreach (var item in items)
        {
            var p = item.GetProperty("probabilities");
            var sum = p.GetProperty("covid").GetDouble() + p.GetProperty("cap").GetDouble() + p.GetProperty("normal").GetDouble();
            Assert.InRange(sum, 0.999, 1.001);
            Assert.Contains(item.GetProperty("label").GetString(), new[] { "covid", "cap", "normal" });
        }
    }

    [Fact]
    public void Classify_MissingInput_ReturnsBadInputWithMessage()
    {
        using var dir = TestData.CreateTempDirectory();
        var error = new StringWriter();

        var rc = ClassifyCommand.Run(Path.Combine(dir.Path, "nope"), Path.Combine(dir.Path, "r.json"), Models, 0, TextWriter.Null, error);

        Assert.Equal(ExitCodes.BadInput, rc);
        Assert.Contains("no such file or folder", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Segment_CorruptNiftiInput_ReturnsBadInputWithMessage()
    {
        using var dir = TestData.CreateTempDirectory();
        var nii = Path.Combine(dir.Path, "v.nii.gz");
        File.WriteAllBytes(nii, [1, 2, 3]);
        var error = new StringWriter();

        var rc = SegmentCommand.Run(nii, Path.Combine(dir.Path, "out"), Models, 0, TextWriter.Null, error);

        Assert.Equal(ExitCodes.BadInput, rc);
        Assert.Contains("cannot read it as a CT series", error.ToString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// Series that are not chest CT are refused with the evidence instead of getting a diagnosis (before these checks a
    /// MosMed lesion mask and the GE head CT, "covid" 0.51, both got a study label).
    /// </summary>
    [Theory]
    [InlineData("seg/mosmed-masks/masks/study_0277_mask.nii.gz", "study_0277_mask.nii.gz does not hold CT in Hounsfield units")]
    [InlineData("dicom/edge/ge-head-tilt", "not screened: no lungs on any of the 10 slice(s)")]
    public void Classify_SeriesThatIsNotChestCt_ReturnsBadInputWithTheReason(string input, string reason)
    {
        using var dir = TestData.CreateTempDirectory();
        var json = Path.Combine(dir.Path, "r.json");
        var error = new StringWriter();

        var rc = ClassifyCommand.Run(TestData.Shared(input.Split('/')), json, Models, 0, TextWriter.Null, error);

        Assert.Equal(ExitCodes.BadInput, rc);
        Assert.Contains(reason, error.ToString(), StringComparison.Ordinal);
        Assert.False(File.Exists(json));
    }

    [Fact]
    public void Segment_CorruptImageInFolder_WritesOthersAndReturnsBadInput()
    {
        using var dir = TestData.CreateTempDirectory();
        var input = Path.Combine(dir.Path, "in");
        WriteSyntheticPng(input, "good.png", 64, 64);
        File.WriteAllText(Path.Combine(input, "bad.png"), "not a png");
        var outDir = Path.Combine(dir.Path, "out");
        var error = new StringWriter();

        var rc = SegmentCommand.Run(input, outDir, Models, 0, TextWriter.Null, error);

        Assert.Equal(ExitCodes.BadInput, rc);
        Assert.True(File.Exists(Path.Combine(outDir, "good.png")));
        Assert.Contains("bad.png", error.ToString(), StringComparison.Ordinal);
    }
}
