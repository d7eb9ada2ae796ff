namespace CovidFunctions.Dicom;

/// <summary>A data element: a tag, a VR and a value (bytes, a sequence of items or encapsulated fragments).</summary>
public abstract class DicomElement
{
    private protected DicomElement(DicomTag tag, DicomVR vr)
    {
        ArgumentNullException.ThrowIfNull(vr);
        Tag = tag;
        VR = vr;
    }

    /// <summary>The tag.</summary>
    public DicomTag Tag { get; }

    /// <summary>The VR (as read in explicit VR files; from the dictionary for implicit VR; UN when unknown).</summary>
    public DicomVR VR { get; }

    /// <summary>The tag, VR and a short description of the value.</summary>
    public override string ToString() => $"{Tag} {VR.Code}";
}

/// <summary>
/// A data element with a byte value. <see cref="RawValue"/> is always little endian (big-endian input is swapped per
/// VR word size on read; the writer swaps back) and holds the bytes as read, including any padding. A large value may
/// instead be a <see cref="BulkDataReference"/> into the source file, loaded on demand.
/// </summary>
public sealed class DicomValueElement : DicomElement
{
    private readonly ReadOnlyMemory<byte> _value;

    /// <summary>An element with an in-memory little-endian value.</summary>
    public DicomValueElement(DicomTag tag, DicomVR vr, ReadOnlyMemory<byte> value)
        : base(tag, vr)
    {
        if (vr == DicomVR.SQ)
        {
            throw new ArgumentException($"{tag}: an SQ element is a DicomSequence, not a value element", nameof(vr));
        }

        _value = value;
    }

    /// <summary>An element whose value stays in the source file until it is asked for.</summary>
    public DicomValueElement(DicomTag tag, DicomVR vr, BulkDataReference bulkData)
        : base(tag, vr)
    {
        ArgumentNullException.ThrowIfNull(bulkData);
        if (vr == DicomVR.SQ)
        {
            throw new ArgumentException($"{tag}: an SQ element is a DicomSequence, not a value element", nameof(vr));
        }

        BulkData = bulkData;
    }

    /// <summary>
    /// The value bytes, little endian. For bulk data this reads the file each time it is called (nothing is cached, so
    /// memory stays bounded); prefer <see cref="BulkData"/> or ranged reads for large values.
    /// </summary>
    public ReadOnlyMemory<byte> RawValue => BulkData is null ? _value : BulkData.Load();

    /// <summary>True when the value is a reference into the source file rather than bytes in memory.</summary>
    public bool IsBulkData => BulkData is not null;

    /// <summary>The reference into the source file, or null for an in-memory value.</summary>
    public BulkDataReference? BulkData { get; }

    /// <summary>The value length in bytes (without loading bulk data).</summary>
    public long Length => BulkData?.Length ?? _value.Length;

    /// <summary>The in-memory value without loading bulk data (empty for bulk data).</summary>
    internal ReadOnlyMemory<byte> InMemoryValue => _value;

    public override string ToString() => $"{Tag} {VR.Code} length {Length}{(IsBulkData ? " (bulk)" : string.Empty)}";
}

/// <summary>A sequence (SQ, or UN of undefined length read as an implicit VR little endian sequence per PS3.5 6.2.2).</summary>
public sealed class DicomSequence : DicomElement
{
    private readonly List<DicomDataset> _items;
    private DicomDataset? _owner;
    private bool _undefinedLength = true;

    /// <summary>A sequence with the given items (SQ).</summary>
    public DicomSequence(DicomTag tag, params IEnumerable<DicomDataset> items)
        : this(tag, DicomVR.SQ, items)
    {
    }

    /// <summary>A sequence with an explicit VR: SQ, or UN for a sequence read from a UN element of undefined length.</summary>
    public DicomSequence(DicomTag tag, DicomVR vr, IEnumerable<DicomDataset> items)
        : base(tag, vr)
    {
        if (vr != DicomVR.SQ && vr != DicomVR.UN)
        {
            throw new ArgumentException($"{tag}: a sequence has VR SQ or UN, not {vr}", nameof(vr));
        }

        ArgumentNullException.ThrowIfNull(items);
        _items = [.. items];
    }

    /// <summary>The items, in order.</summary>
    public IReadOnlyList<DicomDataset> Items => _items;

    /// <summary>True when the sequence was (or is to be) encoded with undefined length and a delimitation item.</summary>
    public bool UndefinedLength
    {
        get => _undefinedLength;
        set
        {
            _undefinedLength = value;
            _owner?.MarkModified();
        }
    }

    /// <summary>The dataset this sequence is in, once added to one.</summary>
    internal DicomDataset? Owner
    {
        get => _owner;
        set
        {
            _owner = value;
            foreach (var item in _items)
            {
                item.Parent = value;
            }
        }
    }

    /// <summary>Appends an item; its <see cref="DicomDataset.Parent"/> becomes the dataset holding this sequence.</summary>
    public void Add(DicomDataset item)
    {
        ArgumentNullException.ThrowIfNull(item);
        item.Parent = _owner;
        _items.Add(item);
        _owner?.MarkModified();
    }

    /// <summary>Inserts an item.</summary>
    public void Insert(int index, DicomDataset item)
    {
        ArgumentNullException.ThrowIfNull(item);
        item.Parent = _owner;
        _items.Insert(index, item);
        _owner?.MarkModified();
    }

    /// <summary>Removes the item at an index.</summary>
    public void RemoveAt(int index)
    {
        _items.RemoveAt(index);
        _owner?.MarkModified();
    }

    /// <summary>Removes every item.</summary>
    public void Clear()
    {
        _items.Clear();
        _owner?.MarkModified();
    }

    public override string ToString() => $"{Tag} {VR.Code} {_items.Count} item(s)";
}

/// <summary>Encapsulated pixel data: the basic offset table (item 0) and the fragments (PS3.5 A.4).</summary>
public sealed class DicomFragmentSequence : DicomElement
{
    private readonly List<DicomFragment> _fragments;

    /// <summary>Creates encapsulated pixel data.</summary>
    public DicomFragmentSequence(DicomTag tag, DicomVR vr, ReadOnlyMemory<byte> basicOffsetTable, IEnumerable<DicomFragment> fragments)
        : base(tag, vr)
    {
        ArgumentNullException.ThrowIfNull(fragments);
        BasicOffsetTable = basicOffsetTable;
        _fragments = [.. fragments];
    }

    /// <summary>The raw bytes of the first item (empty when there is no basic offset table), little endian.</summary>
    public ReadOnlyMemory<byte> BasicOffsetTable { get; set; }

    /// <summary>The fragments after the offset table, in order.</summary>
    public IReadOnlyList<DicomFragment> Fragments => _fragments;

    /// <summary>Appends a fragment.</summary>
    public void Add(DicomFragment fragment)
    {
        ArgumentNullException.ThrowIfNull(fragment);
        _fragments.Add(fragment);
    }

    /// <summary>Removes every fragment.</summary>
    public void Clear() => _fragments.Clear();

    public override string ToString() => $"{Tag} {VR.Code} encapsulated, {_fragments.Count} fragment(s)";
}

/// <summary>One fragment of encapsulated pixel data: bytes in memory or a reference into the file.</summary>
public sealed class DicomFragment
{
    private readonly ReadOnlyMemory<byte> _value;

    /// <summary>A fragment held in memory.</summary>
    public DicomFragment(ReadOnlyMemory<byte> value) => _value = value;

    /// <summary>A fragment left in the file.</summary>
    public DicomFragment(BulkDataReference bulkData)
    {
        ArgumentNullException.ThrowIfNull(bulkData);
        BulkData = bulkData;
    }

    /// <summary>The fragment bytes (bulk data is read from the file on each call, not cached).</summary>
    public ReadOnlyMemory<byte> RawValue => BulkData is null ? _value : BulkData.Load();

    /// <summary>True when the bytes are still in the file.</summary>
    public bool IsBulkData => BulkData is not null;

    /// <summary>The reference into the file, or null.</summary>
    public BulkDataReference? BulkData { get; }

    /// <summary>The fragment length in bytes.</summary>
    public long Length => BulkData?.Length ?? _value.Length;

    internal ReadOnlyMemory<byte> InMemoryValue => _value;
}

/// <summary>
/// A value left in the source file: path, offset and length. <see cref="Load"/> reads it (swapping big-endian words to
/// little endian when the file was big endian).
/// </summary>
public sealed class BulkDataReference
{
    /// <summary>Creates a reference.</summary>
    /// <param name="filePath">The file holding the bytes.</param>
    /// <param name="offset">Offset of the first value byte in the file.</param>
    /// <param name="length">Length in bytes.</param>
    /// <param name="swapUnitSize">When the file stores the value big endian, the VR word size to swap by; 0 or 1 for none.</param>
    public BulkDataReference(string filePath, long offset, long length, int swapUnitSize = 0)
    {
        ArgumentNullException.ThrowIfNull(filePath);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        FilePath = filePath;
        Offset = offset;
        Length = length;
        SwapUnitSize = swapUnitSize > 1 ? swapUnitSize : 0;
    }

    /// <summary>The file.</summary>
    public string FilePath { get; }

    /// <summary>Offset of the first value byte.</summary>
    public long Offset { get; }

    /// <summary>Length in bytes.</summary>
    public long Length { get; }

    /// <summary>Non-zero when the file holds the value big endian: the word size to swap by when loading.</summary>
    public int SwapUnitSize { get; }

    /// <summary>Reads the whole value (little endian).</summary>
    /// <exception cref="DicomException">The value is larger than 2 GiB or the file changed.</exception>
    public byte[] Load()
    {
        if (Length > Array.MaxLength)
        {
            throw new DicomException($"{FilePath}: bulk value of {Length} bytes at byte {Offset} is too large to load into memory");
        }

        var buffer = GC.AllocateUninitializedArray<byte>((int)Length);
        ReadRange(0, buffer);
        return buffer;
    }

    /// <summary>Reads <paramref name="destination"/>.Length bytes starting <paramref name="start"/> bytes into the value (little endian).</summary>
    public void ReadRange(long start, Span<byte> destination)
    {
        if (start < 0 || start + destination.Length > Length)
        {
            throw new ArgumentOutOfRangeException(nameof(start), $"range {start}+{destination.Length} outside the {Length}-byte value");
        }

        if (SwapUnitSize > 1 && (start % SwapUnitSize != 0 || destination.Length % SwapUnitSize != 0))
        {
            throw new ArgumentException($"a big-endian bulk range must be aligned to {SwapUnitSize} bytes");
        }

        using (var handle = File.OpenHandle(FilePath, FileMode.Open, FileAccess.Read, FileShare.Read))
        {
            var done = 0;
            while (done < destination.Length)
            {
                var n = RandomAccess.Read(handle, destination[done..], Offset + start + done);
                if (n <= 0)
                {
                    throw new DicomException($"{FilePath}: file ends inside a bulk value (expected {Length} bytes at byte {Offset})");
                }

                done += n;
            }
        }

        if (SwapUnitSize > 1)
        {
            IO.ByteSwap.InPlace(destination, SwapUnitSize);
        }
    }

    public override string ToString() => $"{FilePath}@{Offset}+{Length}";
}
