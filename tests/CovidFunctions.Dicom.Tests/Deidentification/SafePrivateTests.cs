using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Dicom.Tests.Deidentification;

/// <summary>The Retain Safe Private Option (113111) and its generated PS3.15 Table E.3.10-1.</summary>
public sealed class SafePrivateTests
{
    // GEMS_ACQU_01 (0019,xx23) Table Speed and (0019,xx24) Mid Scan Time are rows of Table E.3.10-1; (0019,xx10) is not.
    private const string Gems = "GEMS_ACQU_01";

    private static DicomDataset WithPrivate(ushort block)
    {
        var ds = DeidentificationEngineTests.CtDataset();
        ds.SetString(new DicomTag(0x0019, block), DicomVR.LO, Gems + " "); // padded, as written on the wire
        ds.SetString(new DicomTag(0x0019, (ushort)((block << 8) | 0x23)), DicomVR.DS, "39.375");
        ds.SetString(new DicomTag(0x0019, (ushort)((block << 8) | 0x10)), DicomVR.LO, "Doe^John"); // unsafe, same block
        ds.SetString(new DicomTag(0x0029, 0x0010), DicomVR.LO, "SIEMENS CSA HEADER"); // another block, not in the table
        ds.SetString(new DicomTag(0x0029, 0x1023), DicomVR.DS, "1.0");
        ds.SetString(new DicomTag(0x0019, (ushort)(block + 1)), DicomVR.LO, "ACME_SECRET"); // other creator, same group
        ds.SetString(new DicomTag(0x0019, (ushort)(((block + 1) << 8) | 0x23)), DicomVR.DS, "12.5"); // right offset, wrong creator
        return ds;
    }

    [Fact]
    public void Table_IsGenerated_FromPinnedEdition()
    {
        Assert.Equal(AnnexEActionTable.Edition, SafePrivateAttributes.Edition);
        Assert.Equal(AnnexEActionTable.SourceSha256, SafePrivateAttributes.SourceSha256);
        Assert.Equal(SafePrivateAttributes.StandardRowCount, SafePrivateAttributes.Rows.Count);
        Assert.True(SafePrivateAttributes.Rows.Count > 100);
        Assert.All(SafePrivateAttributes.Rows, r => Assert.Equal(1, r.Group & 1));
        Assert.True(SafePrivateAttributes.IsSafe(0x0019, "GEMS_ACQU_01", 0x23));
        Assert.True(SafePrivateAttributes.IsSafe(0x0019, "GEMS_ACQU_01 ", 0x23));
        Assert.False(SafePrivateAttributes.IsSafe(0x0019, "gems_acqu_01", 0x23)); // case-sensitive
        Assert.False(SafePrivateAttributes.IsSafe(0x0019, "GEMS_ACQU_01", 0x10));
        Assert.False(SafePrivateAttributes.IsSafe(0x0021, "GEMS_ACQU_01", 0x23));
        Assert.True(SafePrivateAttributes.IsSafe(0x2001, "Philips Imaging DD 001", 0x03));
        Assert.True(SafePrivateAttributes.IsSafe(0x0019, "SIEMENS MR HEADER", 0x0C));
    }

    [Fact]
    public void OptionOff_RemovesEveryPrivateElement()
    {
        var ds = WithPrivate(0x10);
        var outcome = new DeidentificationEngine(DeidentificationEngineTests.Key).Deidentify(ds);

        Assert.True(outcome.Accepted);
        Assert.DoesNotContain(ds, e => e.Tag.IsPrivate);
        Assert.DoesNotContain("113111", outcome.Audit!.OptionCodes);
        Assert.DoesNotContain(
            ds.GetSequence(DicomTags.DeidentificationMethodCodeSequence).Items, i => i.GetString(DicomTags.CodeValue) == "113111");
    }

    [Theory]
    [InlineData((ushort)0x10)]
    [InlineData((ushort)0x11)]
    [InlineData((ushort)0x42)]
    public void OptionOn_KeepsOnlySafeElementAndItsCreator(ushort block)
    {
        var ds = WithPrivate(block);
        var outcome = new DeidentificationEngine(DeidentificationEngineTests.Key, new DeidentificationOptions { RetainSafePrivate = true })
            .Deidentify(ds);

        Assert.True(outcome.Accepted);
        var creator = new DicomTag(0x0019, block);
        var safe = new DicomTag(0x0019, (ushort)((block << 8) | 0x23));
        Assert.Equal([creator, safe], ds.Where(e => e.Tag.IsPrivate).Select(e => e.Tag).ToArray());
        Assert.Equal(Gems, ds.GetString(creator));
        Assert.Equal("39.375", ds.GetString(safe));
        Assert.Contains("113111", outcome.Audit!.OptionCodes);
        var codes = ds.GetSequence(DicomTags.DeidentificationMethodCodeSequence).Items.Select(i => i.GetString(DicomTags.CodeValue)!).ToArray();
        Assert.Equal(["113100", "113105", "113107", "113108", "113111"], codes);
        var item = ds.GetSequence(DicomTags.DeidentificationMethodCodeSequence).Items.Single(i => i.GetString(DicomTags.CodeValue) == "113111");
        Assert.Equal("Retain Safe Private Option", item.GetString(DicomTags.CodeMeaning));
        Assert.Contains(ds.GetStrings(DicomTags.DeidentificationMethod), v => v.Contains("113111", StringComparison.Ordinal));
        Assert.All(ds.GetStrings(DicomTags.DeidentificationMethod), v => Assert.True(v.Length <= 64));
    }

    [Fact]
    public void OptionOn_WrongCaseCreatorOrOrphanElement_IsRemoved()
    {
        var ds = DeidentificationEngineTests.CtDataset();
        ds.SetString(new DicomTag(0x0019, 0x0010), DicomVR.LO, "gems_acqu_01");
        ds.SetString(new DicomTag(0x0019, 0x1023), DicomVR.DS, "39.375");
        ds.SetString(new DicomTag(0x0043, 0x1027), DicomVR.SH, "1.375:1"); // GEMS_PARM_01 offset, but no creator at all
        new DeidentificationEngine(DeidentificationEngineTests.Key, new DeidentificationOptions { RetainSafePrivate = true }).Deidentify(ds);

        Assert.DoesNotContain(ds, e => e.Tag.IsPrivate);
    }

    [Fact]
    public void OptionOn_SafeElementInsideSequenceItem_IsKeptAndItemDeidentified()
    {
        var ds = DeidentificationEngineTests.CtDataset();
        var item = new DicomDataset();
        item.SetString(new DicomTag(0x2001, 0x0011), DicomVR.LO, "Philips Imaging DD 001");
        item.AddOrUpdate(new DicomValueElement(new DicomTag(0x2001, 0x1103), DicomVR.FL, BitConverter.GetBytes(1000f)));
        item.SetString(new DicomTag(0x2001, 0x1105), DicomVR.LO, "Doe^John");
        item.SetString(DicomTags.PatientName, DicomVR.PN, "Doe^John");
        ds.AddOrUpdate(new DicomSequence(new DicomTag(0x0008, 0x1140), [item])); // Referenced Image Sequence
        new DeidentificationEngine(DeidentificationEngineTests.Key, new DeidentificationOptions { RetainSafePrivate = true }).Deidentify(ds);

        var outItem = ds.GetSequence(new DicomTag(0x0008, 0x1140)).Items.Single();
        Assert.Equal([new DicomTag(0x2001, 0x0011), new DicomTag(0x2001, 0x1103)], outItem.Where(e => e.Tag.IsPrivate).Select(e => e.Tag).ToArray());
    }

    /// <summary>
    /// A safe row keeps a value only when it is what the row says: a UID (NQHeader Analyzed Series UID names the series)
    /// is remapped like every UID, so it still matches the remapped Series Instance UID; a number row holding text, or a
    /// binary row longer than its VM allows, is removed. Before: kept verbatim whatever it held.
    /// </summary>
    [Fact]
    public void OptionOn_SafeValueThatIsNotWhatItsRowSays_IsRemoved_AndUidsAreRemapped()
    {
        var ds = DeidentificationEngineTests.CtDataset();
        var series = ds.GetString(DicomTags.SeriesInstanceUID)!;
        ds.SetString(new DicomTag(0x0099, 0x0010), DicomVR.LO, "NQHeader");
        ds.SetString(new DicomTag(0x0099, 0x1002), DicomVR.UI, series); // Analyzed Series UID
        ds.SetString(new DicomTag(0x0099, 0x1020), DicomVR.SH, "mm"); // Units (SH: kept as text)
        ds.SetString(new DicomTag(0x00E1, 0x0010), DicomVR.LO, "ELSCINT1");
        ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x00E1, 0x1021), DicomVR.UN, "Doe^John PHIMARK"u8.ToArray())); // DLP (DS)
        ds.SetString(new DicomTag(0x01E1, 0x0010), DicomVR.LO, "ELSCINT1");
        ds.SetString(new DicomTag(0x01E1, 0x1026), DicomVR.CS, "Smith, Jane"); // Phantom Type (CS)
        ds.SetString(new DicomTag(0x2001, 0x0011), DicomVR.LO, "Philips Imaging DD 001");
        ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x2001, 0x1103), DicomVR.FL, "LONGTEXTPHI1"u8.ToArray())); // FL, VM 1
        ds.SetString(new DicomTag(0x0019, 0x0010), DicomVR.LO, Gems);
        ds.SetString(new DicomTag(0x0019, 0x1023), DicomVR.DS, "39.375"); // a real DS stays
        var engine = new DeidentificationEngine(DeidentificationEngineTests.Key, new DeidentificationOptions { RetainSafePrivate = true });

        engine.Deidentify(ds);

        Assert.Equal(engine.Mappings.MapUid(series), ds.GetString(new DicomTag(0x0099, 0x1002)));
        Assert.Equal(ds.GetString(DicomTags.SeriesInstanceUID), ds.GetString(new DicomTag(0x0099, 0x1002)));
        Assert.Equal("mm", ds.GetString(new DicomTag(0x0099, 0x1020)));
        Assert.False(ds.Contains(new DicomTag(0x00E1, 0x1021)));
        Assert.False(ds.Contains(new DicomTag(0x01E1, 0x1026)));
        Assert.False(ds.Contains(new DicomTag(0x2001, 0x1103)));
        Assert.Equal("39.375", ds.GetString(new DicomTag(0x0019, 0x1023)));
    }

    [Fact]
    public void Generator_Rerun_GivesNoDiff() =>
        TableGenerator.AssertRerunGivesNoDiff("gen_safe_private.py", "SafePrivateAttributes.g.cs");
}
