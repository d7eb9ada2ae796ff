using System.Text;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Dicom.Tests.IO;

namespace CovidFunctions.Dicom.Tests.Deidentification;

/// <summary>
/// Probes written the way a held-out PHI test set would be: valid (or tolerated) files that hide identifying text where a
/// table-driven de-identifier does not look by default (a sequence re-encoded as UN, a kept UID attribute re-encoded as UN,
/// the file meta version, pixel data inside an item, Image Type values, identifiers split into small numbers). Each file
/// is read, de-identified and written as bytes; the markers must be absent from those bytes.
/// </summary>
public sealed class AdversarialProbeTests
{
    private const string ExplicitLittle = "1.2.840.10008.1.2.1";
    private const string ExplicitBig = "1.2.840.10008.1.2.2";

    /// <summary>
    /// A sequence re-encoded as UN with a defined length (PS3.5 6.2.2: its items are implicit VR little endian, whatever
    /// the file's encoding), as a node that did not know the tag writes it. Before: the value stayed raw bytes, so a
    /// keep-list sequence (functional groups, CT acquisition) kept whatever its items held.
    /// </summary>
    [Theory]
    [InlineData(0x5200, 0x9229, ExplicitLittle)] // Shared Functional Groups Sequence (keep-list)
    [InlineData(0x0018, 0x9301, ExplicitLittle)] // CT Acquisition Type Sequence (keep-list)
    [InlineData(0x0018, 0x9301, ExplicitBig)]
    [InlineData(0x0008, 0x1140, ExplicitLittle)] // Referenced Image Sequence (X/Z/U*: kept, UIDs remapped)
    public void SequenceEncodedAsUN_ItsItemsAreDeidentified(ushort group, ushort element, string transferSyntax)
    {
        var item = new DicomBytes(explicitVR: false)
            .Text(0x0008, 0x0080, "LO", "UNSEQHOSPITAL")
            .Text(0x0008, 0x1155, "UI", "1.2.826.0.1.3680043.99.555777", 0)
            .Text(0x0018, 0x9302, "CS", "SPIRAL")
            .Text(0x0040, 0xA123, "PN", "UNSEQPERSON^X")
            .ToArray();
        var items = new DicomBytes(explicitVR: false).ItemStart((uint)item.Length).Raw(item).ToArray();
        var file = CtFile(transferSyntax, b => b.Element(group, element, "UN", items));

        var written = DeidentifyToBytes(file, out var output);

        AssertAbsent(written, "UNSEQHOSPITAL", "UNSEQPERSON", "555777");
        var sequence = Assert.IsType<DicomSequence>(output.Dataset.Single(e => e.Tag == new DicomTag(group, element)));
        var outItem = Assert.Single(sequence.Items);
        Assert.Equal("ANONYMIZED", outItem.GetString(new DicomTag(0x0040, 0xA123))); // Person Name: D
        if (group == 0x0018)
        {
            Assert.Equal("SPIRAL", outItem.GetString(new DicomTag(0x0018, 0x9302))); // a kept attribute survives the parse
        }
        else if (group == 0x0008)
        {
            Assert.StartsWith("2.25.", outItem.GetString(new DicomTag(0x0008, 0x1155)), StringComparison.Ordinal);
        }
    }

    /// <summary>A UN-encoded sequence whose bytes are not items cannot be inspected: it is removed, not kept as bytes.</summary>
    [Fact]
    public void SequenceEncodedAsUN_ThatIsNotItems_IsRemoved()
    {
        var file = CtFile(ExplicitLittle, b => b.Element(0x5200, 0x9229, "UN", Encoding.ASCII.GetBytes("NOTITEMSPHIMARKER1")));

        var written = DeidentifyToBytes(file, out var output);

        AssertAbsent(written, "NOTITEMSPHIMARKER1");
        Assert.False(output.Dataset.Contains(new DicomTag(0x5200, 0x9229)));
    }

    /// <summary>
    /// A kept UID attribute (Referenced SOP Class UID, keep-list) re-encoded as UN holding a site UID: before, the keep
    /// path looked at the element's VR (UN), not the dictionary's (UI), and kept the bytes verbatim.
    /// </summary>
    [Fact]
    public void KeptUidEncodedAsUN_IsRemapped()
    {
        var siteUid = Encoding.ASCII.GetBytes("1.2.826.0.1.3680043.444666888\0");
        var item = new DicomBytes(explicitVR: true)
            .Element(0x0008, 0x1150, "UN", siteUid)
            .Text(0x0008, 0x1155, "UI", "1.2.826.0.1.3680043.99.3", 0)
            .ToArray();
        var file = CtFile(ExplicitLittle, b =>
        {
            b.Element(0x0008, 0x1140, "SQ", new DicomBytes().ItemStart((uint)item.Length).Raw(item).ToArray());
            b.Element(0x0008, 0x1150, "UN", siteUid);
        });

        var written = DeidentifyToBytes(file, out var output);

        AssertAbsent(written, "444666888");
        Assert.StartsWith("2.25.", output.Dataset.GetString(new DicomTag(0x0008, 0x1150)), StringComparison.Ordinal);
    }

    /// <summary>
    /// The file meta group's structure attributes are written by us, not carried over: before, (0002,0001) File Meta
    /// Information Version (OB, any bytes) and a non-CT (0002,0002) were kept as read.
    /// </summary>
    [Fact]
    public void FileMetaStructure_IsRewritten()
    {
        var file = CtFile(ExplicitLittle, _ => { });
        file.FileMetaInformation.AddOrUpdate(new DicomValueElement(new DicomTag(0x0002, 0x0001), DicomVR.OB, Encoding.ASCII.GetBytes("\0\u0001METAVERSIONPHI1")));
        file.FileMetaInformation.SetString(new DicomTag(0x0002, 0x0002), DicomVR.UI, "1.2.826.0.1.3680043.123454321");

        var written = DeidentifyToBytes(file, out var output);

        AssertAbsent(written, "METAVERSIONPHI1", "123454321");
        Assert.True(output.FileMetaInformation.TryGet(new DicomTag(0x0002, 0x0001), out var version));
        Assert.Equal(new byte[] { 0, 1 }, Assert.IsType<DicomValueElement>(version).RawValue.ToArray());
        Assert.Equal(DeidentificationEngine.CtImageStorage, output.FileMetaInformation.GetString(new DicomTag(0x0002, 0x0002)));
    }

    /// <summary>
    /// Pixel Data belongs to the top level (an Icon Image Sequence is removed whole); inside any other item it is an image
    /// nobody inspects. Before, the keep-list kept (7FE0,0010) at any depth.
    /// </summary>
    [Fact]
    public void PixelDataInsideAnItem_IsRemoved()
    {
        var file = CtFile(ExplicitLittle, _ => { });
        var item = new DicomDataset();
        item.AddOrUpdate(new DicomValueElement(new DicomTag(0x7FE0, 0x0010), DicomVR.OB, Encoding.ASCII.GetBytes("NESTEDPIXELPHI")));
        item.SetValues(new DicomTag(0x0028, 0x0010), DicomVR.US, 1);
        file.Dataset.AddOrUpdate(new DicomSequence(new DicomTag(0x5200, 0x9229), [item]));

        var written = DeidentifyToBytes(file, out var output);

        AssertAbsent(written, "NESTEDPIXELPHI");
        Assert.True(output.Dataset.Contains(new DicomTag(0x7FE0, 0x0010))); // the image itself stays
    }

    /// <summary>
    /// Image Type (and Frame Type) values after the second are defined terms (AXIAL, LOCALIZER, VOLUME...) and reach the
    /// status document through the series report; anything else in them (a name) is emptied, keeping the positions.
    /// </summary>
    [Fact]
    public void ImageTypeValues_OutsideTheDefinedTerms_AreEmptied()
    {
        var file = CtFile(ExplicitLittle, _ => { });
        file.Dataset.SetValues(new DicomTag(0x0008, 0x0008), DicomVR.CS, "ORIGINAL", "PRIMARY", "AXIAL", "SMITHJOHNNY");
        var kept = new DicomDataset();
        kept.SetValues(new DicomTag(0x0008, 0x9007), DicomVR.CS, "ORIGINAL", "PRIMARY", "DOEJANE", "NONE");
        var frame = new DicomDataset();
        frame.SetValues(new DicomTag(0x0008, 0x9007), DicomVR.CS, "ORIGINAL", "PRIMARY", "VOLUME", "JONESMARY");
        var group = new DicomDataset();
        group.AddOrUpdate(new DicomSequence(new DicomTag(0x0018, 0x9329), [frame]));
        file.Dataset.AddOrUpdate(new DicomSequence(new DicomTag(0x5200, 0x9229), [group]));
        var perFrame = new DicomDataset();
        perFrame.AddOrUpdate(new DicomSequence(new DicomTag(0x0018, 0x9329), [kept]));
        file.Dataset.AddOrUpdate(new DicomSequence(new DicomTag(0x5200, 0x9230), [perFrame]));

        var written = DeidentifyToBytes(file, out var output);

        AssertAbsent(written, "SMITHJOHNNY", "JONESMARY", "DOEJANE");
        var outKept = output.Dataset.GetSequence(new DicomTag(0x5200, 0x9230)).Items[0].GetSequence(new DicomTag(0x0018, 0x9329)).Items[0];
        Assert.Equal(["ORIGINAL", "PRIMARY", "", "NONE"], outKept.GetStrings(new DicomTag(0x0008, 0x9007)));
        Assert.Equal(["ORIGINAL", "PRIMARY", "AXIAL"], output.Dataset.GetStrings(new DicomTag(0x0008, 0x0008)));
        var outFrame = output.Dataset.GetSequence(new DicomTag(0x5200, 0x9229)).Items[0].GetSequence(new DicomTag(0x0018, 0x9329)).Items[0];
        Assert.Equal(["ORIGINAL", "PRIMARY", "VOLUME"], outFrame.GetStrings(new DicomTag(0x0008, 0x9007)));
    }

    /// <summary>
    /// PHI in the file's own character set (single-byte, UTF-8, GB18030, ISO 2022 with escape sequences, PN with
    /// alphabetic=ideographic=phonetic groups), at the top level and in items, one item declaring its own charset. The
    /// markers are searched for as the bytes the file holds (and as UTF-8, in case a value were transcoded): the scan first
    /// proves it finds them in the input, so a leak in Latin-1 or JIS bytes cannot be missed by looking for UTF-8 only.
    /// </summary>
    [Theory]
    [InlineData("ISO_IR 100", "Müllerstraße^Jürgen", "Bäckerstraßeklinik")]
    [InlineData("ISO_IR 192", "Wałęsański^Józef=Валенса^Юзеф", "Klinikażółćgęśląjaźń")]
    [InlineData("GB18030", "王小明一^二三=王^小明", "北京协和医院放射科")]
    [InlineData("\\ISO 2022 IR 87", "Yamadayoshi^Tarou=山田義^太郎=やまだ^たろう", "東京第一病院放射線科")]
    [InlineData("ISO 2022 IR 13\\ISO 2022 IR 87", "Yamadayoshi^Tarou=山田義^太郎=ﾔﾏﾀﾞ^ﾀﾛｳ", "東京第一病院放射線科")]
    [InlineData("\\ISO 2022 IR 149", "Hongkildong^Gildong=洪吉童^吉童=홍길동^길동", "서울대학교병원영상")]
    [InlineData("ISO_IR 144", "Иванович^Пётр", "Больницаимени")]
    [InlineData("ISO_IR 126", "Παπαδόπουλος^Γιώργος", "Νοσοκομείοαθηνών")]
    [InlineData("ISO_IR 127", "محمدالعربي^علي", "مستشفىالملك")]
    [InlineData("ISO_IR 138", "כהןשמואל^משה", "ביתחוליםהדסה")]
    public void PhiInTheFilesCharacterSet_IsAbsentInThatEncoding(string charset, string name, string place)
    {
        var ds = DeidentificationEngineTests.CtDataset();
        ds.SetValues(new DicomTag(0x0008, 0x0005), DicomVR.CS, charset.Split('\\'));
        foreach (var (tag, vr, text) in new[]
        {
            (new DicomTag(0x0010, 0x0010), DicomVR.PN, name), (new DicomTag(0x0010, 0x1001), DicomVR.PN, name),
            (new DicomTag(0x0008, 0x0090), DicomVR.PN, name), (new DicomTag(0x0008, 0x0080), DicomVR.LO, place),
            (new DicomTag(0x0008, 0x1030), DicomVR.LO, "CHEST " + place), (new DicomTag(0x0020, 0x4000), DicomVR.LT, place),
        })
        {
            ds.SetString(tag, vr, text);
        }

        var item = new DicomDataset();
        ds.AddOrUpdate(new DicomSequence(new DicomTag(0x0008, 0x1110), [item])); // Referenced Study Sequence
        item.SetString(new DicomTag(0x0008, 0x0080), DicomVR.LO, place);
        item.SetString(new DicomTag(0x0040, 0xA123), DicomVR.PN, name);
        var utf8Item = new DicomDataset();
        ds.AddOrUpdate(new DicomSequence(new DicomTag(0x0008, 0x1140), [utf8Item])); // Referenced Image Sequence
        utf8Item.SetString(new DicomTag(0x0008, 0x0005), DicomVR.CS, "ISO_IR 192");
        utf8Item.SetString(new DicomTag(0x0008, 0x0080), DicomVR.LO, "Item" + place);
        var file = new DicomFile(ds);
        var encoding = CovidFunctions.Dicom.Text.DicomEncoding.FromSpecificCharacterSet(charset.Split('\\'));
        var markers = new[]
        {
            encoding.Encode(name, "PN"), encoding.Encode(place, "LO"), Encoding.UTF8.GetBytes(name), Encoding.UTF8.GetBytes(place),
        };
        using (var before = new MemoryStream())
        {
            file.Write(before);
            Assert.True(Contains(before.ToArray(), markers[0]) && Contains(before.ToArray(), markers[1]), "the scan does not see the input's own bytes");
            Assert.True(Contains(before.ToArray(), Encoding.UTF8.GetBytes("Item" + place)));
        }

        DeidentifyToBytes(file, out _);
        using var after = new MemoryStream();
        file.Write(after);
        var written = after.ToArray();

        Assert.All(markers, m => Assert.False(Contains(written, m), $"{charset}: a value survives de-identification"));
        Assert.Equal(charset, file.Dataset.GetString(new DicomTag(0x0008, 0x0005))); // the charset itself is kept
    }

    /// <summary>
    /// Retain Patient Characteristics (113108, on by default) keeps sex, age, size, weight, smoking status, sex neutered and
    /// pregnancy status: characteristics, not whatever text a writer put there. A value that is not one (a name in Patient's
    /// Sex, an MRN in Patient's Age) is emptied; a real one stays. Before: kept verbatim.
    /// </summary>
    [Fact]
    public void PatientCharacteristics_ThatAreNotCharacteristics_AreEmptied()
    {
        var ds = DeidentificationEngineTests.CtDataset();
        ds.SetString(new DicomTag(0x0010, 0x0040), DicomVR.CS, "SMITHJOHN");
        ds.SetString(new DicomTag(0x0010, 0x1010), DicomVR.AS, "MRN4455");
        ds.SetString(new DicomTag(0x0010, 0x1020), DicomVR.DS, "Doe^Jane");
        ds.SetString(new DicomTag(0x0010, 0x1030), DicomVR.DS, "72.5");
        ds.SetString(new DicomTag(0x0010, 0x21A0), DicomVR.CS, "CALLDRWHO");
        ds.SetString(new DicomTag(0x0010, 0x2203), DicomVR.CS, "ALTERED");
        ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x0010, 0x21C0), DicomVR.US, "PREGNANTPHI1"u8.ToArray()));
        var file = new DicomFile(ds);

        var written = DeidentifyToBytes(file, out var output);

        AssertAbsent(written, "SMITHJOHN", "MRN4455", "Doe^Jane", "CALLDRWHO", "PREGNANTPHI1");
        Assert.Equal(string.Empty, output.Dataset.GetString(new DicomTag(0x0010, 0x0040)));
        Assert.Equal(string.Empty, output.Dataset.GetString(new DicomTag(0x0010, 0x1010)));
        Assert.Equal("72.5", output.Dataset.GetString(new DicomTag(0x0010, 0x1030)));
        Assert.Equal("ALTERED", output.Dataset.GetString(new DicomTag(0x0010, 0x2203)));

        var real = DeidentificationEngineTests.CtDataset(); // M, 060Y
        DeidentifyToBytes(new DicomFile(real), out var realOutput);
        Assert.Equal("M", realOutput.Dataset.GetString(new DicomTag(0x0010, 0x0040)));
        Assert.Equal("060Y", realOutput.Dataset.GetString(new DicomTag(0x0010, 0x1010)));
    }

    /// <summary>
    /// CT is monochrome: palette color lookup tables (any bytes, a place to hide text) have no use and are removed; they were
    /// on the keep-list.
    /// </summary>
    [Fact]
    public void PaletteLookupTables_AreRemoved()
    {
        var ds = DeidentificationEngineTests.CtDataset();
        ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x0028, 0x1201), DicomVR.OW, "PALETTEREDPHI1"u8.ToArray()));
        ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x0028, 0x1101), DicomVR.US, new byte[6]));

        var written = DeidentifyToBytes(new DicomFile(ds), out var output);

        AssertAbsent(written, "PALETTEREDPHI1");
        Assert.False(output.Dataset.Contains(new DicomTag(0x0028, 0x1101)));
    }

    private static bool Contains(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle) >= 0;

    /// <summary>A CT instance: explicit VR bytes with the policy's attributes, then <paramref name="more"/>, then pixels.</summary>
    private static DicomFile CtFile(string transferSyntax, Action<DicomBytes> more)
    {
        var b = DicomBytes.Part10(transferSyntax)
            .Text(0x0008, 0x0008, "CS", "ORIGINAL\\PRIMARY\\AXIAL")
            .Text(0x0008, 0x0016, "UI", DeidentificationEngine.CtImageStorage, 0)
            .Text(0x0008, 0x0018, "UI", "1.2.826.0.1.3680043.99.1", 0)
            .Text(0x0008, 0x0060, "CS", "CT")
            .Text(0x0010, 0x0010, "PN", "Probe^Patient")
            .Text(0x0010, 0x0020, "LO", "PROBEPID01");
        more(b);
        b.UShort(0x0028, 0x0010, 2).UShort(0x0028, 0x0011, 2).UShort(0x0028, 0x0100, 16);
        b.Element(0x7FE0, 0x0010, "OW", new byte[8]);
        return DicomFile.Read(b.ToStream());
    }

    private static string DeidentifyToBytes(DicomFile file, out DicomFile output, DeidentificationOptions? options = null)
    {
        var outcome = new DeidentificationEngine(DeidentificationEngineTests.Key, options).DeidentifyFile(file);
        Assert.True(outcome.Accepted, outcome.Rejection?.Message);
        using var stream = new MemoryStream();
        file.Write(stream);
        var bytes = stream.ToArray();
        output = DicomFile.Read(new MemoryStream(bytes, writable: false));
        return Encoding.Latin1.GetString(bytes);
    }

    private static void AssertAbsent(string written, params string[] markers)
    {
        foreach (var marker in markers)
        {
            Assert.False(written.Contains(marker, StringComparison.Ordinal), $"'{marker}' survives de-identification");
        }
    }
}
