using System.Diagnostics;
using CovidFunctions.Cli.Commands;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// The 3-D half of the evaluation contract (<c>covidfn segment INPUT --out-dir D</c> writes
/// <c>D/&lt;name&gt;_lesion.nii.gz</c> for a NIfTI volume or a DICOM series), checked by an independent reader:
/// <c>volume_contract.py</c> (pydicom + nibabel, not our NIfTI code) builds NIfTI variants of 3 real CT slices
/// (TCIA Lung-PET-CT-Dx A0002) and checks every mask against its input: same dim, pixdim, qform/sform codes and
/// matrices, and voxels equal to the DICOM series' mask carried through the variant's own axis order and flips.
/// </summary>
public sealed class VolumeContractTests
{
    private static string Models => Path.Combine(TestData.RepoRoot, "models");

    private static string Script => Path.Combine(TestData.RepoRoot, "tests", "CovidFunctions.Cli.Tests", "volume_contract.py");

    internal static readonly string[] SeriesFiles = ["1-14.dcm", "1-15.dcm", "1-16.dcm"];

    internal static string CopySeries(string folder, string series = "A0002-s2-b70f", IReadOnlyList<string>? files = null)
    {
        Directory.CreateDirectory(folder);
        foreach (var f in files ?? SeriesFiles)
        {
            File.Copy(TestData.Shared("dicom", "chest-ct", "lung-pet-ct-dx", series, f), Path.Combine(folder, f));
        }

        return folder;
    }

    internal static string Python(params string[] args)
    {
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Script);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        var output = stdout.Result + stderr;
        Assert.True(process.ExitCode == 0, $"volume_contract.py {string.Join(' ', args)} failed:\n{output}");
        return output;
    }

    [Fact]
    public void Segment_NiftiVariants_MaskLiesOnTheInputGridVoxelForVoxel()
    {
        using var dir = TestData.CreateTempDirectory();
        var dicom = CopySeries(Path.Combine(dir.Path, "a0002"));
        var variants = Path.Combine(dir.Path, "variants");
        Python("make", dicom, variants);
        var masks = Path.Combine(dir.Path, "masks");
        var error = new StringWriter();

        Assert.True(SegmentCommand.Run(dicom, masks, Models, 0, TextWriter.Null, error) == ExitCodes.Success, error.ToString());
        var reference = Path.Combine(dir.Path, "reference_lesion.nii.gz");
        File.Move(Path.Combine(masks, "a0002_lesion.nii.gz"), reference);
        var inputs = Directory.GetFiles(variants, "*.nii*").Order(StringComparer.Ordinal).ToList();
        Assert.Equal(18, inputs.Count);
        foreach (var nii in inputs)
        {
            var rc = SegmentCommand.Run(nii, masks, Models, 0, TextWriter.Null, error);
            Assert.True(rc == ExitCodes.Success, $"{Path.GetFileName(nii)}: {error}");
        }

        var report = Python("check", Path.Combine(variants, "variants.json"), masks, reference);

        Assert.Contains("ok 18", report, StringComparison.Ordinal);
    }

    [Fact]
    public void Segment_DicomFolder_MaskAffineFollowsPositionOrientationAndSpacing()
    {
        using var dir = TestData.CreateTempDirectory();
        var dicom = CopySeries(Path.Combine(dir.Path, "a0002"));
        var error = new StringWriter();

        Assert.True(SegmentCommand.Run(dicom, dir.Path, Models, 0, TextWriter.Null, error) == ExitCodes.Success, error.ToString());

        Assert.Contains("ok 1", Python("dicom-affine", dicom, Path.Combine(dir.Path, "a0002_lesion.nii.gz")), StringComparison.Ordinal);
    }
}
