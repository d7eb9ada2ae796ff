using System.Globalization;
using System.Text;
using CovidFunctions.Dicom.Deidentification;

namespace CovidFunctions.Dicom.Tests.Deidentification;

/// <summary>
/// The planted-PHI corpus generator (tests/data/planted-phi/README.md): writes a unique marker into every exact-tag
/// attribute of Table E.1-1 (2017c + supplement) that has a plantable VR, into private groups (creator, value, UN bytes,
/// a private sequence), into nested sequences (two levels), curves, overlays, an unlisted date, the file meta group and
/// the preamble. Markers: text <c>PHIMK####</c>, numbers <c>86753###</c>, dates <c>18870723</c>, UIDs <c>1.2.999.4242.#</c>.
/// </summary>
internal static class PlantedPhiCorpus
{
    public const string TextMarker = "PHIMK";
    public const string DateMarker = "18870723";
    public const string NumberMarker = "86753";
    public const string UidRoot = "1.2.999.4242.";

    /// <summary>One planted top-level value: the tag, the value written, and the marker text a scanner would find.</summary>
    public sealed record Planted(DicomTag Tag, DicomVR VR, string Value, string? Marker);

    public static string Text(int id) => TextMarker + id.ToString("X4", CultureInfo.InvariantCulture);

    public static List<Planted> Plant(DicomFile file)
    {
        var ds = file.Dataset;
        var planted = new List<Planted>();
        var id = 0;
        foreach (var row in AnnexEActionTable.Rows.Where(r => r.IsExactTag))
        {
            var tag = new DicomTag(row.PatternValue);
            if (tag.Group is 0x0000 or 0x0002)
            {
                continue; // command group: not a dataset attribute; meta is planted separately below
            }

            var entry = DicomDictionary.Lookup(tag);
            if (entry is null)
            {
                continue;
            }

            id++;
            var vr = entry.VR;
            var p = PlantOne(ds, tag, vr, id);
            if (p is not null)
            {
                planted.Add(p);
            }
        }

        // Private groups: creator, values, UN bytes, a private sequence with PHI inside.
        ds.SetString(new DicomTag(0x0009, 0x0010), DicomVR.LO, Text(0xF001));
        ds.SetString(new DicomTag(0x0009, 0x1001), DicomVR.LO, Text(0xF002));
        ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x0009, 0x1002), DicomVR.UN, Encoding.ASCII.GetBytes(Text(0xF003) + "X")));
        var privateItem = new DicomDataset();
        privateItem.SetString(DicomTags.PatientName, DicomVR.PN, Text(0xF004));
        ds.AddOrUpdate(new DicomSequence(new DicomTag(0x0009, 0x1003), privateItem));
        ds.SetString(new DicomTag(0x7FE1, 0x0010), DicomVR.LO, Text(0xF005));

        // Curves and overlays (repeating groups) and an unlisted attribute (Instance Creation Date).
        ds.SetString(new DicomTag(0x5000, 0x2500), DicomVR.LO, Text(0xF010));
        ds.SetString(new DicomTag(0x6000, 0x0022), DicomVR.LO, Text(0xF011));
        ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x6000, 0x3000), DicomVR.OW, Encoding.ASCII.GetBytes(Text(0xF012) + "X")));
        ds.SetString(new DicomTag(0x6000, 0x4000), DicomVR.LT, Text(0xF013));
        ds.SetString(new DicomTag(0x0008, 0x0012), DicomVR.DA, DateMarker);
        ds.SetString(new DicomTag(0x0008, 0x0013), DicomVR.TM, "101010");

        // Nested sequences: a kept reference sequence with PHI two levels deep.
        var level2 = new DicomDataset();
        level2.SetString(DicomTags.ReferencedSOPInstanceUID, DicomVR.UI, UidRoot + "90002");
        level2.SetString(DicomTags.PersonName, DicomVR.PN, Text(0xF020));
        level2.SetString(DicomTags.PatientBirthDate, DicomVR.DA, DateMarker);
        level2.SetString(new DicomTag(0x0011, 0x0010), DicomVR.LO, Text(0xF021));
        var level1 = new DicomDataset();
        level1.SetString(DicomTags.ReferencedSOPClassUID, DicomVR.UI, "1.2.840.10008.5.1.4.1.1.2");
        level1.SetString(DicomTags.ReferencedSOPInstanceUID, DicomVR.UI, UidRoot + "90001");
        level1.SetString(DicomTags.InstitutionName, DicomVR.LO, Text(0xF022));
        level1.SetString(DicomTags.CodeMeaning, DicomVR.LO, Text(0xF023));
        level1.AddOrUpdate(new DicomSequence(DicomTags.SourceImageSequence, level2));
        ds.AddOrUpdate(new DicomSequence(DicomTags.ReferencedImageSequence, level1));

        // File meta group and preamble.
        file.FileMetaInformation.SetString(DicomTags.SourceApplicationEntityTitle, DicomVR.AE, Text(0xF030));
        file.FileMetaInformation.SetString(DicomTags.ImplementationVersionName, DicomVR.SH, Text(0xF031));
        if (ds.TryGetString(DicomTags.SOPInstanceUID, out var sop))
        {
            file.FileMetaInformation.SetString(DicomTags.MediaStorageSOPInstanceUID, DicomVR.UI, sop);
        }

        var preamble = new byte[128];
        Encoding.ASCII.GetBytes(Text(0xF032)).CopyTo(preamble, 0);
        file.Preamble = preamble;
        return planted;
    }

    private static Planted? PlantOne(DicomDataset ds, DicomTag tag, DicomVR vr, int id)
    {
        var text = Text(id);
        string? value = vr.Code switch
        {
            "PN" => text + "^" + text,
            "AE" or "CS" or "SH" or "LO" or "LT" or "ST" or "UT" or "UC" => text,
            "UR" => "http://" + text + ".example",
            "DA" => DateMarker,
            "DT" => DateMarker + "101010",
            "TM" => "101010",
            "UI" => UidRoot + id.ToString(CultureInfo.InvariantCulture),
            "AS" => "087Y",
            "IS" or "DS" => NumberMarker + id.ToString("D3", CultureInfo.InvariantCulture),
            _ => null,
        };

        if (vr == DicomVR.SQ)
        {
            var item = new DicomDataset();
            item.SetString(DicomTags.PersonName, DicomVR.PN, text + "^SQ");
            item.SetString(DicomTags.CodeMeaning, DicomVR.LO, text + "CM");
            item.SetString(DicomTags.ReferencedSOPInstanceUID, DicomVR.UI, UidRoot + "1" + id.ToString(CultureInfo.InvariantCulture));
            item.SetString(new DicomTag(0x0019, 0x0010), DicomVR.LO, text + "PV");
            ds.AddOrUpdate(new DicomSequence(tag, item));
            return new Planted(tag, vr, text, text);
        }

        if (vr == DicomVR.OB || vr == DicomVR.UN)
        {
            ds.AddOrUpdate(new DicomValueElement(tag, vr, Encoding.ASCII.GetBytes(text + "X")));
            return new Planted(tag, vr, text, text);
        }

        if (value is null)
        {
            return null;
        }

        ds.SetString(tag, vr, value);
        var marker = vr.Code switch
        {
            "DA" or "DT" => DateMarker,
            "TM" or "AS" => null,
            "UI" => value,
            "IS" or "DS" => value,
            _ => text,
        };
        return new Planted(tag, vr, value, marker);
    }

    /// <summary>Every marker found in the bytes (text markers with their id, number markers, UIDs under the marker root, the date marker).</summary>
    public static List<string> Scan(ReadOnlySpan<byte> bytes)
    {
        var found = new List<string>();
        var text = Encoding.Latin1.GetString(bytes);
        Collect(text, TextMarker, 4, found);
        Collect(text, NumberMarker, 3, found);
        Collect(text, DateMarker, 0, found);
        var i = 0;
        while ((i = text.IndexOf(UidRoot, i, StringComparison.Ordinal)) >= 0)
        {
            var end = i + UidRoot.Length;
            while (end < text.Length && (char.IsAsciiDigit(text[end]) || text[end] == '.'))
            {
                end++;
            }

            found.Add(text[i..end]);
            i = end;
        }

        return found;
    }

    private static void Collect(string text, string marker, int suffix, List<string> found)
    {
        var i = 0;
        while ((i = text.IndexOf(marker, i, StringComparison.Ordinal)) >= 0)
        {
            var end = Math.Min(text.Length, i + marker.Length + suffix);
            found.Add(text[i..end]);
            i += marker.Length;
        }
    }
}
