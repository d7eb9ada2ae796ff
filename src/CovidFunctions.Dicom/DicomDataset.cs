using System.Buffers.Binary;
using System.Collections;
using System.Globalization;
using System.Text;
using CovidFunctions.Dicom.Text;

namespace CovidFunctions.Dicom;

/// <summary>
/// An ordered set of data elements (ordered by tag, one element per tag): a top-level dataset, the file meta
/// information, or a sequence item. Typed readers come in Get / TryGet / GetValueOrDefault triads.
/// </summary>
public sealed partial class DicomDataset : IEnumerable<DicomElement>
{
    private static readonly DicomTag SpecificCharacterSetTag = new(0x0008, 0x0005);

    private readonly List<DicomElement> _elements;
    private DicomEncoding? _ownCharset;
    private bool _ownCharsetResolved;
    private bool _undefinedLength = true;

    /// <summary>An empty dataset.</summary>
    public DicomDataset() => _elements = [];

    /// <summary>A dataset holding the given elements (later duplicates replace earlier ones).</summary>
    public DicomDataset(IEnumerable<DicomElement> elements)
        : this()
    {
        ArgumentNullException.ThrowIfNull(elements);
        foreach (var element in elements)
        {
            AddOrUpdate(element);
        }
    }

    internal DicomDataset(int capacity) => _elements = new List<DicomElement>(capacity);

    /// <summary>The number of elements.</summary>
    public int Count => _elements.Count;

    /// <summary>The dataset holding the sequence this item belongs to; null for a top-level dataset.</summary>
    public DicomDataset? Parent { get; internal set; }

    /// <summary>
    /// For a sequence item: true when it was (or is to be) encoded with undefined length and an item delimitation item.
    /// Ignored for top-level datasets.
    /// </summary>
    public bool UndefinedLength
    {
        get => _undefinedLength;
        set
        {
            _undefinedLength = value;
            Parent?.MarkModified();
        }
    }

    /// <summary>
    /// True once the dataset (or anything nested in it) changed after it was read. The writer keeps group length
    /// values as read only for unmodified datasets written in the encoding they were read in.
    /// </summary>
    internal bool IsModified { get; private set; }

    /// <summary>Marks this dataset and its ancestors modified.</summary>
    internal void MarkModified()
    {
        for (var ds = this; ds is not null && !ds.IsModified; ds = ds.Parent)
        {
            ds.IsModified = true;
        }
    }

    /// <summary>
    /// The character set for string values: from this dataset's Specific Character Set (0008,0005) when present,
    /// otherwise inherited from <see cref="Parent"/>, otherwise <see cref="DicomEncoding.Default"/>.
    /// </summary>
    public DicomEncoding CharacterSet
    {
        get
        {
            if (!_ownCharsetResolved)
            {
                _ownCharset = ResolveOwnCharset();
                _ownCharsetResolved = true;
            }

            return _ownCharset ?? Parent?.CharacterSet ?? DicomEncoding.Default;
        }
    }

    /// <summary>The element with this tag.</summary>
    /// <exception cref="KeyNotFoundException">The dataset has no such element; the message names the tag.</exception>
    public DicomElement this[DicomTag tag]
    {
        get
        {
            var i = IndexOf(tag);
            return i >= 0 ? _elements[i] : throw Missing(tag);
        }
    }

    /// <summary>True when an element with this tag is present.</summary>
    public bool Contains(DicomTag tag) => IndexOf(tag) >= 0;

    /// <summary>Gets the element with this tag.</summary>
    public bool TryGet(DicomTag tag, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out DicomElement? element)
    {
        var i = IndexOf(tag);
        element = i >= 0 ? _elements[i] : null;
        return i >= 0;
    }

    /// <summary>Gets the element with this tag when it is a sequence.</summary>
    public bool TryGetSequence(DicomTag tag, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out DicomSequence? sequence)
    {
        var i = IndexOf(tag);
        sequence = i >= 0 ? _elements[i] as DicomSequence : null;
        return sequence is not null;
    }

    /// <summary>The sequence with this tag.</summary>
    /// <exception cref="KeyNotFoundException">Absent.</exception>
    /// <exception cref="DicomException">Present but not a sequence.</exception>
    public DicomSequence GetSequence(DicomTag tag) =>
        this[tag] as DicomSequence ?? throw new DicomException($"{tag} is not a sequence");

    /// <summary>Adds the element, replacing any element with the same tag; keeps tag order.</summary>
    public void AddOrUpdate(DicomElement element)
    {
        ArgumentNullException.ThrowIfNull(element);
        MarkModified();
        var tag = element.Tag.Value;
        var n = _elements.Count;
        if (n == 0 || _elements[n - 1].Tag.Value < tag)
        {
            _elements.Add(element);
        }
        else
        {
            var i = IndexOf(element.Tag);
            if (i >= 0)
            {
                if (_elements[i] is DicomSequence old && !ReferenceEquals(old, element))
                {
                    old.Owner = null;
                }

                _elements[i] = element;
            }
            else
            {
                _elements.Insert(~i, element);
            }
        }

        if (element is DicomSequence sequence)
        {
            sequence.Owner = this;
        }

        if (tag == SpecificCharacterSetTag.Value)
        {
            _ownCharsetResolved = false;
        }
    }

    /// <summary>Removes the element with this tag; false when absent.</summary>
    public bool Remove(DicomTag tag)
    {
        var i = IndexOf(tag);
        if (i < 0)
        {
            return false;
        }

        if (_elements[i] is DicomSequence sequence)
        {
            sequence.Owner = null;
        }

        _elements.RemoveAt(i);
        MarkModified();
        if (tag == SpecificCharacterSetTag)
        {
            _ownCharsetResolved = false;
        }

        return true;
    }

    /// <summary>Removes every element matching the predicate; returns how many were removed.</summary>
    public int RemoveWhere(Func<DicomElement, bool> predicate)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        var removed = _elements.RemoveAll(e => predicate(e));
        if (removed > 0)
        {
            _ownCharsetResolved = false;
            MarkModified();
        }

        return removed;
    }

    /// <summary>Removes every element.</summary>
    public void Clear()
    {
        _elements.Clear();
        _ownCharsetResolved = false;
        MarkModified();
    }

    /// <summary>
    /// A deep copy: new datasets and sequences; value bytes and bulk references are shared (they are immutable).
    /// </summary>
    public DicomDataset Clone()
    {
        var copy = new DicomDataset(_elements.Count) { _undefinedLength = _undefinedLength, IsModified = IsModified };
        foreach (var element in _elements)
        {
            copy._elements.Add(element switch
            {
                DicomSequence s => CloneSequence(s, copy),
                DicomFragmentSequence f => new DicomFragmentSequence(f.Tag, f.VR, f.BasicOffsetTable, f.Fragments),
                _ => element,
            });
        }

        return copy;

        static DicomSequence CloneSequence(DicomSequence s, DicomDataset owner)
        {
            var items = new List<DicomDataset>(s.Items.Count);
            foreach (var item in s.Items)
            {
                items.Add(item.Clone());
            }

            return new DicomSequence(s.Tag, s.VR, items) { UndefinedLength = s.UndefinedLength, Owner = owner };
        }
    }

    /// <summary>Enumerates the elements in tag order.</summary>
    public List<DicomElement>.Enumerator GetEnumerator() => _elements.GetEnumerator();

    IEnumerator<DicomElement> IEnumerable<DicomElement>.GetEnumerator() => _elements.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => _elements.GetEnumerator();

    /// <summary>Appends an element the reader has already ordered; falls back to <see cref="AddOrUpdate"/> otherwise.</summary>
    internal void AppendFromReader(DicomElement element)
    {
        var n = _elements.Count;
        if (n == 0 || _elements[n - 1].Tag.Value < element.Tag.Value)
        {
            _elements.Add(element);
            if (element is DicomSequence sequence)
            {
                sequence.Owner = this;
            }

            if (element.Tag.Value == SpecificCharacterSetTag.Value)
            {
                _ownCharsetResolved = false;
            }
        }
        else
        {
            AddOrUpdate(element);
        }
    }

    /// <summary>The last element, or null (used by the reader).</summary>
    internal DicomElement? LastElement => _elements.Count == 0 ? null : _elements[^1];

    internal List<DicomElement> Elements => _elements;

    private int IndexOf(DicomTag tag)
    {
        var key = tag.Value;
        var lo = 0;
        var hi = _elements.Count - 1;
        while (lo <= hi)
        {
            var mid = lo + ((hi - lo) >> 1);
            var v = _elements[mid].Tag.Value;
            if (v == key)
            {
                return mid;
            }

            if (v < key)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return ~lo;
    }

    private DicomEncoding? ResolveOwnCharset()
    {
        var i = IndexOf(SpecificCharacterSetTag);
        if (i < 0 || _elements[i] is not DicomValueElement value)
        {
            return null;
        }

        // (0008,0005) is CS: default repertoire, backslash-separated; leading/trailing spaces are insignificant.
        var text = Encoding.Latin1.GetString(value.RawValue.Span);
        var terms = text.Split('\\');
        for (var t = 0; t < terms.Length; t++)
        {
            terms[t] = terms[t].Trim(' ', '\0');
        }

        return DicomEncoding.FromSpecificCharacterSet(terms);
    }

    private static KeyNotFoundException Missing(DicomTag tag) =>
        new($"The dataset has no element {tag}{(DicomDictionary.Lookup(tag) is { } e ? " " + e.Keyword : string.Empty)}");
}
