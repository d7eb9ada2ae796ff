using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json;
using CovidFunctions.Dicom.Text;

namespace CovidFunctions.Dicom.Json;

/// <summary>Options of <see cref="DicomJsonWriter"/>.</summary>
public sealed record DicomJsonOptions
{
    /// <summary>The defaults: 1 KiB inline threshold, group lengths written.</summary>
    public static DicomJsonOptions Default { get; } = new();

    /// <summary>Binary values (OB OD OF OL OV OW UN) of at most this many bytes are written as <c>InlineBinary</c>; larger ones as <c>BulkDataURI</c>.</summary>
    public int InlineBinaryThreshold { get; init; } = 1024;

    /// <summary>When false, group length elements (gggg,0000) are left out (PS3.18 F.2 says they may be).</summary>
    public bool IncludeGroupLengths { get; init; } = true;
}

/// <summary>
/// Writes the DICOM JSON Model (PS3.18 Annex F.2). One JSON object per dataset, keyed by the 8-digit uppercase hex
/// tag; each attribute is an object with <c>"vr"</c> and, unless the value is empty, <c>"Value"</c> (an array),
/// <c>"InlineBinary"</c> (base64) or <c>"BulkDataURI"</c>.
/// </summary>
/// <remarks>
/// <para>Decisions where F.2 leaves room or cannot express a value:</para>
/// <list type="bullet">
/// <item>Strings are decoded with the dataset's Specific Character Set, split at <c>\</c> (not LT, ST, UT, UR),
/// trailing spaces and NULs trimmed, leading spaces trimmed except for LT/ST/UT. An empty value among several is
/// <c>null</c> (F.2.5).</item>
/// <item>PN values are objects with <c>Alphabetic</c>, <c>Ideographic</c>, <c>Phonetic</c> (empty groups omitted);
/// an entirely empty PN value is <c>null</c>.</item>
/// <item>IS and DS are JSON numbers. A value whose text is already a valid JSON number is written verbatim (no
/// precision lost); other parseable text (<c>+5</c>, <c>.5</c>, <c>1.</c>) is written as the parsed number. Text that is
/// not a finite number (<c>NaN</c>, <c>abc</c>) is written as a JSON string: invalid data is kept visible, not dropped.</item>
/// <item>FL/FD NaN and infinities are written as the strings <c>"NaN"</c>, <c>"Infinity"</c>, <c>"-Infinity"</c>
/// (JSON has no such numbers). SV/UV are JSON numbers (exact 64-bit integers).</item>
/// <item>AT values are 8-digit uppercase hex strings.</item>
/// <item>A sequence is written with vr <c>SQ</c> even when read as UN with undefined length.</item>
/// <item><c>BulkDataURI</c>: for a value kept in its file (a bulk reference) <c>file:///abs/path?offset=N&amp;length=M</c>
/// (the byte range of the value in the file as stored, so big-endian files give big-endian bytes); otherwise
/// <c>bulkdata:</c> followed by the attribute path, tags and item indexes joined by <c>/</c> (for example
/// <c>bulkdata:7FE00010</c>, <c>bulkdata:00540016/0/00283006</c>). All Pixel Data (7FE0,0008/0009/0010), native or
/// encapsulated, is a BulkDataURI; encapsulated pixel data always uses the <c>bulkdata:</c> form.</item>
/// </list>
/// </remarks>
public static class DicomJsonWriter
{
    private static readonly DicomTag SpecificCharacterSetTag = new(0x0008, 0x0005);

    /// <summary>Writes <paramref name="dataset"/> as one JSON object.</summary>
    public static void Write(Utf8JsonWriter writer, DicomDataset dataset, DicomJsonOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(dataset);
        options ??= DicomJsonOptions.Default;
        writer.WriteStartObject();
        WriteMembers(writer, dataset, dataset.CharacterSet, options, string.Empty);
        writer.WriteEndObject();
    }

    /// <summary>Writes the file meta information (group 0002) and the dataset of <paramref name="file"/> as one JSON object.</summary>
    public static void Write(Utf8JsonWriter writer, DicomFile file, DicomJsonOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(file);
        options ??= DicomJsonOptions.Default;
        writer.WriteStartObject();
        WriteMembers(writer, file.FileMetaInformation, DicomEncoding.Default, options, string.Empty);
        WriteMembers(writer, file.Dataset, file.Dataset.CharacterSet, options, string.Empty, skipGroup2: true);
        writer.WriteEndObject();
    }

    /// <summary>The JSON text of <paramref name="dataset"/> (UTF-8, indented when asked).</summary>
    public static string Serialize(DicomDataset dataset, DicomJsonOptions? options = null, bool indented = false)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = indented, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            Write(writer, dataset, options);
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private static void WriteMembers(Utf8JsonWriter writer, DicomDataset dataset, DicomEncoding charset, DicomJsonOptions options, string path, bool skipGroup2 = false)
    {
        foreach (var element in dataset)
        {
            if (skipGroup2 && element.Tag.Group == 0x0002)
            {
                continue;
            }

            if (!options.IncludeGroupLengths && element.Tag.IsGroupLength)
            {
                continue;
            }

            var key = element.Tag.Value.ToString("X8", CultureInfo.InvariantCulture);
            writer.WritePropertyName(key);
            WriteAttribute(writer, element, charset, options, path.Length == 0 ? key : path + "/" + key);
        }
    }

    private static void WriteAttribute(Utf8JsonWriter writer, DicomElement element, DicomEncoding charset, DicomJsonOptions options, string path)
    {
        writer.WriteStartObject();
        switch (element)
        {
            case DicomSequence sequence:
                writer.WriteString("vr", "SQ");
                if (sequence.Items.Count > 0)
                {
                    writer.WriteStartArray("Value");
                    for (var i = 0; i < sequence.Items.Count; i++)
                    {
                        var item = sequence.Items[i];
                        writer.WriteStartObject();
                        WriteMembers(writer, item, item.CharacterSet, options, path + "/" + i.ToString(CultureInfo.InvariantCulture));
                        writer.WriteEndObject();
                    }

                    writer.WriteEndArray();
                }

                break;
            case DicomFragmentSequence fragments:
                writer.WriteString("vr", fragments.VR.Code);
                writer.WriteString("BulkDataURI", "bulkdata:" + path);
                break;
            case DicomValueElement value:
                writer.WriteString("vr", value.VR.Code);
                WriteValue(writer, value, charset, options, path);
                break;
            default:
                writer.WriteString("vr", element.VR.Code);
                break;
        }

        writer.WriteEndObject();
    }

    private static bool IsPixelData(DicomTag tag) => tag.Group == 0x7FE0 && tag.Element is 0x0008 or 0x0009 or 0x0010;

    private static void WriteValue(Utf8JsonWriter writer, DicomValueElement element, DicomEncoding charset, DicomJsonOptions options, string path)
    {
        var vr = element.VR;
        if (element.Length == 0)
        {
            return;
        }

        if (vr.IsBinary || (IsPixelData(element.Tag) && !vr.IsString))
        {
            if (IsPixelData(element.Tag) || element.Length > options.InlineBinaryThreshold)
            {
                writer.WriteString("BulkDataURI", BulkDataUri(element, path));
            }
            else
            {
                writer.WriteBase64String("InlineBinary", element.RawValue.Span);
            }

            return;
        }

        var raw = element.RawValue.Span;
        switch (vr.Code)
        {
            case "AT":
                writer.WriteStartArray("Value");
                for (var i = 0; i + 4 <= raw.Length; i += 4)
                {
                    var group = BinaryPrimitives.ReadUInt16LittleEndian(raw[i..]);
                    var elem = BinaryPrimitives.ReadUInt16LittleEndian(raw[(i + 2)..]);
                    writer.WriteStringValue(((uint)(group << 16) | elem).ToString("X8", CultureInfo.InvariantCulture));
                }

                writer.WriteEndArray();
                return;
            case "US" or "SS" or "UL" or "SL" or "FL" or "FD" or "SV" or "UV":
                WriteBinaryNumbers(writer, vr.Code, raw);
                return;
        }

        if (!vr.IsString)
        {
            // Anything else that is not a string (should not happen): keep the bytes.
            writer.WriteBase64String("InlineBinary", raw);
            return;
        }

        var text = (element.Tag == SpecificCharacterSetTag ? DicomEncoding.Default : charset).Decode(raw, vr.Code);
        var values = SplitValues(text, vr.Code);
        if (values.Count == 0 || values.All(v => v.Length == 0))
        {
            return;
        }

        writer.WriteStartArray("Value");
        foreach (var value in values)
        {
            if (value.Length == 0)
            {
                writer.WriteNullValue();
                continue;
            }

            switch (vr.Code)
            {
                case "PN":
                    WritePersonName(writer, value);
                    break;
                case "IS" or "DS":
                    WriteDecimalString(writer, value);
                    break;
                default:
                    writer.WriteStringValue(value);
                    break;
            }
        }

        writer.WriteEndArray();
    }

    /// <summary>Splits decoded text into trimmed values as the JSON model and the peer tests expect.</summary>
    internal static List<string> SplitValues(string text, string vrCode)
    {
        var isText = vrCode is "LT" or "ST" or "UT";
        var single = isText || vrCode == "UR";
        var parts = single ? [text] : text.Split('\\');
        var values = new List<string>(parts.Length);
        foreach (var part in parts)
        {
            var trimmed = part.TrimEnd(' ', '\0');
            if (!isText)
            {
                trimmed = trimmed.TrimStart(' ');
            }

            values.Add(trimmed);
        }

        return values;
    }

    private static void WritePersonName(Utf8JsonWriter writer, string value)
    {
        var groups = value.Split('=');
        writer.WriteStartObject();
        string[] names = ["Alphabetic", "Ideographic", "Phonetic"];
        for (var i = 0; i < Math.Min(groups.Length, names.Length); i++)
        {
            if (groups[i].Length > 0)
            {
                writer.WriteString(names[i], groups[i]);
            }
        }

        writer.WriteEndObject();
    }

    private static void WriteDecimalString(Utf8JsonWriter writer, string value)
    {
        if (IsJsonNumber(value))
        {
            writer.WriteRawValue(value, skipInputValidation: true);
            return;
        }

        if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d))
        {
            writer.WriteNumberValue(d);
            return;
        }

        writer.WriteStringValue(value);
    }

    /// <summary>True when <paramref name="s"/> matches the JSON number grammar (RFC 8259 section 6).</summary>
    internal static bool IsJsonNumber(string s)
    {
        var i = 0;
        if (i < s.Length && s[i] == '-')
        {
            i++;
        }

        if (i >= s.Length)
        {
            return false;
        }

        if (s[i] == '0')
        {
            i++;
        }
        else if (s[i] is >= '1' and <= '9')
        {
            while (i < s.Length && char.IsAsciiDigit(s[i]))
            {
                i++;
            }
        }
        else
        {
            return false;
        }

        if (i < s.Length && s[i] == '.')
        {
            i++;
            var start = i;
            while (i < s.Length && char.IsAsciiDigit(s[i]))
            {
                i++;
            }

            if (i == start)
            {
                return false;
            }
        }

        if (i < s.Length && s[i] is 'e' or 'E')
        {
            i++;
            if (i < s.Length && s[i] is '+' or '-')
            {
                i++;
            }

            var start = i;
            while (i < s.Length && char.IsAsciiDigit(s[i]))
            {
                i++;
            }

            if (i == start)
            {
                return false;
            }
        }

        return i == s.Length;
    }

    private static void WriteBinaryNumbers(Utf8JsonWriter writer, string vr, ReadOnlySpan<byte> raw)
    {
        var size = vr switch
        {
            "US" or "SS" => 2,
            "UL" or "SL" or "FL" => 4,
            _ => 8,
        };
        if (raw.Length < size)
        {
            return;
        }

        writer.WriteStartArray("Value");
        for (var i = 0; i + size <= raw.Length; i += size)
        {
            var span = raw[i..];
            switch (vr)
            {
                case "US":
                    writer.WriteNumberValue(BinaryPrimitives.ReadUInt16LittleEndian(span));
                    break;
                case "SS":
                    writer.WriteNumberValue(BinaryPrimitives.ReadInt16LittleEndian(span));
                    break;
                case "UL":
                    writer.WriteNumberValue(BinaryPrimitives.ReadUInt32LittleEndian(span));
                    break;
                case "SL":
                    writer.WriteNumberValue(BinaryPrimitives.ReadInt32LittleEndian(span));
                    break;
                case "SV":
                    writer.WriteNumberValue(BinaryPrimitives.ReadInt64LittleEndian(span));
                    break;
                case "UV":
                    writer.WriteNumberValue(BinaryPrimitives.ReadUInt64LittleEndian(span));
                    break;
                case "FL":
                    WriteFloat(writer, BinaryPrimitives.ReadSingleLittleEndian(span));
                    break;
                default:
                    WriteFloat(writer, BinaryPrimitives.ReadDoubleLittleEndian(span));
                    break;
            }
        }

        writer.WriteEndArray();
    }

    private static void WriteFloat(Utf8JsonWriter writer, float value)
    {
        if (float.IsFinite(value))
        {
            writer.WriteNumberValue(value);
        }
        else
        {
            writer.WriteStringValue(NonFinite(value));
        }
    }

    private static void WriteFloat(Utf8JsonWriter writer, double value)
    {
        if (double.IsFinite(value))
        {
            writer.WriteNumberValue(value);
        }
        else
        {
            writer.WriteStringValue(NonFinite(value));
        }
    }

    private static string NonFinite(double value) =>
        double.IsNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity";

    private static string BulkDataUri(DicomValueElement element, string path)
    {
        if (element.BulkData is { } bulk)
        {
            var uri = new Uri(Path.GetFullPath(bulk.FilePath)).AbsoluteUri;
            return string.Create(CultureInfo.InvariantCulture, $"{uri}?offset={bulk.Offset}&length={bulk.Length}");
        }

        return "bulkdata:" + path;
    }
}
