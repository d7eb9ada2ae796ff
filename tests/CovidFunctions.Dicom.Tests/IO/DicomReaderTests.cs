using CovidFunctions.TestHelpers;

namespace CovidFunctions.Dicom.Tests.IO;

public class DicomReaderTests
{
    private static string LungCt => TestData.Shared("dicom", "chest-ct", "lung-pet-ct-dx", "A0002-s2-b70f", "1-01.dcm");

    private static string Conformance(params string[] parts) => TestData.Shared(["dicom", "conformance", .. parts]);

    [Fact]
    public void Open_LungCt_HasTheValuesDcmdumpShows()
    {
        var file = DicomFile.Open(LungCt);
        var ds = file.Dataset;

        Assert.Equal(DicomFileFormat.Part10, file.Format);
        Assert.Equal(128, file.Preamble.Length);
        Assert.Same(TransferSyntax.ExplicitVRLittleEndian, file.TransferSyntax);
        Assert.Equal("1.2.840.10008.1.2.1", file.FileMetaInformation.GetString(DicomTags.TransferSyntaxUID));
        Assert.Equal("ISO_IR 100", ds.GetString(DicomTags.SpecificCharacterSet));
        Assert.Equal("1.3.6.1.4.1.14519.5.2.1.6655.2359.295499053390369472712143350447", ds.GetString(DicomTags.SOPInstanceUID));
        Assert.Equal("CT", ds.GetString(DicomTags.Modality));
        Assert.Equal("Lung_Dx-A0002", ds.GetString(DicomTags.PatientName));
        Assert.Equal(8.0, ds.GetDouble(DicomTags.SliceThickness));
        Assert.Equal(1, ds.GetInt32(DicomTags.InstanceNumber));
        Assert.Equal(["-173.1767578125", "-294.1767578125", "312"], ds.GetStrings(DicomTags.ImagePositionPatient));
        Assert.Equal(-294.1767578125, ds.GetDouble(DicomTags.ImagePositionPatient, 1));
        Assert.Equal("1\\0\\0\\0\\1\\0", ds.GetString(DicomTags.ImageOrientationPatient));
        Assert.Equal(512, ds.GetInt32(DicomTags.Rows));
        Assert.Equal(512, ds.GetInt32(DicomTags.Columns));
        Assert.Equal(16, ds.GetInt32(DicomTags.BitsAllocated));
        Assert.Equal(12, ds.GetInt32(DicomTags.BitsStored));
        Assert.Equal(0, ds.GetInt32(DicomTags.PixelRepresentation));
        Assert.Equal(50, ds.GetInt32(DicomTags.WindowCenter, 1));
        Assert.Equal(-1024, ds.GetInt32(DicomTags.RescaleIntercept));
        Assert.Equal(DicomVR.US, ds[DicomTags.Rows].VR);

        var pixels = Assert.IsType<DicomValueElement>(ds[DicomTags.PixelData]);
        Assert.Equal(DicomVR.OW, pixels.VR);
        Assert.True(pixels.IsBulkData);
        Assert.Equal(524288, pixels.Length);
        Assert.Equal(new byte[] { 0x2C, 0, 0, 0, 0x0A, 0 }, pixels.RawValue[..6].ToArray());
    }

    [Fact]
    public void Open_LungCt_ElementCountMatchesDcmdump()
    {
        // dcmdump lists 131 element lines for this file (items and delimiters aside): 8 meta + 123 dataset, nested included.
        var file = DicomFile.Open(LungCt);
        Assert.Equal(8, file.FileMetaInformation.Count);
        Assert.Equal(123, CountRecursive(file.Dataset));
    }

    [Fact]
    public void Open_HeaderOnly_StopsBeforePixelDataAndReadsLittle()
    {
        var file = DicomFile.Open(LungCt, DicomReadOptions.HeaderOnly);
        Assert.True(file.IsPartial);
        Assert.False(file.Dataset.Contains(DicomTags.PixelData));
        Assert.Equal(512, file.Dataset.GetInt32(DicomTags.Rows));
    }

    [Fact]
    public void Read_NonFileStream_LoadsValuesIntoMemory()
    {
        using var memory = new MemoryStream(File.ReadAllBytes(LungCt));
        var file = DicomFile.Read(memory, null, "lung.dcm");
        var pixels = Assert.IsType<DicomValueElement>(file.Dataset[DicomTags.PixelData]);
        Assert.False(pixels.IsBulkData);
        Assert.Equal(524288, pixels.RawValue.Length);
        Assert.Equal("lung.dcm", file.FilePath);
    }

    [Fact]
    public void Open_BulkDataThreshold_KeepsLargeValuesInTheFile()
    {
        var file = DicomFile.Open(LungCt, new DicomReadOptions { BulkDataThreshold = 32 });
        var uid = Assert.IsType<DicomValueElement>(file.Dataset[DicomTags.SOPInstanceUID]);
        Assert.True(uid.IsBulkData);
        Assert.Equal("1.3.6.1.4.1.14519.5.2.1.6655.2359.295499053390369472712143350447", file.Dataset.GetString(DicomTags.SOPInstanceUID));
        Assert.False(((DicomValueElement)file.Dataset[DicomTags.Modality]).IsBulkData);
    }

    [Fact]
    public void Open_BigEndianAndImplicit_GiveTheSameDatasetAsExplicitLittleEndian()
    {
        var be = DicomFile.Open(Conformance("dicomparser-testimages", "CT1_UNC.explicit_big_endian.dcm"));
        var implicitLe = DicomFile.Open(Conformance("dicomparser-testimages", "CT1_UNC.implicit_little_endian.dcm"));
        var le = DicomFile.Open(Conformance("dicomparser-testimages", "CT1_UNC.explicit_little_endian.dcm"));

        Assert.Same(TransferSyntax.ExplicitVRBigEndian, be.TransferSyntax);
        Assert.Same(TransferSyntax.ImplicitVRLittleEndian, implicitLe.TransferSyntax);
        Assert.Equal(257, be.Dataset.Count); // pydicom: len(ds)
        Assert.Equal(257, implicitLe.Dataset.Count);
        Assert.Equal("CompressedSamples^CT1", be.Dataset.GetString(DicomTags.PatientName));
        Assert.Equal(-158.135803, be.Dataset.GetDouble(DicomTags.ImagePositionPatient));
        Assert.Equal(1, be.Dataset.GetInt32(DicomTags.PixelRepresentation));
        Assert.Equal(DicomVR.SS, implicitLe.Dataset[DicomTags.PixelPaddingValue].VR); // US or SS resolved by Pixel Representation
        Assert.Equal(-2000, implicitLe.Dataset.GetInt32(DicomTags.PixelPaddingValue));

        // Values are little endian in memory whatever the file's byte order.
        foreach (var element in le.Dataset)
        {
            if (element is DicomValueElement v && v.VR.IsBinaryNumber)
            {
                var other = Assert.IsType<DicomValueElement>(be.Dataset[element.Tag]);
                Assert.Equal(v.RawValue.ToArray(), other.RawValue.ToArray());
            }
        }

        var bePixels = ((DicomValueElement)be.Dataset[DicomTags.PixelData]).RawValue.ToArray();
        var lePixels = ((DicomValueElement)le.Dataset[DicomTags.PixelData]).RawValue.ToArray();
        Assert.Equal(lePixels, bePixels);
    }

    [Fact]
    public void Open_MrSmallBigEndian_ReadsAllElements()
    {
        var file = DicomFile.Open(Conformance("pydicom-testfiles", "test_files", "MR_small_bigendian.dcm"));
        Assert.Equal(72, file.Dataset.Count);
        Assert.Equal("CompressedSamples^MR1", file.Dataset.GetString(DicomTags.PatientName));
        Assert.Equal(64, file.Dataset.GetInt32(DicomTags.Rows));
    }

    [Fact]
    public void Open_Deflated_InflatesTheDataset()
    {
        var file = DicomFile.Open(Conformance("pydicom-testfiles", "test_files", "image_dfl.dcm"));
        Assert.True(file.TransferSyntax.IsDeflated);
        Assert.Equal(29, file.Dataset.Count);
        Assert.Equal(512, file.Dataset.GetInt32(DicomTags.Rows));
        var pixels = Assert.IsType<DicomValueElement>(file.Dataset[DicomTags.PixelData]);
        Assert.False(pixels.IsBulkData); // the inflated stream cannot be referenced
        Assert.Equal(512 * 512, pixels.Length);
        long sum = 0;
        foreach (var b in pixels.RawValue.Span)
        {
            sum += b;
        }

        Assert.Equal(33322688, sum); // pydicom: pixel_array.sum()
    }

    [Fact]
    public void Open_Encapsulated_KeepsFragmentsAsBulkReferences()
    {
        var file = DicomFile.Open(Conformance("pydicom-testfiles", "test_files", "SC_rgb_rle_2frame.dcm"));
        var fragments = Assert.IsType<DicomFragmentSequence>(file.Dataset[DicomTags.PixelData]);
        Assert.Same(TransferSyntax.RLELossless, file.TransferSyntax);
        Assert.Equal(2, fragments.Fragments.Count);
        Assert.All(fragments.Fragments, f => Assert.True(f.IsBulkData));
        Assert.Equal(3, fragments.Fragments[0].RawValue.Span[0]); // RLE header: 3 segments
    }

    [Fact]
    public void Open_PrivateTags_KeepTheirCreators()
    {
        var folder = TestData.Shared("dicom", "chest-ct", "covid19-ny-sbu");
        var path = Directory.EnumerateFiles(folder, "*.dcm", SearchOption.AllDirectories).Order(StringComparer.Ordinal).First();
        var ds = DicomFile.Open(path).Dataset;
        var privateElements = ds.Where(e => e.Tag.IsPrivate && !e.Tag.IsPrivateCreator).ToList();
        Assert.NotEmpty(privateElements);
        foreach (var element in privateElements)
        {
            var creator = element.Tag.PrivateCreatorTag;
            Assert.NotNull(creator);
            Assert.True(ds.Contains(creator.Value), $"creator {creator} of {element.Tag} missing");
            Assert.Equal(DicomVR.LO, ds[creator.Value].VR);
        }
    }

    [Fact]
    public void Read_BareDatasets_SniffTheirEncoding()
    {
        foreach (var ts in new[] { TransferSyntax.ImplicitVRLittleEndian, TransferSyntax.ExplicitVRLittleEndian, TransferSyntax.ExplicitVRBigEndian })
        {
            var original = DicomFile.Open(Conformance("dicomparser-testimages", "CT1_UNC.explicit_little_endian.dcm"));
            using var bare = new MemoryStream();
            original.Write(bare, new DicomWriteOptions { TransferSyntax = ts, Format = DicomFileFormat.DatasetOnly });
            bare.Position = 0;

            var read = DicomFile.Read(bare, null, "bare");

            Assert.Equal(DicomFileFormat.DatasetOnly, read.Format);
            Assert.Same(ts, read.TransferSyntax);
            Assert.Equal(0, read.Preamble.Length);
            Assert.Equal(0, read.FileMetaInformation.Count);
            Assert.Equal(original.Dataset.Count, read.Dataset.Count);
            Assert.Equal("CompressedSamples^CT1", read.Dataset.GetString(DicomTags.PatientName));
        }
    }

    [Fact]
    public void Read_UnknownLengthUN_IsParsedAsImplicitSequence()
    {
        var bytes = DicomBytes.Part10(TransferSyntax.ExplicitVRLittleEndian.Uid);
        bytes.Header(0x0008, 0x1140, "UN", 0xFFFFFFFF);
        bytes.Explicit = false; // items of a UN sequence are implicit VR little endian (PS3.5 6.2.2)
        bytes.ItemStart().Text(0x0008, 0x1150, "UI", "1.2.3", 0).Text(0x0008, 0x1155, "UI", "4.5.6", 0).ItemEnd().SequenceEnd();
        bytes.Explicit = true;
        bytes.Text(0x0010, 0x0010, "PN", "Doe^John");

        var file = DicomFile.Read(bytes.ToStream());

        var sequence = Assert.IsType<DicomSequence>(file.Dataset[DicomTags.ReferencedImageSequence]);
        Assert.Equal(DicomVR.UN, sequence.VR);
        var item = Assert.Single(sequence.Items);
        Assert.Equal("4.5.6", item.GetString(DicomTags.ReferencedSOPInstanceUID));
        Assert.Equal(DicomVR.UI, item[DicomTags.ReferencedSOPInstanceUID].VR);
        Assert.Equal("Doe^John", file.Dataset.GetString(DicomTags.PatientName));
        AssertRoundTripIdentical(file, bytes.ToArray());
    }

    [Fact]
    public void Read_DefinedAndUndefinedLengths_ArePreserved()
    {
        var bytes = DicomBytes.Part10(TransferSyntax.ExplicitVRLittleEndian.Uid);
        var item = new DicomBytes().Text(0x0008, 0x1150, "UI", "1.2", 0).ToArray();
        bytes.Header(0x0008, 0x1115, "SQ", (uint)(8 + item.Length + 8 + item.Length + 8));
        bytes.ItemStart((uint)item.Length).Raw(item);
        bytes.ItemStart().Raw(item).ItemEnd();
        bytes.Header(0x0008, 0x1140, "SQ", 0xFFFFFFFF).ItemStart((uint)item.Length).Raw(item).SequenceEnd();

        var file = DicomFile.Read(bytes.ToStream());

        var defined = file.Dataset.GetSequence(DicomTags.ReferencedSeriesSequence);
        Assert.False(defined.UndefinedLength);
        Assert.False(defined.Items[0].UndefinedLength);
        Assert.True(defined.Items[1].UndefinedLength);
        var undefined = file.Dataset.GetSequence(DicomTags.ReferencedImageSequence);
        Assert.True(undefined.UndefinedLength);
        Assert.False(undefined.Items[0].UndefinedLength);
        Assert.Same(file.Dataset, defined.Items[0].Parent);
        AssertRoundTripIdentical(file, bytes.ToArray());
    }

    [Fact]
    public void Read_OddLength_IsAcceptedAndPaddedOnWrite()
    {
        var bytes = DicomBytes.Part10(TransferSyntax.ExplicitVRLittleEndian.Uid);
        bytes.Element(0x0010, 0x0010, "PN", "ABC"u8.ToArray());
        bytes.Element(0x0010, 0x0020, "LO", "ID"u8.ToArray());

        var file = DicomFile.Read(bytes.ToStream());
        Assert.Equal("ABC", file.Dataset.GetString(DicomTags.PatientName));
        Assert.Equal(3, ((DicomValueElement)file.Dataset[DicomTags.PatientName]).Length);

        using var output = new MemoryStream();
        file.Write(output);
        output.Position = 0;
        var again = DicomFile.Read(output);
        Assert.Equal("ABC "u8.ToArray(), ((DicomValueElement)again.Dataset[DicomTags.PatientName]).RawValue.ToArray());
        Assert.Equal("ID", again.Dataset.GetString(DicomTags.PatientID));
    }

    [Fact]
    public void Read_ImplicitElementInsideExplicitDataset_IsReadAsImplicit()
    {
        // pydicom's SC_rgb_jpeg.dcm carries (0008,0008) implicitly encoded in an explicit VR file.
        var file = DicomFile.Open(Conformance("pydicom-testfiles", "test_files", "SC_rgb_jpeg.dcm"));
        Assert.Equal(["DERIVED", "SECONDARY", "OTHER"], file.Dataset.GetStrings(DicomTags.ImageType));
        Assert.Equal(DicomVR.CS, file.Dataset[DicomTags.ImageType].VR);
    }

    [Fact]
    public void Read_StopAfterPixelData_IgnoresTrailingElements()
    {
        var bytes = DicomBytes.Part10(TransferSyntax.ExplicitVRLittleEndian.Uid);
        bytes.UShort(0x0028, 0x0010, 1).Element(0x7FE0, 0x0010, "OW", [1, 2]).Element(0xFFFA, 0xFFFA, "OB", [0, 0]);

        var file = DicomFile.Read(bytes.ToStream(), new DicomReadOptions { StopAfterPixelData = true });

        Assert.True(file.IsPartial);
        Assert.True(file.Dataset.Contains(DicomTags.PixelData));
        Assert.False(file.Dataset.Contains(new DicomTag(0xFFFA, 0xFFFA)));
    }

    internal static int CountRecursive(DicomDataset dataset)
    {
        var n = 0;
        foreach (var element in dataset)
        {
            n++;
            if (element is DicomSequence sequence)
            {
                foreach (var item in sequence.Items)
                {
                    n += CountRecursive(item);
                }
            }
        }

        return n;
    }

    private static void AssertRoundTripIdentical(DicomFile file, byte[] original)
    {
        using var output = new MemoryStream();
        file.Write(output);
        Assert.Equal(original, output.ToArray());
    }
}
