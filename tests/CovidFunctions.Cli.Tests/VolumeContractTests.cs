using System.Diagnostics;
using System.Text.Json;
using CovidFunctions.Cli.Commands;
using CovidFunctions.Imaging.Nifti;
using CovidFunctions.Imaging.Series;
using CovidFunctions.Imaging.Volumes;
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

    [Fact]
    public void Segment_DicomWithMissingSliceOrGantryTilt_EverySliceLiesWhereItsDicomSliceLies()
    {
        // NIfTI stores one slice step: before, a missing slice moved every later mask slice one step towards the gap
        // (the affine used the median spacing) and a tilted (sheared) stack was written with an unsheared affine.
        using var dir = TestData.CreateTempDirectory();
        var dicom = CopySeries(Path.Combine(dir.Path, "a0002"), files: ["1-14.dcm", "1-15.dcm", "1-16.dcm", "1-17.dcm"]);
        foreach (var kind in new[] { "gap", "tilt" })
        {
            var input = Path.Combine(dir.Path, kind);
            Python("derive", dicom, input, kind);
            var error = new StringWriter();

            Assert.True(SegmentCommand.Run(input, dir.Path, Models, 0, TextWriter.Null, error) == ExitCodes.Success, error.ToString());

            var report = Python("dicom-world", input, Path.Combine(dir.Path, kind + "_lesion.nii.gz"));
            Assert.Contains(kind == "gap" ? "ok 3 slices, 1 empty" : "ok 4 slices, 0 empty", report, StringComparison.Ordinal);
            Assert.Contains(kind == "gap" ? "missing slice position(s) filled with empty slices" : "gantry-tilt", error.ToString(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Segment_ProneSeries_SameMaskAndAffineAsTheSameVoxelsStoredSupine()
    {
        using var dir = TestData.CreateTempDirectory();
        var dicom = CopySeries(Path.Combine(dir.Path, "supine"));
        var prone = Path.Combine(dir.Path, "prone");
        Python("derive", dicom, prone, "prone");
        var error = new StringWriter();

        Assert.True(SegmentCommand.Run(dicom, dir.Path, Models, 0, TextWriter.Null, error) == ExitCodes.Success, error.ToString());
        Assert.True(SegmentCommand.Run(prone, dir.Path, Models, 0, TextWriter.Null, error) == ExitCodes.Success, error.ToString());

        Assert.Contains("ok 3 slices, 0 empty", Python("dicom-world", prone, Path.Combine(dir.Path, "prone_lesion.nii.gz")), StringComparison.Ordinal);
        var a = NiftiFile.Read(Path.Combine(dir.Path, "supine_lesion.nii.gz"));
        var b = NiftiFile.Read(Path.Combine(dir.Path, "prone_lesion.nii.gz"));
        Assert.True(a.Data.AsSpan().SequenceEqual(b.Data), "the prone copy's mask differs");
        Assert.Equal(a.Header.SRow.Select(v => Math.Round(v, 3)), b.Header.SRow.Select(v => Math.Round(v, 3)));
    }

    [Fact]
    public void Classify_FolderWithTwoSeriesAndAScout_ScreensTheDocumentedOneAndSaysWhich()
    {
        using var dir = TestData.CreateTempDirectory();
        var study = Path.Combine(dir.Path, "study");
        Python("derive", CopySeries(Path.Combine(dir.Path, "b70f")), Path.Combine(study, "b70f"), "localizer");
        CopySeries(Path.Combine(study, "b40f"), "A0002-s3-b40f");
        var json = Path.Combine(dir.Path, "r.json");
        var error = new StringWriter();

        var rc = ClassifyCommand.Run(study, json, Models, 0, TextWriter.Null, error);

        Assert.True(rc == ExitCodes.Success, error.ToString());
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var paths = doc.RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("path").GetString()).ToList();
        Assert.Equal(new[] { "b70f/1-16.dcm", "b70f/1-15.dcm", "b70f/1-14.dcm" }, paths); // feet to head, the lung kernel
        var notes = error.ToString();
        Assert.Contains("screened series 2", notes, StringComparison.Ordinal);
        Assert.Contains("because its kernel is a lung kernel", notes, StringComparison.Ordinal);
        Assert.Contains("series 1 (Topogram), 1 slice(s), not screened: localizer (scout) images", notes, StringComparison.Ordinal);
        Assert.Contains("series 3 (ThoraxRoutine  8.0.0  B40f), 3 slice(s), not screened: ranked lower", notes, StringComparison.Ordinal);
    }

    [Fact]
    public void SegmentAndClassify_FolderOfNiftiVolumes_OneMaskAndOneStudyPerVolume()
    {
        // Before, a folder of NIfTI volumes was refused: "no DICOM images or 2-D images found".
        using var dir = TestData.CreateTempDirectory();
        var folder = Path.Combine(dir.Path, "volumes");
        WriteNifti(CopySeries(Path.Combine(dir.Path, "a0002")), Path.Combine(folder, "p1", "ct.nii.gz"));
        File.Copy(Path.Combine(folder, "p1", "ct.nii.gz"), Path.Combine(folder, "p2.nii"));
        var noise = new NiftiHeader { Dim = [3, 16, 16, 2, 1, 1, 1, 1], DataType = NiftiDataType.UInt8 };
        NiftiFile.Write(Path.Combine(folder, "mr.nii.gz"), new NiftiImage(noise, Enumerable.Range(0, 512).Select(i => (byte)(i * 7)).ToArray()));
        var masks = Path.Combine(dir.Path, "masks");
        var json = Path.Combine(dir.Path, "r.json");
        var error = new StringWriter();

        var segment = SegmentCommand.Run(folder, masks, Models, 0, TextWriter.Null, error);
        var classify = ClassifyCommand.Run(folder, json, Models, 0, TextWriter.Null, error);

        // The MR-like volume is refused by name (exit 2); the others are still written.
        Assert.Equal((ExitCodes.BadInput, ExitCodes.BadInput), (segment, classify));
        Assert.Contains("mr.nii.gz does not hold CT in Hounsfield units", error.ToString(), StringComparison.Ordinal);
        Assert.Equal(new[] { "ct_lesion.nii.gz", "p2_lesion.nii.gz" }, Directory.GetFiles(masks).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var items = doc.RootElement.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(new[] { "p1/ct.nii.gz", "p1/ct.nii.gz", "p1/ct.nii.gz", "p2.nii", "p2.nii", "p2.nii" }, items.Select(i => i.GetProperty("path").GetString()));
        var studies = doc.RootElement.GetProperty("studies").EnumerateArray().ToList();
        Assert.Equal(new[] { "p1/ct.nii.gz", "p2.nii" }, studies.Select(s => s.GetProperty("path").GetString()));
        foreach (var s in studies)
        {
            var p = s.GetProperty("probabilities");
            Assert.InRange(p.GetProperty("covid").GetDouble() + p.GetProperty("cap").GetDouble() + p.GetProperty("normal").GetDouble(), 0.999, 1.001);
        }

        Assert.False(doc.RootElement.TryGetProperty("study", out _));

        // Two volumes that would write the same mask name are refused before anything is written.
        File.Copy(Path.Combine(folder, "p2.nii"), Path.Combine(folder, "ct.nii"));
        var clash = new StringWriter();
        Assert.Equal(ExitCodes.BadInput, SegmentCommand.Run(folder, Path.Combine(dir.Path, "m2"), Models, 0, TextWriter.Null, clash));
        Assert.Contains("ct.nii and p1/ct.nii.gz would both be written as ct_lesion.nii.gz", clash.ToString(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "m2")));
    }

    [Theory]
    [InlineData("truncated", "file is truncated")]
    [InlineData("corrupt", "corrupt gzip stream")]
    public void Segment_BrokenNiftiGz_ExitTwoNamingTheFile(string kind, string expected)
    {
        using var dir = TestData.CreateTempDirectory();
        var good = Path.Combine(dir.Path, "good.nii.gz");
        WriteNifti(CopySeries(Path.Combine(dir.Path, "a0002")), good);
        var bytes = File.ReadAllBytes(good);
        if (kind == "truncated")
        {
            bytes = bytes[..(bytes.Length / 2)];
        }
        else
        {
            new Random(5).NextBytes(bytes.AsSpan(100, 2000));
        }

        var broken = Path.Combine(dir.Path, kind + ".nii.gz");
        File.WriteAllBytes(broken, bytes);
        var error = new StringWriter();

        var rc = SegmentCommand.Run(broken, Path.Combine(dir.Path, "out"), Models, 0, TextWriter.Null, error);

        Assert.Equal(ExitCodes.BadInput, rc);
        Assert.Contains(kind + ".nii.gz", error.ToString(), StringComparison.Ordinal);
        Assert.Contains(expected, error.ToString(), StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(dir.Path, "out", kind + "_lesion.nii.gz")));
    }

    [Fact]
    public void Classify_MrSeries_RefusedAsNotCt()
    {
        using var dir = TestData.CreateTempDirectory();
        var error = new StringWriter();

        var rc = ClassifyCommand.Run(TestData.Shared("dicom", "conformance", "dcmqa-deident-mr"), Path.Combine(dir.Path, "r.json"), Models, 0, TextWriter.Null, error);

        Assert.Equal(ExitCodes.BadInput, rc);
        Assert.Contains("modality MR, not CT", error.ToString(), StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(dir.Path, "r.json")));
    }

    [Fact]
    public void Classify_NiftiStoredHeadFirstOrSagittalFirst_ItemsSayWhereEachSliceIsInTheFile()
    {
        using var dir = TestData.CreateTempDirectory();
        var variants = Path.Combine(dir.Path, "variants");
        Python("make", CopySeries(Path.Combine(dir.Path, "a0002")), variants);
        foreach (var (file, axis, indices) in new[] { ("headfirst.nii.gz", "k", new[] { 2, 1, 0 }), ("sagittal_first.nii.gz", "i", new[] { 0, 1, 2 }) })
        {
            var json = Path.Combine(dir.Path, file + ".json");
            var error = new StringWriter();

            Assert.True(ClassifyCommand.Run(Path.Combine(variants, file), json, Models, 0, TextWriter.Null, error) == ExitCodes.Success, error.ToString());

            using var doc = JsonDocument.Parse(File.ReadAllText(json));
            var items = doc.RootElement.GetProperty("items").EnumerateArray().ToList();
            Assert.All(items, i => Assert.Equal(file, i.GetProperty("path").GetString()));
            Assert.All(items, i => Assert.Equal(axis, i.GetProperty("voxel_axis").GetString()));
            Assert.Equal(indices, items.Select(i => i.GetProperty("voxel_index").GetInt32()));
            Assert.Equal("normal", doc.RootElement.GetProperty("study").GetProperty("label").GetString()); // a lung-cancer CT
        }
    }

    [Fact]
    public void Segment_ChestSeriesInCompressedTransferSyntaxes_SameMaskAsUncompressed()
    {
        // gdcmconv (libgdcm-tools, prepare.sh) re-encodes 3 real slices losslessly: JPEG 2000, JPEG-LS, JPEG process 14
        // SV1, RLE. The conformance corpora's compressed CT images (CTImage.dcm_*) show no lungs and are refused as not
        // chest CT, so a chest series is transcoded here.
        using var dir = TestData.CreateTempDirectory();
        var dicom = CopySeries(Path.Combine(dir.Path, "plain"));
        var error = new StringWriter();
        Assert.True(SegmentCommand.Run(dicom, dir.Path, Models, 0, TextWriter.Null, error) == ExitCodes.Success, error.ToString());
        var reference = NiftiFile.Read(Path.Combine(dir.Path, "plain_lesion.nii.gz"));
        foreach (var codec in new[] { "j2k", "jpegls", "jpeg", "rle" })
        {
            var folder = Path.Combine(dir.Path, codec);
            Directory.CreateDirectory(folder);
            foreach (var f in SeriesFiles)
            {
                using var gdcm = Process.Start("gdcmconv", [$"--{codec}", Path.Combine(dicom, f), Path.Combine(folder, f)])!;
                gdcm.WaitForExit();
                Assert.Equal(0, gdcm.ExitCode);
            }

            Assert.True(SegmentCommand.Run(folder, dir.Path, Models, 0, TextWriter.Null, error) == ExitCodes.Success, $"{codec}: {error}");

            var mask = NiftiFile.Read(Path.Combine(dir.Path, codec + "_lesion.nii.gz"));
            Assert.True(reference.Data.AsSpan().SequenceEqual(mask.Data), $"{codec}: the mask differs from the uncompressed series' mask");
            Assert.Equal(reference.Header.SRow, mask.Header.SRow);
        }
    }

    [Fact]
    public void SegmentAndClassify_ZipWithNestedFoldersAndOneDicomFile_NamesFollowTheInput()
    {
        using var dir = TestData.CreateTempDirectory();
        var tree = Path.Combine(dir.Path, "tree");
        CopySeries(Path.Combine(tree, "outer", "inner"));
        var zip = Path.Combine(dir.Path, "Study 7.zip");
        System.IO.Compression.ZipFile.CreateFromDirectory(tree, zip);
        var single = Path.Combine(dir.Path, "one.slice.dcm");
        File.Copy(Path.Combine(tree, "outer", "inner", "1-15.dcm"), single);
        var masks = Path.Combine(dir.Path, "masks");
        var json = Path.Combine(dir.Path, "r.json");
        var error = new StringWriter();

        Assert.True(SegmentCommand.Run(zip, masks, Models, 0, TextWriter.Null, error) == ExitCodes.Success, error.ToString());
        Assert.True(SegmentCommand.Run(single, masks, Models, 0, TextWriter.Null, error) == ExitCodes.Success, error.ToString());
        Assert.True(ClassifyCommand.Run(zip, json, Models, 0, TextWriter.Null, error) == ExitCodes.Success, error.ToString());

        Assert.Equal(new[] { "Study 7_lesion.nii.gz", "one.slice_lesion.nii.gz" }, Directory.GetFiles(masks).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Contains("ok 1 slices, 0 empty", Python("dicom-world", CopyOne(single, dir.Path), Path.Combine(masks, "one.slice_lesion.nii.gz")), StringComparison.Ordinal);
        Assert.Equal(8.0, NiftiFile.Read(Path.Combine(masks, "one.slice_lesion.nii.gz")).Header.PixDim[3], 6); // SliceThickness
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        Assert.Equal(new[] { "outer/inner/1-16.dcm", "outer/inner/1-15.dcm", "outer/inner/1-14.dcm" }, doc.RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("path").GetString()));
        Assert.Equal(3, doc.RootElement.GetProperty("study").GetProperty("slices").GetInt32());
    }

    /// <summary>A folder holding only <paramref name="file"/> (dicom-world reads every file of a folder).</summary>
    private static string CopyOne(string file, string parent)
    {
        var folder = Path.Combine(parent, "only-" + Path.GetFileNameWithoutExtension(file));
        Directory.CreateDirectory(folder);
        File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        return folder;
    }

    /// <summary>The DICOM series as a NIfTI volume in the axial LPS layout (HU, int16).</summary>
    private static void WriteNifti(string dicomFolder, string path)
    {
        using var series = SeriesAssembler.Assemble(dicomFolder);
        var voxels = new float[series.Rows * series.Columns * series.SliceCount];
        for (var k = 0; k < series.SliceCount; k++)
        {
            series.ReadHu(k).CopyTo(voxels, k * series.Rows * series.Columns);
        }

        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        NiftiFile.Write(path, NiftiOrientation.FromAxialVolume(new AxialVolume(series.Geometry, voxels), NiftiDataType.Int16));
    }
}
