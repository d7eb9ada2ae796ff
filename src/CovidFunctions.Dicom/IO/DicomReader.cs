using System.IO.Compression;
using System.Text;

namespace CovidFunctions.Dicom.IO;

/// <summary>
/// Parses Part 10 files and bare datasets: implicit / explicit VR, little / big endian, deflated, encapsulated. Large
/// values and Pixel Data of seekable files become bulk references. Every length is checked against what is left
/// before anything is allocated, nesting is bounded, and every loop consumes bytes, so bad input ends in a
/// <see cref="DicomFormatException"/> naming the source and the byte offset.
/// </summary>
internal sealed class DicomReader
{
    private const uint UndefinedLength = 0xFFFFFFFF;
    private const uint ItemTag = 0xFFFEE000;
    private const uint ItemDelimitationTag = 0xFFFEE00D;
    private const uint SequenceDelimitationTag = 0xFFFEE0DD;
    private const uint PixelDataTag = 0x7FE00010;
    private const uint PixelRepresentationTag = 0x00280103;
    private const int SmallValue = 256;
    private const int ArenaSize = 16 * 1024;
    private const int HardMaxDepth = 1000;

    private readonly BufferedDicomStream _in;
    private readonly DicomReadOptions _options;
    private readonly string? _source;
    private readonly string? _bulkPath;
    private readonly string _offsetNote;
    private byte[] _arena = [];
    private int _arenaUsed;
    private bool _stopped;
    private long _trailingDataOffset = -1;

    private DicomReader(BufferedDicomStream input, DicomReadOptions options, string? source, string? bulkPath, string offsetNote)
    {
        _in = input;
        _options = options;
        _source = source;
        _bulkPath = bulkPath;
        _offsetNote = offsetNote;
    }

    /// <summary>The encoding of the bytes being parsed.</summary>
    private readonly record struct Encoding(bool Explicit, bool BigEndian);

    /// <summary>Why a dataset ended.</summary>
    private enum End
    {
        Length,
        ItemDelimiter,
        SequenceDelimiter,
        Stopped,
    }

    public static DicomFile ReadFile(Stream stream, DicomReadOptions options, string? sourceName, string? bulkPath)
    {
        if (options.MaxSequenceDepth is < 1 or > HardMaxDepth)
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"MaxSequenceDepth must be 1..{HardMaxDepth}");
        }

        if (!stream.CanRead)
        {
            throw new ArgumentException("The stream cannot be read", nameof(stream));
        }

        try
        {
            return ReadFileCore(stream, options, sourceName, bulkPath);
        }
        catch (InvalidDataException ex)
        {
            // A corrupt deflate stream.
            throw new DicomFormatException(sourceName, stream.CanSeek ? stream.Position : 0, "corrupt deflated dataset: " + ex.Message, ex);
        }
    }

    /// <summary>
    /// Parses the value of an element that was re-encoded as UN although it is a sequence: per PS3.5 6.2.2 its bytes are
    /// the items in implicit VR little endian, whatever the file's transfer syntax.
    /// </summary>
    /// <exception cref="DicomFormatException">The bytes are not a sequence of items.</exception>
    public static DicomSequence ReadUNValueAsSequence(DicomTag tag, ReadOnlyMemory<byte> value, DicomReadOptions options, string? sourceName)
    {
        using var input = new BufferedDicomStream(new MemoryStream(value.ToArray(), writable: false));
        var reader = new DicomReader(input, options, sourceName, bulkPath: null, $" (inside the UN value of {tag})");
        var sequence = reader.ReadSequence(tag, DicomVR.SQ, new Encoding(Explicit: false, BigEndian: false), depth: 0, sequenceEnd: value.Length, start: 0);
        sequence.UndefinedLength = false;
        return sequence;
    }

    private static DicomFile ReadFileCore(Stream stream, DicomReadOptions options, string? sourceName, string? bulkPath)
    {
        using var input = new BufferedDicomStream(stream);
        var reader = new DicomReader(input, options, sourceName, bulkPath, string.Empty);
        if (!input.Ensure(1))
        {
            throw reader.Error("empty input, not a DICOM file", input.Position);
        }

        ReadOnlyMemory<byte> preamble = ReadOnlyMemory<byte>.Empty;
        DicomFileFormat format;
        var hasMeta = false;
        if (input.Ensure(140) && input.Span.Slice(128, 4).SequenceEqual("DICM"u8) && input.PeekUInt16(132, false) == 0x0002)
        {
            preamble = input.Span[..128].ToArray();
            input.Advance(132);
            format = DicomFileFormat.Part10;
            hasMeta = true;
        }
        else if (input.Ensure(4) && input.Span[..4].SequenceEqual("DICM"u8))
        {
            input.Advance(4);
            format = DicomFileFormat.Part10;
            hasMeta = true;
        }
        else if (input.Ensure(8) && input.PeekUInt16(0, false) == 0x0002)
        {
            format = DicomFileFormat.MetaWithoutPreamble;
            hasMeta = true;
        }
        else
        {
            format = DicomFileFormat.DatasetOnly;
        }

        var meta = new DicomDataset();
        TransferSyntax? declared = null;
        if (hasMeta)
        {
            declared = reader.ReadMeta(meta);
        }

        var dataset = new DicomDataset();
        var file = new DicomFile(preamble, meta, dataset, declared ?? TransferSyntax.ExplicitVRLittleEndian, sourceName, format);

        if (input.AtEnd)
        {
            // A meta-only file (or an empty dataset) is legal.
            file.TransferSyntax = declared ?? TransferSyntax.ExplicitVRLittleEndian;
            file.ReadTransferSyntax = file.TransferSyntax;
            return file;
        }

        if (declared is { IsDeflated: true })
        {
            var datasetStart = input.Position;
            using var inflated = reader.OpenInflater(stream, datasetStart);
            using var inner = new BufferedDicomStream(inflated, 0);
            var innerReader = new DicomReader(inner, options, sourceName, null, " of the inflated dataset");
            var enc = innerReader.SniffEncoding(new Encoding(true, false));
            file.ReadTransferSyntax = enc.Explicit ? declared : TransferSyntax.ImplicitVRLittleEndian;
            innerReader.ReadTopLevel(dataset, enc);
            file.IsPartial = innerReader._stopped;
            file.TrailingDataOffset = innerReader._trailingDataOffset;
            return file;
        }

        Encoding encoding;
        if (declared is null)
        {
            encoding = reader.SniffEncoding(null);
            file.TransferSyntax = encoding switch
            {
                { Explicit: false } => TransferSyntax.ImplicitVRLittleEndian,
                { BigEndian: true } => TransferSyntax.ExplicitVRBigEndian,
                _ => TransferSyntax.ExplicitVRLittleEndian,
            };
            file.ReadTransferSyntax = file.TransferSyntax;
        }
        else
        {
            encoding = reader.SniffEncoding(new Encoding(declared.IsExplicitVR, declared.IsBigEndian));
            file.ReadTransferSyntax = encoding.Explicit == declared.IsExplicitVR && encoding.BigEndian == declared.IsBigEndian
                ? declared
                : encoding.Explicit
                    ? (encoding.BigEndian ? TransferSyntax.ExplicitVRBigEndian : TransferSyntax.ExplicitVRLittleEndian)
                    : TransferSyntax.ImplicitVRLittleEndian;
        }

        try
        {
            reader.ReadTopLevel(dataset, encoding);
        }
        catch (DicomFormatException ex) when (format == DicomFileFormat.DatasetOnly && dataset.Count == 0 && ex.Offset == 0)
        {
            // No preamble, no meta and not even one element: a text, XML or CSV file beside the slices, not damaged DICOM.
            // Without this its reason was what its first bytes happened to parse as ("(694C,6563) UN declares 174420846
            // bytes"), which dump, ingest's skipped-file notes and classify/segment showed as if the file were DICOM.
            throw new DicomFormatException(ex.FilePath, ex.Offset, NotDicomReason + ex.Reason + ")", ex);
        }

        file.IsPartial = reader._stopped;
        file.TrailingDataOffset = reader._trailingDataOffset;
        return file;
    }

    /// <summary>The start of the reason for input with no Part 10 header whose first bytes are no data element.</summary>
    internal const string NotDicomReason = "not a DICOM file (no 'DICM' at byte 128, and byte 0 does not start a data element: ";

    private Stream OpenInflater(Stream stream, long datasetStart)
    {
        // The rest of the outer buffer plus the stream: re-position the stream when it can seek, else chain.
        Stream compressed;
        if (stream.CanSeek)
        {
            stream.Seek(datasetStart, SeekOrigin.Begin);
            compressed = stream;
        }
        else
        {
            compressed = new PrefixedStream(_in.Span.ToArray(), stream);
        }

        // Some writers emit a zlib header (RFC 1950) instead of raw deflate (RFC 1951): accept both.
        var first = _in.Span.Length >= 2 ? _in.Span[..2].ToArray() : [];
        if (first.Length == 2 && (first[0] & 0x0F) == 8 && ((first[0] << 8) | first[1]) % 31 == 0)
        {
            return new ZLibStream(compressed, CompressionMode.Decompress, leaveOpen: true);
        }

        return new DeflateStream(compressed, CompressionMode.Decompress, leaveOpen: true);
    }

    private TransferSyntax? ReadMeta(DicomDataset meta)
    {
        var enc = new Encoding(true, false);
        if (_in.Ensure(8) && !DicomVR.TryFromBytes(_in.PeekByte(4), _in.PeekByte(5), out _))
        {
            // Non-conformant implicit VR meta group (seen from old toolkits).
            enc = new Encoding(false, false);
        }

        long metaEnd = -1;
        string? uid = null;
        while (_in.Ensure(8) && _in.PeekUInt16(0, false) == 0x0002)
        {
            if (metaEnd >= 0 && _in.Position >= metaEnd && uid is not null && TransferSyntax.Lookup(uid).IsDeflated)
            {
                break;
            }

            var start = _in.Position;
            var end = ReadElement(meta, enc, depth: 0, parentEnd: -1, out _);
            if (end is End.ItemDelimiter or End.SequenceDelimiter)
            {
                throw Error("delimiter in the file meta information", start);
            }

            var last = meta.LastElement;
            if (last is DicomValueElement v)
            {
                if (v.Tag.Value == 0x00020000 && v.Length == 4)
                {
                    metaEnd = _in.Position + BitConverter.ToUInt32(v.RawValue.Span);
                }
                else if (v.Tag.Value == 0x00020010)
                {
                    uid = System.Text.Encoding.ASCII.GetString(v.RawValue.Span).Trim(' ', '\0');
                }
            }
        }

        return uid is { Length: > 0 } ? TransferSyntax.Lookup(uid) : null;
    }

    /// <summary>
    /// Decides how the dataset is encoded from its first element: endianness from where the group's zero byte is,
    /// explicit VR from whether bytes 4–5 are a VR. A declared encoding is kept unless the bytes contradict it.
    /// </summary>
    private Encoding SniffEncoding(Encoding? declared)
    {
        if (!_in.Ensure(8))
        {
            return declared ?? new Encoding(true, false);
        }

        var b0 = _in.PeekByte(0);
        var b1 = _in.PeekByte(1);
        var vrValid = DicomVR.TryFromBytes(_in.PeekByte(4), _in.PeekByte(5), out _);
        if (declared is { } d)
        {
            if (d.Explicit && !vrValid && !d.BigEndian)
            {
                // Declared explicit, bytes say implicit: use implicit when its length is plausible.
                var length = _in.PeekUInt32(4, false);
                return length == UndefinedLength || length <= _in.Remaining - 8 ? new Encoding(false, false) : d;
            }

            if (!d.Explicit && vrValid)
            {
                var length = _in.PeekUInt32(4, false);
                if (length != UndefinedLength && length > _in.Remaining - 8)
                {
                    return new Encoding(true, false);
                }
            }

            return d;
        }

        var bigEndian = b0 == 0 && b1 != 0;
        return vrValid ? new Encoding(true, bigEndian) : new Encoding(false, false);
    }

    private void ReadTopLevel(DicomDataset dataset, Encoding enc)
    {
        while (!_stopped && !_in.AtEnd)
        {
            var start = _in.Position;
            End end;
            try
            {
                end = ReadElement(dataset, enc, depth: 0, parentEnd: -1, out _);
            }
            catch (DicomFormatException) when (dataset.Contains(new DicomTag(PixelDataTag)))
            {
                // Bytes after the top-level Pixel Data that do not parse as an element (trailing garbage, a file that a
                // tool appended text to, a cut-off trailing padding element): the image is complete, so the rest is
                // ignored, never kept, and the file says where it began (DicomFile.TrailingDataOffset).
                _trailingDataOffset = start;
                return;
            }

            if (end is End.ItemDelimiter or End.SequenceDelimiter)
            {
                // Stray delimiters at the top level (seen as trailing padding): skip them.
                continue;
            }

            if (end == End.Stopped)
            {
                _stopped = true;
                return;
            }

            if (_in.Position <= start)
            {
                throw Error("parser made no progress", start);
            }
        }
    }

    /// <summary>Reads the elements of an item until its end (defined length) or its delimiter.</summary>
    private End ReadItemContent(DicomDataset item, Encoding enc, int depth, long itemEnd)
    {
        while (true)
        {
            if (itemEnd >= 0)
            {
                if (_in.Position == itemEnd)
                {
                    return End.Length;
                }

                if (_in.Position > itemEnd)
                {
                    throw Error("element runs past the end of its item", _in.Position);
                }
            }

            var end = ReadElement(item, enc, depth, itemEnd, out _);
            if (end is End.ItemDelimiter or End.SequenceDelimiter)
            {
                if (itemEnd >= 0 && end == End.ItemDelimiter)
                {
                    // An item delimiter inside a defined-length item: tolerated, keeps going to the length.
                    continue;
                }

                return end;
            }
        }
    }

    /// <summary>Reads one element (or one delimiter) into <paramref name="dataset"/>.</summary>
    private End ReadElement(DicomDataset dataset, Encoding enc, int depth, long parentEnd, out DicomElement? element)
    {
        element = null;
        var start = _in.Position;
        if (!_in.Ensure(8))
        {
            throw Error(_in.Buffered == 0 ? "unexpected end of data, expected an element" : "truncated element header", start);
        }

        var group = _in.PeekUInt16(0, enc.BigEndian);
        var elem = _in.PeekUInt16(2, enc.BigEndian);
        var tagValue = ((uint)group << 16) | elem;
        var tag = new DicomTag(group, elem);

        if (depth == 0 && _options.StopAtTag is { } stopAt && tagValue >= stopAt.Value && group != 0x0002)
        {
            return End.Stopped;
        }

        if (group == 0xFFFE)
        {
            var delimiterLength = _in.PeekUInt32(4, enc.BigEndian);
            _in.Advance(8);
            switch (tagValue)
            {
                case ItemDelimitationTag:
                    return End.ItemDelimiter;
                case SequenceDelimitationTag:
                    return End.SequenceDelimiter;
                default:
                    throw Error($"unexpected {tag} (length {delimiterLength}) outside a sequence", start);
            }
        }

        DicomVR vr;
        long length;
        var explicitVR = enc.Explicit;
        if (explicitVR)
        {
            var c0 = _in.PeekByte(4);
            var c1 = _in.PeekByte(5);
            if (DicomVR.TryFromBytes(c0, c1, out var known))
            {
                vr = known!;
                if (vr.HasLongExplicitLength)
                {
                    if (!_in.Ensure(12))
                    {
                        throw Error("truncated element header", start);
                    }

                    length = _in.PeekUInt32(8, enc.BigEndian);
                    _in.Advance(12);
                }
                else
                {
                    length = _in.PeekUInt16(6, enc.BigEndian);
                    _in.Advance(8);
                }
            }
            else if (IsUpper(c0) && IsUpper(c1))
            {
                // A VR this build does not know: the standard promises new VRs use the 32-bit length form.
                if (!_in.Ensure(12))
                {
                    throw Error("truncated element header", start);
                }

                vr = DicomVR.UN;
                length = _in.PeekUInt32(8, enc.BigEndian);
                _in.Advance(12);
            }
            else
            {
                // Not a VR. Either an implicit VR element inside an explicit dataset (a known encoder bug; taken when
                // its 32-bit length fits), or garbage VR bytes followed by a 16-bit length (DCMTK's reading).
                var implicitLength = _in.PeekUInt32(4, false);
                var bound = parentEnd >= 0 ? parentEnd - start - 8 : _in.Remaining - 8;
                if (!enc.BigEndian && (implicitLength == UndefinedLength || implicitLength <= bound))
                {
                    explicitVR = false;
                    vr = ImplicitVR(tag, dataset);
                    length = implicitLength;
                }
                else
                {
                    vr = ImplicitVR(tag, dataset);
                    length = _in.PeekUInt16(6, enc.BigEndian);
                    if (length > bound)
                    {
                        throw Error($"invalid VR bytes 0x{c0:X2}{c1:X2} for {tag}", start + 4);
                    }
                }

                _in.Advance(8);
            }
        }
        else
        {
            vr = ImplicitVR(tag, dataset);
            length = _in.PeekUInt32(4, false);
            _in.Advance(8);
        }

        var valueStart = _in.Position;
        if (length == UndefinedLength)
        {
            if (tagValue == PixelDataTag || (vr != DicomVR.SQ && vr != DicomVR.UN && explicitVR && (vr == DicomVR.OB || vr == DicomVR.OW)))
            {
                element = ReadFragments(tag, vr == DicomVR.UN || !explicitVR ? DicomVR.OB : vr, enc, start);
            }
            else if (vr == DicomVR.SQ || vr == DicomVR.UN || !explicitVR)
            {
                // UN of undefined length: an implicit VR little endian sequence (PS3.5 6.2.2).
                var asUN = explicitVR && vr == DicomVR.UN;
                var itemEnc = asUN ? new Encoding(false, false) : enc;
                element = ReadSequence(tag, asUN ? DicomVR.UN : DicomVR.SQ, itemEnc, depth, -1, start);
            }
            else
            {
                throw Error($"undefined length is not allowed for {tag} with VR {vr}", start);
            }

            dataset.AppendFromReader(element);
            return _options.StopAfterPixelData && depth == 0 && tagValue == PixelDataTag ? End.Stopped : End.Length;
        }

        var limit = parentEnd >= 0 ? parentEnd : (_in.CanSeek ? _in.Position + _in.Remaining : long.MaxValue);
        if (length > limit - valueStart)
        {
            throw Error(
                $"{tag} {vr} declares {length} bytes but only {Math.Max(0, limit - valueStart)} remain{(parentEnd >= 0 ? " in its item" : string.Empty)}",
                start);
        }

        if (vr == DicomVR.SQ && !explicitVR && length >= 4 && !StartsWithItem(enc))
        {
            // The dictionary says SQ but the bytes are not items (e.g. a retired tag reused with another VR).
            vr = DicomVR.UN;
        }

        if (vr == DicomVR.SQ)
        {
            element = ReadSequence(tag, DicomVR.SQ, enc, depth, valueStart + length, start);
            ((DicomSequence)element).UndefinedLength = false;
        }
        else
        {
            element = ReadValue(tag, vr, length, enc, start);
        }

        dataset.AppendFromReader(element);
        return _options.StopAfterPixelData && depth == 0 && tagValue == PixelDataTag ? End.Stopped : End.Length;
    }

    private DicomValueElement ReadValue(DicomTag tag, DicomVR vr, long length, Encoding enc, long start)
    {
        var swap = enc.BigEndian && vr.UnitSize > 1 ? vr.UnitSize : 0;
        if (_bulkPath is not null && (length > _options.BulkDataThreshold || (tag.Value == PixelDataTag && length > 0)))
        {
            var offset = _in.Position;
            if (!_in.Skip(length))
            {
                throw Error($"{tag} value of {length} bytes runs past the end of the data", start);
            }

            return new DicomValueElement(tag, vr, new BulkDataReference(_bulkPath, offset, length, swap));
        }

        ReadOnlyMemory<byte> value;
        if (length == 0)
        {
            value = ReadOnlyMemory<byte>.Empty;
        }
        else if (length <= SmallValue)
        {
            var n = (int)length;
            if (_arenaUsed + n > _arena.Length)
            {
                // Small values share arena chunks: 4 KiB first (a typical header), then 16 KiB.
                _arena = new byte[_arena.Length == 0 ? ArenaSize / 4 : ArenaSize];
                _arenaUsed = 0;
            }

            var slice = _arena.AsSpan(_arenaUsed, n);
            if (!_in.ReadExactly(slice))
            {
                throw Error($"{tag} value of {length} bytes runs past the end of the data", start);
            }

            value = new ReadOnlyMemory<byte>(_arena, _arenaUsed, n);
            _arenaUsed += n;
        }
        else
        {
            if (length > Array.MaxLength)
            {
                throw Error($"{tag} value of {length} bytes is too large to load into memory", start);
            }

            value = _in.ReadArray(length) ?? throw Error($"{tag} value of {length} bytes runs past the end of the data", start);
        }

        if (swap > 1)
        {
            ByteSwap.InPlace(System.Runtime.InteropServices.MemoryMarshal.AsMemory(value).Span, swap);
        }

        return new DicomValueElement(tag, vr, value);
    }

    private DicomSequence ReadSequence(DicomTag tag, DicomVR vr, Encoding enc, int depth, long sequenceEnd, long start)
    {
        if (depth + 1 > _options.MaxSequenceDepth)
        {
            throw Error($"sequences nested deeper than {_options.MaxSequenceDepth} levels at {tag}", start);
        }

        var items = new List<DicomDataset>();
        var sequence = new DicomSequence(tag, vr, items) { UndefinedLength = sequenceEnd < 0 };
        while (true)
        {
            var itemStart = _in.Position;
            if (sequenceEnd >= 0)
            {
                if (itemStart == sequenceEnd)
                {
                    break;
                }

                if (itemStart > sequenceEnd)
                {
                    throw Error($"items of {tag} run past the sequence length", itemStart);
                }
            }

            if (!_in.Ensure(8))
            {
                throw Error($"data ends inside sequence {tag}", itemStart);
            }

            var itemTag = ((uint)_in.PeekUInt16(0, enc.BigEndian) << 16) | _in.PeekUInt16(2, enc.BigEndian);
            var itemLength = _in.PeekUInt32(4, enc.BigEndian);
            _in.Advance(8);
            if (itemTag == SequenceDelimitationTag)
            {
                if (sequenceEnd < 0)
                {
                    break;
                }

                throw Error($"sequence delimitation item inside defined-length sequence {tag}", itemStart);
            }

            if (itemTag == ItemDelimitationTag)
            {
                // A stray item delimiter between items: tolerated.
                continue;
            }

            if (itemTag != ItemTag)
            {
                throw Error($"expected an item in sequence {tag}, found {new DicomTag(itemTag)}", itemStart);
            }

            var item = new DicomDataset { UndefinedLength = itemLength == UndefinedLength };
            sequence.Add(item);
            long itemEnd = -1;
            if (itemLength != UndefinedLength)
            {
                itemEnd = _in.Position + itemLength;
                var bound = sequenceEnd >= 0 ? sequenceEnd : (_in.CanSeek ? _in.Position + _in.Remaining : long.MaxValue);
                if (itemEnd > bound)
                {
                    // A lying item length: read the item up to the bound (as DCMTK and pydicom do); elements must still fit.
                    itemEnd = bound;
                }
            }

            var end = ReadItemContent(item, SniffItemEncoding(enc, itemEnd), depth + 1, itemEnd);
            if (end == End.SequenceDelimiter)
            {
                // Missing item delimiter: the sequence delimiter ends both (tolerated for undefined-length sequences).
                if (sequenceEnd >= 0)
                {
                    throw Error($"sequence delimitation item inside defined-length sequence {tag}", _in.Position - 8);
                }

                break;
            }
        }

        return sequence;
    }

    private DicomFragmentSequence ReadFragments(DicomTag tag, DicomVR vr, Encoding enc, long start)
    {
        var fragments = new List<DicomFragment>();
        ReadOnlyMemory<byte> offsetTable = default;
        var first = true;
        while (true)
        {
            var itemStart = _in.Position;
            if (!_in.Ensure(8))
            {
                if (_in.Buffered == 0 && !first)
                {
                    // The file ends after a whole fragment: a missing sequence delimiter, tolerated.
                    break;
                }

                throw Error($"data ends inside encapsulated {tag}", itemStart);
            }

            var itemTag = ((uint)_in.PeekUInt16(0, enc.BigEndian) << 16) | _in.PeekUInt16(2, enc.BigEndian);
            var itemLength = _in.PeekUInt32(4, enc.BigEndian);
            _in.Advance(8);
            if (itemTag == SequenceDelimitationTag)
            {
                break;
            }

            if (itemTag != ItemTag)
            {
                throw Error($"expected a fragment item in encapsulated {tag}, found {new DicomTag(itemTag)}", itemStart);
            }

            if (itemLength == UndefinedLength)
            {
                throw Error($"fragment of encapsulated {tag} has undefined length", itemStart);
            }

            if (itemLength > _in.Remaining)
            {
                throw Error($"fragment of {tag} declares {itemLength} bytes but only {_in.Remaining} remain", itemStart);
            }

            if (first)
            {
                first = false;
                offsetTable = itemLength == 0
                    ? ReadOnlyMemory<byte>.Empty
                    : _in.ReadArray(itemLength) ?? throw Error($"basic offset table of {tag} runs past the end of the data", itemStart);
                continue;
            }

            if (_bulkPath is not null && itemLength > 0)
            {
                var offset = _in.Position;
                if (!_in.Skip(itemLength))
                {
                    throw Error($"fragment of {tag} runs past the end of the data", itemStart);
                }

                fragments.Add(new DicomFragment(new BulkDataReference(_bulkPath, offset, itemLength)));
            }
            else
            {
                var bytes = itemLength == 0
                    ? []
                    : _in.ReadArray(itemLength) ?? throw Error($"fragment of {tag} runs past the end of the data", itemStart);
                fragments.Add(new DicomFragment(bytes));
            }
        }

        return new DicomFragmentSequence(tag, vr, offsetTable, fragments);
    }

    /// <summary>The VR of an implicit VR element: dictionary, with US/SS resolved by Pixel Representation; UN if unknown.</summary>
    private static DicomVR ImplicitVR(DicomTag tag, DicomDataset dataset)
    {
        if (tag.Element == 0)
        {
            return DicomVR.UL;
        }

        if (tag.IsPrivate)
        {
            return tag.IsPrivateCreator ? DicomVR.LO : IsKnownPrivateSequence(tag, dataset) ? DicomVR.SQ : DicomVR.UN;
        }

        var entry = DicomDictionary.Lookup(tag);
        if (entry is null)
        {
            return DicomVR.UN;
        }

        var vrs = entry.ValueRepresentations;
        if (vrs.Count > 1 && vrs[0] == DicomVR.US && vrs[1] == DicomVR.SS)
        {
            return IsSignedPixelData(dataset) ? DicomVR.SS : DicomVR.US;
        }

        return vrs[0];
    }

    /// <summary>A private element that DCMTK's private dictionary lists as SQ for its creator.</summary>
    private static bool IsKnownPrivateSequence(DicomTag tag, DicomDataset dataset)
    {
        if (tag.Element < 0x1000
            || !dataset.TryGet(new DicomTag(tag.Group, (ushort)(tag.Element >> 8)), out var creatorElement)
            || creatorElement is not DicomValueElement { IsBulkData: false } creator)
        {
            return false;
        }

        var text = System.Text.Encoding.Latin1.GetString(creator.InMemoryValue.Span).Trim(' ', '\0');
        return DicomPrivateSequences.IsSequence(tag.Group, text, (byte)tag.Element);
    }

    private static bool IsSignedPixelData(DicomDataset dataset)
    {
        for (var ds = dataset; ds is not null; ds = ds.Parent)
        {
            if (ds.TryGet(new DicomTag(PixelRepresentationTag), out var e) && e is DicomValueElement { Length: >= 2 } v)
            {
                return v.RawValue.Span[0] == 1;
            }
        }

        return false;
    }

    /// <summary>
    /// Some encoders write the items of a private sequence in the other VR encoding than the dataset (implicit items in
    /// explicit files and vice versa). Decides from the item's first element, little endian only.
    /// </summary>
    private Encoding SniffItemEncoding(Encoding enc, long itemEnd)
    {
        if (enc.BigEndian || !_in.Ensure(8) || _in.PeekUInt16(0, false) == 0xFFFE)
        {
            return enc;
        }

        var bound = itemEnd >= 0 ? itemEnd - _in.Position - 8 : _in.Remaining - 8;
        var vrValid = DicomVR.TryFromBytes(_in.PeekByte(4), _in.PeekByte(5), out _);
        var implicitLength = _in.PeekUInt32(4, false);
        var implicitFits = implicitLength == UndefinedLength || implicitLength <= bound;
        if (enc.Explicit && !vrValid && !(IsUpper(_in.PeekByte(4)) && IsUpper(_in.PeekByte(5))) && implicitFits)
        {
            return new Encoding(false, false);
        }

        if (!enc.Explicit && vrValid && !implicitFits)
        {
            return new Encoding(true, false);
        }

        return enc;
    }

    private bool StartsWithItem(Encoding enc) =>
        _in.Ensure(8) && _in.PeekUInt16(0, enc.BigEndian) == 0xFFFE && _in.PeekUInt16(2, enc.BigEndian) == 0xE000;

    private static bool IsUpper(byte b) => b >= (byte)'A' && b <= (byte)'Z';

    private DicomFormatException Error(string reason, long offset) => new(_source, offset, reason + _offsetNote);
}
