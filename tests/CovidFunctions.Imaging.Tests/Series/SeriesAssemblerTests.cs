using System.IO.Compression;
using CovidFunctions.Imaging.Archives;
using CovidFunctions.Imaging.Series;
using CovidFunctions.Imaging.Volumes;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Imaging.Tests.Series;

/// <summary>
/// Series assembly on real data. Expected values come from pydicom 2.3 + numpy
/// (<c>/usr/bin/python3</c>: sorted by ImagePositionPatient z, HU = pixel_array·slope + intercept).
/// </summary>
public sealed class SeriesAssemblerTests
{
    private static string LungDx(params string[] rest) => TestData.Shared(["dicom", "chest-ct", "lung-pet-ct-dx", .. rest]);

    [Fact]
    public void Assemble_LungPetCtDxFolder_ChoosesLungKernelSeriesOrderedByPosition()
    {
        using var series = SeriesAssembler.Assemble(LungDx());

        var report = series.Report;
        Assert.Equal("B70f", report.Selected.ConvolutionKernel);
        Assert.Contains("lung kernel", report.SelectionReason, StringComparison.Ordinal);
        var other = Assert.Single(report.Others);
        Assert.Equal("B40f", other.ConvolutionKernel);
        Assert.True(other.Eligible);
        Assert.Equal((512, 512, 30), (series.Columns, series.Rows, series.SliceCount));
        Assert.Equal(0.646484375, series.Geometry.ColumnSpacing, 9);
        Assert.Equal(8.0, series.Geometry.SliceSpacing, 6);
        Assert.Equal(80.0, series.Geometry.SlicePositions[0], 6);
        Assert.Equal(312.0, series.Geometry.SlicePositions[^1], 6);
        Assert.Equal(new Vec3(-173.1767578125, -294.1767578125, 80), series.Geometry.Origin);
        // Position order is the reverse of InstanceNumber and of file-name order here.
        Assert.Equal("1-30.dcm", Path.GetFileName(series.Slices[0].SourceName));
        Assert.Equal("1-01.dcm", Path.GetFileName(series.Slices[^1].SourceName));
        Assert.DoesNotContain(report.Issues, i => i.Kind is "gap" or "variable-spacing" or "gantry-tilt");
    }

    [Theory]
    [InlineData(0, 256, 256, -27)]
    [InlineData(15, 100, 200, -104)]
    [InlineData(29, 400, 50, -941)]
    [InlineData(10, 256, 100, -918)]
    public void ReadHu_LungKernelSeries_MatchesPydicom(int slice, int row, int column, float expected)
    {
        using var series = SeriesAssembler.Assemble(LungDx());
        Assert.Equal(expected, series.ReadHu(slice)[(row * 512) + column]);
    }

    [Fact]
    public void Assemble_SoftKernelFolderOnly_HuMatchesPydicom()
    {
        using var series = SeriesAssembler.Assemble(LungDx("A0002-s3-b40f"));

        Assert.Equal("B40f", series.Report.Selected.ConvolutionKernel);
        Assert.Contains("only screenable", series.Report.SelectionReason, StringComparison.Ordinal);
        Assert.Equal(39, series.ReadHuInt16(0)[(256 * 512) + 256]);
        Assert.Equal(-893, series.ReadHuInt16(10)[(256 * 512) + 100]);
    }

    [Fact]
    public void Assemble_ShuffledFileNames_SameOrder()
    {
        using var temp = TestData.CreateTempDirectory();
        var files = Directory.GetFiles(LungDx("A0002-s2-b70f"), "*.dcm");
        var random = new Random(42);
        var names = Enumerable.Range(0, files.Length).OrderBy(_ => random.Next()).ToArray();
        for (var i = 0; i < files.Length; i++)
        {
            File.Copy(files[i], Path.Combine(temp.Path, $"x{names[i]:00}"));
        }

        using var shuffled = SeriesAssembler.Assemble(temp.Path);
        using var original = SeriesAssembler.Assemble(LungDx("A0002-s2-b70f"));

        Assert.Equal(original.Slices.Select(s => s.SopInstanceUid), shuffled.Slices.Select(s => s.SopInstanceUid));
        Assert.Equal(original.Geometry.SlicePositions, shuffled.Geometry.SlicePositions);
    }

    [Fact]
    public void Assemble_ZipWithMixedSeriesAndJunk_ChoosesAndRecordsOthers()
    {
        using var temp = TestData.CreateTempDirectory();
        var zipPath = Path.Combine(temp.Path, "upload.zip");
        using (var zip = ZipFile.Open(zipPath, ZipArchiveMode.Create))
        {
            var i = 0;
            foreach (var file in Directory.GetFiles(LungDx(), "*.dcm", SearchOption.AllDirectories).OrderBy(f => Path.GetFileName(f), StringComparer.Ordinal))
            {
                zip.CreateEntryFromFile(file, $"dump/{i++:000}.dcm");
            }

            zip.CreateEntryFromFile(TestData.Shared("dicom", "edge", "ge-head-tilt", "10.dcm"), "other/head.dcm");
            using var notes = new StreamWriter(zip.CreateEntry("README.txt").Open());
            notes.Write("not dicom");
        }

        using var series = SeriesAssembler.Assemble(zipPath);

        Assert.Equal(30, series.SliceCount);
        Assert.Equal("B70f", series.Report.Selected.ConvolutionKernel);
        Assert.Equal(2, series.Report.Others.Count);
        Assert.Contains(series.Report.SkippedSources, s => s.Contains("README.txt", StringComparison.Ordinal));
        Assert.Equal(-27, series.ReadHu(0)[(256 * 512) + 256]);
        Assert.Equal(-941, series.ReadHu(29)[(400 * 512) + 50]);
    }

    [Fact]
    public void Assemble_GantryTiltedHeadCt_ReportsTiltAndVariableSpacing()
    {
        using var series = SeriesAssembler.Assemble(TestData.Shared("dicom", "edge", "ge-head-tilt"));

        var report = series.Report;
        Assert.Equal(18.5, report.GantryTiltDegrees, 1);
        var tilt = Assert.Single(report.Issues, i => i.Kind == "gantry-tilt");
        Assert.Contains("18.5", tilt.Message, StringComparison.Ordinal);
        Assert.True(report.HasVariableSpacing);
        Assert.Equal(10, series.SliceCount);
        // Along the tilted normal: 4.22·cos(18.5°) = 4.0 mm steps, then 1.08 and 7.0 mm.
        Assert.Equal(4.0, series.Geometry.SlicePositions[1] - series.Geometry.SlicePositions[0], 2);
        Assert.Equal(7.0, series.Geometry.SlicePositions[9] - series.Geometry.SlicePositions[8], 2);
    }

    [Fact]
    public void Assemble_TiltedHeadCt_PaddingBecomesAir()
    {
        using var series = SeriesAssembler.Assemble(TestData.Shared("dicom", "edge", "ge-head-tilt"));

        var hu = series.ReadHu(0);

        Assert.Equal(-1024, hu[0]); // stored −1500 = PixelPaddingValue
        Assert.Equal(5, hu[(256 * 512) + 256]);
    }

    [Fact]
    public void Assemble_EnhancedCtMultiFrame_UsesPerFrameGeometryAndRescale()
    {
        using var series = SeriesAssembler.Assemble(TestData.Shared("dicom", "conformance", "pydicom-data", "data", "eCT_Supplemental.dcm"));

        Assert.Equal(2, series.SliceCount);
        Assert.Equal(10.0, series.Geometry.SliceSpacing, 6);
        Assert.Equal(0.388672, series.Geometry.RowSpacing, 6);
        // IOP (−1, 0, 0): columns flipped to the standard display; frame 1 (z = −159) comes first.
        Assert.Contains(series.Report.Issues, i => i.Kind == "flipped-in-plane");
        Assert.Equal(new Vec3(1, 0, 0), series.Geometry.RowDirection);
        Assert.Equal(-159, series.Geometry.PositionOf(0, 0, 0).Z, 6);
        Assert.Equal(-149, series.Geometry.PositionOf(0, 0, 1).Z, 6);
        Assert.Equal(83, series.ReadHu(0)[(256 * 512) + 256]); // pydicom frame 0 [256, 255]
        Assert.Equal(-2, series.ReadHu(1)[(256 * 512) + 256]);
        Assert.Equal(36, series.ReadHu(0)[(100 * 512) + 300]); // pydicom frame 0 [100, 211]
    }

    [Fact]
    public void Assemble_NiftiVolume_ReadsAsAxialSeries()
    {
        using var temp = TestData.CreateTempDirectory();
        using var series = SeriesAssembler.Assemble(NiftiTestVolumes.ChestOnMaskGeometry(TestData.Shared("seg", "mosmed-masks", "masks", "study_0255_mask.nii.gz"), temp.Path));

        Assert.Equal(38, series.SliceCount);
        Assert.Contains("sform", series.Report.SelectionReason, StringComparison.Ordinal);
        Assert.Equal(8.0, series.Geometry.SliceSpacing, 6);
        Assert.Equal(-1000f, series.ReadHu(0)[0]);
    }

    [Fact]
    public void Assemble_NiftiLabelMask_RefusedAsNotHounsfieldWithTheEvidence()
    {
        // A real MosMed lesion mask (0/1): NIfTI carries no modality, and screening it as CT would give a diagnosis of
        // nothing. It has no voxel at or below -500 HU.
        var mask = TestData.Shared("seg", "mosmed-masks", "masks", "study_0255_mask.nii.gz");

        var ex = Assert.Throws<SeriesAssemblyException>(() => SeriesAssembler.Assemble(mask));

        Assert.Equal("not-hounsfield", ex.Reason);
        Assert.Equal(mask, ex.FilePath);
        Assert.Contains("study_0255_mask.nii.gz does not hold CT in Hounsfield units", ex.Message, StringComparison.Ordinal);
        Assert.Contains("from 0 to 1", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Assemble_DuplicatedSeriesPositions_RefusedAsUnorderable()
    {
        // The same 30 slices twice under one series UID (copies keep their UIDs): every position repeats.
        using var temp = TestData.CreateTempDirectory();
        foreach (var file in Directory.GetFiles(LungDx("A0002-s2-b70f")))
        {
            File.Copy(file, Path.Combine(temp.Path, "a-" + Path.GetFileName(file)));
            File.Copy(file, Path.Combine(temp.Path, "b-" + Path.GetFileName(file)));
        }

        var ex = Assert.Throws<SeriesAssemblyException>(() => SeriesAssembler.Assemble(temp.Path));
        Assert.Equal("duplicate-positions", ex.Reason);
        Assert.Contains("repeat a position", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Assemble_MissingSliceInMiddle_ReportsGap()
    {
        using var temp = TestData.CreateTempDirectory();
        foreach (var file in Directory.GetFiles(LungDx("A0002-s2-b70f")).Where(f => !f.EndsWith("1-15.dcm", StringComparison.Ordinal)))
        {
            File.Copy(file, Path.Combine(temp.Path, Path.GetFileName(file)));
        }

        using var series = SeriesAssembler.Assemble(temp.Path);

        var gap = Assert.Single(series.Report.Issues, i => i.Kind == "gap");
        Assert.Contains("16 mm", gap.Message, StringComparison.Ordinal);
        Assert.Equal(29, series.SliceCount);
    }

    [Fact]
    public void Assemble_FolderWithoutDicom_ThrowsNoImages()
    {
        using var temp = TestData.CreateTempDirectory();
        File.WriteAllText(Path.Combine(temp.Path, "a.txt"), "hello");

        var ex = Assert.Throws<SeriesAssemblyException>(() => SeriesAssembler.Assemble(temp.Path));
        Assert.Equal("no-images", ex.Reason);
    }

    [Fact]
    public void Assemble_ZipBombs_RefusedWithTheArchiveReasonAndBoundedMemory()
    {
        using var temp = TestData.CreateTempDirectory();
        var bomb = Path.Combine(temp.Path, "bomb.zip");
        Archives.ZeroBomb.Write(bomb, "study/zeros.dcm", 1024); // 1 GiB of zeros, declared honestly
        var liar = Path.Combine(temp.Path, "liar.zip");
        Archives.ZeroBomb.Write(liar, "study/zeros.dcm", 1024, declaredUncompressed: 4 << 20); // declares 4 MiB
        var allocated = GC.GetAllocatedBytesForCurrentThread();

        var declared = Assert.Throws<ArchiveLimitExceededException>(() => SeriesAssembler.Assemble(bomb));
        var streamed = Assert.Throws<ArchiveLimitExceededException>(() => SeriesAssembler.Assemble(liar, new SeriesAssemblyOptions { ZipLimits = ZipSafetyLimits.Default with { MaxCompressionRatio = 5000 } }));

        Assert.Equal("compression-ratio", declared.Reason);
        Assert.Equal("size-mismatch", streamed.Reason); // not swallowed as "not DICOM": the upload is refused
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - allocated < 64 << 20, "assembly must not buffer a bomb");
    }

    [Fact]
    public void Assemble_TraversalEntryName_RefusedBeforeAnyEntryIsRead()
    {
        using var temp = TestData.CreateTempDirectory();
        var zipPath = Path.Combine(temp.Path, "upload.zip");
        using (var zip = ZipFile.Open(zipPath, ZipArchiveMode.Create))
        {
            zip.CreateEntryFromFile(LungDx("A0002-s2-b70f", "1-01.dcm"), "ok/1-01.dcm");
            zip.CreateEntryFromFile(LungDx("A0002-s2-b70f", "1-02.dcm"), "../../etc/cron.d/1-02.dcm");
        }

        var ex = Assert.Throws<UnsafeArchiveEntryException>(() => SeriesAssembler.Assemble(zipPath));

        Assert.Equal("path-traversal", ex.Reason);
    }

    [Theory]
    [InlineData("NaN")]
    [InlineData("1e400")]
    public void Assemble_NonFiniteRescaleSlope_LeavesTheSliceOutNamingTheFile(string slope)
    {
        // DS text parses to NaN or +Inf; before 866aad2 the HU came out NaN (tiles cast it to 0 HU, water) without a word,
        // then ReadHu refused the slice (AssembledSeries.Convert), which failed the whole study when it was tiled. Now the
        // header scan leaves that slice out with the reason and the rest of the series reads finite HU.
        using var temp = TestData.CreateTempDirectory();
        foreach (var file in Directory.GetFiles(LungDx("A0002-s3-b40f"), "*.dcm"))
        {
            File.Copy(file, Path.Combine(temp.Path, Path.GetFileName(file)));
        }

        var bad = Path.Combine(temp.Path, "1-01.dcm");
        var dicom = CovidFunctions.Dicom.DicomFile.Open(bad);
        dicom.Dataset.SetString(CovidFunctions.Dicom.DicomTags.RescaleSlope, CovidFunctions.Dicom.DicomVR.DS, slope);
        dicom.Save(bad);
        using var series = SeriesAssembler.Assemble(temp.Path);

        Assert.DoesNotContain(series.Slices, s => s.SourceName == bad);
        Assert.Equal(29, series.SliceCount);
        var note = Assert.Single(series.Report.SkippedSources);
        Assert.StartsWith($"{bad}: defective image attributes, left out of its series: RescaleSlope (0028,1053) is ", note, StringComparison.Ordinal);
        Assert.All(series.ReadHu(0), v => Assert.True(float.IsFinite(v)));
    }
}
