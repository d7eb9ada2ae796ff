using CovidFunctions.Dicom.Imaging;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Dicom.Tests.Imaging;

public class DicomPixelDataTests
{
    private static string Conformance(params string[] parts) => TestData.Shared(["dicom", "conformance", .. parts]);

    [Fact]
    public void GetFrameSamples_LungCt_MatchesDcmdumpValues()
    {
        var file = DicomFile.Open(TestData.Shared("dicom", "chest-ct", "lung-pet-ct-dx", "A0002-s2-b70f", "1-01.dcm"));
        var pixels = DicomPixelData.Create(file);

        Assert.Equal(1, pixels.FrameCount);
        Assert.False(pixels.IsEncapsulated);
        var samples = pixels.GetFrameSamples(0);
        Assert.Equal(512 * 512, samples.Length);
        Assert.Equal([44, 0, 10, 37, 0, 36], samples[..6]);
        Assert.Equal(samples.Select(s => (ushort)s), pixels.GetFrameUInt16(0));
        Assert.Throws<DicomException>(() => pixels.GetFrameInt16(0));
    }

    [Fact]
    public void GetFrameSamples_SignedBigEndian_EqualsLittleEndian()
    {
        var be = DicomPixelData.Create(DicomFile.Open(Conformance("dicomparser-testimages", "CT1_UNC.explicit_big_endian.dcm")));
        var le = DicomPixelData.Create(DicomFile.Open(Conformance("dicomparser-testimages", "CT1_UNC.implicit_little_endian.dcm")));

        var samples = be.GetFrameSamples(0);
        Assert.Equal(le.GetFrameSamples(0), samples);
        Assert.Equal(-2000, samples.Min());
        Assert.Equal(2278, samples.Max());
        Assert.Equal(40028413L, samples.Sum(s => (long)s)); // pydicom pixel_array.sum()
        Assert.Equal(samples.Select(s => (short)s), be.GetFrameInt16(0));
    }

    [Theory]
    [InlineData("pydicom-data/data/emri_small.dcm")]
    [InlineData("pydicom-data/data/emri_small_big_endian.dcm")]
    public void GetFrameSamples_MultiFrame12Bit_MatchesPydicom(string relative)
    {
        var pixels = DicomPixelData.Create(DicomFile.Open(Conformance(relative.Split('/'))));
        long[] expected = [590962, 547514, 504701, 461117, 404573, 355101, 331120, 372843, 441975, 483370];
        Assert.Equal(10, pixels.FrameCount);
        for (var f = 0; f < 10; f++)
        {
            Assert.Equal(expected[f], pixels.GetFrameSamples(f).Sum(s => (long)s));
        }
    }

    [Theory]
    [InlineData("pydicom-data/data/liver.dcm", 512)]
    [InlineData("pydicom-data/data/liver_nonbyte_aligned.dcm", 510)]
    [InlineData("pydicom-data/data/liver_expb.dcm", 512)]
    public void GetFrameSamples_OneBitFrames_AreUnpacked(string relative, int size)
    {
        var pixels = DicomPixelData.Create(DicomFile.Open(Conformance(relative.Split('/'))));
        long[] expected = [36233, 35645, 35220]; // pydicom pixel_array sums per frame
        Assert.Equal(3, pixels.FrameCount);
        for (var f = 0; f < 3; f++)
        {
            var samples = pixels.GetFrameSamples(f);
            Assert.Equal(size * size, samples.Length);
            Assert.Equal(expected[f], samples.Sum(s => (long)s));
        }
    }

    [Fact]
    public void GetEncodedFrame_NativeMultiFrame_CutsBySize()
    {
        var pixels = DicomPixelData.Create(DicomFile.Open(Conformance("dcm4che-testdata", "NM-MONO2-16-13x-heart")));
        long[] expected = [24620, 27613, 39289, 52427, 56709, 52617, 51075, 53913, 54853, 45839, 31706, 22543, 19945];
        Assert.Equal(13, pixels.FrameCount);
        for (var f = 0; f < 13; f++)
        {
            Assert.Equal(64 * 64 * 2, pixels.GetEncodedFrame(f).Length);
            Assert.Equal(expected[f], pixels.GetFrameSamples(f).Sum(s => (long)s));
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => pixels.GetEncodedFrame(13));
    }

    [Theory]
    [InlineData("dicomparser-testimages/encapsulated/multi-frame/CT0012.fragmented_no_bot_jpeg_lossless.70.dcm", 2)]
    [InlineData("dicomparser-testimages/encapsulated/multi-frame/CT0012.fragmented_no_bot_jpeg_baseline.51.dcm", 2)]
    [InlineData("dicomparser-testimages/encapsulated/multi-frame/IM00001.fragmented_no_bot_jpeg_baseline.50.dcm", 8)]
    [InlineData("dicomparser-testimages/encapsulated/multi-frame/CT0012.not_fragmented_bot_jpeg_ls.80.dcm", 2)]
    [InlineData("fodicom-testdata/multiframe.dcm", 140)]
    public void GetEncodedFrame_EncapsulatedJpeg_IsOneWholeCodestream(string relative, int frames)
    {
        var pixels = DicomPixelData.Create(DicomFile.Open(Conformance(relative.Split('/'))));
        Assert.True(pixels.IsEncapsulated);
        Assert.Equal(frames, pixels.FrameCount);
        for (var f = 0; f < frames; f++)
        {
            var frame = pixels.GetEncodedFrame(f).Span;
            Assert.True(frame[0] == 0xFF && frame[1] == 0xD8, $"frame {f} does not start with SOI");
            var end = frame.Length - 1;
            while (end > 0 && frame[end] == 0)
            {
                end--;
            }

            Assert.True(frame[end - 1] == 0xFF && frame[end] == 0xD9, $"frame {f} does not end with EOI");
        }
    }

    [Fact]
    public void GetEncodedFrame_RleTwoFrames_OneFragmentEach()
    {
        var file = DicomFile.Open(Conformance("pydicom-testfiles", "test_files", "SC_rgb_rle_2frame.dcm"));
        var pixels = DicomPixelData.Create(file);
        var fragments = (DicomFragmentSequence)file.Dataset[DicomTags.PixelData];
        Assert.Equal(2, pixels.FrameCount);
        Assert.Equal(fragments.Fragments[1].RawValue.ToArray(), pixels.GetEncodedFrame(1).ToArray());
    }

    [Fact]
    public void GetEncodedFrame_ExtendedOffsetTable_IsHonoured()
    {
        // Two frames in three fragments: frame 0 = fragments 0+1, frame 1 = fragment 2; lengths trim the padding.
        var ds = new DicomDataset();
        ds.SetValues(DicomTags.Rows, DicomVR.US, 1);
        ds.SetValues(DicomTags.Columns, DicomVR.US, 1);
        ds.SetValues(DicomTags.BitsAllocated, DicomVR.US, 8);
        ds.SetValues(DicomTags.NumberOfFrames, DicomVR.IS, 2);
        ds.AddOrUpdate(new DicomFragmentSequence(DicomTags.PixelData, DicomVR.OB, ReadOnlyMemory<byte>.Empty,
            [new DicomFragment(new byte[] { 1, 2 }), new DicomFragment(new byte[] { 3, 0 }), new DicomFragment(new byte[] { 9, 8, 7, 0 })]));
        ds.AddOrUpdate(new DicomValueElement(DicomTags.ExtendedOffsetTable, DicomVR.OV,
            BitConverter.GetBytes(0L).Concat(BitConverter.GetBytes(20L)).ToArray()));
        ds.AddOrUpdate(new DicomValueElement(DicomTags.ExtendedOffsetTableLengths, DicomVR.OV,
            BitConverter.GetBytes(3L).Concat(BitConverter.GetBytes(3L)).ToArray()));
        var pixels = DicomPixelData.Create(new DicomFile(ds, TransferSyntax.JPEGBaseline8Bit));

        Assert.Equal(new byte[] { 1, 2, 3 }, pixels.GetEncodedFrame(0).ToArray());
        Assert.Equal(new byte[] { 9, 8, 7 }, pixels.GetEncodedFrame(1).ToArray());
    }

    [Fact]
    public void DecodeFrame_UnknownSyntax_ThrowsUnsupported()
    {
        var ds = new DicomDataset();
        ds.SetValues(DicomTags.Rows, DicomVR.US, 1);
        ds.SetValues(DicomTags.Columns, DicomVR.US, 1);
        ds.SetValues(DicomTags.BitsAllocated, DicomVR.US, 8);
        ds.AddOrUpdate(new DicomFragmentSequence(DicomTags.PixelData, DicomVR.OB, ReadOnlyMemory<byte>.Empty, [new DicomFragment(new byte[] { 1, 0 })]));
        var pixels = DicomPixelData.Create(new DicomFile(ds, TransferSyntax.Lookup("1.2.3.999")));

        var ex = Assert.Throws<UnsupportedTransferSyntaxException>(() => pixels.DecodeFrame(0));
        Assert.Equal("1.2.3.999", ex.TransferSyntaxUid);
    }
}
