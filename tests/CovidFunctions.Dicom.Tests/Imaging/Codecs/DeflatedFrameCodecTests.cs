using System.IO.Compression;
using CovidFunctions.Dicom.Imaging;
using CovidFunctions.Dicom.Imaging.Codecs;

namespace CovidFunctions.Dicom.Tests.Imaging.Codecs;

public sealed class DeflatedFrameCodecTests
{
    private static readonly PixelFormat Format = new(64, 48, 1, 16, 12, 11, 0, 0, "MONOCHROME2", 1);

    [Fact]
    public void Decode_RawDeflatedFrame_ReturnsNativeBytes()
    {
        var native = new byte[64 * 48 * 2];
        new Random(7).NextBytes(native);

        var frame = new DeflatedFrameCodec().Decode(Deflate(native), Format);

        Assert.Equal(native, frame.Data);
    }

    [Fact]
    public void Decode_InflatesShort_ThrowsDicomFormatException()
    {
        var ex = Assert.Throws<DicomFormatException>(() => new DeflatedFrameCodec().Decode(Deflate(new byte[100]), Format));

        Assert.Contains("1.2.840.10008.1.2.8.1", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_NotDeflate_ThrowsDicomFormatException() =>
        Assert.Throws<DicomFormatException>(() => new DeflatedFrameCodec().Decode(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF }, Format));

    private static byte[] Deflate(byte[] data)
    {
        using var output = new MemoryStream();
        using (var deflater = new DeflateStream(output, CompressionLevel.Optimal, leaveOpen: true))
        {
            deflater.Write(data);
        }

        return output.ToArray();
    }
}
