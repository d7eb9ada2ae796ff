using System.Buffers.Binary;
using System.Text;

namespace CovidFunctions.Dicom.Tests.IO;

/// <summary>Builds handcrafted DICOM byte streams for reader tests (explicit or implicit VR, little or big endian).</summary>
internal sealed class DicomBytes
{
    private readonly MemoryStream _stream = new();

    public DicomBytes(bool explicitVR = true, bool bigEndian = false)
    {
        Explicit = explicitVR;
        BigEndian = bigEndian;
    }

    public bool Explicit { get; set; }

    public bool BigEndian { get; set; }

    public long Length => _stream.Length;

    /// <summary>Preamble, "DICM" and a meta group declaring <paramref name="transferSyntaxUid"/>.</summary>
    public static DicomBytes Part10(string transferSyntaxUid)
    {
        var meta = new DicomBytes();
        meta.Element(0x0002, 0x0001, "OB", [0, 1]);
        meta.Text(0x0002, 0x0010, "UI", transferSyntaxUid, 0);
        meta.Text(0x0002, 0x0012, "UI", "1.2.3.4", 0);
        var metaBytes = meta.ToArray();
        var file = new DicomBytes();
        file.Raw(new byte[128]);
        file.Raw("DICM"u8.ToArray());
        file.Element(0x0002, 0x0000, "UL", BitConverter.GetBytes((uint)metaBytes.Length));
        file.Raw(metaBytes);
        var ts = TransferSyntax.Lookup(transferSyntaxUid);
        file.Explicit = ts.IsExplicitVR;
        file.BigEndian = ts.IsBigEndian;
        return file;
    }

    public DicomBytes Raw(byte[] bytes)
    {
        _stream.Write(bytes);
        return this;
    }

    public DicomBytes Tag(ushort group, ushort element)
    {
        Span<byte> b = stackalloc byte[4];
        if (BigEndian)
        {
            BinaryPrimitives.WriteUInt16BigEndian(b, group);
            BinaryPrimitives.WriteUInt16BigEndian(b[2..], element);
        }
        else
        {
            BinaryPrimitives.WriteUInt16LittleEndian(b, group);
            BinaryPrimitives.WriteUInt16LittleEndian(b[2..], element);
        }

        _stream.Write(b);
        return this;
    }

    public DicomBytes UInt32(uint value)
    {
        Span<byte> b = stackalloc byte[4];
        if (BigEndian)
        {
            BinaryPrimitives.WriteUInt32BigEndian(b, value);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        }

        _stream.Write(b);
        return this;
    }

    public DicomBytes UInt16(ushort value)
    {
        Span<byte> b = stackalloc byte[2];
        if (BigEndian)
        {
            BinaryPrimitives.WriteUInt16BigEndian(b, value);
        }
        else
        {
            BinaryPrimitives.WriteUInt16LittleEndian(b, value);
        }

        _stream.Write(b);
        return this;
    }

    /// <summary>An element header with an explicit length (use 0xFFFFFFFF for undefined).</summary>
    public DicomBytes Header(ushort group, ushort element, string vr, uint length)
    {
        Tag(group, element);
        if (!Explicit)
        {
            return UInt32(length);
        }

        _stream.Write(Encoding.ASCII.GetBytes(vr));
        if (DicomVR.TryParse(vr, out var v) && !v.HasLongExplicitLength)
        {
            return UInt16((ushort)length);
        }

        UInt16(0);
        return UInt32(length);
    }

    public DicomBytes Element(ushort group, ushort element, string vr, byte[] value)
    {
        Header(group, element, vr, (uint)value.Length);
        return Raw(value);
    }

    public DicomBytes Text(ushort group, ushort element, string vr, string text, byte pad = (byte)' ')
    {
        var bytes = Encoding.ASCII.GetBytes(text);
        if (bytes.Length % 2 == 1)
        {
            bytes = [.. bytes, pad];
        }

        return Element(group, element, vr, bytes);
    }

    public DicomBytes UShort(ushort group, ushort element, ushort value)
    {
        Header(group, element, "US", 2);
        return UInt16(value);
    }

    public DicomBytes ItemStart(uint length = 0xFFFFFFFF) => Tag(0xFFFE, 0xE000).UInt32(length);

    public DicomBytes ItemEnd() => Tag(0xFFFE, 0xE00D).UInt32(0);

    public DicomBytes SequenceEnd() => Tag(0xFFFE, 0xE0DD).UInt32(0);

    public byte[] ToArray() => _stream.ToArray();

    public MemoryStream ToStream() => new(ToArray(), writable: false);
}

/// <summary>A read-only stream that cannot seek (as a network body would be).</summary>
internal sealed class NonSeekableStream(byte[] data) : Stream
{
    private int _position;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count)
    {
        var n = Math.Min(count, data.Length - _position);
        Array.Copy(data, _position, buffer, offset, n);
        _position += n;
        return n;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
