using CovidFunctions.TestHelpers;

namespace CovidFunctions.Dicom.Tests.IO;

/// <summary>
/// Malformed input ends in a <see cref="DicomFormatException"/> naming the source and the byte offset: never an
/// OutOfMemoryException, a stack overflow or a hang. Each test runs under a time limit.
/// </summary>
public class DicomReaderMalformedTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Read_EmptyStream_Throws()
    {
        var ex = await ReadFails([]);
        Assert.Equal(0, ex.Offset);
        Assert.Contains("empty", ex.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Read_TruncatedHeader_NamesSourceAndOffset()
    {
        var bytes = DicomBytes.Part10(TransferSyntax.ExplicitVRLittleEndian.Uid).Raw([0x10, 0x00, 0x10, 0x00, (byte)'P']).ToArray();
        var ex = await ReadFails(bytes);
        Assert.Equal("fixture.dcm", ex.FilePath);
        Assert.Equal(bytes.Length - 5, ex.Offset);
        Assert.StartsWith("fixture.dcm: ", ex.Message, StringComparison.Ordinal);
        Assert.EndsWith($" at byte {bytes.Length - 5}", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// A file that is not DICOM at all (the licence, manifest and annotation files a research group's series folder or zip
    /// carries beside its slices) is said to be one: no 'DICM' marker and no data element at byte 0. Before, the reason was
    /// only what its first bytes happened to parse as ("(694C,6563) UN declares 174420846 bytes but only 2851 remain"),
    /// which `covidfn dump`, ingest's skipped-file notes and classify/segment's notes showed as if the file were damaged
    /// DICOM. Found walking through README's `covidfn submit` of a real TCIA folder (H5, session 21).
    /// </summary>
    [Theory]
    [InlineData("LICENSE.upstream")]
    [InlineData("metadata.csv")]
    [InlineData("annotations", "A0002-s2-b70f", "1.3.6.1.4.1.14519.5.2.1.6655.2359.124409970701988247716822562307.xml")]
    public async Task Read_FileThatIsNotDicom_SaysSo(params string[] relative)
    {
        var bytes = File.ReadAllBytes(TestData.Shared(["dicom", "chest-ct", "lung-pet-ct-dx", .. relative]));
        var ex = await ReadFails(bytes);
        Assert.StartsWith("not a DICOM file (no 'DICM' at byte 128, and byte 0 does not start a data element: ", ex.Reason, StringComparison.Ordinal);
        Assert.Equal(0, ex.Offset);
        Assert.EndsWith(" at byte 0", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Read_BareDatasetDamagedAfterItsFirstElement_IsNotCalledNonDicom()
    {
        // A dataset without preamble whose first element reads is DICOM, damaged further on: the reason stays the damage.
        var bytes = new DicomBytes().Text(0x0008, 0x0016, "UI", "1.2.840.10008.5.1.4.1.1.2", pad: 0);
        var elementAt = bytes.Length;
        bytes.Header(0x0010, 0x0010, "PN", 0xFFF0).Raw("Doe^John"u8.ToArray());
        var ex = await ReadFails(bytes.ToArray());
        Assert.Equal(elementAt, ex.Offset);
        Assert.StartsWith("(0010,0010) PN declares 65520 bytes", ex.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0xFFFFFFF0u)]
    [InlineData(0x7FFFFFF0u)]
    [InlineData(0x00100000u)]
    public async Task Read_LengthBeyondEnd_ThrowsBeforeAllocating(uint length)
    {
        var bytes = DicomBytes.Part10(TransferSyntax.ExplicitVRLittleEndian.Uid);
        var elementAt = bytes.Length;
        bytes.Header(0x0009, 0x1010, "OB", length).Raw([1, 2, 3, 4]);

        var seekable = await ReadFails(bytes.ToArray());
        Assert.Equal(elementAt, seekable.Offset);
        Assert.Contains($"declares {length} bytes", seekable.Reason, StringComparison.Ordinal);

        // Without a known stream length the reader must still not trust the length.
        var streamed = await ReadFails(bytes.ToArray(), seekableStream: false);
        Assert.Equal(elementAt, streamed.Offset);
    }

    [Fact]
    public async Task Read_ShortLengthLie_Throws()
    {
        var bytes = DicomBytes.Part10(TransferSyntax.ExplicitVRLittleEndian.Uid);
        bytes.Header(0x0010, 0x0010, "PN", 0xFFF0).Raw("Doe^John"u8.ToArray());
        var ex = await ReadFails(bytes.ToArray());
        Assert.Contains("declares 65520 bytes", ex.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Read_LyingSequenceLength_Throws()
    {
        var bytes = DicomBytes.Part10(TransferSyntax.ImplicitVRLittleEndian.Uid);
        bytes.Header(0x0008, 0x1140, "SQ", 5000).ItemStart(8).Raw([0x08, 0x00, 0x50, 0x11, 0x00, 0x00, 0x00, 0x00]);
        var ex = await ReadFails(bytes.ToArray());
        Assert.Contains("declares 5000 bytes", ex.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(65)]
    [InlineData(100_000)]
    public async Task Read_EndlessNesting_StopsAtTheDepthCap(int depth)
    {
        var bytes = DicomBytes.Part10(TransferSyntax.ExplicitVRLittleEndian.Uid);
        for (var i = 0; i < depth; i++)
        {
            bytes.Header(0x0008, 0x1140, "SQ", 0xFFFFFFFF).ItemStart();
        }

        var ex = await ReadFails(bytes.ToArray());
        Assert.Contains("nested deeper than 64", ex.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Read_NestingWithinTheCap_Parses()
    {
        var bytes = DicomBytes.Part10(TransferSyntax.ExplicitVRLittleEndian.Uid);
        for (var i = 0; i < 64; i++)
        {
            bytes.Header(0x0008, 0x1140, "SQ", 0xFFFFFFFF).ItemStart();
        }

        for (var i = 0; i < 64; i++)
        {
            bytes.ItemEnd().SequenceEnd();
        }

        var file = await Task.Run(() => DicomFile.Read(bytes.ToStream(), null, "deep.dcm")).WaitAsync(Limit);
        Assert.Single(file.Dataset);
        var options = new DicomReadOptions { MaxSequenceDepth = 10 };
        var ex = Assert.Throws<DicomFormatException>(() => DicomFile.Read(bytes.ToStream(), options, "deep.dcm"));
        Assert.Contains("nested deeper than 10", ex.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Read_UnterminatedSequenceAndItem_Throw()
    {
        var sequence = DicomBytes.Part10(TransferSyntax.ExplicitVRLittleEndian.Uid);
        sequence.Header(0x0008, 0x1140, "SQ", 0xFFFFFFFF).ItemStart().Text(0x0008, 0x1150, "UI", "1.2", 0).ItemEnd();
        Assert.Contains("ends inside sequence", (await ReadFails(sequence.ToArray())).Reason, StringComparison.Ordinal);

        var item = DicomBytes.Part10(TransferSyntax.ExplicitVRLittleEndian.Uid);
        item.Header(0x0008, 0x1140, "SQ", 0xFFFFFFFF).ItemStart().Text(0x0008, 0x1150, "UI", "1.2", 0);
        Assert.Contains("unexpected end of data", (await ReadFails(item.ToArray())).Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Read_GarbageVR_Throws()
    {
        var bytes = DicomBytes.Part10(TransferSyntax.ExplicitVRLittleEndian.Uid);
        var at = bytes.Length;
        bytes.Tag(0x0010, 0x0010).Raw([0x01, 0x02, 0xFF, 0xFF, 1, 2, 3, 4]);
        var ex = await ReadFails(bytes.ToArray());
        Assert.Contains("invalid VR", ex.Reason, StringComparison.Ordinal);
        Assert.Equal(at + 4, ex.Offset);
    }

    [Fact]
    public async Task Read_UnknownUpperCaseVR_IsReadAsUNWithLongLength()
    {
        var bytes = DicomBytes.Part10(TransferSyntax.ExplicitVRLittleEndian.Uid);
        bytes.Tag(0x0009, 0x1010).Raw("ZZ"u8.ToArray()).UInt16(0).UInt32(2).Raw([7, 8]);
        var file = await Task.Run(() => DicomFile.Read(bytes.ToStream())).WaitAsync(Limit);
        Assert.Equal(DicomVR.UN, file.Dataset[new DicomTag(0x0009, 0x1010)].VR);
    }

    [Fact]
    public async Task Read_FragmentBeyondEnd_Throws()
    {
        var bytes = DicomBytes.Part10(TransferSyntax.JPEGBaseline8Bit.Uid);
        bytes.Header(0x7FE0, 0x0010, "OB", 0xFFFFFFFF).ItemStart(0).ItemStart(0xFFFFFFF0).Raw([0xFF, 0xD8]);
        var ex = await ReadFails(bytes.ToArray());
        Assert.Contains("fragment", ex.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Read_CorruptDeflateStream_Throws()
    {
        var bytes = DicomBytes.Part10(TransferSyntax.DeflatedExplicitVRLittleEndian.Uid);
        bytes.Raw([0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x12, 0x34, 0x56, 0x78, 0x9A]);
        var ex = await ReadFails(bytes.ToArray());
        Assert.Equal("fixture.dcm", ex.FilePath);
    }

    [Fact]
    public async Task Read_NotDicom_Throws()
    {
        var ex = await ReadFails("This is a plain text file, not DICOM at all."u8.ToArray());
        Assert.Equal(0, ex.Offset);
    }

    [Fact]
    public async Task Read_EveryTruncationOfARealFile_FailsCleanlyOrParses()
    {
        var original = File.ReadAllBytes(TestData.Shared("dicom", "conformance", "pydicom-testfiles", "test_files", "rtplan.dcm"));
        await Task.Run(() =>
        {
            for (var cut = 0; cut < original.Length; cut += 7)
            {
                try
                {
                    DicomFile.Read(new MemoryStream(original, 0, cut, writable: false), null, "cut.dcm");
                }
                catch (DicomFormatException ex)
                {
                    Assert.InRange(ex.Offset, 0, cut);
                }
            }
        }).WaitAsync(Limit);
    }

    [Fact]
    public async Task Read_RandomCorruptionOfARealFile_FailsCleanlyOrParses()
    {
        var original = File.ReadAllBytes(TestData.Shared("dicom", "conformance", "pydicom-testfiles", "test_files", "CT_small.dcm"));
        var random = new Random(20260101);
        await Task.Run(() =>
        {
            for (var round = 0; round < 300; round++)
            {
                var bytes = (byte[])original.Clone();
                for (var k = 0; k < 8; k++)
                {
                    bytes[random.Next(132, 4000)] = (byte)random.Next(256);
                }

                try
                {
                    var file = DicomFile.Read(new MemoryStream(bytes, writable: false), null, "corrupt.dcm");
                    using var output = new MemoryStream();
                    file.Write(output);
                }
                catch (DicomFormatException)
                {
                    // expected for most corruptions
                }
                catch (DicomException)
                {
                    // e.g. a value too long to re-encode
                }
            }
        }).WaitAsync(TimeSpan.FromSeconds(60));
    }

    private static async Task<DicomFormatException> ReadFails(byte[] bytes, bool seekableStream = true)
    {
        Stream stream = seekableStream ? new MemoryStream(bytes, writable: false) : new NonSeekableStream(bytes);
        var task = Task.Run(() => DicomFile.Read(stream, null, "fixture.dcm"));
        return await Assert.ThrowsAsync<DicomFormatException>(() => task.WaitAsync(Limit));
    }
}
