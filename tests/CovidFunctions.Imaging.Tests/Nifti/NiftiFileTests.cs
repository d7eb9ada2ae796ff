using System.IO.Compression;
using CovidFunctions.Imaging.Nifti;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Imaging.Tests.Nifti;

public sealed class NiftiFileTests
{
    private static string Mask(int study) => TestData.Shared("seg", "mosmed-masks", "masks", $"study_{study:0000}_mask.nii.gz");

    [Fact]
    public void Read_MosmedMask_HeaderMatchesPythonStructDump()
    {
        // Values from a numpy + gzip + struct dump of the file (nibabel is not installed).
        var image = NiftiFile.Read(Mask(255));
        var h = image.Header;

        Assert.Equal(1, h.Version);
        Assert.Equal([3L, 512, 512, 38, 1, 1, 1, 1], h.Dim);
        Assert.Equal(NiftiDataType.Int16, h.DataType);
        Assert.Equal(-1.0, h.PixDim[0]);
        Assert.Equal(0.923, h.PixDim[1], 5);
        Assert.Equal(8.0, h.PixDim[3]);
        Assert.Equal(352, h.VoxOffset);
        Assert.Equal(1, h.QformCode);
        Assert.Equal(1, h.SformCode);
        Assert.Equal(222.194, h.SRow[3], 3);
        Assert.Equal(-961.7, h.SRow[11], 3);
        Assert.Equal("Time=234114.350", h.Description);
        Assert.Equal(45526, image.ToSingle().Sum(v => (double)v));
    }

    [Fact]
    public void QformAffine_MosmedMask_AgreesWithSform()
    {
        var h = NiftiFile.Read(Mask(256)).Header;
        var q = h.QformAffine();
        for (var i = 0; i < 12; i++)
        {
            Assert.Equal(h.SRow[i], q[i], 4);
        }
    }

    [Theory]
    [InlineData(1, "roundtrip.nii.gz")]
    [InlineData(1, "roundtrip.nii")]
    [InlineData(2, "roundtrip2.nii.gz")]
    public void Write_ThenRead_HeaderFieldsAndVoxelsIdentical(int version, string name)
    {
        using var temp = TestData.CreateTempDirectory();
        var original = NiftiFile.Read(Mask(257));
        var header = original.Header.Clone();
        header.Version = version;
        var path = Path.Combine(temp.Path, name);

        NiftiFile.Write(path, new NiftiImage(header, original.Data));
        var back = NiftiFile.Read(path);

        var a = original.Header;
        var b = back.Header;
        Assert.Equal(version, b.Version);
        Assert.Equal(a.Dim, b.Dim);
        Assert.Equal(a.DataType, b.DataType);
        Assert.Equal(a.PixDim, b.PixDim);
        Assert.Equal(a.SRow, b.SRow);
        Assert.Equal((a.QformCode, a.SformCode), (b.QformCode, b.SformCode));
        Assert.Equal((a.QuaternB, a.QuaternC, a.QuaternD), (b.QuaternB, b.QuaternC, b.QuaternD));
        Assert.Equal((a.QOffsetX, a.QOffsetY, a.QOffsetZ), (b.QOffsetX, b.QOffsetY, b.QOffsetZ));
        Assert.Equal((a.SclSlope, a.SclInter, a.XyztUnits), (b.SclSlope, b.SclInter, b.XyztUnits));
        Assert.Equal(a.Description, b.Description);
        Assert.Equal(original.Data, back.Data);
    }

    [Fact]
    public void Read_ScaledInt16_AppliesSlopeAndIntercept()
    {
        var header = new NiftiHeader { Dim = [3, 2, 1, 1, 1, 1, 1, 1], DataType = NiftiDataType.Int16, SclSlope = 2, SclInter = -1024 };
        var image = new NiftiImage(header, [10, 0, 0xFF, 0xFF]);
        using var stream = new MemoryStream();
        NiftiFile.Write(stream, image);
        stream.Position = 0;

        var values = NiftiFile.Read(stream, "scaled.nii").ToSingle();

        Assert.Equal([-1004f, -1026f], values);
    }

    [Fact]
    public void Read_GzipFromNonSeekableStream_Works()
    {
        using var raw = File.OpenRead(Mask(258));
        using var wrapper = new NonSeekable(raw);
        var image = NiftiFile.Read(wrapper, "pipe");
        Assert.Equal(512, image.Header.Width);
    }

    [Fact]
    public void Read_TruncatedGzip_ThrowsImageFormatException()
    {
        var bytes = File.ReadAllBytes(Mask(259));
        using var cut = new MemoryStream(bytes, 0, bytes.Length / 3);
        var ex = Assert.ThrowsAny<ImageFormatException>(() => NiftiFile.Read(cut, "cut.nii.gz"));
        Assert.Contains("cut.nii.gz", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_NotNifti_ThrowsImageFormatException()
    {
        using var stream = new MemoryStream(new byte[400]);
        Assert.Throws<ImageFormatException>(() => NiftiFile.Read(stream, "zeros.nii"));
    }

    [Fact]
    public void Read_HugeDimensionsInGzip_RefusedBeforeAllocating()
    {
        var header = new NiftiHeader { Version = 2, Dim = [3, 100_000, 100_000, 1_000, 1, 1, 1, 1], DataType = NiftiDataType.Float32 };
        using var stream = new MemoryStream();
        using (var gz = new GZipStream(stream, CompressionLevel.Fastest, leaveOpen: true))
        {
            var bytes = new NiftiFileHeaderOnly(header).Bytes();
            gz.Write(bytes);
        }

        stream.Position = 0;
        var ex = Assert.Throws<ImageFormatException>(() => NiftiFile.Read(stream, "bomb.nii.gz"));
        Assert.Contains("limit", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_AllMosmedMasks_DatasetFactsHold()
    {
        // Dataset card: 50 masks, int16 512×512×Z, voxels about 0.68–0.81 × 8 mm (measured 0.58–1.15), 2,049 slices, 785 with lesion.
        var files = Directory.GetFiles(TestData.Shared("seg", "mosmed-masks", "masks"), "*.nii.gz");
        int slices = 0, lesionSlices = 0;
        foreach (var file in files)
        {
            var image = NiftiFile.Read(file);
            var h = image.Header;
            Assert.Equal(NiftiDataType.Int16, h.DataType);
            Assert.Equal((512L, 512L), (h.Width, h.Height));
            Assert.InRange(h.PixDim[1], 0.58, 1.16); // measured 0.582–1.152 (the card says about 0.68–0.81)
            Assert.Equal(8.0, h.PixDim[3], 3);
            var data = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, short>(image.Data);
            var plane = 512 * 512;
            for (var k = 0; k < h.Depth; k++)
            {
                slices++;
                if (data.Slice(k * plane, plane).ContainsAnyExcept((short)0))
                {
                    lesionSlices++;
                }
            }
        }

        Assert.Equal(50, files.Length);
        Assert.Equal(2049, slices);
        Assert.Equal(785, lesionSlices);
    }

    private sealed class NonSeekable(Stream inner) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, Math.Min(count, 1000));

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>Writes only a header (and the extension flag) by writing a one-voxel image and patching dims.</summary>
    private sealed class NiftiFileHeaderOnly(NiftiHeader header)
    {
        public byte[] Bytes()
        {
            var small = header.Clone();
            small.Dim[1] = small.Dim[2] = small.Dim[3] = 1;
            using var ms = new MemoryStream();
            NiftiFile.Write(ms, new NiftiImage(small, new byte[4]));
            var bytes = ms.ToArray().AsSpan(0, 544).ToArray();
            for (var i = 0; i < 8; i++)
            {
                System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(16 + (8 * i)), header.Dim[i]);
            }

            return bytes;
        }
    }
}
