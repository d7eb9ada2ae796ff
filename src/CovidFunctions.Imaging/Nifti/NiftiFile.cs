using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using CovidFunctions.Dicom.IO;

namespace CovidFunctions.Imaging.Nifti;

/// <summary>
/// Reads and writes single-file NIfTI-1 (<c>n+1</c>) and NIfTI-2 (<c>n+2</c>) images, plain (<c>.nii</c>) or gzipped
/// (<c>.nii.gz</c>, recognised by content, not by name). Either byte order is read; little-endian is written.
/// Extensions are skipped on read and not written. Two-file (<c>.hdr/.img</c>) images are refused.
/// </summary>
public static class NiftiFile
{
    /// <summary>The largest voxel payload read (bytes): bounds memory and decompression of a hostile .nii.gz.</summary>
    public const long MaxDataBytes = 2L * 1024 * 1024 * 1024 - 1;

    private const int Nifti1HeaderSize = 348;
    private const int Nifti2HeaderSize = 540;

    /// <summary>Whether a path names a NIfTI file by its extension (.nii or .nii.gz).</summary>
    public static bool HasNiftiExtension(string path) =>
        path.EndsWith(".nii", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".nii.gz", StringComparison.OrdinalIgnoreCase);

    public static NiftiImage Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var file = File.OpenRead(path);
        return Read(file, path);
    }

    /// <summary>Reads a NIfTI image from a stream (gzip detected by its magic bytes).</summary>
    public static NiftiImage Read(Stream stream, string? sourceName = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var buffered = new BufferedStream(stream, 1 << 16);
        Span<byte> magic = stackalloc byte[2];
        var isGzip = false;
        if (buffered.CanSeek)
        {
            var got = buffered.Read(magic);
            isGzip = got == 2 && magic[0] == 0x1F && magic[1] == 0x8B;
            buffered.Seek(-got, SeekOrigin.Current);
        }

        Stream input = isGzip ? new GZipStream(buffered, CompressionMode.Decompress) : buffered;
        if (!buffered.CanSeek)
        {
            input = new PeekGzipStream(buffered);
        }

        try
        {
            return ReadUncompressed(input, sourceName);
        }
        catch (InvalidDataException ex)
        {
            throw ImageFormatException.For(sourceName, "corrupt gzip stream: " + ex.Message, ex);
        }
        finally
        {
            if (!ReferenceEquals(input, buffered))
            {
                input.Dispose();
            }
        }
    }

    /// <summary>Writes a NIfTI image; gzipped when the path ends in <c>.gz</c>. The header's version picks NIfTI-1 or -2.</summary>
    public static void Write(string path, NiftiImage image)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var file = File.Create(path);
        if (path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase))
        {
            using var gz = new GZipStream(file, CompressionLevel.Fastest);
            Write(gz, image);
        }
        else
        {
            Write(file, image);
        }
    }

    /// <summary>Writes an uncompressed single-file NIfTI image (header, 4 zero extension bytes, voxels).</summary>
    public static void Write(Stream stream, NiftiImage image)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(image);
        var h = image.Header;
        var header = h.Version == 2 ? EncodeNifti2(h) : EncodeNifti1(h);
        stream.Write(header);
        stream.Write(new byte[4]);
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("NIfTI writing assumes a little-endian machine.");
        }

        stream.Write(image.Data);
    }

    private static NiftiImage ReadUncompressed(Stream input, string? source)
    {
        var first = new byte[4];
        ReadExactly(input, first, source, "header");
        var sizeLe = BinaryPrimitives.ReadInt32LittleEndian(first);
        var sizeBe = BinaryPrimitives.ReadInt32BigEndian(first);
        bool bigEndian;
        int headerSize;
        if (sizeLe is Nifti1HeaderSize or Nifti2HeaderSize)
        {
            bigEndian = false;
            headerSize = sizeLe;
        }
        else if (sizeBe is Nifti1HeaderSize or Nifti2HeaderSize)
        {
            bigEndian = true;
            headerSize = sizeBe;
        }
        else
        {
            throw ImageFormatException.For(source, $"not a NIfTI file (sizeof_hdr {sizeLe})");
        }

        var raw = new byte[headerSize];
        first.CopyTo(raw, 0);
        ReadExactly(input, raw.AsSpan(4), source, "header");
        var r = new FieldReader(raw, bigEndian);
        var header = headerSize == Nifti1HeaderSize ? DecodeNifti1(r, source) : DecodeNifti2(r, source);

        foreach (var d in header.Dim.AsSpan(1, (int)Math.Clamp(header.Dim[0], 1, 7)))
        {
            if (d < 1)
            {
                throw ImageFormatException.For(source, $"dimension {d} is not positive");
            }
        }

        if (!Enum.IsDefined(header.DataType))
        {
            throw ImageFormatException.For(source, $"NIfTI datatype {(int)header.DataType} is not supported");
        }

        // A transform that cannot place the volume (NaN/±Inf, a voxel size of 0, singular) is refused here, before the
        // voxels are read, naming the file: every later step would carry NaN positions and spacing.
        header.RequireUsableGeometry(source);

        var bpv = NiftiHeader.BytesPerVoxel(header.DataType);
        long dataBytes;
        try
        {
            dataBytes = checked(header.VoxelCount * bpv);
        }
        catch (OverflowException ex)
        {
            throw ImageFormatException.For(source, "dimensions overflow", ex);
        }

        if (dataBytes > MaxDataBytes)
        {
            throw ImageFormatException.For(source, $"voxel data of {dataBytes} bytes exceeds the {MaxDataBytes}-byte limit");
        }

        if (header.VoxOffset < headerSize)
        {
            header.VoxOffset = headerSize + 4;
        }

        // Skip the extension flag and any extensions up to vox_offset.
        var skip = header.VoxOffset - headerSize;
        var scratch = new byte[Math.Min(skip, 1 << 16)];
        while (skip > 0)
        {
            var n = (int)Math.Min(skip, scratch.Length);
            ReadExactly(input, scratch.AsSpan(0, n), source, "extension");
            skip -= n;
        }

        var data = new byte[dataBytes];
        ReadExactly(input, data, source, "voxel data");
        if (bigEndian && bpv > 1)
        {
            for (var i = 0; i < data.Length; i += bpv)
            {
                data.AsSpan(i, bpv).Reverse();
            }
        }

        return new NiftiImage(header, data) { SourcePath = source };
    }

    private static NiftiHeader DecodeNifti1(FieldReader r, string? source)
    {
        var magic = Encoding.ASCII.GetString(r.Bytes(344, 4));
        if (magic == "ni1\0")
        {
            throw ImageFormatException.For(source, "two-file NIfTI (.hdr/.img) is not supported; convert to a single .nii");
        }

        if (magic != "n+1\0")
        {
            throw ImageFormatException.For(source, "NIfTI-1 magic 'n+1' is missing");
        }

        var h = new NiftiHeader
        {
            Version = 1,
            Dim = Enumerable.Range(0, 8).Select(i => (long)r.I16(40 + (2 * i))).ToArray(),
            DataType = (NiftiDataType)r.I16(70),
            PixDim = Enumerable.Range(0, 8).Select(i => (double)r.F32(76 + (4 * i))).ToArray(),
            VoxOffset = (long)r.F32(108),
            SclSlope = r.F32(112),
            SclInter = r.F32(116),
            XyztUnits = r.U8(123),
            CalMax = r.F32(124),
            CalMin = r.F32(128),
            Description = r.Text(148, 80),
            QformCode = r.I16(252),
            SformCode = r.I16(254),
            QuaternB = r.F32(256),
            QuaternC = r.F32(260),
            QuaternD = r.F32(264),
            QOffsetX = r.F32(268),
            QOffsetY = r.F32(272),
            QOffsetZ = r.F32(276),
            SRow = Enumerable.Range(0, 12).Select(i => (double)r.F32(280 + (4 * i))).ToArray(),
            IntentCode = r.I16(68),
        };
        return h;
    }

    private static NiftiHeader DecodeNifti2(FieldReader r, string? source)
    {
        var magic = r.Bytes(4, 8);
        if (!magic.AsSpan(0, 4).SequenceEqual("n+2\0"u8))
        {
            throw ImageFormatException.For(source, magic.AsSpan(0, 4).SequenceEqual("ni2\0"u8)
                ? "two-file NIfTI-2 (.hdr/.img) is not supported"
                : "NIfTI-2 magic 'n+2' is missing");
        }

        return new NiftiHeader
        {
            Version = 2,
            DataType = (NiftiDataType)r.I16(12),
            Dim = Enumerable.Range(0, 8).Select(i => r.I64(16 + (8 * i))).ToArray(),
            PixDim = Enumerable.Range(0, 8).Select(i => r.F64(104 + (8 * i))).ToArray(),
            VoxOffset = r.I64(168),
            SclSlope = r.F64(176),
            SclInter = r.F64(184),
            CalMax = r.F64(192),
            CalMin = r.F64(200),
            Description = r.Text(240, 80),
            QformCode = r.I32(344),
            SformCode = r.I32(348),
            QuaternB = r.F64(352),
            QuaternC = r.F64(360),
            QuaternD = r.F64(368),
            QOffsetX = r.F64(376),
            QOffsetY = r.F64(384),
            QOffsetZ = r.F64(392),
            SRow = Enumerable.Range(0, 12).Select(i => r.F64(400 + (8 * i))).ToArray(),
            XyztUnits = r.I32(500),
            IntentCode = r.I32(504),
        };
    }

    private static byte[] EncodeNifti1(NiftiHeader h)
    {
        var b = new byte[Nifti1HeaderSize];
        var s = b.AsSpan();
        BinaryPrimitives.WriteInt32LittleEndian(s, Nifti1HeaderSize);
        b[38] = (byte)'r';
        for (var i = 0; i < 8; i++)
        {
            if (h.Dim[i] is < short.MinValue or > short.MaxValue)
            {
                throw new ArgumentException($"dim[{i}] = {h.Dim[i]} does not fit NIfTI-1; write NIfTI-2.");
            }

            BinaryPrimitives.WriteInt16LittleEndian(s[(40 + (2 * i))..], (short)h.Dim[i]);
            BinaryPrimitives.WriteSingleLittleEndian(s[(76 + (4 * i))..], (float)h.PixDim[i]);
        }

        BinaryPrimitives.WriteInt16LittleEndian(s[68..], (short)h.IntentCode);
        BinaryPrimitives.WriteInt16LittleEndian(s[70..], (short)h.DataType);
        BinaryPrimitives.WriteInt16LittleEndian(s[72..], (short)h.BitPix);
        BinaryPrimitives.WriteSingleLittleEndian(s[108..], Nifti1HeaderSize + 4);
        BinaryPrimitives.WriteSingleLittleEndian(s[112..], (float)h.SclSlope);
        BinaryPrimitives.WriteSingleLittleEndian(s[116..], (float)h.SclInter);
        b[123] = (byte)h.XyztUnits;
        BinaryPrimitives.WriteSingleLittleEndian(s[124..], (float)h.CalMax);
        BinaryPrimitives.WriteSingleLittleEndian(s[128..], (float)h.CalMin);
        WriteText(s.Slice(148, 80), h.Description);
        BinaryPrimitives.WriteInt16LittleEndian(s[252..], (short)h.QformCode);
        BinaryPrimitives.WriteInt16LittleEndian(s[254..], (short)h.SformCode);
        double[] q = [h.QuaternB, h.QuaternC, h.QuaternD, h.QOffsetX, h.QOffsetY, h.QOffsetZ];
        for (var i = 0; i < 6; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(s[(256 + (4 * i))..], (float)q[i]);
        }

        for (var i = 0; i < 12; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(s[(280 + (4 * i))..], (float)h.SRow[i]);
        }

        "n+1\0"u8.CopyTo(s[344..]);
        return b;
    }

    private static byte[] EncodeNifti2(NiftiHeader h)
    {
        var b = new byte[Nifti2HeaderSize];
        var s = b.AsSpan();
        BinaryPrimitives.WriteInt32LittleEndian(s, Nifti2HeaderSize);
        "n+2\0\r\n\u001a\n"u8.CopyTo(s[4..]);
        BinaryPrimitives.WriteInt16LittleEndian(s[12..], (short)h.DataType);
        BinaryPrimitives.WriteInt16LittleEndian(s[14..], (short)h.BitPix);
        for (var i = 0; i < 8; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(s[(16 + (8 * i))..], h.Dim[i]);
            BinaryPrimitives.WriteDoubleLittleEndian(s[(104 + (8 * i))..], h.PixDim[i]);
        }

        BinaryPrimitives.WriteInt64LittleEndian(s[168..], Nifti2HeaderSize + 4);
        BinaryPrimitives.WriteDoubleLittleEndian(s[176..], h.SclSlope);
        BinaryPrimitives.WriteDoubleLittleEndian(s[184..], h.SclInter);
        BinaryPrimitives.WriteDoubleLittleEndian(s[192..], h.CalMax);
        BinaryPrimitives.WriteDoubleLittleEndian(s[200..], h.CalMin);
        WriteText(s.Slice(240, 80), h.Description);
        BinaryPrimitives.WriteInt32LittleEndian(s[344..], h.QformCode);
        BinaryPrimitives.WriteInt32LittleEndian(s[348..], h.SformCode);
        double[] q = [h.QuaternB, h.QuaternC, h.QuaternD, h.QOffsetX, h.QOffsetY, h.QOffsetZ];
        for (var i = 0; i < 6; i++)
        {
            BinaryPrimitives.WriteDoubleLittleEndian(s[(352 + (8 * i))..], q[i]);
        }

        for (var i = 0; i < 12; i++)
        {
            BinaryPrimitives.WriteDoubleLittleEndian(s[(400 + (8 * i))..], h.SRow[i]);
        }

        BinaryPrimitives.WriteInt32LittleEndian(s[500..], h.XyztUnits);
        BinaryPrimitives.WriteInt32LittleEndian(s[504..], h.IntentCode);
        return b;
    }

    private static void WriteText(Span<byte> destination, string text)
    {
        var bytes = Encoding.ASCII.GetBytes(text);
        bytes.AsSpan(0, Math.Min(bytes.Length, destination.Length - 1)).CopyTo(destination);
    }

    private static void ReadExactly(Stream input, Span<byte> buffer, string? source, string what)
    {
        try
        {
            input.ReadExactly(buffer);
        }
        catch (EndOfStreamException ex)
        {
            throw ImageFormatException.For(source, $"file is truncated (in the {what})", ex);
        }
    }

    private readonly struct FieldReader(byte[] raw, bool bigEndian)
    {
        public byte[] Bytes(int offset, int length) => raw.AsSpan(offset, length).ToArray();

        public byte U8(int offset) => raw[offset];

        public short I16(int o) => bigEndian ? BinaryPrimitives.ReadInt16BigEndian(raw.AsSpan(o)) : BinaryPrimitives.ReadInt16LittleEndian(raw.AsSpan(o));

        public int I32(int o) => bigEndian ? BinaryPrimitives.ReadInt32BigEndian(raw.AsSpan(o)) : BinaryPrimitives.ReadInt32LittleEndian(raw.AsSpan(o));

        public long I64(int o) => bigEndian ? BinaryPrimitives.ReadInt64BigEndian(raw.AsSpan(o)) : BinaryPrimitives.ReadInt64LittleEndian(raw.AsSpan(o));

        public float F32(int o) => bigEndian ? BinaryPrimitives.ReadSingleBigEndian(raw.AsSpan(o)) : BinaryPrimitives.ReadSingleLittleEndian(raw.AsSpan(o));

        public double F64(int o) => bigEndian ? BinaryPrimitives.ReadDoubleBigEndian(raw.AsSpan(o)) : BinaryPrimitives.ReadDoubleLittleEndian(raw.AsSpan(o));

        public string Text(int offset, int length)
        {
            var span = raw.AsSpan(offset, length);
            var end = span.IndexOf((byte)0);
            return Encoding.ASCII.GetString(end < 0 ? span : span[..end]).TrimEnd();
        }
    }

    /// <summary>For non-seekable input: looks at the first two bytes, then reads gzip or plain data.</summary>
    private sealed class PeekGzipStream(Stream inner) : Stream
    {
        private Stream? _source;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Source().Read(buffer, offset, count);

        public override int Read(Span<byte> buffer) => Source().Read(buffer);

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing && _source is not null && !ReferenceEquals(_source, inner))
            {
                _source.Dispose();
            }

            base.Dispose(disposing);
        }

        private Stream Source()
        {
            if (_source is null)
            {
                var head = new byte[2];
                var got = 0;
                while (got < 2)
                {
                    var n = inner.Read(head, got, 2 - got);
                    if (n == 0)
                    {
                        break;
                    }

                    got += n;
                }

                var prefixed = new PrefixedStream(head.AsMemory(0, got), inner);
                _source = got == 2 && head[0] == 0x1F && head[1] == 0x8B ? new GZipStream(prefixed, CompressionMode.Decompress) : prefixed;
            }

            return _source;
        }
    }
}
