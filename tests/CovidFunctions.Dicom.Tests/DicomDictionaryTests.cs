using System.Diagnostics;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Dicom.Tests;

public class DicomDictionaryTests
{
    [Fact]
    public void Dictionary_RowCount_IsPinnedToTheGeneratedEdition()
    {
        // dicom.dic of DCMTK 3.6.7 (PS3.6 2022b): 4916 exact + 72 repeating-group rows.
        Assert.Equal(4916, DicomDictionary.GeneratedExactCount);
        Assert.Equal(72, DicomDictionary.GeneratedRepeatingCount);
        Assert.Equal(4916, DicomDictionary.Count);
        Assert.Equal(72, DicomDictionary.RepeatingCount);
        Assert.Contains("2022b", DicomDictionary.Source, StringComparison.Ordinal);
        Assert.Equal(56, DicomPrivateSequences.GeneratedCount); // private.dic rows with VR SQ
    }

    [Fact]
    public void PrivateSequences_KnownCreators_AreSequences()
    {
        Assert.True(DicomPrivateSequences.IsSequence(0x2001, "Philips Imaging DD 001", 0x5F));
        Assert.True(DicomPrivateSequences.IsSequence(0x6003, "PAPYRUS 3.0", 0xC0));
        Assert.False(DicomPrivateSequences.IsSequence(0x2001, "Philips Imaging DD 001", 0x01));
        Assert.False(DicomPrivateSequences.IsSequence(0x3F03, "aaabbbccc MEDICAL SYSTEMS", 0x01));
    }

    [Theory]
    [InlineData(0x00100010u, "PatientName", "PN", "1", false)]
    [InlineData(0x00080005u, "SpecificCharacterSet", "CS", "1-n", false)]
    [InlineData(0x00200032u, "ImagePositionPatient", "DS", "3", false)]
    [InlineData(0x7FE00010u, "PixelData", "OW", "1", false)]
    [InlineData(0x7FE00001u, "ExtendedOffsetTable", "OV", "1", false)]
    [InlineData(0x00280106u, "SmallestImagePixelValue", "US", "1", false)]
    [InlineData(0x00081150u, "ReferencedSOPClassUID", "UI", "1", false)]
    [InlineData(0x00020000u, "FileMetaInformationGroupLength", "UL", "1", false)]
    [InlineData(0x00080010u, "RecognitionCode", "SH", "1", true)]
    public void Lookup_KnownRows_MatchPs36(uint tag, string keyword, string vr, string vm, bool retired)
    {
        var entry = DicomDictionary.Lookup(new DicomTag(tag));
        Assert.NotNull(entry);
        Assert.Equal(keyword, entry.Keyword);
        Assert.Equal(vr, entry.VR.Code);
        Assert.Equal(vm, entry.VM);
        Assert.Equal(retired, entry.IsRetired);
        Assert.Same(entry, DicomDictionary.LookupKeyword(keyword));
    }

    [Fact]
    public void Lookup_AmbiguousVRs_ListEveryChoice()
    {
        Assert.Equal(["US", "SS"], DicomDictionary.Lookup(new DicomTag(0x0028, 0x0106))!.ValueRepresentations.Select(v => v.Code));
        Assert.Equal(["OW", "OB"], DicomDictionary.Lookup(DicomTags.PixelData)!.ValueRepresentations.Select(v => v.Code));
        Assert.Equal(["OW", "US", "SS"], DicomDictionary.Lookup(new DicomTag(0x0028, 0x3006))!.ValueRepresentations.Select(v => v.Code));
    }

    [Fact]
    public void Lookup_RepeatingGroups_MatchEveryEvenGroup()
    {
        var overlay = DicomDictionary.Lookup(new DicomTag(0x6002, 0x3000));
        Assert.NotNull(overlay);
        Assert.Equal("OverlayData", overlay.Keyword);
        Assert.True(overlay.IsRepeating);
        Assert.Equal("OverlayRows", DicomDictionary.Lookup(new DicomTag(0x601E, 0x0010))!.Keyword);
        Assert.Equal("CurveDimensions", DicomDictionary.Lookup(new DicomTag(0x5004, 0x0005))!.Keyword);
        Assert.Equal("SourceImageIDs", DicomDictionary.Lookup(new DicomTag(0x0020, 0x3102))!.Keyword);
        Assert.Null(DicomDictionary.Lookup(new DicomTag(0x6001, 0x3000))); // odd group: private, not an overlay
        Assert.Equal(new DicomTag(0x6000, 0x3000), DicomTags.OverlayData);
    }

    [Fact]
    public void Lookup_PrivateCreatorsAndGroupLengths_FollowPs35Rules()
    {
        Assert.Equal(DicomVR.LO, DicomDictionary.Lookup(new DicomTag(0x0029, 0x0010))!.VR);
        Assert.Equal(DicomVR.LO, DicomDictionary.Lookup(new DicomTag(0x7FE1, 0x00FF))!.VR);
        Assert.Equal(DicomVR.UL, DicomDictionary.Lookup(new DicomTag(0x0009, 0x0000))!.VR);
        Assert.Equal(DicomVR.UL, DicomDictionary.Lookup(new DicomTag(0x0018, 0x0000))!.VR);
        Assert.Null(DicomDictionary.Lookup(new DicomTag(0x0029, 0x1010)));
        Assert.Equal(DicomVR.UN, DicomDictionary.DefaultVR(new DicomTag(0x0029, 0x1010)));
        Assert.Equal(DicomVR.UN, DicomDictionary.DefaultVR(new DicomTag(0x0008, 0x9999)));
    }

    [Fact]
    public void Generator_Rerun_GivesNoDiff()
    {
        const string dic = "/usr/share/libdcmtk17/dicom.dic";
        Assert.True(File.Exists(dic), $"{dic} is missing: infra/scripts/prepare.sh installs dcmtk");
        var script = Path.Combine(TestData.RepoRoot, "tools", "dicom-dictgen", "dictgen.py");
        var psi = new ProcessStartInfo("/usr/bin/python3", [script, "--check", "--dic", dic])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEnd();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, stdout + stderr);
    }
}
