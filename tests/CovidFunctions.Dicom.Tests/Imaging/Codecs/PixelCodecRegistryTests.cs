using CovidFunctions.Dicom.Imaging;
using CovidFunctions.Dicom.Imaging.Codecs;

namespace CovidFunctions.Dicom.Tests.Imaging.Codecs;

public sealed class PixelCodecRegistryTests
{
    private static readonly PixelFormat Gray16 = new(8, 8, 1, 16, 16, 15, 0, 0, "MONOCHROME2", 1);

    [Theory]
    [InlineData("1.2.840.10008.1.2.5", typeof(RleCodec))]
    [InlineData("1.2.840.10008.1.2.4.50", typeof(JpegCodec))]
    [InlineData("1.2.840.10008.1.2.4.51", typeof(JpegCodec))]
    [InlineData("1.2.840.10008.1.2.4.53", typeof(JpegCodec))]
    [InlineData("1.2.840.10008.1.2.4.55", typeof(JpegCodec))]
    [InlineData("1.2.840.10008.1.2.4.57", typeof(JpegCodec))]
    [InlineData("1.2.840.10008.1.2.4.70", typeof(JpegCodec))]
    [InlineData("1.2.840.10008.1.2.4.80", typeof(JpegLsCodec))]
    [InlineData("1.2.840.10008.1.2.4.81", typeof(JpegLsCodec))]
    [InlineData("1.2.840.10008.1.2.4.90", typeof(Jpeg2000Codec))]
    [InlineData("1.2.840.10008.1.2.4.91", typeof(Jpeg2000Codec))]
    [InlineData("1.2.840.10008.1.2.8.1", typeof(DeflatedFrameCodec))]
    [InlineData("1.2.840.10008.1.2.1.98", typeof(EncapsulatedUncompressedCodec))]
    public void Find_DecodableSyntax_ReturnsItsCodec(string uid, Type codecType)
    {
        var codec = PixelCodecs.Find(uid);

        Assert.NotNull(codec);
        Assert.IsType(codecType, codec);
        Assert.Contains(uid, codec.TransferSyntaxUids);
    }

    [Theory]
    [InlineData("1.2.840.10008.1.2.4.201", "High-Throughput JPEG 2000")]
    [InlineData("1.2.840.10008.1.2.4.202", "High-Throughput JPEG 2000")]
    [InlineData("1.2.840.10008.1.2.4.203", "High-Throughput JPEG 2000")]
    [InlineData("1.2.840.10008.1.2.4.110", "JPEG XL")]
    [InlineData("1.2.840.10008.1.2.4.111", "JPEG XL")]
    [InlineData("1.2.840.10008.1.2.4.112", "JPEG XL")]
    [InlineData("1.2.840.10008.1.2.4.100", "video")]
    [InlineData("1.2.840.10008.1.2.4.102", "video")]
    [InlineData("1.2.840.10008.1.2.4.107", "video")]
    [InlineData("1.2.840.10008.1.2.4.108", "video")]
    [InlineData("1.2.840.10008.1.2.4.92", "Part 2")]
    public void Decode_KnownUndecodableSyntax_ThrowsUnsupportedNamingUidAndReason(string uid, string reason)
    {
        var codec = PixelCodecs.Get(uid);

        var ex = Assert.Throws<UnsupportedTransferSyntaxException>(() => codec.Decode(new byte[16], Gray16));

        Assert.Equal(uid, ex.TransferSyntaxUid);
        Assert.Contains(uid, ex.Message, StringComparison.Ordinal);
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Get_UnknownSyntax_ThrowsUnsupportedTransferSyntaxException()
    {
        Assert.Null(PixelCodecs.Find("1.2.3.4.5"));
        var ex = Assert.Throws<UnsupportedTransferSyntaxException>(() => PixelCodecs.Get("1.2.3.4.5"));
        Assert.Equal("1.2.3.4.5", ex.TransferSyntaxUid);
    }

    [Fact]
    public void All_EveryUid_ClaimedByOneCodec()
    {
        var uids = CodecRegistrations.All.SelectMany(c => c.TransferSyntaxUids).ToList();

        Assert.Equal(uids.Count, uids.Distinct(StringComparer.Ordinal).Count());
    }

    [Fact]
    public void NativeLibraries_InstalledByPrepareScript_Load()
    {
        Assert.True(Jpeg2000Codec.IsAvailable(out var openJpeg), openJpeg);
        Assert.True(JpegLsCodec.IsAvailable(out var charLs), charLs);
    }

    [Theory]
    [InlineData("1.2.840.10008.1.2.4.50")]
    [InlineData("1.2.840.10008.1.2.4.57")]
    [InlineData("1.2.840.10008.1.2.4.80")]
    [InlineData("1.2.840.10008.1.2.4.90")]
    [InlineData("1.2.840.10008.1.2.5")]
    public void Decode_RandomBytes_ThrowsOnlyDicomFormatException(string uid)
    {
        var codec = PixelCodecs.Get(uid);
        var random = new Random(uid.Length);
        for (var trial = 0; trial < 200; trial++)
        {
            var data = new byte[random.Next(0, 512)];
            random.NextBytes(data);
            if (trial % 2 == 0 && data.Length > 4)
            {
                // Give each codec a plausible start so the native decoders get past the signature check.
                byte[] magic = uid switch
                {
                    "1.2.840.10008.1.2.4.90" => [0xFF, 0x4F, 0xFF, 0x51],
                    "1.2.840.10008.1.2.5" => [1, 0, 0, 0],
                    _ => [0xFF, 0xD8, 0xFF, 0xC0],
                };
                magic.CopyTo(data, 0);
            }

            try
            {
                var frame = codec.Decode(data, Gray16);
                Assert.Equal(8 * 8 * 2, frame.Data.Length);
            }
            catch (DicomFormatException)
            {
                // the expected failure for a corrupt frame
            }
        }
    }
}
