using CovidFunctions.Dicom.Deidentification;

namespace CovidFunctions.Dicom.Tests.Deidentification;

/// <summary>Per-action, sequence, meta group, private tag and policy tests on datasets built in memory.</summary>
public sealed class DeidentificationEngineTests
{
    internal static readonly DeidKey Key = DeidKey.FromBytes(Enumerable.Range(100, 32).Select(i => (byte)i).ToArray());

    internal static DicomDataset CtDataset(string sopInstanceUid = "1.2.826.0.1.3680043.2.1125.1.1")
    {
        var ds = new DicomDataset();
        ds.SetString(DicomTags.SOPClassUID, DicomVR.UI, DeidentificationEngine.CtImageStorage);
        ds.SetString(DicomTags.SOPInstanceUID, DicomVR.UI, sopInstanceUid);
        ds.SetValues(DicomTags.ImageType, DicomVR.CS, "ORIGINAL", "PRIMARY", "AXIAL");
        ds.SetString(DicomTags.Modality, DicomVR.CS, "CT");
        ds.SetString(DicomTags.PatientName, DicomVR.PN, "Doe^John");
        ds.SetString(DicomTags.PatientID, DicomVR.LO, "MRN12345");
        ds.SetString(DicomTags.PatientBirthDate, DicomVR.DA, "19600214");
        ds.SetString(DicomTags.PatientSex, DicomVR.CS, "M");
        ds.SetString(DicomTags.PatientAge, DicomVR.AS, "060Y");
        ds.SetString(DicomTags.StudyDate, DicomVR.DA, "20200314");
        ds.SetString(DicomTags.StudyTime, DicomVR.TM, "101500");
        ds.SetString(DicomTags.AccessionNumber, DicomVR.SH, "ACC998877");
        ds.SetString(DicomTags.InstitutionName, DicomVR.LO, "St Nowhere Hospital");
        ds.SetString(DicomTags.StudyInstanceUID, DicomVR.UI, "1.2.826.0.1.3680043.2.1125.9");
        ds.SetString(DicomTags.SeriesInstanceUID, DicomVR.UI, "1.2.826.0.1.3680043.2.1125.9.1");
        ds.SetString(DicomTags.FrameOfReferenceUID, DicomVR.UI, "1.2.826.0.1.3680043.2.1125.9.2");
        ds.SetString(DicomTags.SeriesDescription, DicomVR.LO, "CHEST 1.0 B70f Dr Watson");
        ds.SetValues(DicomTags.Rows, DicomVR.US, 2);
        ds.SetValues(DicomTags.Columns, DicomVR.US, 2);
        ds.SetString(DicomTags.RescaleIntercept, DicomVR.DS, "-1024");
        ds.AddOrUpdate(new DicomValueElement(DicomTags.PixelData, DicomVR.OW, new byte[8]));
        return ds;
    }

    [Fact]
    public void Deidentify_DefaultOptions_AppliesEachActionKind()
    {
        var ds = CtDataset();
        var engine = new DeidentificationEngine(Key);

        var outcome = engine.Deidentify(ds);

        Assert.True(outcome.Accepted);
        var pseudonym = ds.GetString(DicomTags.PatientName)!;
        Assert.Matches("^ANON-[A-Z2-7]{16}$", pseudonym);
        Assert.Equal(pseudonym, ds.GetString(DicomTags.PatientID));
        Assert.Equal(string.Empty, ds.GetString(DicomTags.PatientBirthDate)); // Z
        Assert.Equal(string.Empty, ds.GetString(DicomTags.AccessionNumber)); // Z
        Assert.Equal("M", ds.GetString(DicomTags.PatientSex)); // K (patient characteristics)
        Assert.Equal("060Y", ds.GetString(DicomTags.PatientAge)); // K
        Assert.Equal("ANONYMIZED", ds.GetString(DicomTags.InstitutionName)); // X/Z/D → D
        Assert.Equal("CHEST 1.0 B70f", ds.GetString(DicomTags.SeriesDescription)); // C (clean descriptors)
        Assert.Equal("101500", ds.GetString(DicomTags.StudyTime)); // C: times stay under a whole-day shift
        var shift = engine.Mappings.DateShiftDays(pseudonym);
        Assert.Equal(new DateOnly(2020, 3, 14).AddDays(shift).ToString("yyyyMMdd", System.Globalization.CultureInfo.InvariantCulture), ds.GetString(DicomTags.StudyDate));
        Assert.Equal(engine.Mappings.MapUid("1.2.826.0.1.3680043.2.1125.9"), ds.GetString(DicomTags.StudyInstanceUID)); // U
        Assert.StartsWith("2.25.", ds.GetString(DicomTags.SOPInstanceUID), StringComparison.Ordinal);
        Assert.Equal(DeidentificationEngine.CtImageStorage, ds.GetString(DicomTags.SOPClassUID)); // keep-list
        Assert.Equal("-1024", ds.GetString(DicomTags.RescaleIntercept));
        Assert.True(ds.Contains(DicomTags.PixelData));
        Assert.Equal("YES", ds.GetString(DicomTags.PatientIdentityRemoved));
        Assert.Equal("MODIFIED", ds.GetString(DicomTags.LongitudinalTemporalInformationModified));
        Assert.NotNull(outcome.Audit);
        Assert.Equal(["113100", "113105", "113107", "113108"], outcome.Audit!.OptionCodes);
    }

    [Fact]
    public void Deidentify_WritesDeidentificationMethodCodeSequence()
    {
        var ds = CtDataset();
        new DeidentificationEngine(Key, new DeidentificationOptions { RetainDeviceIdentity = true, RetainInstitutionIdentity = true }).Deidentify(ds);

        var items = ds.GetSequence(DicomTags.DeidentificationMethodCodeSequence).Items;
        Assert.Equal(["113100", "113105", "113107", "113108", "113109", "113112"], items.Select(i => i.GetString(DicomTags.CodeValue)!).ToArray());
        Assert.All(items, i => Assert.Equal("DCM", i.GetString(DicomTags.CodingSchemeDesignator)));
        Assert.Equal("St Nowhere Hospital", ds.GetString(DicomTags.InstitutionName)); // kept on purpose by 113112
        Assert.NotEmpty(ds.GetStrings(DicomTags.DeidentificationMethod));
        Assert.All(ds.GetStrings(DicomTags.DeidentificationMethod), v => Assert.True(v.Length <= 64));
    }

    [Fact]
    public void Deidentify_OptionsOff_RemovesCharacteristicsAndDates()
    {
        var ds = CtDataset();
        new DeidentificationEngine(Key, new DeidentificationOptions
        {
            RetainPatientCharacteristics = false, RetainLongitudinalModifiedDates = false, CleanDescriptors = false,
        }).Deidentify(ds);

        Assert.Equal(string.Empty, ds.GetString(DicomTags.PatientSex)); // Z
        Assert.False(ds.Contains(DicomTags.PatientAge)); // X
        Assert.False(ds.Contains(DicomTags.SeriesDescription)); // X
        Assert.Equal(string.Empty, ds.GetString(DicomTags.StudyDate)); // Z
        Assert.Equal("REMOVED", ds.GetString(DicomTags.LongitudinalTemporalInformationModified));
    }

    [Fact]
    public void Deidentify_PrivateUnlistedCurvesOverlays_AreRemoved()
    {
        var ds = CtDataset();
        ds.SetString(new DicomTag(0x0009, 0x0010), DicomVR.LO, "GEMS_IDEN_01");
        ds.SetString(new DicomTag(0x0009, 0x1001), DicomVR.LO, "secret");
        ds.SetValues(new DicomTag(0x0019, 0x0000), DicomVR.UL, 4);
        ds.SetValues(new DicomTag(0x6000, 0x0010), DicomVR.US, 512);
        ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x6000, 0x3000), DicomVR.OW, new byte[4]));
        ds.SetString(new DicomTag(0x5000, 0x0020), DicomVR.CS, "CURVE");
        ds.SetString(new DicomTag(0x0008, 0x0012), DicomVR.DA, "20200314"); // Instance Creation Date: unlisted
        ds.SetString(new DicomTag(0x0018, 0x1030), DicomVR.LO, "Protocol for Smith");

        var audit = new DeidentificationEngine(Key).Deidentify(ds).Audit!;

        Assert.DoesNotContain(ds, e => e.Tag.IsPrivate);
        Assert.DoesNotContain(ds, e => e.Tag.Group is >= 0x5000 and <= 0x60FF);
        Assert.False(ds.Contains(new DicomTag(0x0008, 0x0012)));
        Assert.Equal("Protocol for", ds.GetString(new DicomTag(0x0018, 0x1030)));
        Assert.True(audit.PrivateRemoved >= 2);
        Assert.True(audit.UnlistedRemoved >= 2);
    }

    [Fact]
    public void Deidentify_NestedSequences_AreProcessedRecursively()
    {
        var ds = CtDataset();
        var inner = new DicomDataset();
        inner.SetString(DicomTags.ReferencedSOPClassUID, DicomVR.UI, DeidentificationEngine.CtImageStorage);
        inner.SetString(DicomTags.ReferencedSOPInstanceUID, DicomVR.UI, "1.2.826.0.1.3680043.2.1125.1.7");
        inner.SetString(DicomTags.PatientName, DicomVR.PN, "Nested^Name");
        inner.SetString(new DicomTag(0x0011, 0x1010), DicomVR.LO, "private in item");
        inner.SetString(DicomTags.InstitutionAddress, DicomVR.ST, "1 Main Street");
        var deeper = new DicomDataset();
        deeper.SetString(DicomTags.OperatorsName, DicomVR.PN, "Op^Erator");
        inner.AddOrUpdate(new DicomSequence(DicomTags.SourceImageSequence, deeper));
        ds.AddOrUpdate(new DicomSequence(DicomTags.ReferencedImageSequence, inner));
        ds.AddOrUpdate(new DicomSequence(DicomTags.OtherPatientIDsSequence, new DicomDataset()));
        var engine = new DeidentificationEngine(Key);

        engine.Deidentify(ds);

        var item = ds.GetSequence(DicomTags.ReferencedImageSequence).Items.Single();
        Assert.Equal(engine.Mappings.MapUid("1.2.826.0.1.3680043.2.1125.1.7"), item.GetString(DicomTags.ReferencedSOPInstanceUID));
        Assert.Equal(DeidentificationEngine.CtImageStorage, item.GetString(DicomTags.ReferencedSOPClassUID));
        Assert.Equal(ds.GetString(DicomTags.PatientName), item.GetString(DicomTags.PatientName));
        Assert.DoesNotContain(item, e => e.Tag.IsPrivate);
        Assert.False(item.Contains(DicomTags.InstitutionAddress));
        Assert.Equal("ANONYMIZED", item.GetSequence(DicomTags.SourceImageSequence).Items.Single().GetString(DicomTags.OperatorsName));
        Assert.False(ds.Contains(DicomTags.OtherPatientIDsSequence));
    }

    [Fact]
    public void Deidentify_FileMeta_IsRemappedConsistentlyAndCleaned()
    {
        var ds = CtDataset();
        var meta = new DicomDataset();
        meta.SetValues(new DicomTag(0x0002, 0x0000), DicomVR.UL, 200);
        meta.SetString(DicomTags.MediaStorageSOPClassUID, DicomVR.UI, DeidentificationEngine.CtImageStorage);
        meta.SetString(DicomTags.MediaStorageSOPInstanceUID, DicomVR.UI, "1.2.826.0.1.3680043.2.1125.1.1");
        meta.SetString(DicomTags.TransferSyntaxUID, DicomVR.UI, "1.2.840.10008.1.2.1");
        meta.SetString(DicomTags.ImplementationClassUID, DicomVR.UI, "1.2.3.4.5.6");
        meta.SetString(DicomTags.ImplementationVersionName, DicomVR.SH, "SCANNER_X");
        meta.SetString(DicomTags.SourceApplicationEntityTitle, DicomVR.AE, "HOSP_PACS");

        new DeidentificationEngine(Key).Deidentify(ds, meta);

        Assert.Equal(ds.GetString(DicomTags.SOPInstanceUID), meta.GetString(DicomTags.MediaStorageSOPInstanceUID));
        Assert.Equal(DeidentificationEngine.ImplementationClassUid, meta.GetString(DicomTags.ImplementationClassUID));
        Assert.Equal(DeidentificationEngine.ImplementationVersionName, meta.GetString(DicomTags.ImplementationVersionName));
        Assert.False(meta.Contains(DicomTags.SourceApplicationEntityTitle));
        Assert.False(meta.Contains(new DicomTag(0x0002, 0x0000)));
        Assert.Equal("1.2.840.10008.1.2.1", meta.GetString(DicomTags.TransferSyntaxUID));
    }

    [Fact]
    public void Deidentify_TwoEnginesSameKey_MapAStudyIdentically()
    {
        var a = CtDataset("1.2.826.0.1.3680043.2.1125.1.1");
        var b = CtDataset("1.2.826.0.1.3680043.2.1125.1.2");

        new DeidentificationEngine(Key).Deidentify(a);
        new DeidentificationEngine(DeidKey.FromBytes(Enumerable.Range(100, 32).Select(i => (byte)i).ToArray())).Deidentify(b);

        Assert.Equal(a.GetString(DicomTags.StudyInstanceUID), b.GetString(DicomTags.StudyInstanceUID));
        Assert.Equal(a.GetString(DicomTags.SeriesInstanceUID), b.GetString(DicomTags.SeriesInstanceUID));
        Assert.Equal(a.GetString(DicomTags.PatientID), b.GetString(DicomTags.PatientID));
        Assert.Equal(a.GetString(DicomTags.StudyDate), b.GetString(DicomTags.StudyDate));
        Assert.NotEqual(a.GetString(DicomTags.SOPInstanceUID), b.GetString(DicomTags.SOPInstanceUID));
    }

    [Fact]
    public void Deidentify_DifferentKey_ChangesEveryMapping()
    {
        var a = CtDataset();
        var b = CtDataset();
        new DeidentificationEngine(Key).Deidentify(a);
        new DeidentificationEngine(DeidKey.Generate()).Deidentify(b);

        Assert.NotEqual(a.GetString(DicomTags.StudyInstanceUID), b.GetString(DicomTags.StudyInstanceUID));
        Assert.NotEqual(a.GetString(DicomTags.PatientID), b.GetString(DicomTags.PatientID));
    }

    [Theory]
    [InlineData("1.2.840.10008.5.1.4.1.1.7", "ORIGINAL\\PRIMARY", null, DeidRejectReason.UnsupportedSopClass)]
    [InlineData("1.2.840.10008.5.1.4.1.1.88.67", "ORIGINAL\\PRIMARY", null, DeidRejectReason.UnsupportedSopClass)]
    [InlineData("1.2.840.10008.5.1.4.1.1.2", "DERIVED\\SECONDARY\\SCREEN SAVE", null, DeidRejectReason.NotOriginalPrimary)]
    [InlineData("1.2.840.10008.5.1.4.1.1.2", "ORIGINAL", null, DeidRejectReason.NotOriginalPrimary)]
    [InlineData("1.2.840.10008.5.1.4.1.1.2", "ORIGINAL\\PRIMARY\\AXIAL", "YES", DeidRejectReason.BurnedInAnnotation)]
    [InlineData("1.2.840.10008.5.1.4.1.1.2", "ORIGINAL\\PRIMARY\\AXIAL", "NO\\YES", DeidRejectReason.BurnedInAnnotation)] // VM 1, but a YES anywhere counts
    [InlineData("1.2.840.10008.5.1.4.1.1.2", "ORIGINAL\\PRIMARY\\AXIAL", " yes", DeidRejectReason.BurnedInAnnotation)]
    [InlineData("", "ORIGINAL\\PRIMARY", null, DeidRejectReason.MissingSopClass)]
    public void Deidentify_BurnedInTextRisk_IsRejectedUntouched(string sopClass, string imageType, string? burnedIn, DeidRejectReason reason)
    {
        var ds = CtDataset();
        ds.SetString(DicomTags.SOPClassUID, DicomVR.UI, sopClass);
        ds.SetString(DicomTags.ImageType, DicomVR.CS, imageType);
        if (burnedIn is not null)
        {
            ds.SetString(DicomTags.BurnedInAnnotation, DicomVR.CS, burnedIn);
        }

        var outcome = new DeidentificationEngine(Key).Deidentify(ds);

        Assert.False(outcome.Accepted);
        Assert.Equal(reason, outcome.Rejection!.Reason);
        Assert.Equal("Doe^John", ds.GetString(DicomTags.PatientName));
        Assert.DoesNotContain("Doe", outcome.Rejection.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Deidentify_EnhancedCtOriginalPrimary_IsAccepted()
    {
        var ds = CtDataset();
        ds.SetString(DicomTags.SOPClassUID, DicomVR.UI, DeidentificationEngine.EnhancedCtImageStorage);
        Assert.True(new DeidentificationEngine(Key).Deidentify(ds).Accepted);
    }

    [Fact]
    public void Deidentify_ExistingDeidRecord_IsReplacedNotMerged()
    {
        var ds = CtDataset();
        ds.SetString(DicomTags.PatientIdentityRemoved, DicomVR.CS, "NO");
        ds.SetString(DicomTags.DeidentificationMethod, DicomVR.LO, "Smith's tool");
        new DeidentificationEngine(Key).Deidentify(ds);

        Assert.Equal("YES", ds.GetString(DicomTags.PatientIdentityRemoved));
        Assert.DoesNotContain("Smith", ds.GetString(DicomTags.DeidentificationMethod), StringComparison.Ordinal);
    }
}
