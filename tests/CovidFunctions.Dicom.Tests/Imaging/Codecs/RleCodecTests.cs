using System.Buffers.Binary;
using CovidFunctions.Dicom.Imaging;
using CovidFunctions.Dicom.Imaging.Codecs;

namespace CovidFunctions.Dicom.Tests.Imaging.Codecs;

public sealed class RleCodecTests
{
    private static PixelFormat Format(int rows, int columns, int samples, int bits, string photometric = "MONOCHROME2") =>
        new(rows, columns, samples, bits, bits, bits - 1, 0, 0, photometric, 1);

    [Theory]
    [InlineData(1, 8)]
    [InlineData(1, 16)]
    [InlineData(1, 32)]
    [InlineData(3, 8)]
    [InlineData(3, 16)]
    [InlineData(3, 32)]
    public void Decode_EncodedRandomFrame_ReturnsNativeInterleavedBytes(int samples, int bits)
    {
        var random = new Random(1234 + (samples * bits));
        const int rows = 17, columns = 23;
        var native = new byte[rows * columns * samples * (bits / 8)];
        random.NextBytes(native);
        native.AsSpan(0, native.Length / 3).Fill(7); // long runs as well as literals

        var encoded = RleTestEncoder.Encode(native, rows, columns, samples, bits / 8);
        var frame = new RleCodec().Decode(encoded, Format(rows, columns, samples, bits, samples == 3 ? "RGB" : "MONOCHROME2"));

        Assert.Equal(native, frame.Data);
        Assert.Equal(0, frame.PlanarConfiguration);
    }

    [Fact]
    public void Decode_SixteenBitSample_FirstSegmentIsMostSignificantByte()
    {
        // Two pixels 0x1234, 0xABCD: segment 0 holds the high bytes, segment 1 the low bytes.
        byte[] encoded = [.. Header(2, 64, 67), 0x01, 0x12, 0xAB, 0x01, 0x34, 0xCD];

        var frame = new RleCodec().Decode(encoded, Format(1, 2, 1, 16));

        Assert.Equal(0x1234, BinaryPrimitives.ReadUInt16LittleEndian(frame.Data));
        Assert.Equal(0xABCD, BinaryPrimitives.ReadUInt16LittleEndian(frame.Data.AsSpan(2)));
    }

    [Fact]
    public void Decode_ReplicateRunAndNoOp_ExpandsRun()
    {
        // -3 repeats the next byte 4 times; -128 is a no-op.
        byte[] encoded = [.. Header(1, 64), 0x80, 0xFD, 0x05];

        var frame = new RleCodec().Decode(encoded, Format(2, 2, 1, 8));

        Assert.Equal(new byte[] { 5, 5, 5, 5 }, frame.Data);
    }

    [Fact]
    public void Decode_BitsAllocatedOne_SegmentHoldsPackedFrame()
    {
        byte[] encoded = [.. Header(1, 64), 0x01, 0b1010_0101, 0xFF];

        var frame = new RleCodec().Decode(encoded, new PixelFormat(4, 4, 1, 1, 1, 0, 0, 0, "MONOCHROME2", 1));

        Assert.Equal(new byte[] { 0b1010_0101, 0xFF }, frame.Data);
    }

    [Fact]
    public void Decode_SegmentCountDisagreesWithFormat_ThrowsDicomFormatException()
    {
        byte[] encoded = [.. Header(1, 64), 0x00, 0x01];

        var ex = Assert.Throws<DicomFormatException>(() => new RleCodec().Decode(encoded, Format(1, 1, 1, 16)));

        Assert.Contains("1.2.840.10008.1.2.5", ex.Message, StringComparison.Ordinal);
        Assert.Contains("segments", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_SegmentTooShort_ThrowsDicomFormatException()
    {
        byte[] encoded = [.. Header(1, 64), 0x00, 0x01];

        Assert.Throws<DicomFormatException>(() => new RleCodec().Decode(encoded, Format(2, 2, 1, 8)));
    }

    [Fact]
    public void Decode_LiteralRunPastSegmentEnd_ThrowsDicomFormatException()
    {
        byte[] encoded = [.. Header(1, 64), 0x7F, 0x01];

        Assert.Throws<DicomFormatException>(() => new RleCodec().Decode(encoded, Format(16, 16, 1, 8)));
    }

    [Fact]
    public void Decode_OffsetBeyondFrame_ThrowsDicomFormatException()
    {
        byte[] encoded = [.. Header(1, 4096), 0x00, 0x01];

        Assert.Throws<DicomFormatException>(() => new RleCodec().Decode(encoded, Format(1, 1, 1, 8)));
    }

    [Fact]
    public void Decode_FrameShorterThanHeader_ThrowsDicomFormatException() =>
        Assert.Throws<DicomFormatException>(() => new RleCodec().Decode(new byte[10], Format(1, 1, 1, 8)));

    [Fact]
    public void Decode_RandomBytes_OnlyThrowsDicomFormatException()
    {
        var random = new Random(42);
        var native = new byte[32 * 32 * 2];
        random.NextBytes(native);
        var valid = RleTestEncoder.Encode(native, 32, 32, 1, 2);
        for (var trial = 0; trial < 500; trial++)
        {
            var mutated = (byte[])valid.Clone();
            for (var flips = 0; flips < 1 + (trial % 8); flips++)
            {
                mutated[random.Next(mutated.Length)] ^= (byte)(1 << random.Next(8));
            }

            var truncated = mutated.AsSpan(0, trial % 5 == 0 ? random.Next(mutated.Length) : mutated.Length).ToArray();
            try
            {
                var frame = new RleCodec().Decode(truncated, Format(32, 32, 1, 16));
                Assert.Equal(native.Length, frame.Data.Length);
            }
            catch (DicomFormatException)
            {
                // the expected failure for a corrupt frame
            }
        }
    }

    private static byte[] Header(int segments, params int[] offsets)
    {
        var header = new byte[64];
        BinaryPrimitives.WriteUInt32LittleEndian(header, (uint)segments);
        for (var i = 0; i < offsets.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4 + (4 * i)), (uint)offsets[i]);
        }

        return header;
    }
}
