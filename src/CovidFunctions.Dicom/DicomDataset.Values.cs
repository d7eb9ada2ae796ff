using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace CovidFunctions.Dicom;

/// <summary>Typed readers and writers of <see cref="DicomDataset"/>.</summary>
public sealed partial class DicomDataset
{
    private enum NumberStatus
    {
        Ok,
        Missing,
        NotNumeric,
        OutOfRange,
        Invalid,
    }

    /// <summary>
    /// The value as text: string VRs decoded with <see cref="CharacterSet"/>, trailing padding (spaces, NULs) trimmed,
    /// multiple values joined by <c>\</c>; binary numbers and AT formatted invariantly and joined by <c>\</c>.
    /// Null when the element is absent.
    /// </summary>
    /// <exception cref="DicomException">The element is a sequence or encapsulated pixel data.</exception>
    public string? GetString(DicomTag tag)
    {
        var i = IndexOf(tag);
        if (i < 0)
        {
            return null;
        }

        return _elements[i] is DicomValueElement value
            ? ValueToString(value)
            : throw new DicomException($"{tag} is a sequence, not a value");
    }

    /// <summary>Gets the value as text like <see cref="GetString"/>; false when absent or not a value element.</summary>
    public bool TryGetString(DicomTag tag, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? value)
    {
        var i = IndexOf(tag);
        if (i >= 0 && _elements[i] is DicomValueElement element)
        {
            value = ValueToString(element);
            return true;
        }

        value = null;
        return false;
    }

    /// <summary>
    /// The values as text, one per value (split at <c>\</c> for multi-valued string VRs; LT, ST, UT and UR are single
    /// values). Values are trimmed of padding; empty array when the element is absent or empty.
    /// </summary>
    public string[] GetStrings(DicomTag tag)
    {
        var i = IndexOf(tag);
        if (i < 0 || _elements[i] is not DicomValueElement value)
        {
            return [];
        }

        var vr = EffectiveVR(value);
        if (vr.IsString)
        {
            var text = DecodeString(value, vr);
            if (text.Length == 0)
            {
                return [];
            }

            if (!vr.IsMultiValuedString)
            {
                return [text];
            }

            var parts = text.Split('\\');
            var trimBoth = TrimsLeadingSpace(vr);
            for (var p = 0; p < parts.Length; p++)
            {
                parts[p] = trimBoth ? parts[p].Trim(' ', '\0') : parts[p].TrimEnd(' ', '\0');
            }

            return parts;
        }

        var joined = ValueToString(value);
        return joined.Length == 0 ? [] : joined.Split('\\');
    }

    /// <summary>The value at <paramref name="index"/> as an Int32 (IS/DS text, or binary US SS UL SL SV UV FL FD).</summary>
    /// <exception cref="KeyNotFoundException">Absent.</exception>
    /// <exception cref="DicomException">Not numeric, index out of range, not an integer, or text that does not parse.</exception>
    /// <exception cref="OverflowException">The value does not fit an Int32.</exception>
    public int GetInt32(DicomTag tag, int index = 0)
    {
        var status = TryGetNumber(tag, index, out var integer, out var real, out var isInteger);
        ThrowOnFailure(tag, index, status);
        if (!isInteger)
        {
            if (real != Math.Floor(real) || double.IsInfinity(real))
            {
                throw new DicomException($"{tag} value {real.ToString(CultureInfo.InvariantCulture)} is not an integer");
            }

            integer = checked((long)real);
        }

        return checked((int)integer);
    }

    /// <summary>Gets the value at index 0 as an Int32; false when absent, not numeric, not an integer or out of range.</summary>
    public bool TryGetInt32(DicomTag tag, out int value) => TryGetInt32(tag, 0, out value);

    /// <summary>Gets the value at <paramref name="index"/> as an Int32; false on any failure.</summary>
    public bool TryGetInt32(DicomTag tag, int index, out int value)
    {
        value = 0;
        if (TryGetNumber(tag, index, out var integer, out var real, out var isInteger) != NumberStatus.Ok)
        {
            return false;
        }

        if (!isInteger)
        {
            if (real != Math.Floor(real) || real < int.MinValue || real > int.MaxValue)
            {
                return false;
            }

            integer = (long)real;
        }

        if (integer < int.MinValue || integer > int.MaxValue)
        {
            return false;
        }

        value = (int)integer;
        return true;
    }

    /// <summary>The value at <paramref name="index"/> as a double (DS/IS text or any binary number).</summary>
    /// <exception cref="KeyNotFoundException">Absent.</exception>
    /// <exception cref="DicomException">Not numeric, index out of range, or text that does not parse.</exception>
    public double GetDouble(DicomTag tag, int index = 0)
    {
        var status = TryGetNumber(tag, index, out var integer, out var real, out var isInteger);
        ThrowOnFailure(tag, index, status);
        return isInteger ? integer : real;
    }

    /// <summary>Gets the value at index 0 as a double.</summary>
    public bool TryGetDouble(DicomTag tag, out double value) => TryGetDouble(tag, 0, out value);

    /// <summary>Gets the value at <paramref name="index"/> as a double; false on any failure.</summary>
    public bool TryGetDouble(DicomTag tag, int index, out double value)
    {
        var ok = TryGetNumber(tag, index, out var integer, out var real, out var isInteger) == NumberStatus.Ok;
        value = ok ? (isInteger ? integer : real) : 0;
        return ok;
    }

    /// <summary>
    /// The value at index 0 converted to <typeparamref name="T"/> (string, string[], int, long, double, float, ushort,
    /// short, uint, DicomTag, DicomSequence), or <paramref name="defaultValue"/> when absent, empty or not convertible.
    /// </summary>
    public T GetValueOrDefault<T>(DicomTag tag, T defaultValue) => GetValueOrDefault(tag, 0, defaultValue);

    /// <summary>The value at <paramref name="index"/> converted to <typeparamref name="T"/>, or the default.</summary>
    public T GetValueOrDefault<T>(DicomTag tag, int index, T defaultValue)
    {
        object? result = null;
        if (typeof(T) == typeof(string))
        {
            var all = GetStrings(tag);
            result = index >= 0 && index < all.Length ? all[index] : null;
        }
        else if (typeof(T) == typeof(string[]))
        {
            result = Contains(tag) ? GetStrings(tag) : null;
        }
        else if (typeof(T) == typeof(DicomSequence))
        {
            result = TryGetSequence(tag, out var s) ? s : null;
        }
        else if (typeof(T) == typeof(DicomTag))
        {
            if (TryGet(tag, out var e) && e is DicomValueElement { VR.Code: "AT" } at)
            {
                var span = at.RawValue.Span;
                if (index >= 0 && (index * 4) + 4 <= span.Length)
                {
                    result = new DicomTag(BinaryPrimitives.ReadUInt16LittleEndian(span[(index * 4)..]),
                        BinaryPrimitives.ReadUInt16LittleEndian(span[((index * 4) + 2)..]));
                }
            }
        }
        else if (TryGetNumber(tag, index, out var integer, out var real, out var isInteger) == NumberStatus.Ok)
        {
            var d = isInteger ? integer : real;
            result = typeof(T) switch
            {
                _ when typeof(T) == typeof(double) => d,
                _ when typeof(T) == typeof(float) => (float)d,
                _ when typeof(T) == typeof(int) && IsIntegral(d, int.MinValue, int.MaxValue) => isInteger ? (int)integer : (int)d,
                _ when typeof(T) == typeof(long) && (isInteger || IsIntegral(d, long.MinValue, long.MaxValue)) => isInteger ? integer : (long)d,
                _ when typeof(T) == typeof(uint) && IsIntegral(d, 0, uint.MaxValue) => (uint)d,
                _ when typeof(T) == typeof(ushort) && IsIntegral(d, 0, ushort.MaxValue) => (ushort)d,
                _ when typeof(T) == typeof(short) && IsIntegral(d, short.MinValue, short.MaxValue) => (short)d,
                _ => null,
            };
        }

        return result is T typed ? typed : defaultValue;

        static bool IsIntegral(double d, double min, double max) => d == Math.Floor(d) && d >= min && d <= max;
    }

    /// <summary>
    /// Sets a string value: encoded with <see cref="CharacterSet"/> for the VRs that use it (SH LO ST LT PN UC UT),
    /// ASCII otherwise, padded to even length with the VR's padding byte.
    /// </summary>
    public void SetString(DicomTag tag, DicomVR vr, string value)
    {
        ArgumentNullException.ThrowIfNull(vr);
        ArgumentNullException.ThrowIfNull(value);
        if (!vr.IsString)
        {
            throw new ArgumentException($"{tag}: SetString needs a string VR, not {vr}", nameof(vr));
        }

        byte[] bytes;
        if (UsesCharacterSet(vr))
        {
            bytes = (tag == SpecificCharacterSetTag ? Text.DicomEncoding.Default : CharacterSet).Encode(value, vr.Code);
        }
        else
        {
            bytes = Encoding.Latin1.GetBytes(value);
        }

        if ((bytes.Length & 1) == 1)
        {
            Array.Resize(ref bytes, bytes.Length + 1);
            bytes[^1] = (byte)vr.PaddingByte;
        }

        AddOrUpdate(new DicomValueElement(tag, vr, bytes));
    }

    /// <summary>Sets string values, joined by <c>\</c>.</summary>
    public void SetValues(DicomTag tag, DicomVR vr, params string[] values)
    {
        ArgumentNullException.ThrowIfNull(values);
        SetString(tag, vr, string.Join('\\', values));
    }

    /// <summary>Sets integer values: IS/DS as text, or binary for US SS UL SL SV UV FL FD OB OW OL (range-checked).</summary>
    public void SetValues(DicomTag tag, DicomVR vr, params int[] values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var longs = new long[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            longs[i] = values[i];
        }

        SetValues(tag, vr, longs);
    }

    /// <summary>Sets integer values: IS/DS as text, or binary for US SS UL SL SV UV FL FD OB OW OL OV (range-checked).</summary>
    public void SetValues(DicomTag tag, DicomVR vr, params long[] values)
    {
        ArgumentNullException.ThrowIfNull(vr);
        ArgumentNullException.ThrowIfNull(values);
        if (vr == DicomVR.IS || vr == DicomVR.DS)
        {
            var text = new string[values.Length];
            for (var i = 0; i < values.Length; i++)
            {
                text[i] = values[i].ToString(CultureInfo.InvariantCulture);
            }

            SetValues(tag, vr, text);
            return;
        }

        var size = BinarySize(vr, tag);
        var bytes = new byte[values.Length * size];
        for (var i = 0; i < values.Length; i++)
        {
            WriteBinary(bytes.AsSpan(i * size, size), vr, values[i], values[i], tag);
        }

        AddOrUpdate(new DicomValueElement(tag, vr, PadBinary(bytes)));
    }

    /// <summary>Sets real values: DS/IS as text (DS in at most 16 characters), or binary FL FD OF OD (and integers, checked).</summary>
    public void SetValues(DicomTag tag, DicomVR vr, params double[] values)
    {
        ArgumentNullException.ThrowIfNull(vr);
        ArgumentNullException.ThrowIfNull(values);
        if (vr == DicomVR.DS || vr == DicomVR.IS)
        {
            var text = new string[values.Length];
            for (var i = 0; i < values.Length; i++)
            {
                if (vr == DicomVR.IS && values[i] != Math.Floor(values[i]))
                {
                    throw new ArgumentOutOfRangeException(nameof(values), $"{tag}: IS needs integers, got {values[i]}");
                }

                text[i] = FormatDecimalString(values[i]);
            }

            SetValues(tag, vr, text);
            return;
        }

        var size = BinarySize(vr, tag);
        var bytes = new byte[values.Length * size];
        for (var i = 0; i < values.Length; i++)
        {
            var d = values[i];
            var asLong = d == Math.Floor(d) && d >= long.MinValue && d <= long.MaxValue ? (long)d : long.MinValue;
            if (!(vr.Code is "FL" or "FD" or "OF" or "OD") && asLong == long.MinValue)
            {
                throw new ArgumentOutOfRangeException(nameof(values), $"{tag}: {vr} needs integers, got {d}");
            }

            WriteBinary(bytes.AsSpan(i * size, size), vr, asLong, d, tag);
        }

        AddOrUpdate(new DicomValueElement(tag, vr, PadBinary(bytes)));
    }

    /// <summary>Sets attribute tag values (AT).</summary>
    public void SetValues(DicomTag tag, DicomVR vr, params DicomTag[] values)
    {
        ArgumentNullException.ThrowIfNull(vr);
        ArgumentNullException.ThrowIfNull(values);
        if (vr != DicomVR.AT)
        {
            throw new ArgumentException($"{tag}: tag values need VR AT, not {vr}", nameof(vr));
        }

        var bytes = new byte[values.Length * 4];
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(i * 4), values[i].Group);
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan((i * 4) + 2), values[i].Element);
        }

        AddOrUpdate(new DicomValueElement(tag, vr, bytes));
    }

    /// <summary>Formats a double as a DS value of at most 16 characters.</summary>
    internal static string FormatDecimalString(double value)
    {
        if (double.IsNaN(value) || double.IsInfinity(value))
        {
            throw new ArgumentOutOfRangeException(nameof(value), "DS cannot hold NaN or infinity");
        }

        var s = value.ToString("R", CultureInfo.InvariantCulture);
        for (var precision = 15; s.Length > 16 && precision > 0; precision--)
        {
            s = value.ToString("G" + precision.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
        }

        return s;
    }

    private static bool UsesCharacterSet(DicomVR vr) =>
        vr == DicomVR.SH || vr == DicomVR.LO || vr == DicomVR.ST || vr == DicomVR.LT || vr == DicomVR.PN
        || vr == DicomVR.UC || vr == DicomVR.UT;

    private static bool TrimsLeadingSpace(DicomVR vr) =>
        vr == DicomVR.DS || vr == DicomVR.IS || vr == DicomVR.CS || vr == DicomVR.AE || vr == DicomVR.AS
        || vr == DicomVR.DA || vr == DicomVR.DT || vr == DicomVR.TM || vr == DicomVR.UI;

    private static int BinarySize(DicomVR vr, DicomTag tag)
    {
        if (vr == DicomVR.OB)
        {
            return 1;
        }

        if (vr.IsBinaryNumber || vr == DicomVR.OW || vr == DicomVR.OL || vr == DicomVR.OV || vr == DicomVR.OF || vr == DicomVR.OD)
        {
            return vr.UnitSize;
        }

        throw new ArgumentException($"{tag}: numeric values cannot be stored as {vr}", nameof(vr));
    }

    private static void WriteBinary(Span<byte> dest, DicomVR vr, long integer, double real, DicomTag tag)
    {
        switch (vr.Code)
        {
            case "OB":
                dest[0] = checked((byte)Check(integer, byte.MinValue, byte.MaxValue));
                break;
            case "US" or "OW":
                BinaryPrimitives.WriteUInt16LittleEndian(dest, (ushort)Check(integer, ushort.MinValue, ushort.MaxValue));
                break;
            case "SS":
                BinaryPrimitives.WriteInt16LittleEndian(dest, (short)Check(integer, short.MinValue, short.MaxValue));
                break;
            case "UL" or "OL":
                BinaryPrimitives.WriteUInt32LittleEndian(dest, (uint)Check(integer, uint.MinValue, uint.MaxValue));
                break;
            case "SL":
                BinaryPrimitives.WriteInt32LittleEndian(dest, (int)Check(integer, int.MinValue, int.MaxValue));
                break;
            case "SV":
                BinaryPrimitives.WriteInt64LittleEndian(dest, integer);
                break;
            case "UV" or "OV":
                BinaryPrimitives.WriteUInt64LittleEndian(dest, (ulong)Check(integer, 0, long.MaxValue));
                break;
            case "FL" or "OF":
                BinaryPrimitives.WriteSingleLittleEndian(dest, (float)real);
                break;
            case "FD" or "OD":
                BinaryPrimitives.WriteDoubleLittleEndian(dest, real);
                break;
            default:
                throw new ArgumentException($"{tag}: numeric values cannot be stored as {vr}", nameof(vr));
        }

        long Check(long v, long min, long max) =>
            v >= min && v <= max ? v : throw new ArgumentOutOfRangeException(nameof(integer), $"{tag}: {v} does not fit {vr}");
    }

    private static byte[] PadBinary(byte[] bytes)
    {
        if ((bytes.Length & 1) == 0)
        {
            return bytes;
        }

        Array.Resize(ref bytes, bytes.Length + 1);
        return bytes;
    }

    private static void ThrowOnFailure(DicomTag tag, int index, NumberStatus status)
    {
        switch (status)
        {
            case NumberStatus.Ok:
                return;
            case NumberStatus.Missing:
                throw Missing(tag);
            case NumberStatus.NotNumeric:
                throw new DicomException($"{tag} does not hold numbers");
            case NumberStatus.OutOfRange:
                throw new DicomException($"{tag} has no value at index {index}");
            default:
                throw new DicomException($"{tag} value at index {index} is not a valid number");
        }
    }

    /// <summary>The VR to interpret a value by: the dictionary VR for UN elements that the dictionary knows.</summary>
    private static DicomVR EffectiveVR(DicomValueElement value)
    {
        if (value.VR != DicomVR.UN)
        {
            return value.VR;
        }

        var entry = DicomDictionary.Lookup(value.Tag);
        return entry is { ValueRepresentations.Count: 1 } && entry.VR != DicomVR.SQ ? entry.VR : DicomVR.UN;
    }

    private NumberStatus TryGetNumber(DicomTag tag, int index, out long integer, out double real, out bool isInteger)
    {
        integer = 0;
        real = 0;
        isInteger = false;
        var i = IndexOf(tag);
        if (i < 0)
        {
            return NumberStatus.Missing;
        }

        if (_elements[i] is not DicomValueElement value)
        {
            return NumberStatus.NotNumeric;
        }

        if (index < 0)
        {
            return NumberStatus.OutOfRange;
        }

        var vr = EffectiveVR(value);
        var span = value.RawValue.Span;
        if (vr == DicomVR.IS || vr == DicomVR.DS)
        {
            var field = NthValue(span, index);
            if (field.IsEmpty && index > 0 && CountValues(span) <= index)
            {
                return NumberStatus.OutOfRange;
            }

            field = TrimPadding(field);
            if (field.IsEmpty)
            {
                return index == 0 && span.Length == 0 ? NumberStatus.OutOfRange : NumberStatus.Invalid;
            }

            if (vr == DicomVR.IS && long.TryParse(field, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out integer))
            {
                isInteger = true;
                return NumberStatus.Ok;
            }

            return double.TryParse(field, NumberStyles.Float, CultureInfo.InvariantCulture, out real)
                ? NumberStatus.Ok
                : NumberStatus.Invalid;
        }

        if (!vr.IsBinaryNumber && vr != DicomVR.OW && vr != DicomVR.OB && vr != DicomVR.OL && vr != DicomVR.OF && vr != DicomVR.OD && vr != DicomVR.OV)
        {
            return NumberStatus.NotNumeric;
        }

        var size = vr == DicomVR.OB ? 1 : vr.UnitSize;
        var offset = (long)index * size;
        if (offset + size > span.Length)
        {
            return NumberStatus.OutOfRange;
        }

        var v = span.Slice((int)offset, size);
        isInteger = true;
        switch (vr.Code)
        {
            case "OB":
                integer = v[0];
                break;
            case "US" or "OW":
                integer = BinaryPrimitives.ReadUInt16LittleEndian(v);
                break;
            case "SS":
                integer = BinaryPrimitives.ReadInt16LittleEndian(v);
                break;
            case "UL" or "OL":
                integer = BinaryPrimitives.ReadUInt32LittleEndian(v);
                break;
            case "SL":
                integer = BinaryPrimitives.ReadInt32LittleEndian(v);
                break;
            case "SV":
                integer = BinaryPrimitives.ReadInt64LittleEndian(v);
                break;
            case "UV" or "OV":
                var u = BinaryPrimitives.ReadUInt64LittleEndian(v);
                if (u > long.MaxValue)
                {
                    isInteger = false;
                    real = u;
                }
                else
                {
                    integer = (long)u;
                }

                break;
            case "FL" or "OF":
                isInteger = false;
                real = BinaryPrimitives.ReadSingleLittleEndian(v);
                break;
            default:
                isInteger = false;
                real = BinaryPrimitives.ReadDoubleLittleEndian(v);
                break;
        }

        return NumberStatus.Ok;
    }

    private static ReadOnlySpan<byte> NthValue(ReadOnlySpan<byte> span, int index)
    {
        for (var n = 0; n < index; n++)
        {
            var sep = span.IndexOf((byte)'\\');
            if (sep < 0)
            {
                return default;
            }

            span = span[(sep + 1)..];
        }

        var end = span.IndexOf((byte)'\\');
        return end < 0 ? span : span[..end];
    }

    private static int CountValues(ReadOnlySpan<byte> span) => span.IsEmpty ? 0 : span.Count((byte)'\\') + 1;

    private static ReadOnlySpan<byte> TrimPadding(ReadOnlySpan<byte> span)
    {
        var start = 0;
        var end = span.Length;
        while (start < end && (span[start] == (byte)' ' || span[start] == 0))
        {
            start++;
        }

        while (end > start && (span[end - 1] == (byte)' ' || span[end - 1] == 0))
        {
            end--;
        }

        return span[start..end];
    }

    private string DecodeString(DicomValueElement value, DicomVR vr)
    {
        var span = value.RawValue.Span;
        var end = span.Length;
        while (end > 0 && (span[end - 1] == (byte)' ' || span[end - 1] == 0))
        {
            end--;
        }

        span = span[..end];
        if (span.IsEmpty)
        {
            return string.Empty;
        }

        return UsesCharacterSet(vr) && value.Tag != SpecificCharacterSetTag
            ? CharacterSet.Decode(span, vr.Code)
            : Encoding.Latin1.GetString(span);
    }

    private string ValueToString(DicomValueElement value)
    {
        var vr = EffectiveVR(value);
        if (vr.IsString)
        {
            return DecodeString(value, vr);
        }

        var span = value.RawValue.Span;
        if (span.IsEmpty)
        {
            return string.Empty;
        }

        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        if (vr == DicomVR.AT)
        {
            for (var o = 0; o + 4 <= span.Length; o += 4)
            {
                if (o > 0)
                {
                    sb.Append('\\');
                }

                sb.Append(new DicomTag(BinaryPrimitives.ReadUInt16LittleEndian(span[o..]), BinaryPrimitives.ReadUInt16LittleEndian(span[(o + 2)..])).ToString());
            }

            return sb.ToString();
        }

        var size = vr == DicomVR.OB || vr == DicomVR.UN ? 1 : vr.UnitSize;
        for (var o = 0; o + size <= span.Length; o += size)
        {
            if (o > 0)
            {
                sb.Append('\\');
            }

            var v = span.Slice(o, size);
            switch (vr.Code)
            {
                case "US" or "OW":
                    sb.Append(BinaryPrimitives.ReadUInt16LittleEndian(v).ToString(inv));
                    break;
                case "SS":
                    sb.Append(BinaryPrimitives.ReadInt16LittleEndian(v).ToString(inv));
                    break;
                case "UL" or "OL":
                    sb.Append(BinaryPrimitives.ReadUInt32LittleEndian(v).ToString(inv));
                    break;
                case "SL":
                    sb.Append(BinaryPrimitives.ReadInt32LittleEndian(v).ToString(inv));
                    break;
                case "SV":
                    sb.Append(BinaryPrimitives.ReadInt64LittleEndian(v).ToString(inv));
                    break;
                case "UV" or "OV":
                    sb.Append(BinaryPrimitives.ReadUInt64LittleEndian(v).ToString(inv));
                    break;
                case "FL" or "OF":
                    sb.Append(BinaryPrimitives.ReadSingleLittleEndian(v).ToString("R", inv));
                    break;
                case "FD" or "OD":
                    sb.Append(BinaryPrimitives.ReadDoubleLittleEndian(v).ToString("R", inv));
                    break;
                default:
                    sb.Append(v[0].ToString(inv));
                    break;
            }
        }

        return sb.ToString();
    }
}
