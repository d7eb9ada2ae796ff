using System.Text.Json;
using CovidFunctions.Cli.Commands;
using CovidFunctions.Imaging.Series;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// An evaluator may hand <c>covidfn segment</c> / <c>classify</c> a split folder as research sets ship it: CT slices in
/// <c>images/</c> beside the ground truth in <c>masks/</c> and <c>edges/</c> under the same file names (COVID-SemiSeg's
/// <c>train/</c>). The ground truth is not input: each CT slice still gets <c>D/&lt;stem&gt;.png</c> and its own item.
/// </summary>
public sealed class EvaluationFolderLayoutTests
{
    private static string Models => Path.Combine(TestData.RepoRoot, "models");

    private static void WriteSlice(string path, int width, int height)
    {
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
    }

    /// <summary>COVID-SemiSeg's train/ layout: images/0.png, images/1.png, and masks/ and edges/ with the same names,
    /// plus a nested, capitalised label folder.</summary>
    private static string WriteSplitFolder(string root)
    {
        var split = Path.Combine(root, "train");
        WriteSlice(Path.Combine(split, "images", "0.png"), 40, 32);
        WriteSlice(Path.Combine(split, "images", "1.png"), 36, 30);
        foreach (var truth in new[] { "masks", "edges" })
        {
            WriteSlice(Path.Combine(split, truth, "0.png"), 40, 32);
            WriteSlice(Path.Combine(split, truth, "1.png"), 36, 30);
        }

        WriteSlice(Path.Combine(split, "extra", "Labels", "2.png"), 20, 20);
        return split;
    }

    [Fact]
    public void Segment_SplitFolderWithImagesBesideMasksAndEdges_WritesOneFlatMaskPerCtSlice_AndNamesTheSkippedFolders()
    {
        // Before: the 4 ground-truth images were segmented too; every stem being shared, no mask got its <stem>.png
        // name (D/images/0.png.png, D/masks/0.png.png, ...) and the exit was 2.
        using var dir = TestData.CreateTempDirectory();
        var input = WriteSplitFolder(dir.Path);
        var outDir = Path.Combine(dir.Path, "out");
        var error = new StringWriter();

        var rc = SegmentCommand.Run(input, outDir, Models, 0, TextWriter.Null, error);

        Assert.True(rc == ExitCodes.Success, error.ToString());
        Assert.Equal(new[] { "0.png", "1.png" }, Directory.GetFiles(outDir, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(outDir, f)).Order(StringComparer.Ordinal).ToArray());
        var warning = Assert.Single(error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("segment: warning: skipped 5 image(s) in mask or label folders", warning, StringComparison.Ordinal);
        Assert.Contains("edges/ (2), extra/Labels/ (1), masks/ (2)", warning, StringComparison.Ordinal);
    }

    [Fact]
    public void Classify_SplitFolderWithImagesBesideMasksAndEdges_ScoresTheCtSlicesOnly()
    {
        using var dir = TestData.CreateTempDirectory();
        var input = WriteSplitFolder(dir.Path);
        var json = Path.Combine(dir.Path, "r.json");
        var error = new StringWriter();

        var rc = ClassifyCommand.Run(input, json, Models, 0, TextWriter.Null, error);

        Assert.True(rc == ExitCodes.Success, error.ToString());
        using var doc = JsonDocument.Parse(File.ReadAllBytes(json));
        Assert.Equal(
            new[] { "images/0.png", "images/1.png" },
            doc.RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("path").GetString()).ToArray());
        Assert.Contains("classify: warning: skipped 5 image(s) in mask or label folders", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Segment_FolderHoldingOnlyMaskFolders_ExitsBadInputSayingSo_AndWritesNothing()
    {
        using var dir = TestData.CreateTempDirectory();
        WriteSlice(Path.Combine(dir.Path, "in", "masks", "0.png"), 20, 20);
        var outDir = Path.Combine(dir.Path, "out");
        var error = new StringWriter();

        var rc = SegmentCommand.Run(Path.Combine(dir.Path, "in"), outDir, Models, 0, TextWriter.Null, error);

        Assert.Equal(ExitCodes.BadInput, rc);
        Assert.Contains("no PNG/JPG/TIFF images outside mask or label folders", error.ToString(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void Segment_InputFolderItselfNamedMasks_IsSegmented()
    {
        // Only folders below INPUT are looked at: whoever names the folder asked for it.
        using var dir = TestData.CreateTempDirectory();
        WriteSlice(Path.Combine(dir.Path, "masks", "0.png"), 20, 20);
        var outDir = Path.Combine(dir.Path, "out");
        var error = new StringWriter();

        var rc = SegmentCommand.Run(Path.Combine(dir.Path, "masks"), outDir, Models, 0, TextWriter.Null, error);

        Assert.True(rc == ExitCodes.Success, error.ToString());
        Assert.True(File.Exists(Path.Combine(outDir, "0.png")));
        Assert.Equal(string.Empty, error.ToString());
    }

    [Fact]
    public void ImagesOutsideMaskFolders_FollowsTheConfiguredNames_AndKeepsAnImageNamedLikeAFolder()
    {
        using var dir = TestData.CreateTempDirectory();
        string[] images = ["masks/a.png", "truth/b.png", "c/TRUTH/d.png", "gt.png", "e/f.png"];
        foreach (var image in images)
        {
            WriteSlice(Path.Combine(dir.Path, image), 4, 4);
        }

        var assembly = SeriesAssemblyOptions.Default with { MaskFolderNames = ["truth"] };
        var warnings = new StringWriter();

        var kept = ImagingSettings.ImagesOutsideMaskFolders("classify", dir.Path, [.. images.Select(i => Path.Combine(dir.Path, i))], assembly, warnings);

        Assert.NotNull(kept);
        Assert.Equal(new[] { "masks/a.png", "gt.png", "e/f.png" }, kept.Select(k => ScreeningInputs.RelativeTo(dir.Path, k)).ToArray());
        Assert.Contains("skipped 2 image(s) in mask or label folders, not CT slices (Imaging:MaskFolderNames): c/TRUTH/ (1), truth/ (1)", warnings.ToString(), StringComparison.Ordinal);
    }
}
