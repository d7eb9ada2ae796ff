using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace CovidFunctions.Dicom.IO;

/// <summary>
/// Writes Part 10 files (or bare datasets) in any native transfer syntax, deflated, or encapsulated pass-through.
/// Lengths of defined-length sequences and items, and group lengths, are recomputed from the content; undefined
/// lengths stay undefined; values are padded to even length with the VR's padding byte.
/// </summary>
internal sealed class DicomWriter
{
    /// <summary>Our implementation class UID (a UUID-derived 2.25 UID) and version name.</summary>
    public const string ImplementationClassUid = "2.25.143231475340436154416375830366453513251";
    public const string ImplementationVersionName = "COVIDFN_1";

    private const uint UndefinedLength = 0xFFFFFFFF;
    private const int MaxDepth = 1000;
    private const int BufferSize = 64 * 1024;

    private readonly Stream _out;
    private readonly byte[] _buffer = new byte[BufferSize];
    private readonly bool _keepGroupLengths;
    private readonly bool _sameEncodingAsRead;
    private int _used;

    private DicomWriter(Stream output, bool keepGroupLengths, bool sameEncodingAsRead)
    {
        _out = output;
        _keepGroupLengths = keepGroupLengths;
        _sameEncodingAsRead = sameEncodingAsRead;
    }

    private readonly record struct Encoding(bool Explicit, bool BigEndian);

    public static void WriteFile(DicomFile file, Stream stream, DicomWriteOptions options)
    {
        var ts = options.TransferSyntax ?? file.TransferSyntax;
        CheckPixelDataFits(file, ts);
        var format = options.Format ?? DicomFileFormat.Part10;

        var read = file.ReadTransferSyntax ?? file.TransferSyntax;
        var sameEncoding = read.IsExplicitVR == ts.IsExplicitVR && read.IsBigEndian == ts.IsBigEndian;
        var writer = new DicomWriter(stream, options.KeepGroupLengths, sameEncoding);
        if (format != DicomFileFormat.DatasetOnly)
        {
            if (format == DicomFileFormat.Part10)
            {
                writer.WriteBytes(file.Preamble.Length == 128 ? file.Preamble.Span : new byte[128]);
                writer.WriteBytes("DICM"u8);
            }

            var meta = BuildMeta(file, ts);
            writer.WriteMeta(meta);
        }

        var enc = new Encoding(ts.IsExplicitVR, ts.IsBigEndian);
        if (ts.IsDeflated)
        {
            writer.Flush();
            using (var deflate = new DeflateStream(stream, options.DeflateLevel, leaveOpen: true))
            {
                var inner = new DicomWriter(deflate, options.KeepGroupLengths, sameEncoding);
                inner.WriteDataset(file.Dataset, enc, 0);
                inner.Flush();
            }

            return;
        }

        writer.WriteDataset(file.Dataset, enc, 0);
        writer.Flush();
    }

    /// <summary>The file meta information to write: the file's own, completed, with the target transfer syntax.</summary>
    internal static DicomDataset BuildMeta(DicomFile file, TransferSyntax ts)
    {
        var meta = new DicomDataset();
        foreach (var e in file.FileMetaInformation)
        {
            if (e.Tag.Group == 0x0002 && e.Tag.Element != 0)
            {
                meta.AddOrUpdate(e);
            }
        }

        if (!meta.Contains(new DicomTag(0x0002, 0x0001)))
        {
            meta.AddOrUpdate(new DicomValueElement(new DicomTag(0x0002, 0x0001), DicomVR.OB, new byte[] { 0, 1 }));
        }

        var ds = file.Dataset;
        if (!meta.Contains(new DicomTag(0x0002, 0x0002)) && ds.TryGetString(new DicomTag(0x0008, 0x0016), out var sopClass))
        {
            meta.SetString(new DicomTag(0x0002, 0x0002), DicomVR.UI, sopClass);
        }

        if (!meta.Contains(new DicomTag(0x0002, 0x0003)) && ds.TryGetString(new DicomTag(0x0008, 0x0018), out var sopInstance))
        {
            meta.SetString(new DicomTag(0x0002, 0x0003), DicomVR.UI, sopInstance);
        }

        var current = meta.GetString(new DicomTag(0x0002, 0x0010));
        if (current != ts.Uid)
        {
            meta.SetString(new DicomTag(0x0002, 0x0010), DicomVR.UI, ts.Uid);
        }

        if (!meta.Contains(new DicomTag(0x0002, 0x0012)))
        {
            meta.SetString(new DicomTag(0x0002, 0x0012), DicomVR.UI, ImplementationClassUid);
            if (!meta.Contains(new DicomTag(0x0002, 0x0013)))
            {
                meta.SetString(new DicomTag(0x0002, 0x0013), DicomVR.SH, ImplementationVersionName);
            }
        }

        return meta;
    }

    private static void CheckPixelDataFits(DicomFile file, TransferSyntax ts)
    {
        if (!file.Dataset.TryGet(new DicomTag(0x7FE0, 0x0010), out var pixelData))
        {
            return;
        }

        var encapsulated = pixelData is DicomFragmentSequence;
        if (encapsulated && !ts.IsEncapsulated)
        {
            throw new UnsupportedTransferSyntaxException(file.TransferSyntax.Uid,
                $"Cannot write encapsulated {file.TransferSyntax} pixel data as {ts}: transcoding is not supported");
        }

        if (!encapsulated && ts.IsEncapsulated)
        {
            throw new UnsupportedTransferSyntaxException(ts.Uid, $"Cannot encode native pixel data as {ts}: no encoder");
        }

        if (encapsulated && ts.Uid != file.TransferSyntax.Uid)
        {
            throw new UnsupportedTransferSyntaxException(ts.Uid,
                $"Cannot transcode {file.TransferSyntax} pixel data to {ts}: encapsulated data is passed through unchanged only");
        }
    }

    private void WriteMeta(DicomDataset meta)
    {
        var enc = new Encoding(true, false);
        long groupLength = 0;
        foreach (var e in meta)
        {
            groupLength += EncodedLength(e, enc, 0);
        }

        WriteHeader(new DicomTag(0x0002, 0x0000), DicomVR.UL, 4, enc);
        WriteUInt32((uint)groupLength, false);
        foreach (var e in meta)
        {
            WriteElement(e, enc, 0);
        }
    }

    private void WriteDataset(DicomDataset dataset, Encoding enc, int depth)
    {
        if (depth > MaxDepth)
        {
            throw new DicomException($"Datasets nested deeper than {MaxDepth} levels (a cycle?) cannot be written");
        }

        var elements = dataset.Elements;
        for (var i = 0; i < elements.Count; i++)
        {
            var e = elements[i];
            if (e.Tag.Element == 0)
            {
                if (!_keepGroupLengths)
                {
                    continue;
                }

                if (!dataset.IsModified && _sameEncodingAsRead && e is DicomValueElement { Length: 4, IsBulkData: false } asRead)
                {
                    // Unchanged since read and encoded as read: keep the value as read (byte-identical round trip,
                    // even where the writer of the input got it wrong).
                    WriteHeader(e.Tag, DicomVR.UL, 4, enc);
                    WriteUInt32(BinaryPrimitives.ReadUInt32LittleEndian(asRead.InMemoryValue.Span), enc.BigEndian);
                    continue;
                }

                // Recompute: the sum of the encoded lengths of the following elements of this group.
                long length = 0;
                for (var j = i + 1; j < elements.Count && elements[j].Tag.Group == e.Tag.Group; j++)
                {
                    length += EncodedLength(elements[j], enc, depth);
                }

                WriteHeader(e.Tag, DicomVR.UL, 4, enc);
                WriteUInt32((uint)Math.Min(length, uint.MaxValue), enc.BigEndian);
                continue;
            }

            WriteElement(e, enc, depth);
        }
    }

    private void WriteElement(DicomElement element, Encoding enc, int depth)
    {
        switch (element)
        {
            case DicomValueElement value:
                WriteValueElement(value, enc);
                break;
            case DicomSequence sequence:
                WriteSequence(sequence, enc, depth);
                break;
            case DicomFragmentSequence fragments:
                WriteFragments(fragments, enc);
                break;
        }
    }

    private void WriteValueElement(DicomValueElement e, Encoding enc)
    {
        var length = e.Length;
        var padded = length + (length & 1);
        var vr = e.VR;
        if (enc.Explicit && !vr.HasLongExplicitLength && padded > 0xFFFE)
        {
            vr = DicomVR.UN; // too long for a 16-bit length: UN has a 32-bit one (PS3.5 6.2.2)
        }

        if (padded > uint.MaxValue - 1)
        {
            throw new DicomException($"{e.Tag} value of {length} bytes is too long to encode");
        }

        WriteHeader(e.Tag, vr, (uint)padded, enc);
        var swap = enc.BigEndian ? e.VR.UnitSize : 0;
        if (e.BulkData is { } bulk)
        {
            CopyBulk(bulk, swap);
        }
        else
        {
            var span = e.InMemoryValue.Span;
            if (swap > 1)
            {
                WriteSwapped(span, swap);
            }
            else
            {
                WriteBytes(span);
            }
        }

        if ((length & 1) == 1)
        {
            WriteByte((byte)e.VR.PaddingByte);
        }
    }

    private void WriteSequence(DicomSequence sequence, Encoding enc, int depth)
    {
        var asUN = sequence.VR == DicomVR.UN && enc.Explicit;
        var itemEnc = asUN ? new Encoding(false, false) : enc;
        var length = sequence.UndefinedLength ? UndefinedLength : (uint)SequenceContentLength(sequence, itemEnc, depth);
        WriteHeader(sequence.Tag, asUN ? DicomVR.UN : DicomVR.SQ, length, enc);
        foreach (var item in sequence.Items)
        {
            var itemLength = item.UndefinedLength ? UndefinedLength : (uint)DatasetLength(item, itemEnc, depth + 1);
            WriteTagLength(0xFFFE, 0xE000, itemLength, itemEnc.BigEndian);
            WriteDataset(item, itemEnc, depth + 1);
            if (item.UndefinedLength)
            {
                WriteTagLength(0xFFFE, 0xE00D, 0, itemEnc.BigEndian);
            }
        }

        if (sequence.UndefinedLength)
        {
            WriteTagLength(0xFFFE, 0xE0DD, 0, itemEnc.BigEndian);
        }
    }

    private void WriteFragments(DicomFragmentSequence pixelData, Encoding enc)
    {
        WriteHeader(pixelData.Tag, pixelData.VR, UndefinedLength, enc);
        var bot = pixelData.BasicOffsetTable.Span;
        WriteTagLength(0xFFFE, 0xE000, (uint)bot.Length, enc.BigEndian);
        WriteBytes(bot);
        foreach (var fragment in pixelData.Fragments)
        {
            var length = fragment.Length;
            WriteTagLength(0xFFFE, 0xE000, (uint)(length + (length & 1)), enc.BigEndian);
            if (fragment.BulkData is { } bulk)
            {
                CopyBulk(bulk, 0);
            }
            else
            {
                WriteBytes(fragment.InMemoryValue.Span);
            }

            if ((length & 1) == 1)
            {
                WriteByte(0);
            }
        }

        WriteTagLength(0xFFFE, 0xE0DD, 0, enc.BigEndian);
    }

    /// <summary>The number of bytes an element takes when encoded (header included).</summary>
    private long EncodedLength(DicomElement element, Encoding enc, int depth)
    {
        switch (element)
        {
            case DicomValueElement v:
            {
                var padded = v.Length + (v.Length & 1);
                return HeaderLength(v.VR, padded, enc) + padded;
            }

            case DicomSequence s:
            {
                var asUN = s.VR == DicomVR.UN && enc.Explicit;
                var itemEnc = asUN ? new Encoding(false, false) : enc;
                var header = enc.Explicit ? 12 : 8;
                return header + SequenceContentLength(s, itemEnc, depth) + (s.UndefinedLength ? 8 : 0);
            }

            case DicomFragmentSequence f:
            {
                long total = (enc.Explicit ? 12 : 8) + 8 + f.BasicOffsetTable.Length;
                foreach (var fragment in f.Fragments)
                {
                    total += 8 + fragment.Length + (fragment.Length & 1);
                }

                return total + 8;
            }

            default:
                return 0;
        }
    }

    private long SequenceContentLength(DicomSequence sequence, Encoding itemEnc, int depth)
    {
        if (depth > MaxDepth)
        {
            throw new DicomException($"Datasets nested deeper than {MaxDepth} levels (a cycle?) cannot be written");
        }

        long total = 0;
        foreach (var item in sequence.Items)
        {
            total += 8 + DatasetLength(item, itemEnc, depth + 1) + (item.UndefinedLength ? 8 : 0);
        }

        return total;
    }

    private long DatasetLength(DicomDataset dataset, Encoding enc, int depth)
    {
        long total = 0;
        foreach (var e in dataset.Elements)
        {
            if (e.Tag.Element == 0 && !_keepGroupLengths)
            {
                continue;
            }

            total += e.Tag.Element == 0 ? (enc.Explicit ? 8 : 8) + 4 : EncodedLength(e, enc, depth);
        }

        return total;
    }

    private static int HeaderLength(DicomVR vr, long paddedLength, Encoding enc)
    {
        if (!enc.Explicit)
        {
            return 8;
        }

        return vr.HasLongExplicitLength || paddedLength > 0xFFFE ? 12 : 8;
    }

    private void WriteHeader(DicomTag tag, DicomVR vr, uint length, Encoding enc)
    {
        Reserve(12);
        var span = _buffer.AsSpan(_used);
        if (enc.BigEndian)
        {
            BinaryPrimitives.WriteUInt16BigEndian(span, tag.Group);
            BinaryPrimitives.WriteUInt16BigEndian(span[2..], tag.Element);
        }
        else
        {
            BinaryPrimitives.WriteUInt16LittleEndian(span, tag.Group);
            BinaryPrimitives.WriteUInt16LittleEndian(span[2..], tag.Element);
        }

        if (!enc.Explicit)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(span[4..], length);
            _used += 8;
            return;
        }

        span[4] = (byte)vr.Code[0];
        span[5] = (byte)vr.Code[1];
        if (vr.HasLongExplicitLength)
        {
            span[6] = 0;
            span[7] = 0;
            if (enc.BigEndian)
            {
                BinaryPrimitives.WriteUInt32BigEndian(span[8..], length);
            }
            else
            {
                BinaryPrimitives.WriteUInt32LittleEndian(span[8..], length);
            }

            _used += 12;
        }
        else
        {
            if (enc.BigEndian)
            {
                BinaryPrimitives.WriteUInt16BigEndian(span[6..], (ushort)length);
            }
            else
            {
                BinaryPrimitives.WriteUInt16LittleEndian(span[6..], (ushort)length);
            }

            _used += 8;
        }
    }

    private void WriteTagLength(ushort group, ushort element, uint length, bool bigEndian)
    {
        Reserve(8);
        var span = _buffer.AsSpan(_used);
        if (bigEndian)
        {
            BinaryPrimitives.WriteUInt16BigEndian(span, group);
            BinaryPrimitives.WriteUInt16BigEndian(span[2..], element);
            BinaryPrimitives.WriteUInt32BigEndian(span[4..], length);
        }
        else
        {
            BinaryPrimitives.WriteUInt16LittleEndian(span, group);
            BinaryPrimitives.WriteUInt16LittleEndian(span[2..], element);
            BinaryPrimitives.WriteUInt32LittleEndian(span[4..], length);
        }

        _used += 8;
    }

    private void WriteUInt32(uint value, bool bigEndian)
    {
        Reserve(4);
        if (bigEndian)
        {
            BinaryPrimitives.WriteUInt32BigEndian(_buffer.AsSpan(_used), value);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(_used), value);
        }

        _used += 4;
    }

    private void WriteByte(byte value)
    {
        Reserve(1);
        _buffer[_used++] = value;
    }

    private void WriteBytes(ReadOnlySpan<byte> data)
    {
        if (data.Length > _buffer.Length - _used)
        {
            Flush();
            if (data.Length >= _buffer.Length)
            {
                _out.Write(data);
                return;
            }
        }

        data.CopyTo(_buffer.AsSpan(_used));
        _used += data.Length;
    }

    private void WriteSwapped(ReadOnlySpan<byte> data, int unit)
    {
        while (!data.IsEmpty)
        {
            Reserve(unit);
            var room = (_buffer.Length - _used) / unit * unit;
            var take = Math.Min(room, data.Length);
            var dest = _buffer.AsSpan(_used, take);
            ByteSwap.Copy(data[..take], dest, unit);
            _used += take;
            data = data[take..];
        }
    }

    /// <summary>Copies a bulk value from its file in chunks, converting to the target byte order.</summary>
    private void CopyBulk(BulkDataReference bulk, int targetSwap)
    {
        Flush();
        // Bytes on disk are big endian when SwapUnitSize > 0; the target wants big endian when targetSwap > 1.
        var unit = Math.Max(bulk.SwapUnitSize, targetSwap);
        var needSwap = (bulk.SwapUnitSize > 1) != (targetSwap > 1);
        var chunk = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            using var handle = File.OpenHandle(bulk.FilePath, FileMode.Open, FileAccess.Read, FileShare.Read);
            var chunkSize = chunk.Length / 8 * 8;
            for (long done = 0; done < bulk.Length;)
            {
                var take = (int)Math.Min(chunkSize, bulk.Length - done);
                var span = chunk.AsSpan(0, take);
                var got = 0;
                while (got < take)
                {
                    var n = RandomAccess.Read(handle, span[got..], bulk.Offset + done + got);
                    if (n <= 0)
                    {
                        throw new DicomException($"{bulk.FilePath}: file ends inside a bulk value (expected {bulk.Length} bytes at byte {bulk.Offset})");
                    }

                    got += n;
                }

                if (needSwap && unit > 1)
                {
                    ByteSwap.InPlace(span, unit);
                }

                _out.Write(span);
                done += take;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
    }

    private void Reserve(int count)
    {
        if (_buffer.Length - _used < count)
        {
            Flush();
        }
    }

    private void Flush()
    {
        if (_used > 0)
        {
            _out.Write(_buffer, 0, _used);
            _used = 0;
        }
    }
}
