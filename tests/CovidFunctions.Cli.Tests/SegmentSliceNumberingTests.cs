using System.Text.RegularExpressions;
using CovidFunctions.Cli.Commands;
using CovidFunctions.Imaging.Nifti;
using CovidFunctions.Imaging.Phantoms;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// <c>covidfn segment</c>'s per-slice summary numbers slices from 0, feet to head, like <c>screen</c>, <c>status</c>,
/// the API, the report and <c>classify</c>'s <c>slice</c>: it printed "slice 29/30" for slice 28 (walkthrough audit),
/// so a slice named by segment was the next one in every other view. Checked against the mask it wrote: the
/// slices it names, and its <c>--overlays</c> files (<c>&lt;name&gt;_slice0028.png</c>), are exactly the mask's slices
/// (0-based, the NIfTI's third axis) with lesion voxels.
/// </summary>
public sealed partial class SegmentSliceNumberingTests
{
    [GeneratedRegex(@"^segment: phantom: slice (\d+)/(\d+): lesion ")]
    private static partial Regex SliceLine();

    [Fact]
    public void Segment_names_the_slices_with_lesion_by_their_0_based_index_in_the_mask()
    {
        using var dir = TestData.CreateTempDirectory();
        var input = Path.Combine(dir.Path, "phantom");
        new CtPhantom(new CtPhantomOptions { Matrix = 256, Slices = 12, SliceSpacing = 10, Seed = 7, UidSeed = "segment-numbering" }).WriteFolder(input);
        var outDir = Path.Combine(dir.Path, "out");
        var output = new StringWriter();
        var error = new StringWriter();

        var overlays = Path.Combine(dir.Path, "overlays");
        var rc = SegmentCommand.Run(input, outDir, Path.Combine(TestData.RepoRoot, "models"), 0, new SegmentExtras(overlays, null, null), output, error);

        Assert.True(rc == ExitCodes.Success, error.ToString());
        var named = output.ToString().Split('\n').Select(l => SliceLine().Match(l.TrimEnd('\r'))).Where(m => m.Success).ToList();
        Assert.All(named, m => Assert.Equal("12", m.Groups[2].Value));
        var mask = NiftiOrientation.ToAxialVolume(NiftiFile.Read(Path.Combine(outDir, "phantom_lesion.nii.gz")));
        var withLesion = Enumerable.Range(0, mask.Geometry.Slices).Where(k =>
        {
            foreach (var v in mask.Slice(k))
            {
                if (v > 0)
                {
                    return true;
                }
            }

            return false;
        }).ToList();
        Assert.NotEmpty(withLesion);
        Assert.Equal(withLesion, named.Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList());
        Assert.Equal(
            withLesion.Select(k => FormattableString.Invariant($"phantom_slice{k:D4}.png")),
            Directory.GetFiles(overlays).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }
}
