using System.Diagnostics;
using CovidFunctions.Dicom.Imaging;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Dicom.Tests.IO;

/// <summary>
/// Issue 2: parsing a 1 GB multi-frame file must not load the pixel data into memory. The file is a valid Part 10
/// header (explicit VR little endian, 2048 frames of 512×512×16 bits, Pixel Data OW of defined length 1 GiB) extended
/// with <see cref="FileStream.SetLength"/>, so it is sparse and costs no real 1 GB write.
/// </summary>
public sealed class LargeFileStreamingTests
{
    private const int Rows = 512;
    private const int Columns = 512;
    private const int Frames = 2048;
    private const long FrameBytes = (long)Rows * Columns * 2;
    private const long PixelBytes = FrameBytes * Frames; // 1 GiB

    [Fact]
    public void Open_OneGigabyteMultiFrameFile_ParsingMustNotLoadPixelDataIntoMemory()
    {
        using var temp = TestData.CreateTempDirectory();
        var (path, pixelOffset) = CreateSparseMultiFrameFile(temp.Path);
        Assert.Equal(pixelOffset + PixelBytes, new FileInfo(path).Length);

        DicomFile.Open(path, DicomReadOptions.HeaderOnly); // warm up code paths, so the measurement below is the parse alone
        var before = GC.GetAllocatedBytesForCurrentThread();
        var watch = Stopwatch.StartNew();
        var file = DicomFile.Open(path);
        watch.Stop();
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.True(allocated < 8L * 1024 * 1024, $"Open allocated {allocated} bytes for a 1 GiB file");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"Open took {watch.Elapsed}");
        Assert.False(file.IsPartial);
        var pixels = Assert.IsType<DicomValueElement>(file.Dataset[DicomTags.PixelData]);
        Assert.True(pixels.IsBulkData);
        Assert.Equal(PixelBytes, pixels.Length);
        Assert.Equal(pixelOffset, pixels.BulkData!.Offset);

        var pixelData = DicomPixelData.Create(file);
        Assert.Equal(Frames, pixelData.FrameCount);
        pixelData.GetEncodedFrame(0); // warm-up
        before = GC.GetAllocatedBytesForCurrentThread();
        var frame = pixelData.GetEncodedFrame(Frames / 2);
        allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(FrameBytes, frame.Length);
        Assert.True(allocated >= FrameBytes && allocated < FrameBytes + (64 * 1024), $"reading one {FrameBytes}-byte frame allocated {allocated} bytes");
        Assert.True(frame.Span.IndexOfAnyExcept((byte)0) < 0, "the sparse extension reads as zeros");
    }

    [Fact]
    public void Open_OneGigabyteMultiFrameFile_ReadsOnlyTheHeaderBytes()
    {
        using var temp = TestData.CreateTempDirectory();
        var (path, pixelOffset) = CreateSparseMultiFrameFile(temp.Path);

        using (var counting = new CountingFileStream(path))
        {
            var file = DicomFile.Read(counting);
            var pixels = Assert.IsType<DicomValueElement>(file.Dataset[DicomTags.PixelData]);
            Assert.True(pixels.IsBulkData);
            Assert.True(counting.BytesRead < 64 * 1024, $"a full open read {counting.BytesRead} bytes of a 1 GiB file");
        }

        using (var counting = new CountingFileStream(path))
        {
            var file = DicomFile.Read(counting, DicomReadOptions.HeaderOnly);
            Assert.True(file.IsPartial);
            Assert.Equal(Frames, file.Dataset.GetInt32(DicomTags.NumberOfFrames));
            Assert.True(counting.BytesRead < 64 * 1024, $"a header-only open read {counting.BytesRead} bytes");
            Assert.True(counting.BytesRead >= pixelOffset - 12, "the whole header was read");
        }
    }

    /// <summary>Writes the header and extends the file sparsely; returns the path and the offset of the first pixel byte.</summary>
    private static (string Path, long PixelOffset) CreateSparseMultiFrameFile(string directory)
    {
        var bytes = DicomBytes.Part10(TransferSyntax.ExplicitVRLittleEndian.Uid);
        bytes.Text(0x0008, 0x0016, "UI", "1.2.840.10008.5.1.4.1.1.2.1", 0); // Enhanced CT Image Storage
        bytes.Text(0x0008, 0x0018, "UI", "1.2.3.4", 0);
        bytes.Text(0x0008, 0x0060, "CS", "CT");
        bytes.Text(0x0010, 0x0010, "PN", "LARGE^FILE");
        bytes.UShort(0x0028, 0x0002, 1);
        bytes.Text(0x0028, 0x0004, "CS", "MONOCHROME2");
        bytes.Text(0x0028, 0x0008, "IS", Frames.ToString(System.Globalization.CultureInfo.InvariantCulture));
        bytes.UShort(0x0028, 0x0010, Rows);
        bytes.UShort(0x0028, 0x0011, Columns);
        bytes.UShort(0x0028, 0x0100, 16);
        bytes.UShort(0x0028, 0x0101, 12);
        bytes.UShort(0x0028, 0x0102, 11);
        bytes.UShort(0x0028, 0x0103, 0);
        bytes.Header(0x7FE0, 0x0010, "OW", (uint)PixelBytes);
        var header = bytes.ToArray();

        var path = Path.Combine(directory, "large-multiframe.dcm");
        using (var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write))
        {
            stream.Write(header);
            stream.SetLength(header.Length + PixelBytes);
        }

        return (path, header.Length);
    }

    /// <summary>A file stream that counts the bytes actually read through it (still a FileStream, so bulk references work).</summary>
    private sealed class CountingFileStream(string path)
        : FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1)
    {
        public long BytesRead { get; private set; }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = base.Read(buffer, offset, count);
            BytesRead += n;
            return n;
        }

        public override int Read(Span<byte> buffer)
        {
            var n = base.Read(buffer);
            BytesRead += n;
            return n;
        }

        public override int ReadByte()
        {
            var n = base.ReadByte();
            BytesRead += n >= 0 ? 1 : 0;
            return n;
        }
    }
}
