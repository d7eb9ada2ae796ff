using System.Text.RegularExpressions;
using CovidFunctions.Dicom;
using CovidFunctions.Imaging.Phantoms;
using CovidFunctions.Imaging.Series;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Imaging.Tests.Series;

/// <summary>
/// One instance of a series whose image attributes cannot be used (empty, missing where the rest of the series has
/// them, zero, out of range, Pixel Data shorter than they say) is left out of the series with a note naming the file and
/// the reason; the rest is assembled and reads the same HU as without it. A series made only of such instances leaves
/// nothing to screen and is refused saying why; a geometry problem of the series as a whole stays the series'.
/// Series from the repository's chest phantom (<see cref="CtPhantom"/>: CT Image Storage, signed 16-bit, intercept -1024).
/// </summary>
public sealed class DefectiveInstanceTests : IDisposable
{
    private const int Slices = 8;
    private const int Defective = 3;
    private readonly TempDirectory _temp = TestData.CreateTempDirectory();

    public void Dispose() => _temp.Dispose();

    public static TheoryData<string, Action<DicomDataset>, string> Defects() => new()
    {
        { "Rows empty (the 9b7f788 case)", ds => Empty(ds, DicomTags.Rows, DicomVR.US), "Rows (0028,0010) is empty" },
        { "Columns zero", ds => ds.SetValues(DicomTags.Columns, DicomVR.US, 0), "Columns (0028,0011) is 0" },
        { "Rows absurd", ds => ds.SetValues(DicomTags.Rows, DicomVR.US, 60000), "Pixel Data (7FE0,0010) holds 8192 bytes, fewer than the 7680000 that Rows 60000 × Columns 64 × 16 bits need" },
        { "BitsAllocated missing", ds => ds.Remove(DicomTags.BitsAllocated), "BitsAllocated (0028,0100) is missing" },
        { "BitsAllocated empty", ds => Empty(ds, DicomTags.BitsAllocated, DicomVR.US), "BitsAllocated (0028,0100) is empty" },
        { "BitsAllocated 12", ds => ds.SetValues(DicomTags.BitsAllocated, DicomVR.US, 12), "BitsAllocated (0028,0100) is 12; it is 1 or a multiple of 8 up to 64" },
        { "BitsStored empty", ds => Empty(ds, DicomTags.BitsStored, DicomVR.US), "BitsStored (0028,0101) is empty" },
        { "BitsStored beyond BitsAllocated", ds => ds.SetValues(DicomTags.BitsStored, DicomVR.US, 20), "BitsStored (0028,0101) 20 is more than BitsAllocated 16" },
        { "HighBit beyond BitsAllocated", ds => ds.SetValues(DicomTags.HighBit, DicomVR.US, 40), "HighBit (0028,0102) 40 does not fit BitsStored 16 and BitsAllocated 16" },
        { "PixelRepresentation 2", ds => ds.SetValues(DicomTags.PixelRepresentation, DicomVR.US, 2), "PixelRepresentation (0028,0103) is 2; it is 0 (unsigned) or 1 (signed)" },
        { "PixelRepresentation missing", ds => ds.Remove(DicomTags.PixelRepresentation), "PixelRepresentation (0028,0103) missing, which the other 7 image(s) of its series have" },
        { "SamplesPerPixel empty", ds => Empty(ds, DicomTags.SamplesPerPixel, DicomVR.US), "SamplesPerPixel (0028,0002) is empty" },
        { "SamplesPerPixel 3 on greyscale", ds => ds.SetValues(DicomTags.SamplesPerPixel, DicomVR.US, 3), "PhotometricInterpretation (0028,0004) MONOCHROME2 does not fit SamplesPerPixel 3" },
        { "ARGB on 3 samples", ds => SetColour(ds, "ARGB"), "PhotometricInterpretation (0028,0004) ARGB does not fit SamplesPerPixel 3" },
        { "PhotometricInterpretation empty", ds => ds.SetString(DicomTags.PhotometricInterpretation, DicomVR.CS, string.Empty), "PhotometricInterpretation (0028,0004) is empty" },
        { "PhotometricInterpretation absurd", ds => ds.SetString(DicomTags.PhotometricInterpretation, DicomVR.CS, "GREYISH"), "PhotometricInterpretation (0028,0004) is not a photometric interpretation" },
        { "PixelSpacing empty", ds => ds.SetString(DicomTags.PixelSpacing, DicomVR.DS, string.Empty), "PixelSpacing (0028,0030) is empty" },
        { "PixelSpacing zero", ds => ds.SetValues(DicomTags.PixelSpacing, DicomVR.DS, 0.0, 0.0), "PixelSpacing (0028,0030) is 2 value(s) (0\\0); it is two distances in mm, each more than 0" },
        { "PixelSpacing negative", ds => ds.SetValues(DicomTags.PixelSpacing, DicomVR.DS, -0.7, 0.7), "PixelSpacing (0028,0030) is 2 value(s) (-0.7\\0.7)" },
        { "PixelSpacing missing", ds => ds.Remove(DicomTags.PixelSpacing), "PixelSpacing (0028,0030) missing, which the other 7 image(s) of its series have" },
        { "ImagePositionPatient empty", ds => ds.SetString(DicomTags.ImagePositionPatient, DicomVR.DS, string.Empty), "ImagePositionPatient (0020,0032) is empty; it is three coordinates in mm" },
        { "ImagePositionPatient NaN", ds => ds.SetValues(DicomTags.ImagePositionPatient, DicomVR.DS, "0", "NaN", "10"), "ImagePositionPatient (0020,0032) is 3 value(s), not all finite numbers" },
        { "ImagePositionPatient absurd", ds => ds.SetValues(DicomTags.ImagePositionPatient, DicomVR.DS, 0.0, 0.0, 1e9), "ImagePositionPatient (0020,0032) is 3 value(s) (0\\0\\1000000000)" },
        { "ImagePositionPatient missing", ds => ds.Remove(DicomTags.ImagePositionPatient), "ImagePositionPatient (0020,0032) missing, which the other 7 image(s) of its series have" },
        { "ImageOrientationPatient zero", ds => ds.SetValues(DicomTags.ImageOrientationPatient, DicomVR.DS, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0), "ImageOrientationPatient (0020,0037) is 6 value(s) (0\\0\\0\\0\\0\\0); it is two perpendicular unit vectors" },
        { "ImageOrientationPatient three values", ds => ds.SetValues(DicomTags.ImageOrientationPatient, DicomVR.DS, 1.0, 0.0, 0.0), "ImageOrientationPatient (0020,0037) is 3 value(s) (1\\0\\0)" },
        { "ImageOrientationPatient missing", ds => ds.Remove(DicomTags.ImageOrientationPatient), "ImageOrientationPatient (0020,0037) missing, which the other 7 image(s) of its series have" },
        { "RescaleSlope empty", ds => ds.SetString(DicomTags.RescaleSlope, DicomVR.DS, string.Empty), "RescaleSlope (0028,1053) is empty; it is a finite number other than 0" },
        { "RescaleSlope zero", ds => ds.SetValues(DicomTags.RescaleSlope, DicomVR.DS, 0.0), "RescaleSlope (0028,1053) is 0" },
        { "RescaleSlope NaN", ds => ds.SetString(DicomTags.RescaleSlope, DicomVR.DS, "NaN"), "RescaleSlope (0028,1053) is NaN" },
        { "RescaleSlope absurd", ds => ds.SetString(DicomTags.RescaleSlope, DicomVR.DS, "1e300"), "RescaleSlope 1E+300 and RescaleIntercept -1024 give values beyond any Hounsfield unit for 16-bit samples" },
        { "RescaleIntercept empty", ds => ds.SetString(DicomTags.RescaleIntercept, DicomVR.DS, string.Empty), "RescaleIntercept (0028,1052) is empty; it is a finite number" },
        { "RescaleIntercept missing", ds => ds.Remove(DicomTags.RescaleIntercept), "RescaleIntercept (0028,1052) missing, which the other 7 image(s) of its series have" },
        { "Pixel Data short", ds => ds.AddOrUpdate(new DicomValueElement(DicomTags.PixelData, DicomVR.OW, new byte[64 * 64])), "Pixel Data (7FE0,0010) holds 4096 bytes, fewer than the 8192 that Rows 64 × Columns 64 × 16 bits need" },
        { "Pixel Data missing", ds => ds.Remove(DicomTags.PixelData), "no Pixel Data (7FE0,0010) although Rows and Columns say it is an image" },
    };

    [Theory]
    [MemberData(nameof(Defects))]
    public void One_defective_instance_is_left_out_with_a_note_and_the_rest_is_assembled(string defect, Action<DicomDataset> spoil, string expectedReason)
    {
        var phantom = Phantom();
        var intactFolder = Path.Combine(_temp.Path, "intact");
        phantom.WriteFolder(intactFolder);
        var folder = Path.Combine(_temp.Path, "upload");
        var paths = phantom.WriteFolder(folder);
        Spoil(paths[Defective], spoil);

        using var series = SeriesAssembler.Assemble(folder);
        using var intact = SeriesAssembler.Assemble(intactFolder);

        Assert.True(Slices - 1 == series.SliceCount, $"{defect}: {series.SliceCount} slices");
        Assert.DoesNotContain(series.Slices, s => s.SourceName == paths[Defective]);
        var note = Assert.Single(series.Report.SkippedSources);
        Assert.StartsWith($"{paths[Defective]}: defective image attributes, left out of its series: {expectedReason}", note, StringComparison.Ordinal);
        Assert.Equal((paths[Defective], SkipKind.DefectiveImage), (series.Report.Skipped[0].Source, series.Report.Skipped[0].Kind));
        Assert.Empty((series.Report with { Skipped = [] }).SkippedSources);
        Assert.Equal(Slices - 1, series.Report.Selected.SliceCount);

        // Every slice kept reads the HU it reads in the intact series (the gap is a gap, not a shifted volume).
        for (var k = 0; k < series.SliceCount; k++)
        {
            var same = intact.Slices.Select((s, i) => (s, i)).Single(x => x.s.SopInstanceUid == series.Slices[k].SopInstanceUid).i;
            Assert.Equal(intact.ReadHu(same), series.ReadHu(k));
            Assert.Equal(intact.Geometry.SlicePositions[same], series.Geometry.SlicePositions[k], 6);
        }

        Assert.Equal(intact.Geometry.ColumnSpacing, series.Geometry.ColumnSpacing);
        Assert.Contains(series.Report.Issues, i => i.Kind == "gap");
    }

    [Fact]
    public void Defective_instances_are_counted_by_the_kind_of_each_note_not_by_its_wording()
    {
        // A file's name is the uploader's: a text file named like a defect note is not a defective DICOM image. Before,
        // the defects were found by looking for the note's wording in every note, so it was counted and listed as one.
        var folder = Path.Combine(_temp.Path, "upload");
        var paths = Phantom(slices: 1).WriteFolder(folder);
        Spoil(paths[0], ds => Empty(ds, DicomTags.Rows, DicomVR.US));
        File.WriteAllText(Path.Combine(folder, "scan: defective image attributes, left out of its series: see notes.txt"), "referral notes");

        var refused = Assert.Throws<SeriesAssemblyException>(() => SeriesAssembler.Assemble(folder));

        Assert.Equal("no-images", refused.Reason);
        Assert.Equal(
            $"{folder}: no DICOM images or 2-D images found (2 files examined); 1 DICOM image(s) left out for defective image attributes: {paths[0]}: defective image attributes, left out of its series: Rows (0028,0010) is empty",
            refused.Message);
    }

    [Fact]
    public void A_series_of_only_defective_instances_leaves_nothing_to_screen_and_says_which_and_why()
    {
        var folder = Path.Combine(_temp.Path, "upload");
        var paths = Phantom(slices: 4).WriteFolder(folder);
        foreach (var path in paths)
        {
            Spoil(path, ds => Empty(ds, DicomTags.Rows, DicomVR.US));
        }

        var refused = Assert.Throws<SeriesAssemblyException>(() => SeriesAssembler.Assemble(folder));

        Assert.Equal("no-images", refused.Reason);
        Assert.StartsWith($"{folder}: no DICOM images or 2-D images found (4 files examined); 4 DICOM image(s) left out for defective image attributes: {paths[0]}: defective image attributes, left out of its series: Rows (0028,0010) is empty; ", refused.Message, StringComparison.Ordinal);
        Assert.EndsWith("; and 1 more", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Positions_missing_on_every_instance_stay_a_series_level_refusal()
    {
        // No instance of the series has ImagePositionPatient: nothing to compare against, so the series cannot be
        // ordered (missing-geometry) as before, rather than every instance being left out on its own.
        var folder = Path.Combine(_temp.Path, "upload");
        foreach (var path in Phantom(slices: 4).WriteFolder(folder))
        {
            Spoil(path, ds => ds.Remove(DicomTags.ImagePositionPatient));
        }

        var refused = Assert.Throws<SeriesAssemblyException>(() => SeriesAssembler.Assemble(folder));

        Assert.Equal("missing-geometry", refused.Reason);
    }

    [Fact]
    public void Spacing_that_varies_across_the_series_stays_a_finding_of_the_series()
    {
        // A geometry property of the series as a whole (uneven slice spacing) is reported on the series, no instance left out.
        var folder = Path.Combine(_temp.Path, "upload");
        var paths = Phantom().WriteFolder(folder);
        for (var i = 4; i < paths.Count; i++)
        {
            // Slices below the fourth 2 mm further down: one step of 7 mm among steps of 5 mm.
            Spoil(paths[i], ds =>
            {
                var p = ds.GetStrings(DicomTags.ImagePositionPatient).Select(v => double.Parse(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
                ds.SetValues(DicomTags.ImagePositionPatient, DicomVR.DS, p[0], p[1], p[2] - 2);
            });
        }

        using var series = SeriesAssembler.Assemble(folder);

        Assert.Equal(Slices, series.SliceCount);
        Assert.Empty(series.Report.SkippedSources);
        Assert.True(series.Report.HasVariableSpacing);
    }

    [Fact]
    public void A_defective_instance_in_a_zip_is_named_by_its_entry()
    {
        var folder = Path.Combine(_temp.Path, "slices");
        var paths = Phantom().WriteFolder(folder);
        Spoil(paths[Defective], ds => Empty(ds, DicomTags.Rows, DicomVR.US));
        var zip = Path.Combine(_temp.Path, "upload.zip");
        System.IO.Compression.ZipFile.CreateFromDirectory(folder, zip);

        using var series = SeriesAssembler.Assemble(zip);

        Assert.Equal(Slices - 1, series.SliceCount);
        Assert.Equal($"{zip}!{CtPhantom.FileName(Defective)}: defective image attributes, left out of its series: Rows (0028,0010) is empty", Assert.Single(series.Report.SkippedSources));
    }

    [Fact]
    public void In_a_zip_the_scan_stops_before_Pixel_Data_and_still_leaves_out_entries_too_small_for_their_pixels()
    {
        // A zip entry's Pixel Data would have to be inflated to be read: the scan reads the header before it (inflating
        // every entry twice made it 5-6x slower, docs/benchmarks.md Imaging) and checks the entry's size instead.
        var folder = Path.Combine(_temp.Path, "slices");
        var paths = Phantom().WriteFolder(folder);
        Spoil(paths[Defective], ds => ds.SetValues(DicomTags.Rows, DicomVR.US, 60000));
        var cut = paths[Defective + 1];
        File.WriteAllBytes(cut, File.ReadAllBytes(cut)[..^4096]); // cut off in the middle of its Pixel Data
        Spoil(paths[Defective + 2], ds => ds.Remove(DicomTags.PixelData));
        var zip = Path.Combine(_temp.Path, "upload.zip");
        System.IO.Compression.ZipFile.CreateFromDirectory(folder, zip);

        using var series = SeriesAssembler.Assemble(zip);

        Assert.Equal(Slices - 3, series.SliceCount);
        Assert.Collection(
            series.Report.SkippedSources.Order(StringComparer.Ordinal),
            note => Assert.Matches($@"^{Regex.Escape($"{zip}!{CtPhantom.FileName(Defective)}: defective image attributes, left out of its series: the whole source holds ")}\d+ bytes, fewer than the 7680000 that Rows 60000 × Columns 64 × 16 bits need$", note),
            note => Assert.Matches($@"^{Regex.Escape($"{zip}!{CtPhantom.FileName(Defective + 1)}: defective image attributes, left out of its series: the whole source holds ")}\d+ bytes, fewer than the 8192 that Rows 64 × Columns 64 × 16 bits need$", note),
            note => Assert.Equal($"{zip}!{CtPhantom.FileName(Defective + 2)}: defective image attributes, left out of its series: no Pixel Data (7FE0,0010) although Rows and Columns say it is an image", note));
        using var clean = SeriesAssembler.Assemble(folder);
        Assert.Equal(Slices - 3, clean.SliceCount); // the same three left out of the folder, read through Pixel Data
    }

    [Theory]
    [InlineData("pydicom-data", "data", "liver_nonbyte_aligned.dcm")] // SEG: 1-bit frames packed across bytes
    [InlineData("pydicom-testfiles", "test_files", "SC_ybr_full_422_uncompressed.dcm")] // YBR 4:2:2: 2 bytes per pixel for 3 samples
    [InlineData("pydicom-data", "data", "parametric_map_float.dcm")] // Float Pixel Data (7FE0,0008), no (7FE0,0010)
    public void Valid_images_of_other_kinds_are_not_taken_for_defective_instances(string set, string folder, string file)
    {
        // Found by running the checks over every conformance file here: these are valid, only not CT. They stay excluded by
        // their series (modality, colour), not left out as defective.
        var refused = Assert.Throws<SeriesAssemblyException>(() => SeriesAssembler.Assemble(TestData.Shared("dicom", "conformance", set, folder, file)));

        Assert.Equal("no-eligible-series", refused.Reason);
        Assert.DoesNotContain("defective", refused.Message, StringComparison.Ordinal);
    }

    private static CtPhantom Phantom(int slices = Slices) =>
        new(new CtPhantomOptions { Matrix = 64, Slices = slices, SliceSpacing = 5, LesionCount = 0, Finding = PhantomFinding.None, NoiseHu = 0 });

    /// <summary>Three samples per pixel under <paramref name="photometric"/> (ARGB and CMYK are four-sample terms: PS3.3 C.7.6.3.1.2).</summary>
    private static void SetColour(DicomDataset ds, string photometric)
    {
        ds.SetValues(DicomTags.SamplesPerPixel, DicomVR.US, 3);
        ds.SetString(DicomTags.PhotometricInterpretation, DicomVR.CS, photometric);
    }

    private static void Empty(DicomDataset ds, DicomTag tag, DicomVR vr) => ds.AddOrUpdate(new DicomValueElement(tag, vr, Array.Empty<byte>()));

    private static void Spoil(string path, Action<DicomDataset> spoil)
    {
        var file = DicomFile.Open(path);
        spoil(file.Dataset);
        file.Save(path);
    }
}
