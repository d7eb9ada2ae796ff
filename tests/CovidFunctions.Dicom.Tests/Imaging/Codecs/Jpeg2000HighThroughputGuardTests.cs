using System.Buffers.Binary;
using CovidFunctions.Dicom.Imaging;
using CovidFunctions.Dicom.Imaging.Codecs;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Dicom.Tests.Imaging.Codecs;

/// <summary>
/// The JPEG 2000 (Part 1) syntaxes must never hand a High-Throughput (Part 15) codestream to OpenJPEG 2.5.0, whose HT
/// block decoder aborts the process on some corrupt code-blocks (uclouvain/openjpeg#1500): the codec walks the
/// codestream headers first (J2kCodestreamHeader) and refuses CAP and HT code-block styles in COD / COC, in the main
/// header and in tile-part headers, for raw codestreams and JP2 files alike. See docs/pixel-codecs.md, "HTJ2K".
/// </summary>
public sealed class Jpeg2000HighThroughputGuardTests
{
    private const string Lossless = TransferSyntaxNames.Jpeg2000Lossless;
    private const string Lossy = TransferSyntaxNames.Jpeg2000;
    private const string Data = "dicom/conformance/pydicom-data/data";
    private const string HtLosslessPath = $"{Data}/HTJ2KLossless_08_RGB.dcm";
    private const string HtLossyPath = $"{Data}/HTJ2K_08_RGB.dcm";
    private const string Part1Path = $"{Data}/US1_J2KR.dcm";
    private const string Jp2CorpusPath = "dicom/conformance/pydicom-testfiles/test_files/GDCMJ2K_TextGBR.dcm";

    public static TheoryData<string, string> HtFrames => new()
    {
        { HtLosslessPath, Lossless },
        { HtLosslessPath, Lossy },
        { HtLossyPath, Lossless },
        { HtLossyPath, Lossy },
    };

    [Fact]
    public void Decode_CorruptHtFrameDeclaredPart1_ThrowsInsteadOfAborting()
    {
        // This frame aborts the process inside OpenJPEG 2.5.0 (ht_dec.c mel_init assertion) if it ever reaches it.
        var (frame, format) = Frame(HtLosslessPath);
        frame.AsSpan(10199, 10250 - 10199 + 1).Fill(0xFF);

        var ex = Assert.Throws<DicomFormatException>(() => Jpeg2000Codec.ForSyntax(Lossless).Decode(frame, format));

        AssertHighThroughput(ex, Lossless);
    }

    [Theory]
    [MemberData(nameof(HtFrames))]
    public void Decode_HtFrameDeclaredPart1_ThrowsNamingHighThroughput(string path, string uid)
    {
        var (frame, format) = Frame(path);

        var ex = Assert.Throws<DicomFormatException>(() => Jpeg2000Codec.ForSyntax(uid).Decode(frame, format));

        AssertHighThroughput(ex, uid);
        Assert.Contains("CAP", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_HtFrameWithoutCapMarker_ThrowsOnItsCodBlockStyle()
    {
        var (frame, format) = Frame(HtLosslessPath);
        var cap = FindMainHeaderSegment(frame, 0, 0xFF50);
        var length = 2 + BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(cap + 2));
        var withoutCap = frame[..cap].Concat(frame[(cap + length)..]).ToArray();

        var ex = Assert.Throws<DicomFormatException>(() => Jpeg2000Codec.ForSyntax(Lossless).Decode(withoutCap, format));

        AssertHighThroughput(ex, Lossless);
        Assert.Contains("COD of the main header", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_Part1FrameWithHtBitInMainCod_Throws()
    {
        var (frame, format) = Frame(Part1Path);
        SetHtBitInMainCod(frame, 0);

        var ex = Assert.Throws<DicomFormatException>(() => Jpeg2000Codec.ForSyntax(Lossless).Decode(frame, format));

        AssertHighThroughput(ex, Lossless);
        Assert.Contains("COD of the main header", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_Part1FrameWithHtCodInTilePartHeader_Throws()
    {
        var (frame, format) = Frame(Part1Path);
        var cod = MainHeaderSegmentBytes(frame, 0, 0xFF52);
        cod[4 + 8] |= 0x40;

        var ex = Assert.Throws<DicomFormatException>(() => Jpeg2000Codec.ForSyntax(Lossless).Decode(InsertIntoFirstTilePart(frame, cod), format));

        AssertHighThroughput(ex, Lossless);
        Assert.Contains("COD of the tile-part header", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_Part1FrameWithHtCocInMainHeader_Throws()
    {
        var (frame, format) = Frame(Part1Path);
        var cod = MainHeaderSegmentBytes(frame, 0, 0xFF52);

        // COC for component 1 (Csiz 3: one-byte Ccoc): Scoc 0 then the COD's SPcod up to cblksty, with the HT bit.
        byte[] coc = [0xFF, 0x53, 0, 2 + 1 + 1 + 5, 1, 0, cod[4 + 5], cod[4 + 6], cod[4 + 7], (byte)(cod[4 + 8] | 0x40), cod[4 + 9]];
        var codAt = FindMainHeaderSegment(frame, 0, 0xFF52);
        var codLength = 2 + BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(codAt + 2));
        var withCoc = frame[..(codAt + codLength)].Concat(coc).Concat(frame[(codAt + codLength)..]).ToArray();

        var ex = Assert.Throws<DicomFormatException>(() => Jpeg2000Codec.ForSyntax(Lossless).Decode(withCoc, format));

        AssertHighThroughput(ex, Lossless);
        Assert.Contains("COC of the main header", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_HtCocWithTwoByteComponentIndex_Throws()
    {
        // Csiz 300 makes Ccoc two bytes; read as one byte, the code-block style would be 0x04 and the HT bit missed.
        var (_, format) = Frame(Part1Path);
        var siz = new List<byte> { 0, 0 };
        foreach (var value in new uint[] { 640, 480, 0, 0, 640, 480, 0, 0 })
        {
            siz.AddRange(BigEndian(value));
        }

        siz.AddRange([0x01, 0x2C]);
        for (var c = 0; c < 300; c++)
        {
            siz.AddRange([7, 1, 1]);
        }

        byte[] codestream =
        [
            0xFF, 0x4F, 0xFF, 0x51, (byte)((siz.Count + 2) >> 8), (byte)(siz.Count + 2), .. siz,
            0xFF, 0x52, 0, 12, 0, 0, 0, 1, 0, 5, 4, 4, 0, 1,
            0xFF, 0x53, 0, 10, 0, 5, 0, 5, 4, 4, 0x40, 1,
            0xFF, 0x90, 0, 10, 0, 0, 0, 0, 0, 16, 0, 1, 0xFF, 0x93, 0, 0, 0xFF, 0xD9,
        ];

        var ex = Assert.Throws<DicomFormatException>(() => Jpeg2000Codec.ForSyntax(Lossless).Decode(codestream, format));

        AssertHighThroughput(ex, Lossless);
        Assert.Contains("COC of the main header", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_Part1FrameWithUnknownMarkerHidingAnHtCod_Throws()
    {
        // In the main header OpenJPEG steps over an unknown marker two bytes at a time, so it would find this COD.
        var (frame, format) = Frame(Part1Path);
        var cod = MainHeaderSegmentBytes(frame, 0, 0xFF52);
        cod[4 + 8] |= 0x40;
        byte[] unknown = [0xFF, 0x30, 0, (byte)(2 + cod.Length), .. cod];
        var sot = FindMainHeaderSegment(frame, 0, 0xFF90);
        var hidden = frame[..sot].Concat(unknown).Concat(frame[sot..]).ToArray();

        var ex = Assert.Throws<DicomFormatException>(() => Jpeg2000Codec.ForSyntax(Lossless).Decode(hidden, format));

        Assert.Contains(Lossless, ex.Message, StringComparison.Ordinal);
        Assert.Contains("0xFF30", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(100)]
    [InlineData(100_000)]
    public void Decode_Part1FrameWithBadTilePartLength_ThrowsDicomFormatException(int psotDelta)
    {
        var (frame, format) = Frame(Part1Path);
        var sot = FindMainHeaderSegment(frame, 0, 0xFF90);
        var psot = BinaryPrimitives.ReadUInt32BigEndian(frame.AsSpan(sot + 6));
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(sot + 6), psot + (uint)psotDelta);

        var ex = Assert.Throws<DicomFormatException>(() => Jpeg2000Codec.ForSyntax(Lossless).Decode(frame, format));

        Assert.Contains(Lossless, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_Part1FrameInMinimalJp2_DecodesLikeTheCodestream()
    {
        var (frame, format) = Frame(Part1Path);
        var codec = Jpeg2000Codec.ForSyntax(Lossless);
        var expected = codec.Decode(frame, format);

        foreach (var jp2 in Enum.GetValues<JpcBox>().Select(style => Jp2(frame, format, style)))
        {
            var actual = codec.Decode(jp2, format);

            Assert.Equal(expected.PhotometricInterpretation, actual.PhotometricInterpretation);
            Assert.Equal(expected.Data, actual.Data);
        }
    }

    [Fact]
    public void Decode_Part1FrameInMinimalJp2WithHtBit_Throws()
    {
        var (frame, format) = Frame(Part1Path);
        SetHtBitInMainCod(frame, 0);

        foreach (var jp2 in Enum.GetValues<JpcBox>().Select(style => Jp2(frame, format, style)))
        {
            var ex = Assert.Throws<DicomFormatException>(() => Jpeg2000Codec.ForSyntax(Lossy).Decode(jp2, format));

            AssertHighThroughput(ex, Lossy);
        }
    }

    [Fact]
    public void Decode_CorpusJp2FrameWithHtBit_Throws()
    {
        // GDCMJ2K_TextGBR.dcm is the corpus's one JP2-wrapped frame (96 tile-parts); it decodes unmodified (CodecCorpusTests).
        var (frame, format) = Frame(Jp2CorpusPath);
        Assert.Equal(12u, BinaryPrimitives.ReadUInt32BigEndian(frame));
        var soc = frame.AsSpan().IndexOf("jp2c"u8) + 4;
        Jpeg2000Codec.ForSyntax(Lossless).Decode(frame, format);
        SetHtBitInMainCod(frame, soc);

        var ex = Assert.Throws<DicomFormatException>(() => Jpeg2000Codec.ForSyntax(Lossless).Decode(frame, format));

        AssertHighThroughput(ex, Lossless);
    }

    [Fact]
    public void Decode_Jp2WithoutCodestreamBox_ThrowsDicomFormatException()
    {
        var (frame, format) = Frame(Part1Path);
        var jp2 = Jp2(frame, format, JpcBox.Plain);
        var jp2c = jp2.AsSpan().IndexOf("jp2c"u8);
        "jp2x"u8.CopyTo(jp2.AsSpan(jp2c));

        var ex = Assert.Throws<DicomFormatException>(() => Jpeg2000Codec.ForSyntax(Lossless).Decode(jp2, format));

        Assert.Contains("jp2c", ex.Message, StringComparison.Ordinal);
    }

    private static (byte[] Frame, PixelFormat Format) Frame(string path)
    {
        var pixels = DicomPixelData.Create(DicomFile.Open(TestData.Shared(path)));
        return (pixels.GetEncodedFrame(0).ToArray(), pixels.Format);
    }

    private static void AssertHighThroughput(DicomFormatException ex, string uid)
    {
        Assert.Contains(uid, ex.Message, StringComparison.Ordinal);
        Assert.Contains("High-Throughput JPEG 2000 (Part 15)", ex.Message, StringComparison.Ordinal);
        Assert.Contains("docs/pixel-codecs.md", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>Offset of the first main-header marker <paramref name="marker"/> (or of the first SOT) in the codestream at <paramref name="soc"/>.</summary>
    private static int FindMainHeaderSegment(byte[] data, int soc, ushort marker)
    {
        var position = soc + 2;
        while (true)
        {
            var current = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(position));
            if (current == marker)
            {
                return position;
            }

            Assert.NotEqual(0xFF90, current);
            position += 2 + BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(position + 2));
        }
    }

    private static byte[] MainHeaderSegmentBytes(byte[] data, int soc, ushort marker)
    {
        var at = FindMainHeaderSegment(data, soc, marker);
        return data[at..(at + 2 + BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(at + 2)))];
    }

    /// <summary>Sets the HT bit (0x40) of the main COD's code-block style: marker(2) Lcod(2) Scod(1) SGcod(4) levels xcb ycb cblksty.</summary>
    private static void SetHtBitInMainCod(byte[] data, int soc) => data[FindMainHeaderSegment(data, soc, 0xFF52) + 4 + 8] |= 0x40;

    /// <summary>The frame with <paramref name="segment"/> inserted right after the first SOT segment, its Psot grown to match.</summary>
    private static byte[] InsertIntoFirstTilePart(byte[] frame, byte[] segment)
    {
        var sot = FindMainHeaderSegment(frame, 0, 0xFF90);
        var result = frame[..(sot + 12)].Concat(segment).Concat(frame[(sot + 12)..]).ToArray();
        var psot = BinaryPrimitives.ReadUInt32BigEndian(result.AsSpan(sot + 6));
        if (psot != 0)
        {
            BinaryPrimitives.WriteUInt32BigEndian(result.AsSpan(sot + 6), psot + (uint)segment.Length);
        }

        return result;
    }

    private enum JpcBox
    {
        Plain,
        ToEnd,
        Extended,
    }

    /// <summary>A minimal JP2 file around a codestream: signature, ftyp, jp2h (ihdr, colr) and jp2c.</summary>
    private static byte[] Jp2(byte[] codestream, PixelFormat format, JpcBox jp2cStyle)
    {
        var output = new List<byte>();
        void Box(string type, byte[] payload)
        {
            output.AddRange(BigEndian((uint)(8 + payload.Length)));
            output.AddRange(System.Text.Encoding.ASCII.GetBytes(type));
            output.AddRange(payload);
        }

        Box("jP  ", [0x0D, 0x0A, 0x87, 0x0A]);
        Box("ftyp", [.. "jp2 "u8, 0, 0, 0, 0, .. "jp2 "u8]);
        byte[] ihdr = [.. "ihdr"u8, .. BigEndian((uint)format.Rows), .. BigEndian((uint)format.Columns),
            0, (byte)format.SamplesPerPixel, (byte)(format.BitsStored - 1), 7, 0, 0];
        uint colourSpace = format.SamplesPerPixel == 3 ? 16u : 17u; // sRGB or greyscale
        byte[] colr = [.. "colr"u8, 1, 0, 0, .. BigEndian(colourSpace)];
        Box("jp2h", [.. BigEndian((uint)(8 + ihdr.Length - 4)), .. ihdr, .. BigEndian((uint)(8 + colr.Length - 4)), .. colr]);
        switch (jp2cStyle)
        {
            case JpcBox.Plain:
                Box("jp2c", codestream);
                break;
            case JpcBox.ToEnd:
                output.AddRange([0, 0, 0, 0, .. "jp2c"u8, .. codestream]);
                break;
            default:
                var extended = new byte[8];
                BinaryPrimitives.WriteUInt64BigEndian(extended, (ulong)(16 + codestream.Length));
                output.AddRange([0, 0, 0, 1, .. "jp2c"u8, .. extended, .. codestream]);
                break;
        }

        return [.. output];
    }

    private static byte[] BigEndian(uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        return bytes;
    }
}
