using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using CovidFunctions.Dicom.Text;

namespace CovidFunctions.Dicom.Tests.Peers;

/// <summary>
/// Our side of the peer comparison: the element list of a <see cref="DicomFile"/> in exactly the normalized shape
/// that tests/peers/pydicom_elements.py and dcmdump_elements.py print (see their docstrings).
/// </summary>
internal static class PeerNormalizer
{
    private static readonly DicomTag PixelData = new(0x7FE0, 0x0010);
    private static readonly DicomTag SpecificCharacterSet = new(0x0008, 0x0005);

    /// <summary>pydicom shape: meta group then dataset.</summary>
    public static JsonArray ForPydicom(DicomFile file)
    {
        var implicitVr = !(file.ReadTransferSyntax ?? file.TransferSyntax).IsExplicitVR;
        var list = new JsonArray();
        foreach (var element in file.FileMetaInformation)
        {
            list.Add(PydicomElement(element, DicomEncoding.Default, implicitVr: false));
        }

        foreach (var element in file.Dataset)
        {
            if (element.Tag.Group == 0x0002 && file.FileMetaInformation.Contains(element.Tag))
            {
                continue;
            }

            list.Add(PydicomElement(element, file.Dataset.CharacterSet, implicitVr));
        }

        return list;
    }

    private static JsonObject PydicomElement(DicomElement element, DicomEncoding charset, bool implicitVr)
    {
        var tag = element.Tag.Value.ToString("X8", CultureInfo.InvariantCulture);
        var node = new JsonObject { ["t"] = tag, ["vr"] = element.VR.Code };
        switch (element)
        {
            case DicomSequence sequence:
                node["vr"] = "SQ";
                var items = new JsonArray();
                foreach (var item in sequence.Items)
                {
                    var list = new JsonArray();
                    foreach (var child in item)
                    {
                        list.Add(PydicomElement(child, item.CharacterSet, implicitVr));
                    }

                    items.Add(list);
                }

                node["items"] = items;
                return node;
            case DicomFragmentSequence fragments:
                node["bot"] = fragments.BasicOffsetTable.Length;
                var frags = new JsonArray();
                foreach (var fragment in fragments.Fragments)
                {
                    var bytes = fragment.RawValue.Span;
                    frags.Add(new JsonArray(bytes.Length, Sha1(bytes)));
                }

                node["frags"] = frags;
                return node;
        }

        var value = (DicomValueElement)element;
        var raw = value.RawValue.Span;
        if (implicitVr)
        {
            node["raw"] = new JsonArray(raw.Length, Sha1(raw));
            if (element.Tag.IsPrivate && !element.Tag.IsPrivateCreator)
            {
                node["vr"] = "*";
                return node;
            }
        }

        var vr = element.VR.Code;
        if (element.VR.IsString)
        {
            var text = (element.Tag == SpecificCharacterSet ? DicomEncoding.Default : charset).Decode(raw, vr);
            node["v"] = StringValues(text, vr);
            return node;
        }

        switch (vr)
        {
            case "US" or "SS" or "UL" or "SL" or "FL" or "FD" or "SV" or "UV":
                node["v"] = Numbers(vr, raw);
                return node;
            case "AT":
                var tags = new JsonArray();
                for (var i = 0; i + 4 <= raw.Length; i += 4)
                {
                    var g = BinaryPrimitives.ReadUInt16LittleEndian(raw[i..]);
                    var e = BinaryPrimitives.ReadUInt16LittleEndian(raw[(i + 2)..]);
                    tags.Add((((uint)g << 16) | e).ToString("X8", CultureInfo.InvariantCulture));
                }

                node["v"] = tags;
                return node;
            default:
                node["len"] = raw.Length;
                node["sha1"] = Sha1(raw);
                return node;
        }
    }

    /// <summary>Split, trim and PN rules of pydicom_elements.py's norm_text.</summary>
    public static JsonArray StringValues(string text, string vr)
    {
        var isText = vr is "LT" or "ST" or "UT";
        var single = isText || vr == "UR";
        var parts = single ? [text] : text.Split('\\');
        var values = new JsonArray();
        foreach (var part in parts)
        {
            var s = part.TrimEnd(' ', '\0');
            if (!isText)
            {
                s = s.TrimStart(' ');
            }

            if (vr == "PN")
            {
                s = s.TrimEnd('=');
            }

            values.Add(s);
        }

        if (values.Count == 1 && values[0]!.GetValue<string>().Length == 0)
        {
            values.Clear();
        }

        return values;
    }

    private static JsonArray Numbers(string vr, ReadOnlySpan<byte> raw)
    {
        var size = vr switch
        {
            "US" or "SS" => 2,
            "UL" or "SL" or "FL" => 4,
            _ => 8,
        };
        var values = new JsonArray();
        for (var i = 0; i + size <= raw.Length; i += size)
        {
            var s = raw[i..];
            values.Add(vr switch
            {
                "US" => JsonValue.Create(BinaryPrimitives.ReadUInt16LittleEndian(s)),
                "SS" => JsonValue.Create(BinaryPrimitives.ReadInt16LittleEndian(s)),
                "UL" => JsonValue.Create(BinaryPrimitives.ReadUInt32LittleEndian(s)),
                "SL" => JsonValue.Create(BinaryPrimitives.ReadInt32LittleEndian(s)),
                "SV" => JsonValue.Create(BinaryPrimitives.ReadInt64LittleEndian(s)),
                "UV" => JsonValue.Create(BinaryPrimitives.ReadUInt64LittleEndian(s)),
                "FL" => Real(BinaryPrimitives.ReadSingleLittleEndian(s)),
                _ => Real(BinaryPrimitives.ReadDoubleLittleEndian(s)),
            });
        }

        return values;
    }

    private static JsonNode Real(double d) =>
        double.IsNaN(d) ? JsonValue.Create("NaN") : double.IsPositiveInfinity(d) ? JsonValue.Create("Infinity")
        : double.IsNegativeInfinity(d) ? JsonValue.Create("-Infinity") : JsonValue.Create(d);

    /// <summary>dcmdump shape (structural): tag, VR, value length as stored, items, fragment lengths, ASCII strings.</summary>
    public static JsonArray ForDcmdump(DicomFile file)
    {
        var list = new JsonArray();
        foreach (var element in file.FileMetaInformation)
        {
            list.Add(DcmdumpElement(element, DicomEncoding.Default));
        }

        foreach (var element in file.Dataset)
        {
            if (element.Tag.Group == 0x0002 && file.FileMetaInformation.Contains(element.Tag))
            {
                continue;
            }

            list.Add(DcmdumpElement(element, file.Dataset.CharacterSet));
        }

        return list;
    }

    private static JsonObject DcmdumpElement(DicomElement element, DicomEncoding charset)
    {
        var node = new JsonObject { ["t"] = element.Tag.Value.ToString("X8", CultureInfo.InvariantCulture), ["vr"] = element.VR.Code };
        switch (element)
        {
            case DicomSequence sequence:
                node["vr"] = "SQ";
                var items = new JsonArray();
                foreach (var item in sequence.Items)
                {
                    var list = new JsonArray();
                    foreach (var child in item)
                    {
                        list.Add(DcmdumpElement(child, item.CharacterSet));
                    }

                    items.Add(list);
                }

                node["items"] = items;
                return node;
            case DicomFragmentSequence fragments:
                var frags = new JsonArray { fragments.BasicOffsetTable.Length };
                foreach (var fragment in fragments.Fragments)
                {
                    frags.Add(fragment.Length);
                }

                node["frags"] = frags;
                return node;
        }

        var value = (DicomValueElement)element;
        node["len"] = value.Length;
        if (element.VR.IsString)
        {
            var raw = value.RawValue.Span;
            if (!raw.ContainsAnyExceptInRange((byte)0x20, (byte)0x7E))
            {
                node["s"] = string.Join('\\', StringValues(DicomEncoding.Default.Decode(raw, element.VR.Code), element.VR.Code).Select(v => v!.GetValue<string>()));
            }
        }

        return node;
    }

    public static string Sha1(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA1.HashData(bytes));
}
