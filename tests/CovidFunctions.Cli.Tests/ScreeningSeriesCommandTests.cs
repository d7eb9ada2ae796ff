using System.IO.Compression;
using System.Text.Json;
using CovidFunctions.Cli.Commands;
using CovidFunctions.Imaging.Nifti;
using CovidFunctions.Imaging.Series;
using CovidFunctions.Imaging.Volumes;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary><c>covidfn segment</c> / <c>covidfn classify</c> on 3-D inputs: a real DICOM series (3 slices of TCIA
/// Lung-PET-CT-Dx A0002, copied to a temp folder), the same slices as a zip and as a NIfTI volume, one DICOM file.</summary>
public sealed class ScreeningSeriesCommandTests
{
    private static string Models => Path.Combine(TestData.RepoRoot, "models");

    private static readonly string[] SeriesFiles = ["1-14.dcm", "1-15.dcm", "1-16.dcm"];

    private static string CopySeries(string dir)
    {
        var folder = Path.Combine(dir, "a0002");
        Directory.CreateDirectory(folder);
        foreach (var f in SeriesFiles)
        {
            File.Copy(TestData.Shared("dicom", "chest-ct", "lung-pet-ct-dx", "A0002-s2-b70f", f), Path.Combine(folder, f));
        }

        return folder;
    }

    private static int[] LesionVoxelsPerSlice(AxialVolume volume) =>
        Enumerable.Range(0, volume.Geometry.Slices).Select(k =>
        {
            var n = 0;
            foreach (var v in volume.Slice(k))
            {
                Assert.True(v is 0f or 1f, $"mask value {v}");
                n += v > 0 ? 1 : 0;
            }

            return n;
        }).ToArray();

    [Fact]
    public void Segment_DicomFolder_WritesMaskVolumeOnTheSeriesGeometryWithOverlaysAndMontage()
    {
        using var dir = TestData.CreateTempDirectory();
        var input = CopySeries(dir.Path);
        var outDir = Path.Combine(dir.Path, "out");
        var overlays = Path.Combine(dir.Path, "overlays");
        var montage = Path.Combine(dir.Path, "m", "montage.png");
        var maskOut = Path.Combine(dir.Path, "copy", "mask.nii.gz");
        var output = new StringWriter();
        var error = new StringWriter();

        var rc = SegmentCommand.Run(input, outDir, Models, 0, new SegmentExtras(overlays, montage, maskOut), output, error);

        Assert.True(rc == ExitCodes.Success, error.ToString());
        using var series = SeriesAssembler.Assemble(input);
        var mask = NiftiOrientation.ToAxialVolume(NiftiFile.Read(Path.Combine(outDir, "a0002_lesion.nii.gz")));
        var g = mask.Geometry;
        Assert.Equal((series.Columns, series.Rows, 3), (g.Columns, g.Rows, g.Slices));
        Assert.Equal(series.Geometry.ColumnSpacing, g.ColumnSpacing, 4);
        Assert.Equal(series.Geometry.SliceSpacing, g.SliceSpacing, 3);
        Assert.True((series.Geometry.Origin - g.Origin).Length < 1e-3, $"origin {g.Origin} vs {series.Geometry.Origin}");
        var perSlice = LesionVoxelsPerSlice(mask);
        Assert.Equal(perSlice.Count(n => n > 0), Directory.Exists(overlays) ? Directory.GetFiles(overlays, "a0002_slice*.png").Length : 0);
        Assert.True(File.Exists(maskOut));
        Assert.Equal(NiftiFile.Read(maskOut).Data, NiftiFile.Read(Path.Combine(outDir, "a0002_lesion.nii.gz")).Data);
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47 }, File.ReadAllBytes(montage)[..4]);
        Assert.Contains("a0002: 3 slices", output.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Segment_NiftiVolume_MaskKeepsTheSourceAffine()
    {
        using var dir = TestData.CreateTempDirectory();
        var nii = Path.Combine(dir.Path, "ct.nii.gz");
        using (var series = SeriesAssembler.Assemble(CopySeries(dir.Path)))
        {
            var voxels = new float[series.Rows * series.Columns * series.SliceCount];
            for (var k = 0; k < series.SliceCount; k++)
            {
                series.ReadHu(k).CopyTo(voxels, k * series.Rows * series.Columns);
            }

            NiftiFile.Write(nii, NiftiOrientation.FromAxialVolume(new AxialVolume(series.Geometry, voxels), NiftiDataType.Int16));
        }

        var outDir = Path.Combine(dir.Path, "out");
        var error = new StringWriter();

        var rc = SegmentCommand.Run(nii, outDir, Models, 0, TextWriter.Null, error);

        Assert.True(rc == ExitCodes.Success, error.ToString());
        var source = NiftiFile.Read(nii).Header;
        var mask = NiftiFile.Read(Path.Combine(outDir, "ct_lesion.nii.gz")).Header;
        Assert.Equal(source.Dim.Take(4), mask.Dim.Take(4));
        for (var i = 0; i < 12; i++)
        {
            Assert.Equal(source.SRow[i], mask.SRow[i], 4);
        }

        Assert.Equal(NiftiDataType.Int16, mask.DataType);
    }

    [Fact]
    public void Segment_RealMosMedNifti_MaskHasTheSourceGridAndAffine()
    {
        // A real MosMed NIfTI header and orientation (the file is a lesion mask, not CT: only the volume path is
        // exercised here, the model output on it means nothing).
        using var dir = TestData.CreateTempDirectory();
        var nii = NiftiTestVolumes.ChestOnMaskGeometry(TestData.Shared("seg", "mosmed-masks", "masks", "study_0277_mask.nii.gz"), Path.Combine(dir.Path, "in"));
        var error = new StringWriter();

        var rc = SegmentCommand.Run(nii, dir.Path, Models, 0, TextWriter.Null, error);

        Assert.True(rc == ExitCodes.Success, error.ToString());
        var source = NiftiOrientation.ToAxialVolume(NiftiFile.Read(nii)).Geometry;
        var mask = NiftiOrientation.ToAxialVolume(NiftiFile.Read(Path.Combine(dir.Path, "study_0277_mask_lesion.nii.gz")));
        var g = mask.Geometry;
        Assert.Equal((source.Columns, source.Rows, source.Slices), (g.Columns, g.Rows, g.Slices));
        Assert.Equal(source.ColumnSpacing, g.ColumnSpacing, 4);
        Assert.Equal(source.RowSpacing, g.RowSpacing, 4);
        Assert.Equal(source.SliceSpacing, g.SliceSpacing, 3);
        Assert.True((source.Origin - g.Origin).Length < 1e-3, $"origin {g.Origin} vs {source.Origin}");
        Assert.True((source.RowDirection - g.RowDirection).Length < 1e-6 && (source.ColumnDirection - g.ColumnDirection).Length < 1e-6);
        _ = LesionVoxelsPerSlice(mask); // values are 0/1
    }

    [Fact]
    public void Classify_DicomZip_ItemsAreTheSlicesAndStudyHoldsThePatientLevelResult()
    {
        using var dir = TestData.CreateTempDirectory();
        var folder = CopySeries(dir.Path);
        var zip = Path.Combine(dir.Path, "study.zip");
        ZipFile.CreateFromDirectory(folder, zip);
        var json = Path.Combine(dir.Path, "r.json");
        var error = new StringWriter();

        var rc = ClassifyCommand.Run(zip, json, Models, 0, TextWriter.Null, error);

        Assert.True(rc == ExitCodes.Success, error.ToString());
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var items = doc.RootElement.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(3, items.Count);
        Assert.Equal(SeriesFiles.Order(StringComparer.Ordinal).ToHashSet(), items.Select(i => i.GetProperty("path").GetString()!).ToHashSet());
        Assert.Equal(new[] { 0, 1, 2 }, items.Select(i => i.GetProperty("slice").GetInt32()).ToArray());
        foreach (var element in items.Append(doc.RootElement.GetProperty("study")))
        {
            var p = element.GetProperty("probabilities");
            var sum = p.GetProperty("covid").GetDouble() + p.GetProperty("cap").GetDouble() + p.GetProperty("normal").GetDouble();
            Assert.InRange(sum, 0.999, 1.001);
            Assert.Contains(element.GetProperty("label").GetString(), new[] { "covid", "cap", "normal" });
        }

        var study = doc.RootElement.GetProperty("study");
        Assert.Equal(3, study.GetProperty("slices").GetInt32());
        Assert.InRange(study.GetProperty("lesion_fraction").GetDouble(), 0, 1);
    }

    [Fact]
    public void Classify_ZipOf2DImages_ScreensThemAsOneAlreadyWindowedSeries()
    {
        using var dir = TestData.CreateTempDirectory();
        var folder = Path.Combine(dir.Path, "slices");
        Directory.CreateDirectory(folder);
        // One real slice twice: a series needs one image size, and COVID-SemiSeg slices differ in size.
        foreach (var name in new[] { "slice1.jpg", "slice2.jpg" })
        {
            File.Copy(TestData.Shared("seg", "covid-semiseg", "train", "images", "0.jpg"), Path.Combine(folder, name));
        }

        var zip = Path.Combine(dir.Path, "images.zip");
        ZipFile.CreateFromDirectory(folder, zip);
        var json = Path.Combine(dir.Path, "r.json");
        var error = new StringWriter();

        var rc = ClassifyCommand.Run(zip, json, Models, 0, TextWriter.Null, error);

        Assert.True(rc == ExitCodes.Success, error.ToString());
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        Assert.Equal(2, doc.RootElement.GetProperty("items").GetArrayLength());
        Assert.Equal(2, doc.RootElement.GetProperty("study").GetProperty("slices").GetInt32());
    }

    [Fact]
    public void Classify_OneDicomFile_OneItemAndAStudy()
    {
        var file = TestData.Shared("dicom", "chest-ct", "covid19-ny-sbu", "A002304", "axial", "19001231-076.dcm");
        using var dir = TestData.CreateTempDirectory();
        var json = Path.Combine(dir.Path, "r.json");
        var error = new StringWriter();

        var rc = ClassifyCommand.Run(file, json, Models, 0, TextWriter.Null, error);

        Assert.True(rc == ExitCodes.Success, error.ToString());
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var item = Assert.Single(doc.RootElement.GetProperty("items").EnumerateArray());
        Assert.Equal("19001231-076.dcm", item.GetProperty("path").GetString());
        Assert.Equal(1, doc.RootElement.GetProperty("study").GetProperty("slices").GetInt32());
    }

    [Fact]
    public void Segment_MontageOn2DInput_ReturnsBadInput()
    {
        var image = TestData.Shared("seg", "covid-semiseg", "train", "images", "0.jpg");
        using var dir = TestData.CreateTempDirectory();
        var error = new StringWriter();

        var rc = SegmentCommand.Run(image, dir.Path, Models, 0, new SegmentExtras(null, Path.Combine(dir.Path, "m.png"), null), TextWriter.Null, error);

        Assert.Equal(ExitCodes.BadInput, rc);
        Assert.Contains("need a series input", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Segment_2DImageWithOverlays_WritesAnOverlayWhenTheMaskHasLesion()
    {
        var image = TestData.Shared("seg", "covid-semiseg", "train", "images", "0.jpg");
        using var dir = TestData.CreateTempDirectory();
        var overlays = Path.Combine(dir.Path, "ov");

        var rc = SegmentCommand.Run(image, Path.Combine(dir.Path, "out"), Models, 0, new SegmentExtras(overlays, null, null), TextWriter.Null, TextWriter.Null);

        Assert.Equal(ExitCodes.Success, rc);
        var mask = Imaging.Preprocessing.ImageLoader.Load(Path.Combine(dir.Path, "out", "0.png"));
        var overlay = Path.Combine(overlays, "0.png");
        Assert.Equal(mask.Pixels.Any(v => v > 0), File.Exists(overlay));
        if (File.Exists(overlay))
        {
            var picture = Imaging.Preprocessing.ImageLoader.Load(overlay);
            Assert.Equal((mask.Width, mask.Height), (picture.Width, picture.Height));
        }
    }
}
