using System.Buffers.Binary;

namespace CovidFunctions.Dicom.Imaging;

/// <summary>
/// Frame access to the Pixel Data of a file. Native frames are cut by size (bit-packed frames of Bits Allocated 1
/// included); encapsulated frames are found through the Extended Offset Table (7FE0,0001)/(7FE0,0002), else the Basic
/// Offset Table, else one fragment per frame, else all fragments for a single frame, else frame-start markers.
/// Decoding of encapsulated frames is delegated to <see cref="PixelCodecs"/>. Bulk pixel data is read from the file
/// one frame at a time.
/// </summary>
public sealed class DicomPixelData
{
    private static readonly DicomTag PixelDataTag = new(0x7FE0, 0x0010);
    private static readonly DicomTag FloatPixelDataTag = new(0x7FE0, 0x0008);
    private static readonly DicomTag DoubleFloatPixelDataTag = new(0x7FE0, 0x0009);
    private static readonly DicomTag ExtendedOffsetTableTag = new(0x7FE0, 0x0001);
    private static readonly DicomTag ExtendedOffsetTableLengthsTag = new(0x7FE0, 0x0002);

    private readonly DicomElement _element;
    private FrameSpan[]? _frames;

    private DicomPixelData(DicomFile file, PixelFormat format, DicomElement element)
    {
        File = file;
        Format = format;
        _element = element;
    }

    /// <summary>Where an encapsulated frame's bytes are: fragments [First, First + Count), at most Length bytes (-1: all).</summary>
    private readonly record struct FrameSpan(int First, int Count, long Length);

    /// <summary>The file.</summary>
    public DicomFile File { get; }

    /// <summary>The pixel module.</summary>
    public PixelFormat Format { get; }

    /// <summary>The transfer syntax of the pixel data.</summary>
    public TransferSyntax TransferSyntax => File.TransferSyntax;

    /// <summary>True when the pixel data is encapsulated (fragments).</summary>
    public bool IsEncapsulated => _element is DicomFragmentSequence;

    /// <summary>True for Float / Double Float Pixel Data (7FE0,0008/0009).</summary>
    public bool IsFloat => _element.Tag != PixelDataTag;

    /// <summary>The number of frames (Number of Frames, default 1).</summary>
    public int FrameCount => Format.NumberOfFrames;

    /// <summary>Creates frame access for a file with Pixel Data (or Float / Double Float Pixel Data).</summary>
    /// <exception cref="DicomException">No pixel data, or the pixel module is incomplete.</exception>
    public static DicomPixelData Create(DicomFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        var ds = file.Dataset;
        if (!ds.TryGet(PixelDataTag, out var element) && !ds.TryGet(FloatPixelDataTag, out element) && !ds.TryGet(DoubleFloatPixelDataTag, out element))
        {
            throw new DicomException($"{file.FilePath ?? "<dataset>"}: no Pixel Data");
        }

        if (element is DicomSequence)
        {
            throw new DicomFormatException(file.FilePath, 0, "Pixel Data is a sequence");
        }

        return new DicomPixelData(file, PixelFormat.FromDataset(ds, file.FilePath), element);
    }

    /// <summary>
    /// The encoded bytes of one frame: for native data the frame's bytes (little endian); for encapsulated data the
    /// frame's fragments concatenated.
    /// </summary>
    /// <exception cref="DicomException">The frame is missing or the fragments cannot be assigned to frames.</exception>
    public ReadOnlyMemory<byte> GetEncodedFrame(int frame)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(frame);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(frame, FrameCount);
        return _element switch
        {
            DicomFragmentSequence fragments => GetEncapsulatedFrame(fragments, frame),
            DicomValueElement value => GetNativeFrame(value, frame),
            _ => throw new DicomException("Pixel Data has an unexpected form"),
        };
    }

    /// <summary>Decodes one frame: native data is copied; encapsulated data goes to the codec for the transfer syntax.</summary>
    /// <exception cref="UnsupportedTransferSyntaxException">No codec for the transfer syntax.</exception>
    public DecodedFrame DecodeFrame(int frame)
    {
        var encoded = GetEncodedFrame(frame);
        if (!IsEncapsulated)
        {
            return new DecodedFrame(encoded.ToArray(), Format.PhotometricInterpretation, Format.PlanarConfiguration);
        }

        var uid = TransferSyntax.Uid;
        var codec = PixelCodecs.Find(uid);
        if (codec is null)
        {
            if (uid == TransferSyntax.EncapsulatedUncompressedExplicitVRLittleEndian.Uid)
            {
                var bytes = encoded.Length > Format.FrameLengthInBytes ? encoded[..(int)Format.FrameLengthInBytes] : encoded;
                return new DecodedFrame(bytes.ToArray(), Format.PhotometricInterpretation, Format.PlanarConfiguration);
            }

            throw new UnsupportedTransferSyntaxException(uid, $"No pixel codec is registered for {TransferSyntax}");
        }

        return codec.Decode(encoded.Span, Format);
    }

    /// <summary>
    /// The stored values of one frame as Int32: each sample shifted down to its stored bits (High Bit, Bits Stored),
    /// masked, and sign-extended when Pixel Representation is 1. Samples are in the decoded frame's order.
    /// </summary>
    public int[] GetFrameSamples(int frame)
    {
        if (IsFloat)
        {
            throw new DicomException("Float pixel data has no integer samples");
        }

        var decoded = DecodeFrame(frame);
        var data = decoded.Data;
        var f = Format;
        var bitsStored = f.BitsStored;
        var shift = f.HighBit + 1 - bitsStored;
        var mask = bitsStored >= 32 ? uint.MaxValue : (1u << bitsStored) - 1;
        var signBit = bitsStored >= 32 ? 0x80000000u : 1u << (bitsStored - 1);
        var signed = f.IsSigned;

        switch (f.BitsAllocated)
        {
            case 1:
            {
                var count = (int)Math.Min((long)data.Length * 8, (long)f.Rows * f.Columns * f.SamplesPerPixel);
                var result = new int[count];
                for (var i = 0; i < count; i++)
                {
                    result[i] = (data[i >> 3] >> (i & 7)) & 1;
                }

                return result;
            }

            case 8:
            {
                var result = new int[data.Length];
                for (var i = 0; i < result.Length; i++)
                {
                    result[i] = Extend((uint)data[i]);
                }

                return result;
            }

            case 16:
            {
                var result = new int[data.Length / 2];
                if (shift == 0 && bitsStored == 16)
                {
                    for (var i = 0; i < result.Length; i++)
                    {
                        var raw = BinaryPrimitives.ReadUInt16LittleEndian(data.AsSpan(i * 2));
                        result[i] = signed ? (short)raw : raw;
                    }

                    return result;
                }

                for (var i = 0; i < result.Length; i++)
                {
                    result[i] = Extend(BinaryPrimitives.ReadUInt16LittleEndian(data.AsSpan(i * 2)));
                }

                return result;
            }

            case 32:
            {
                var result = new int[data.Length / 4];
                for (var i = 0; i < result.Length; i++)
                {
                    result[i] = Extend(BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(i * 4)));
                }

                return result;
            }

            default:
                throw new DicomException($"Bits Allocated {f.BitsAllocated} has no Int32 samples");
        }

        int Extend(uint raw)
        {
            var v = (raw >> shift) & mask;
            if (signed && (v & signBit) != 0)
            {
                v |= ~mask;
            }

            return unchecked((int)v);
        }
    }

    /// <summary>The frame's stored values as unsigned 16-bit (Bits Allocated 16, unsigned), masked to Bits Stored.</summary>
    public ushort[] GetFrameUInt16(int frame)
    {
        Require16(signed: false);
        var samples = GetFrameSamples(frame);
        var result = new ushort[samples.Length];
        for (var i = 0; i < samples.Length; i++)
        {
            result[i] = (ushort)samples[i];
        }

        return result;
    }

    /// <summary>The frame's stored values as signed 16-bit (Bits Allocated 16, signed), sign-extended from Bits Stored.</summary>
    public short[] GetFrameInt16(int frame)
    {
        Require16(signed: true);
        var samples = GetFrameSamples(frame);
        var result = new short[samples.Length];
        for (var i = 0; i < samples.Length; i++)
        {
            result[i] = (short)samples[i];
        }

        return result;
    }

    private void Require16(bool signed)
    {
        if (Format.BitsAllocated != 16 || Format.IsSigned != signed)
        {
            throw new DicomException(
                $"Pixel data is {Format.BitsAllocated}-bit {(Format.IsSigned ? "signed" : "unsigned")}, not 16-bit {(signed ? "signed" : "unsigned")}");
        }
    }

    private ReadOnlyMemory<byte> GetNativeFrame(DicomValueElement value, int frame)
    {
        var bits = Format.FrameLengthInBits;
        if (_element.Tag == FloatPixelDataTag)
        {
            bits = (long)Format.Rows * Format.Columns * Format.SamplesPerPixel * 32;
        }
        else if (_element.Tag == DoubleFloatPixelDataTag)
        {
            bits = (long)Format.Rows * Format.Columns * Format.SamplesPerPixel * 64;
        }

        var startBit = bits * frame;
        var endBit = startBit + bits;
        if ((endBit + 7) / 8 > value.Length)
        {
            throw Malformed(
                $"Pixel Data holds {value.Length} bytes; frame {frame} needs bytes up to {(endBit + 7) / 8}");
        }

        if (bits % 8 == 0)
        {
            var offset = startBit / 8;
            var length = bits / 8;
            if (length > Array.MaxLength)
            {
                throw Malformed($"Frame of {length} bytes is too large");
            }

            if (value.BulkData is { } bulk)
            {
                var buffer = GC.AllocateUninitializedArray<byte>((int)length);
                bulk.ReadRange(offset, buffer);
                return buffer;
            }

            return value.InMemoryValue.Slice((int)offset, (int)length);
        }

        // Bit-packed frames (Bits Allocated 1) are not byte aligned: extract the bits.
        var firstByte = startBit / 8;
        var byteCount = (int)(((endBit + 7) / 8) - firstByte);
        var source = new byte[byteCount];
        if (value.BulkData is { } b)
        {
            b.ReadRange(firstByte, source);
        }
        else
        {
            value.InMemoryValue.Span.Slice((int)firstByte, byteCount).CopyTo(source);
        }

        var result = new byte[(bits + 7) / 8];
        var bitOffset = (int)(startBit % 8);
        for (long i = 0; i < bits; i++)
        {
            var s = bitOffset + i;
            if (((source[s >> 3] >> (int)(s & 7)) & 1) != 0)
            {
                result[i >> 3] |= (byte)(1 << (int)(i & 7));
            }
        }

        return result;
    }

    private ReadOnlyMemory<byte> GetEncapsulatedFrame(DicomFragmentSequence sequence, int frame)
    {
        _frames ??= MapFrames(sequence);
        if (frame >= _frames.Length)
        {
            throw Malformed($"encapsulated Pixel Data has {_frames.Length} frame(s); frame {frame} requested");
        }

        var span = _frames[frame];
        var fragments = sequence.Fragments;
        long total = 0;
        for (var k = span.First; k < span.First + span.Count; k++)
        {
            total += fragments[k].Length;
        }

        if (span.Length >= 0 && span.Length < total)
        {
            total = span.Length;
        }

        if (span.Count == 1 && !fragments[span.First].IsBulkData)
        {
            return fragments[span.First].RawValue[..(int)total];
        }

        if (total > Array.MaxLength)
        {
            throw Malformed($"Frame of {total} bytes is too large");
        }

        var result = GC.AllocateUninitializedArray<byte>((int)total);
        var at = 0;
        for (var k = span.First; k < span.First + span.Count && at < total; k++)
        {
            var fragment = fragments[k];
            var take = (int)Math.Min(fragment.Length, total - at);
            if (fragment.BulkData is { } bulk)
            {
                bulk.ReadRange(0, result.AsSpan(at, take));
            }
            else
            {
                fragment.RawValue.Span[..take].CopyTo(result.AsSpan(at));
            }

            at += take;
        }

        return result;
    }

    private FrameSpan[] MapFrames(DicomFragmentSequence sequence)
    {
        var fragments = sequence.Fragments;
        var frames = FrameCount;
        var n = fragments.Count;
        if (n == 0)
        {
            throw Malformed($"encapsulated Pixel Data has no fragments");
        }

        // Offsets of each fragment's item tag, relative to the first fragment item (PS3.5 A.4).
        var itemOffsets = new long[n + 1];
        for (var k = 0; k < n; k++)
        {
            itemOffsets[k + 1] = itemOffsets[k] + 8 + fragments[k].Length + (fragments[k].Length & 1);
        }

        var ds = File.Dataset;
        if (ds.TryGet(ExtendedOffsetTableTag, out var eotElement) && eotElement is DicomValueElement eot)
        {
            var offsets = eot.RawValue.Span;
            var lengths = ds.TryGet(ExtendedOffsetTableLengthsTag, out var l) && l is DicomValueElement le ? le.RawValue.Span : default;
            var count = offsets.Length / 8;
            if (count >= frames)
            {
                var result = new FrameSpan[frames];
                for (var i = 0; i < frames; i++)
                {
                    var offset = BinaryPrimitives.ReadInt64LittleEndian(offsets[(i * 8)..]);
                    var first = FragmentAt(itemOffsets, offset);
                    var end = i + 1 < count ? FragmentAt(itemOffsets, BinaryPrimitives.ReadInt64LittleEndian(offsets[((i + 1) * 8)..])) : n;
                    var length = lengths.Length >= (i + 1) * 8 ? BinaryPrimitives.ReadInt64LittleEndian(lengths[(i * 8)..]) : -1;
                    if (first < 0 || end < first)
                    {
                        throw Malformed($"Extended Offset Table entry {i} ({offset}) is not at a fragment");
                    }

                    result[i] = new FrameSpan(first, Math.Max(1, end - first), length);
                }

                return result;
            }
        }

        var bot = sequence.BasicOffsetTable.Span;
        if (bot.Length >= 4 && bot.Length / 4 >= frames && frames > 0)
        {
            var count = bot.Length / 4;
            var result = new FrameSpan[frames];
            var valid = true;
            for (var i = 0; i < frames && valid; i++)
            {
                var first = FragmentAt(itemOffsets, BinaryPrimitives.ReadUInt32LittleEndian(bot[(i * 4)..]));
                var end = i + 1 < count ? FragmentAt(itemOffsets, BinaryPrimitives.ReadUInt32LittleEndian(bot[((i + 1) * 4)..])) : n;
                valid = first >= 0 && end > first;
                result[i] = new FrameSpan(first, end - first, -1);
            }

            if (valid)
            {
                return result;
            }
        }

        if (frames == n)
        {
            var result = new FrameSpan[n];
            for (var i = 0; i < n; i++)
            {
                result[i] = new FrameSpan(i, 1, -1);
            }

            return result;
        }

        if (frames == 1)
        {
            return [new FrameSpan(0, n, -1)];
        }

        // No usable table and more fragments than frames: frames start at fragments that begin with a codestream marker.
        var starts = new List<int>();
        Span<byte> head = stackalloc byte[8];
        for (var k = 0; k < n; k++)
        {
            var fragment = fragments[k];
            var h = head[..(int)Math.Min(8, fragment.Length)];
            if (fragment.BulkData is { } bulk)
            {
                bulk.ReadRange(0, h);
            }
            else
            {
                fragment.RawValue.Span[..h.Length].CopyTo(h);
            }

            if (IsFrameStart(h))
            {
                starts.Add(k);
            }
        }

        if (starts.Count == frames && starts[0] == 0)
        {
            var result = new FrameSpan[frames];
            for (var i = 0; i < frames; i++)
            {
                var end = i + 1 < frames ? starts[i + 1] : n;
                result[i] = new FrameSpan(starts[i], end - starts[i], -1);
            }

            return result;
        }

        throw Malformed(
            $"cannot assign {n} fragments to {frames} frames (no offset table, no frame markers)");
    }

    private DicomFormatException Malformed(string reason) => new(File.FilePath, 0, reason);

    private static bool IsFrameStart(ReadOnlySpan<byte> head) =>
        (head.Length >= 2 && head[0] == 0xFF && head[1] == 0xD8)
        || (head.Length >= 4 && head[0] == 0xFF && head[1] == 0x4F && head[2] == 0xFF && head[3] == 0x51)
        || (head.Length >= 8 && head[..8].SequenceEqual((ReadOnlySpan<byte>)[0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20]));

    private static int FragmentAt(long[] itemOffsets, long offset)
    {
        var i = Array.BinarySearch(itemOffsets, 0, itemOffsets.Length - 1, offset);
        return i >= 0 ? i : -1;
    }
}
