using System.Buffers.Binary;
using System.IO.Compression;
using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Imaging.Tests.Preprocessing;

/// <summary>
/// Images PIL opens and the evaluation may hand <c>covidfn segment</c> / <c>classify</c>, and images PIL refuses as
/// cut short: the loader reads the first as PIL does and refuses the second, instead of the reverse.
/// </summary>
public sealed class ImageLoaderCompletenessTests
{
    /// <summary>A 16-bit sample that differs at every pixel and in both bytes.</summary>
    private static ushort Sample(int x, int y, int channel) => (ushort)((((x * 7919) + (y * 104729) + (channel * 30011)) * 2654435761u) >> 16);

    /// <summary>
    /// A 16-bit PNG of <see cref="Sample"/>, plain or Adam7-interlaced, each row written with a different filter (the
    /// encoder side of PNG spec 7.3 and 8.2). Checked once against PIL 9.4: <c>Image.open(f).getdata()</c> equals the
    /// samples for the interlaced grey file this writes.
    /// </summary>
    private static byte[] Png16(int width, int height, byte colourType, bool interlaced)
    {
        var channels = colourType switch { 0 => 1, 4 => 2, 2 => 3, 6 => 4, _ => throw new ArgumentOutOfRangeException(nameof(colourType)) };
        var bpp = channels * 2;
        (int X0, int Y0, int Dx, int Dy)[] passes = interlaced
            ? [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
            : [(0, 0, 1, 1)];
        using var raw = new MemoryStream();
        var rowNumber = 0;
        foreach (var (x0, y0, dx, dy) in passes)
        {
            var passWidth = (width - x0 + dx - 1) / dx;
            var passHeight = (height - y0 + dy - 1) / dy;
            if (passWidth <= 0 || passHeight <= 0)
            {
                continue;
            }

            var prior = new byte[passWidth * bpp];
            for (var j = 0; j < passHeight; j++)
            {
                var row = new byte[passWidth * bpp];
                for (var i = 0; i < passWidth; i++)
                {
                    for (var c = 0; c < channels; c++)
                    {
                        BinaryPrimitives.WriteUInt16BigEndian(row.AsSpan((i * bpp) + (2 * c)), Sample(x0 + (i * dx), y0 + (j * dy), c));
                    }
                }

                var filter = (byte)(rowNumber++ % 5);
                raw.WriteByte(filter);
                for (var k = 0; k < row.Length; k++)
                {
                    int a = k >= bpp ? row[k - bpp] : 0;
                    int b = prior[k];
                    int c = k >= bpp ? prior[k - bpp] : 0;
                    var p = a + b - c;
                    var paeth = Math.Abs(p - a) <= Math.Abs(p - b) && Math.Abs(p - a) <= Math.Abs(p - c) ? a : Math.Abs(p - b) <= Math.Abs(p - c) ? b : c;
                    var predictor = filter switch { 0 => 0, 1 => a, 2 => b, 3 => (a + b) >> 1, _ => paeth };
                    raw.WriteByte((byte)(row[k] - predictor));
                }

                prior = row;
            }
        }

        using var png = new MemoryStream();
        png.Write(PngChunks.Signature);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 16;
        ihdr[9] = colourType;
        ihdr[12] = (byte)(interlaced ? 1 : 0);
        PngChunks.WriteChunk(png, "IHDR"u8, ihdr);
        using (var compressed = new MemoryStream())
        {
            using (var z = new ZLibStream(compressed, CompressionLevel.Fastest, leaveOpen: true))
            {
                z.Write(raw.ToArray());
            }

            // Two IDAT chunks: the stream may be split anywhere.
            var bytes = compressed.ToArray();
            PngChunks.WriteChunk(png, "IDAT"u8, bytes.AsSpan(0, bytes.Length / 2));
            PngChunks.WriteChunk(png, "IDAT"u8, bytes.AsSpan(bytes.Length / 2));
        }

        PngChunks.WriteChunk(png, "IEND"u8, []);
        return png.ToArray();
    }

    [Theory]
    [InlineData(97, 61, 0)]
    [InlineData(13, 11, 2)]
    [InlineData(9, 9, 4)]
    [InlineData(6, 5, 6)]
    [InlineData(1, 1, 0)]
    [InlineData(3, 2, 0)]
    [InlineData(1, 17, 0)]
    [InlineData(17, 1, 2)]
    public void Decode_Interlaced16BitPng_GivesEverySampleAtItsPixelAsTheUninterlacedFileDoes(int width, int height, byte colourType)
    {
        var interlaced = ImageLoader.Decode(Png16(width, height, colourType, interlaced: true), "adam7.png");
        var plain = ImageLoader.Decode(Png16(width, height, colourType, interlaced: false), "plain.png");

        Assert.Equal((width, height), (interlaced.Width, interlaced.Height));
        Assert.Equal(plain.Pixels, interlaced.Pixels);
        if (colourType is 0 or 4)
        {
            for (var y = 0; y < height; y++)
            {
                for (var x = 0; x < width; x++)
                {
                    Assert.Equal(Sample(x, y, 0) / 65535f, interlaced.Pixels[(y * width) + x]);
                }
            }
        }
    }

    [Fact]
    public void Decode_Interlaced16BitPngCutShort_ThrowsNamingTheFile()
    {
        var png = Png16(40, 30, 0, interlaced: true);

        var ex = Assert.Throws<ImageFormatException>(() => ImageLoader.Decode(png.AsSpan(0, png.Length - 200), "cut.png"));

        Assert.Equal("cut.png", ex.FilePath);
    }

    /// <summary>A real progressive JPEG of the UCSD set (ImageLoaderTests reads baseline ones).</summary>
    private static byte[] RealProgressiveJpeg()
    {
        var bytes = File.ReadAllBytes(TestData.Shared("cls", "ucsd-covid-ct", "NonCOVID", "26_0.jpg"));
        Assert.Contains((byte)0xC2, FrameMarkers(bytes));
        return bytes;
    }

    /// <summary>The SOFn markers of a JPEG (0xC0 baseline, 0xC2 progressive), by a plain walk over its segments up to the first scan.</summary>
    private static List<byte> FrameMarkers(byte[] jpeg)
    {
        var found = new List<byte>();
        for (var pos = 2; pos + 4 <= jpeg.Length && jpeg[pos] == 0xFF && jpeg[pos + 1] != 0xDA; pos += 2 + BinaryPrimitives.ReadUInt16BigEndian(jpeg.AsSpan(pos + 2)))
        {
            if (jpeg[pos + 1] is >= 0xC0 and <= 0xCF and not 0xC4 and not 0xC8 and not 0xCC)
            {
                found.Add(jpeg[pos + 1]);
            }
        }

        return found;
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.9)]
    [InlineData(0.99)]
    public void Decode_ProgressiveJpegCutShort_ThrowsTruncatedAsPilDoes(double kept)
    {
        var jpeg = RealProgressiveJpeg();

        var ex = Assert.Throws<ImageFormatException>(() => ImageLoader.Decode(jpeg.AsSpan(0, (int)(jpeg.Length * kept)), "cut.jpg"));

        Assert.Contains("truncated", ex.Message, StringComparison.Ordinal);
        Assert.Equal("cut.jpg", ex.FilePath);
    }

    [Fact]
    public void Decode_ProgressiveJpegWithoutItsEndOfImageMarker_ThrowsTruncated()
    {
        var jpeg = RealProgressiveJpeg();
        Assert.Equal([0xFF, 0xD9], jpeg[^2..]);

        Assert.Throws<ImageFormatException>(() => ImageLoader.Decode(jpeg.AsSpan(0, jpeg.Length - 2), "no-eoi.jpg"));
    }

    [Fact]
    public void Decode_WholeProgressiveJpeg_AndWithBytesAfterItsEnd_DecodesTheSamePixels()
    {
        var jpeg = RealProgressiveJpeg();

        var whole = ImageLoader.Decode(jpeg, "whole.jpg");
        var trailing = ImageLoader.Decode([.. jpeg, 0, 0, 0x12, 0x34, 0xFF], "trailing.jpg");

        Assert.Equal(whole.Pixels, trailing.Pixels);
    }

    [Fact]
    public void ReachesEndOfImage_CutAfterAnExifThumbnail_DoesNotTakeTheThumbnailsEndForTheImagesEnd()
    {
        var jpeg = RealProgressiveJpeg();

        // APP1 holding a complete little JPEG (SOI ... EOI), as an EXIF thumbnail does, right after SOI.
        byte[] thumbnail = [0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0x11, 0x22, 0xFF, 0xD9];
        byte[] app1 = [0xFF, 0xE1, 0x00, (byte)(2 + 6 + thumbnail.Length), (byte)'E', (byte)'x', (byte)'i', (byte)'f', 0, 0, .. thumbnail];
        byte[] withThumbnail = [.. jpeg.AsSpan(0, 2), .. app1, .. jpeg.AsSpan(2)];

        Assert.True(JpegMarkers.ReachesEndOfImage(withThumbnail));
        Assert.False(JpegMarkers.ReachesEndOfImage(withThumbnail.AsSpan(0, withThumbnail.Length / 2)));
    }

    [Fact]
    public void ReachesEndOfImage_EveryRealJpegOfTheResearchSets_IsComplete()
    {
        var jpegs = new[] { TestData.Shared("cls", "ucsd-covid-ct"), TestData.Shared("seg", "covid-semiseg") }
            .SelectMany(dir => Directory.EnumerateFiles(dir, "*.jpg", SearchOption.AllDirectories))
            .Select(f => (Path: f, Bytes: File.ReadAllBytes(f)))
            .Where(f => ImageLoader.DetectFormat(f.Bytes) == ImageFileFormat.Jpeg)
            .ToList();

        Assert.True(jpegs.Count > 500, $"{jpegs.Count} JPEGs found");
        Assert.Empty(jpegs.Where(f => !JpegMarkers.ReachesEndOfImage(f.Bytes)).Select(f => f.Path));
    }
}
