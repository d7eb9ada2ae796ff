using System.Diagnostics;
using CovidFunctions.Dicom;
using CovidFunctions.Imaging.Phantoms;
using CovidFunctions.Imaging.Series;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Imaging.Tests.Phantoms;

/// <summary>
/// The synthetic chest CT: written instances read back through the project's codec and dcmtk's dcmdump, assemble in
/// position order, and carry the designed HU per tissue.
/// </summary>
public sealed class CtPhantomTests
{
    private static readonly CtPhantomOptions Small = new() { Matrix = 128, Slices = 24, SliceSpacing = 5, Seed = 7 };

    [Fact]
    public void WriteFolder_InstancesHaveCtHeadersGeometryAndPlantedPhi()
    {
        using var temp = TestData.CreateTempDirectory();
        var phantom = new CtPhantom(Small);

        var paths = phantom.WriteFolder(temp.Path);

        Assert.Equal(24, paths.Count);
        var file = DicomFile.Open(paths[3]);
        Assert.Equal(TransferSyntax.ExplicitVRLittleEndian.Uid, file.TransferSyntax.Uid);
        var ds = file.Dataset;
        Assert.Equal("1.2.840.10008.5.1.4.1.1.2", ds.GetString(DicomTags.SOPClassUID));
        Assert.Equal(["ORIGINAL", "PRIMARY", "AXIAL"], ds.GetStrings(DicomTags.ImageType));
        Assert.Equal("CT", ds.GetString(DicomTags.Modality));
        Assert.Equal(PlantedPhi.PatientName, ds.GetString(DicomTags.PatientName));
        Assert.Equal(PlantedPhi.PatientId, ds.GetString(DicomTags.PatientID));
        Assert.Equal(phantom.SopInstanceUid(3), ds.GetString(DicomTags.SOPInstanceUID));
        Assert.StartsWith("2.25.", phantom.StudyInstanceUid, StringComparison.Ordinal);
        Assert.Equal(phantom.StudyInstanceUid, ds.GetString(DicomTags.StudyInstanceUID));
        Assert.Equal(128, ds.GetInt32(DicomTags.Rows));
        Assert.Equal(-1024, ds.GetDouble(DicomTags.RescaleIntercept));
        Assert.Equal(1, ds.GetInt32(DicomTags.PixelRepresentation));
        Assert.Equal(-15.0, ds.GetDouble(DicomTags.ImagePositionPatient, 2), 6);
        Assert.Equal(360.0 / 128, ds.GetDouble(DicomTags.PixelSpacing), 6);
        Assert.Equal(5.0, ds.GetDouble(DicomTags.SliceThickness), 6);
    }

    [Fact]
    public void WriteFolder_DcmdumpReadsEveryInstance()
    {
        using var temp = TestData.CreateTempDirectory();
        var paths = new CtPhantom(Small with { Slices = 3 }).WriteFolder(temp.Path);

        foreach (var path in paths)
        {
            var (exitCode, stdout, stderr) = Run("dcmdump", "-q", path);
            Assert.True(exitCode == 0, $"dcmdump {path}: {stderr}");
            Assert.Contains("CTImageStorage", stdout, StringComparison.Ordinal);
            Assert.Contains("[PHANTOM^PLANTED^PHI]", stdout, StringComparison.Ordinal);
            Assert.Contains("(7fe0,0010) OW", stdout, StringComparison.Ordinal);
            Assert.Contains("[ORIGINAL\\PRIMARY\\AXIAL]", stdout, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void WriteZip_SeriesAssemblerOrdersSlicesByPosition()
    {
        using var temp = TestData.CreateTempDirectory();
        var zip = Path.Combine(temp.Path, "phantom.zip");
        var phantom = new CtPhantom(Small);
        phantom.WriteZip(zip);

        using var series = SeriesAssembler.Assemble(zip);

        Assert.Equal((128, 128, 24), (series.Columns, series.Rows, series.SliceCount));
        Assert.Equal(5.0, series.Geometry.SliceSpacing, 6);

        // Ascending patient z: the phantom's last (lowest) slice comes first.
        for (var i = 0; i < series.SliceCount; i++)
        {
            Assert.Equal(phantom.SopInstanceUid(series.SliceCount - 1 - i), series.Slices[i].SopInstanceUid);
        }

        Assert.DoesNotContain(series.Report.Issues, i => i.Kind is "gap" or "variable-spacing" or "gantry-tilt");
    }

    [Fact]
    public void Pixels_ReadBackThroughTheCodec_CarryTheDesignedHuPerTissue()
    {
        using var temp = TestData.CreateTempDirectory();
        var options = new CtPhantomOptions { Matrix = 256, Slices = 16, SliceSpacing = 10, Seed = 3 };
        var phantom = new CtPhantom(options);
        phantom.WriteFolder(temp.Path);
        using var series = SeriesAssembler.Assemble(temp.Path);

        var sums = new Dictionary<PhantomTissue, (double Sum, long Count)>();
        var groundGlassOutOfRange = 0L;
        var labels = new PhantomTissue[256 * 256];
        var designed = new short[256 * 256];
        for (var i = 0; i < series.SliceCount; i++)
        {
            var phantomIndex = series.SliceCount - 1 - i;
            phantom.RenderSlice(phantomIndex, designed, labels);
            var hu = series.ReadHu(i);
            for (var p = 0; p < hu.Length; p++)
            {
                var (sum, count) = sums.GetValueOrDefault(labels[p]);
                sums[labels[p]] = (sum + hu[p], count + 1);
                if (labels[p] == PhantomTissue.GroundGlass && hu[p] is < -600 - 60 or > -300 + 60)
                {
                    groundGlassOutOfRange++; // beyond the design range by more than 5 noise sigmas
                }
            }
        }

        double Mean(PhantomTissue t) => sums[t].Sum / sums[t].Count;
        Assert.InRange(Mean(PhantomTissue.Lung), -860, -840);
        Assert.InRange(Mean(PhantomTissue.SoftTissue), 30, 55);
        Assert.InRange(Mean(PhantomTissue.Fat), -110, -90);
        Assert.InRange(Mean(PhantomTissue.Air), -1000, -980);
        Assert.InRange(Mean(PhantomTissue.Bone), 250, 720);
        Assert.InRange(Mean(PhantomTissue.GroundGlass), -600, -300);
        Assert.True(sums[PhantomTissue.GroundGlass].Count > 200, "ground-glass voxels drawn");
        Assert.True(sums[PhantomTissue.Vessel].Count > 100, "vessel voxels drawn");
        Assert.True(sums[PhantomTissue.Lung].Count > 50_000, "lung voxels drawn");
        Assert.Equal(0, groundGlassOutOfRange);
    }

    [Fact]
    public void GroundGlass_IsBilateralAndOnlyInsideLungs()
    {
        var options = new CtPhantomOptions { Matrix = 128, Slices = 40, SliceSpacing = 7.5, NoiseHu = 0 };
        var phantom = new CtPhantom(options);
        var hu = new short[128 * 128];
        var labels = new PhantomTissue[128 * 128];
        var (left, right) = (0, 0);
        for (var s = 0; s < options.Slices; s++)
        {
            phantom.RenderSlice(s, hu, labels);
            for (var p = 0; p < hu.Length; p++)
            {
                if (labels[p] == PhantomTissue.GroundGlass)
                {
                    Assert.InRange(hu[p], PhantomHu.GroundGlassMin, PhantomHu.GroundGlassMax);
                    if (p % 128 >= 64)
                    {
                        left++; // patient left is the image right (LPS, row direction +x)
                    }
                    else
                    {
                        right++;
                    }
                }
            }
        }

        Assert.True(left > 50 && right > 50, $"bilateral: left {left}, right {right}");

        var clear = new CtPhantom(options with { Finding = PhantomFinding.None });
        for (var s = 0; s < options.Slices; s++)
        {
            clear.RenderSlice(s, hu, labels);
            Assert.DoesNotContain(PhantomTissue.GroundGlass, labels);
        }
    }

    [Fact]
    public void SameSeed_SamePixelsAndUids_UidSeedChangesOnlyUids()
    {
        var a = new CtPhantom(Small);
        var b = new CtPhantom(Small);
        var c = new CtPhantom(Small with { UidSeed = "another" });
        var pa = new short[128 * 128];
        var pb = new short[128 * 128];
        var pc = new short[128 * 128];
        a.RenderSlice(10, pa);
        b.RenderSlice(10, pb);
        c.RenderSlice(10, pc);

        Assert.Equal(pa, pb);
        Assert.Equal(pa, pc);
        Assert.Equal(a.StudyInstanceUid, b.StudyInstanceUid);
        Assert.NotEqual(a.StudyInstanceUid, c.StudyInstanceUid);
        Assert.NotEqual(a.SopInstanceUid(0), a.SopInstanceUid(1));
    }

    private static (int ExitCode, string Stdout, string Stderr) Run(string exe, params string[] args)
    {
        var psi = new ProcessStartInfo(exe, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result, stderr.Result);
    }
}
