using CovidFunctions.Dicom.Text;

namespace CovidFunctions.Dicom.Tests;

public class DicomDatasetTests
{
    [Fact]
    public void AddOrUpdate_AnyOrder_KeepsTagOrderAndReplaces()
    {
        var ds = new DicomDataset();
        ds.SetString(DicomTags.PatientID, DicomVR.LO, "2");
        ds.SetString(DicomTags.Modality, DicomVR.CS, "CT");
        ds.SetString(DicomTags.PatientName, DicomVR.PN, "A");
        ds.SetString(DicomTags.PatientName, DicomVR.PN, "B");

        Assert.Equal([DicomTags.Modality, DicomTags.PatientName, DicomTags.PatientID], ds.Select(e => e.Tag));
        Assert.Equal("B", ds.GetString(DicomTags.PatientName));
        Assert.True(ds.Remove(DicomTags.Modality));
        Assert.False(ds.Remove(DicomTags.Modality));
        Assert.Equal(1, ds.RemoveWhere(e => e.Tag == DicomTags.PatientID));
        Assert.Single(ds);
    }

    [Fact]
    public void Indexer_Missing_ThrowsNamingTheTag()
    {
        var ds = new DicomDataset();
        var ex = Assert.Throws<KeyNotFoundException>(() => ds[DicomTags.PatientName]);
        Assert.Contains("(0010,0010)", ex.Message, StringComparison.Ordinal);
        Assert.Contains("PatientName", ex.Message, StringComparison.Ordinal);
        Assert.Null(ds.GetString(DicomTags.PatientName));
        Assert.False(ds.TryGetString(DicomTags.PatientName, out _));
        Assert.Throws<KeyNotFoundException>(() => ds.GetInt32(DicomTags.Rows));
        Assert.False(ds.TryGetInt32(DicomTags.Rows, out _));
        Assert.Equal(7, ds.GetValueOrDefault(DicomTags.Rows, 7));
        Assert.Empty(ds.GetStrings(DicomTags.ImageType));
    }

    [Fact]
    public void GetString_TrimsPaddingAndJoinsValues()
    {
        var ds = new DicomDataset();
        ds.AddOrUpdate(new DicomValueElement(DicomTags.ImageType, DicomVR.CS, "ORIGINAL\\PRIMARY\\AXIAL "u8.ToArray()));
        ds.AddOrUpdate(new DicomValueElement(DicomTags.SOPInstanceUID, DicomVR.UI, "1.2.3\0"u8.ToArray()));
        ds.AddOrUpdate(new DicomValueElement(DicomTags.PixelSpacing, DicomVR.DS, " 0.5\\0.25 "u8.ToArray()));

        Assert.Equal("ORIGINAL\\PRIMARY\\AXIAL", ds.GetString(DicomTags.ImageType));
        Assert.Equal(["ORIGINAL", "PRIMARY", "AXIAL"], ds.GetStrings(DicomTags.ImageType));
        Assert.Equal("1.2.3", ds.GetString(DicomTags.SOPInstanceUID));
        Assert.Equal(["0.5", "0.25"], ds.GetStrings(DicomTags.PixelSpacing));
        Assert.Equal(0.25, ds.GetDouble(DicomTags.PixelSpacing, 1));
        Assert.Equal("0.25", ds.GetValueOrDefault<string>(DicomTags.PixelSpacing, 1, "none"));
        Assert.False(ds.TryGetDouble(DicomTags.PixelSpacing, 2, out _));
        Assert.Throws<DicomException>(() => ds.GetDouble(DicomTags.PixelSpacing, 2));
    }

    [Fact]
    public void GetInt32_BinaryAndText_Convert()
    {
        var ds = new DicomDataset();
        ds.SetValues(DicomTags.Rows, DicomVR.US, 512);
        ds.SetValues(DicomTags.SmallestImagePixelValue, DicomVR.SS, -2000);
        ds.SetValues(new DicomTag(0x0018, 0x9074), DicomVR.UL, 4_000_000_000L);
        ds.SetValues(DicomTags.InstanceNumber, DicomVR.IS, 42);
        ds.SetValues(DicomTags.SliceThickness, DicomVR.DS, 2.5);
        ds.SetValues(DicomTags.RescaleIntercept, DicomVR.DS, -1024.0);

        Assert.Equal(new byte[] { 0x00, 0x02 }, ((DicomValueElement)ds[DicomTags.Rows]).RawValue.ToArray());
        Assert.Equal(512, ds.GetInt32(DicomTags.Rows));
        Assert.Equal(-2000, ds.GetInt32(DicomTags.SmallestImagePixelValue));
        Assert.Throws<OverflowException>(() => ds.GetInt32(new DicomTag(0x0018, 0x9074)));
        Assert.Equal(4_000_000_000L, ds.GetValueOrDefault(new DicomTag(0x0018, 0x9074), 0L));
        Assert.Equal(42, ds.GetInt32(DicomTags.InstanceNumber));
        Assert.Equal("42", ds.GetString(DicomTags.InstanceNumber));
        Assert.Throws<DicomException>(() => ds.GetInt32(DicomTags.SliceThickness));
        Assert.Equal(2.5, ds.GetDouble(DicomTags.SliceThickness));
        Assert.Equal(-1024, ds.GetInt32(DicomTags.RescaleIntercept));
        Assert.Equal("512", ds.GetString(DicomTags.Rows));
        Assert.Throws<ArgumentOutOfRangeException>(() => ds.SetValues(DicomTags.Columns, DicomVR.US, 70000));
    }

    [Fact]
    public void SetValues_LongDecimal_FitsSixteenCharacters()
    {
        var ds = new DicomDataset();
        ds.SetValues(DicomTags.SliceLocation, DicomVR.DS, Math.PI * -1000);
        var text = ds.GetString(DicomTags.SliceLocation)!;
        Assert.True(text.Length <= 16, text);
        Assert.Equal(Math.PI * -1000, double.Parse(text, System.Globalization.CultureInfo.InvariantCulture), 9);
    }

    [Fact]
    public void SetString_OddLength_PadsPerVR()
    {
        var ds = new DicomDataset();
        ds.SetString(DicomTags.PatientName, DicomVR.PN, "Doe");
        ds.SetString(DicomTags.SOPInstanceUID, DicomVR.UI, "1.2.3");
        Assert.Equal("Doe "u8.ToArray(), ((DicomValueElement)ds[DicomTags.PatientName]).RawValue.ToArray());
        Assert.Equal("1.2.3\0"u8.ToArray(), ((DicomValueElement)ds[DicomTags.SOPInstanceUID]).RawValue.ToArray());
    }

    [Fact]
    public void CharacterSet_IsInheritedByItemsUnlessTheyCarryTheirOwn()
    {
        var ds = new DicomDataset();
        ds.SetString(DicomTags.SpecificCharacterSet, DicomVR.CS, "ISO_IR 192");
        var inheriting = new DicomDataset();
        var own = new DicomDataset();
        own.SetString(DicomTags.SpecificCharacterSet, DicomVR.CS, "ISO_IR 100");
        ds.AddOrUpdate(new DicomSequence(DicomTags.ReferencedImageSequence, inheriting, own));

        Assert.Same(ds, inheriting.Parent);
        Assert.Equal(ds.CharacterSet, inheriting.CharacterSet);
        Assert.Equal(DicomEncoding.FromSpecificCharacterSet(["ISO_IR 192"]), inheriting.CharacterSet);
        Assert.Equal(DicomEncoding.FromSpecificCharacterSet(["ISO_IR 100"]), own.CharacterSet);
        Assert.Equal(DicomEncoding.Default, new DicomDataset().CharacterSet);

        inheriting.SetString(DicomTags.PatientName, DicomVR.PN, "Łukasz^Żółw");
        Assert.Equal("Łukasz^Żółw", inheriting.GetString(DicomTags.PatientName));
    }

    [Fact]
    public void Clone_IsDeepForSequences()
    {
        var ds = new DicomDataset();
        var item = new DicomDataset();
        item.SetString(DicomTags.ReferencedSOPInstanceUID, DicomVR.UI, "1.2");
        ds.AddOrUpdate(new DicomSequence(DicomTags.ReferencedImageSequence, item));

        var copy = ds.Clone();
        copy.GetSequence(DicomTags.ReferencedImageSequence).Items[0].SetString(DicomTags.ReferencedSOPInstanceUID, DicomVR.UI, "9.9");

        Assert.Equal("1.2", item.GetString(DicomTags.ReferencedSOPInstanceUID));
        Assert.Same(copy, copy.GetSequence(DicomTags.ReferencedImageSequence).Items[0].Parent);
    }
}
