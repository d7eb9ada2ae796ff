namespace CovidFunctions.Dicom.Tests;

public class DicomVocabularyTests
{
    [Theory]
    [InlineData("(0010,0010)")]
    [InlineData("0010,0010")]
    [InlineData("00100010")]
    [InlineData(" (0010, 0010) ")]
    [InlineData("PatientName")]
    public void DicomTagParse_AcceptedForms_ReturnsPatientName(string text)
    {
        Assert.Equal(new DicomTag(0x0010, 0x0010), DicomTag.Parse(text));
    }

    [Theory]
    [InlineData("")]
    [InlineData("(0010)")]
    [InlineData("0010,00100")]
    [InlineData("NotAKeyword")]
    [InlineData("GGGG,0010")]
    public void DicomTagTryParse_Garbage_ReturnsFalse(string text)
    {
        Assert.False(DicomTag.TryParse(text, out _));
        Assert.Throws<FormatException>(() => DicomTag.Parse(text));
    }

    [Fact]
    public void DicomTag_Properties_FollowPs35()
    {
        var creator = new DicomTag(0x0029, 0x0010);
        var privateElement = new DicomTag(0x0029, 0x1008);
        Assert.Equal("(0029,1008)", privateElement.ToString());
        Assert.Equal(0x00291008u, privateElement.Value);
        Assert.True(creator.IsPrivate);
        Assert.True(creator.IsPrivateCreator);
        Assert.False(privateElement.IsPrivateCreator);
        Assert.Equal(creator, privateElement.PrivateCreatorTag);
        Assert.True(new DicomTag(0x0008, 0x0000).IsGroupLength);
        Assert.False(DicomTags.PatientName.IsPrivate);
        Assert.True(DicomTags.PatientID > DicomTags.PatientName);
        Assert.Equal("PatientName", DicomTags.PatientName.Keyword);
    }

    [Fact]
    public void DicomVR_AllCurrentVRs_ParseAndDescribeThemselves()
    {
        var codes = "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".Split(' ');
        Assert.Equal(codes.Length, DicomVR.All.Count);
        foreach (var code in codes)
        {
            var vr = DicomVR.Parse(code);
            Assert.Equal(code, vr.Code);
            Assert.Same(vr, DicomVR.Parse(code));
        }

        Assert.False(DicomVR.TryParse("XX", out _));
        Assert.False(DicomVR.TryParse("pn", out _));
        string[] longLength = ["OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"];
        foreach (var vr in DicomVR.All)
        {
            Assert.Equal(longLength.Contains(vr.Code), vr.HasLongExplicitLength);
        }

        Assert.True(DicomVR.PN.IsString);
        Assert.True(DicomVR.OW.IsBinary);
        Assert.False(DicomVR.US.IsBinary);
        Assert.Equal(' ', DicomVR.LO.PaddingByte);
        Assert.Equal('\0', DicomVR.UI.PaddingByte);
        Assert.Equal('\0', DicomVR.OB.PaddingByte);
        Assert.Equal(8, DicomVR.OV.UnitSize);
        Assert.Equal(2, DicomVR.AT.UnitSize);
    }

    [Fact]
    public void TransferSyntaxLookup_KnownUids_HaveTheirProperties()
    {
        Assert.Same(TransferSyntax.ImplicitVRLittleEndian, TransferSyntax.Lookup("1.2.840.10008.1.2"));
        Assert.Same(TransferSyntax.ExplicitVRLittleEndian, TransferSyntax.Lookup("1.2.840.10008.1.2.1\0"));
        Assert.False(TransferSyntax.ImplicitVRLittleEndian.IsExplicitVR);
        Assert.True(TransferSyntax.ExplicitVRBigEndian.IsBigEndian);
        Assert.True(TransferSyntax.DeflatedExplicitVRLittleEndian.IsDeflated);
        Assert.True(TransferSyntax.JPEGBaseline8Bit.IsEncapsulated);
        Assert.True(TransferSyntax.JPEGBaseline8Bit.IsLossy);
        Assert.False(TransferSyntax.JPEGLossless.IsLossy);
        Assert.True(TransferSyntax.HTJ2K.IsLossy);
        Assert.False(TransferSyntax.HTJ2KLosslessRPCL.IsLossy);
        Assert.Equal("1.2.840.10008.1.2.4.110", TransferSyntax.JPEGXLLossless.Uid);
        Assert.Equal("1.2.840.10008.1.2.8.1", TransferSyntax.DeflatedImageFrameCompression.Uid);
        Assert.Equal("1.2.840.10008.1.2.4.108", TransferSyntax.HEVCM10P51.Uid);
        Assert.Equal(TransferSyntax.All.Count, TransferSyntax.All.Select(t => t.Uid).Distinct().Count());
    }

    [Fact]
    public void TransferSyntaxLookup_UnknownUid_IsExplicitLittleEndianEncapsulated()
    {
        var ts = TransferSyntax.Lookup("1.2.3.4.5");
        Assert.False(ts.IsKnown);
        Assert.True(ts.IsExplicitVR);
        Assert.False(ts.IsBigEndian);
        Assert.True(ts.IsEncapsulated);
        Assert.Equal("1.2.3.4.5", ts.Uid);
    }
}
