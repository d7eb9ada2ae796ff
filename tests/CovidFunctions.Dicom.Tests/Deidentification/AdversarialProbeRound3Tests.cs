using CovidFunctions.Dicom.Deidentification;
using static CovidFunctions.Dicom.Tests.Deidentification.AdversarialProbeRound2Tests;

namespace CovidFunctions.Dicom.Tests.Deidentification;

/// <summary>
/// Round 3 of the PHI probes (session 20, rounds 1-2: <see cref="AdversarialProbeTests"/>, <see cref="AdversarialProbeRound2Tests"/>).
/// The keep-list judged a kept value by the VR its element carried: a value labelled with a binary "other" VR (OB, OW,
/// UN for an attribute the dictionary gives two VRs), read as fragments (undefined length), left in the file as bulk data
/// (over 64 KiB, as <see cref="DicomFile.Open"/> reads), or held by the pixel-data attributes a CT never uses (Float and
/// Double Float Pixel Data, the Extended Offset Table of native pixels) was kept as bytes, unchecked.
/// </summary>
public sealed class AdversarialProbeRound3Tests
{
    private const string Marker = "HBQROUND3MARKZ";

    /// <summary>
    /// A keep-list attribute written under a VR that is not its own (explicit VR: any writer can label a value OB) is judged
    /// by the dictionary's VR: text that is not the attribute's form is cleaned, a binary value that is not whole values
    /// within the VM is removed. Before: OB/OW/OF and UN of a two-VR attribute (US or SS) skipped every check.
    /// </summary>
    [Theory]
    [InlineData(0x0008, 0x0070, "OB")] // Manufacturer (LO)
    [InlineData(0x0018, 0x0050, "OW")] // Slice Thickness (DS)
    [InlineData(0x0018, 0x1210, "OB")] // Convolution Kernel (SH)
    [InlineData(0x0028, 0x0120, "OB")] // Pixel Padding Value (US or SS)
    [InlineData(0x0028, 0x0120, "UN")]
    [InlineData(0x0028, 0x0106, "UN")] // Smallest Image Pixel Value (US or SS)
    [InlineData(0x0028, 0x0107, "OW")] // Largest Image Pixel Value (US or SS)
    [InlineData(0x0028, 0x0010, "OB")] // Rows (US)
    [InlineData(0x0018, 0x9345, "OF")] // CTDIvol (FD, VM 1)
    [InlineData(0x0028, 0x0010, "LO")] // Rows (US) under a text VR
    [InlineData(0x0028, 0x0120, "LO")] // Pixel Padding Value under a text VR
    [InlineData(0x0028, 0x0301, "OB")] // Burned In Annotation (CS)
    public void KeptAttribute_UnderABinaryVR_IsJudgedByTheDictionaryVR(ushort group, ushort element, string vr)
    {
        var ds = CtDataset();
        var tag = new DicomTag(group, element);
        ds.AddOrUpdate(new DicomValueElement(tag, DicomVR.Parse(vr), Ascii(Marker + "XY"))); // 16 bytes
        var input = Reencode(new DicomFile(ds));
        AssertPresent(Written(input), [Marker]);

        var written = DeidentifyToBytes(input, out var output);

        AssertAbsent(written, Marker);
        Assert.Equal(Pixels(), PixelBytes(output));
    }

    /// <summary>
    /// A real value under the wrong label stays: a Pixel Padding Value labelled UN or OB is two bytes, one whole US/SS value,
    /// and keeps its label and bytes (relabelled, a UN value read from a big endian file would be swapped on writing).
    /// </summary>
    [Theory]
    [InlineData("UN")]
    [InlineData("OB")]
    public void KeptNumber_UnderABinaryVR_KeepsItsValue(string vr)
    {
        var ds = CtDataset();
        var tag = new DicomTag(0x0028, 0x0120);
        ds.AddOrUpdate(new DicomValueElement(tag, DicomVR.Parse(vr), new byte[] { 0x18, 0xFC })); // -1000 as SS, 64536 as US

        DeidentifyToBytes(Reencode(new DicomFile(ds)), out var output);

        var kept = Assert.IsType<DicomValueElement>(output.Dataset[tag]);
        Assert.Equal(new byte[] { 0x18, 0xFC }, kept.RawValue.ToArray());
    }

    /// <summary>
    /// An OB value of undefined length is read as fragments (PS3.5 A.4 allows it for Pixel Data only). On a kept attribute
    /// the fragments were written back as read; only the top-level Pixel Data may be encapsulated (and it is decoded).
    /// </summary>
    [Theory]
    [InlineData(0x0008, 0x0070)] // Manufacturer
    [InlineData(0x0028, 0x0120)] // Pixel Padding Value
    [InlineData(0x7FE0, 0x0008)] // Float Pixel Data
    public void KeptAttribute_ReadAsFragments_IsRemoved(ushort group, ushort element)
    {
        var ds = CtDataset();
        var tag = new DicomTag(group, element);
        ds.AddOrUpdate(new DicomFragmentSequence(tag, DicomVR.OB, ReadOnlyMemory<byte>.Empty, [new DicomFragment(Ascii(Marker + "XY"))]));
        var input = Reencode(new DicomFile(ds));
        Assert.IsType<DicomFragmentSequence>(input.Dataset[tag]);
        AssertPresent(Written(input), [Marker]);

        var written = DeidentifyToBytes(input, out var output);

        AssertAbsent(written, Marker);
        Assert.False(output.Dataset.Contains(tag));
        Assert.Equal(Pixels(), PixelBytes(output));
    }

    /// <summary>
    /// Float Pixel Data, Double Float Pixel Data (Parametric Map only) and the Extended Offset Table with its lengths (for
    /// encapsulated frames, which the output never has: they are written native) hold any bytes in a CT: removed.
    /// </summary>
    [Theory]
    [InlineData(0x7FE0, 0x0008, "OF")]
    [InlineData(0x7FE0, 0x0009, "OD")]
    [InlineData(0x7FE0, 0x0001, "OV")]
    [InlineData(0x7FE0, 0x0002, "OV")]
    public void PixelDataAttributes_ACtDoesNotUse_AreRemoved(ushort group, ushort element, string vr)
    {
        var ds = CtDataset();
        var tag = new DicomTag(group, element);
        ds.AddOrUpdate(new DicomValueElement(tag, DicomVR.Parse(vr), Ascii(Marker + "XY")));
        var input = Reencode(new DicomFile(ds));
        AssertPresent(Written(input), [Marker]);

        var written = DeidentifyToBytes(input, out var output);

        AssertAbsent(written, Marker);
        Assert.False(output.Dataset.Contains(tag));
        Assert.Equal(Pixels(), PixelBytes(output));
    }

    /// <summary>
    /// Values over the bulk data threshold (64 KiB) stay in the file when it is opened from disk, as <c>covidfn deid</c> and
    /// ingest open it. A kept binary attribute that large (Pixel Padding Value, VM 1, as 70,000 bytes of text) skipped the
    /// whole-values check and was copied from the source file. A kept text value that large is cleaned as any other.
    /// </summary>
    [Theory]
    [InlineData(0x0028, 0x0120, "US")]
    [InlineData(0x0028, 0x0009, "AT")]
    [InlineData(0x0008, 0x0070, "LO")]
    public void KeptAttribute_LeftInTheFileAsBulkData_IsChecked(ushort group, ushort element, string vr)
    {
        var ds = CtDataset();
        var tag = new DicomTag(group, element);
        var text = string.Concat(Enumerable.Repeat("SIEMENS " + Marker + " ", 70_000 / (Marker.Length + 9) + 1));
        ds.AddOrUpdate(new DicomValueElement(tag, DicomVR.Parse(vr), Ascii(text.Length % 2 == 0 ? text : text + " ")));
        var path = Path.Combine(Path.GetTempPath(), "covidfn-round3-" + Guid.NewGuid().ToString("N") + ".dcm");
        try
        {
            new DicomFile(ds).Save(path);
            var input = DicomFile.Open(path);
            Assert.True(Assert.IsType<DicomValueElement>(input.Dataset[tag]).IsBulkData);

            var written = DeidentifyToBytes(input, out _);

            AssertAbsent(written, Marker);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>
    /// Burned In Annotation YES under a binary label is still YES: refused. Before: the policy read an OB value as numbers
    /// ("89\69\83"), accepted the instance, and the keep-list (judging it as the CS it is) wrote Burned In Annotation YES
    /// into an accepted output.
    /// </summary>
    [Theory]
    [InlineData("OB", "YES ")]
    [InlineData("OW", "NO\\YES ")]
    [InlineData("UN", "YES ")]
    public void BurnedInAnnotationYes_UnderABinaryVR_IsRefused(string vr, string value)
    {
        var ds = CtDataset();
        ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x0028, 0x0301), DicomVR.Parse(vr), Ascii(value)));

        var outcome = new DeidentificationEngine(DeidentificationEngineTests.Key).DeidentifyFile(Reencode(new DicomFile(ds)));

        Assert.False(outcome.Accepted);
        Assert.Equal(DeidRejectReason.BurnedInAnnotation, outcome.Rejection!.Reason);
    }

    /// <summary>
    /// Regression cover (already handled; session 20 probes): PHI ten items deep in undefined-length items of kept and
    /// dummied sequences, a multi-valued PN, a date in a nested referenced item and in Acquisition DateTime, a planted
    /// de-identification record and Patient Identity Removed NO, overlay comments, and a Storage Media File-Set UID carrying
    /// digits. The de-identification record written is the engine's own.
    /// </summary>
    [Fact]
    public void NestedAndRecordProbes_LeaveNoMarker()
    {
        var ds = CtDataset();
        var leaf = new DicomDataset();
        leaf.SetString(new DicomTag(0x0010, 0x0010), DicomVR.PN, "HBQDEEPNAME^MARKZ");
        leaf.SetString(new DicomTag(0x0010, 0x0030), DicomVR.DA, "19310417");
        leaf.SetString(new DicomTag(0x0008, 0x0080), DicomVR.LO, "HBQDEEPINSTMARKZ");
        var item = leaf;
        for (var i = 0; i < 10; i++)
        {
            var parent = new DicomDataset { UndefinedLength = true };
            parent.AddOrUpdate(new DicomSequence(i % 2 == 0 ? new DicomTag(0x0018, 0x9301) : new DicomTag(0x5200, 0x9229), [item]) { UndefinedLength = true });
            item = parent;
        }

        ds.AddOrUpdate(new DicomSequence(new DicomTag(0x5200, 0x9230), [item]) { UndefinedLength = true });
        ds.SetString(new DicomTag(0x0008, 0x1050), DicomVR.PN, "HBQPERFONE^MARKZ\\HBQPERFTWO^MARKZ");
        ds.SetString(new DicomTag(0x0008, 0x002A), DicomVR.DT, "19310417101500");
        var referenced = new DicomDataset();
        referenced.SetString(new DicomTag(0x0008, 0x1155), DicomVR.UI, "1.2.826.0.1.3680043.19310417");
        referenced.SetString(new DicomTag(0x0008, 0x0023), DicomVR.DA, "19310417");
        ds.AddOrUpdate(new DicomSequence(new DicomTag(0x0008, 0x1140), [referenced]));
        ds.SetString(new DicomTag(0x0012, 0x0062), DicomVR.CS, "NO");
        ds.SetValues(new DicomTag(0x0012, 0x0063), DicomVR.LO, "HBQMETHODMARKZ");
        var code = new DicomDataset();
        code.SetString(new DicomTag(0x0008, 0x0104), DicomVR.LO, "HBQCODEMEANINGMARKZ");
        ds.AddOrUpdate(new DicomSequence(new DicomTag(0x0012, 0x0064), [code]));
        ds.SetString(new DicomTag(0x6000, 0x4000), DicomVR.LT, "HBQOVERLAYCOMMENTMARKZ");
        ds.SetString(new DicomTag(0x0088, 0x0140), DicomVR.UI, "1.2.826.0.1.3680043.555443332");
        var markers = new[]
        {
            "HBQDEEPNAME", "HBQDEEPINSTMARKZ", "19310417", "HBQPERFONE", "HBQPERFTWO", "HBQMETHODMARKZ", "HBQCODEMEANINGMARKZ",
            "HBQOVERLAYCOMMENTMARKZ", "555443332",
        };
        foreach (var syntax in new[] { TransferSyntax.ExplicitVRLittleEndian, TransferSyntax.ImplicitVRLittleEndian, TransferSyntax.ExplicitVRBigEndian })
        {
            var input = Reencode(new DicomFile(ds.Clone(), syntax));
            AssertPresent(Written(input), markers);

            var written = DeidentifyToBytes(input, out var output);

            AssertAbsent(written, markers);
            Assert.Equal("YES", output.Dataset.GetString(new DicomTag(0x0012, 0x0062)));
            Assert.Equal("113100", output.Dataset.GetSequence(new DicomTag(0x0012, 0x0064)).Items[0].GetString(new DicomTag(0x0008, 0x0100)));
        }
    }

    /// <summary>
    /// Instance UIDs (Table E.1-1's U rows: study, series, SOP instance, frame of reference, referenced instances, file-set)
    /// under the DICOM root 1.2.840.10008 carry whatever digits a misconfigured device put there (an MRN, a birth date).
    /// Before: every UID under the root was kept as "well-known", so they survived (and named the output file). Now only
    /// the registry's well-known frames of reference and SOP instances stay; class UIDs (SOP Class, Referenced SOP Class)
    /// under the root stay as before, and references still match after mapping.
    /// </summary>
    [Fact]
    public void InstanceUids_UnderTheDicomRoot_AreMapped()
    {
        var ds = CtDataset();
        ds.SetString(new DicomTag(0x0008, 0x0018), DicomVR.UI, "1.2.840.10008.99.19310417.1");
        ds.SetString(new DicomTag(0x0020, 0x000D), DicomVR.UI, "1.2.840.10008.99.555443332");
        ds.SetString(new DicomTag(0x0020, 0x000E), DicomVR.UI, "1.2.840.10008.99.555443332.2");
        ds.SetString(new DicomTag(0x0020, 0x0052), DicomVR.UI, "1.2.840.10008.99.666554443");
        ds.SetString(new DicomTag(0x0088, 0x0140), DicomVR.UI, "1.2.840.10008.99.777665554");
        var reference = new DicomDataset();
        reference.SetString(new DicomTag(0x0008, 0x1150), DicomVR.UI, DeidentificationEngine.CtImageStorage);
        reference.SetString(new DicomTag(0x0008, 0x1155), DicomVR.UI, "1.2.840.10008.99.19310417.1");
        ds.AddOrUpdate(new DicomSequence(new DicomTag(0x0008, 0x1140), [reference]));
        var input = Reencode(new DicomFile(ds));
        AssertPresent(Written(input), ["19310417", "555443332", "666554443", "777665554"]);

        var written = DeidentifyToBytes(input, out var output);

        AssertAbsent(written, "19310417", "555443332", "666554443", "777665554");
        var sop = output.Dataset.GetString(new DicomTag(0x0008, 0x0018));
        Assert.StartsWith("2.25.", sop, StringComparison.Ordinal);
        Assert.Equal(sop, output.Dataset.GetSequence(new DicomTag(0x0008, 0x1140)).Items[0].GetString(new DicomTag(0x0008, 0x1155)));
        Assert.Equal(sop, output.FileMetaInformation.GetString(new DicomTag(0x0002, 0x0003)));
        Assert.Equal(DeidentificationEngine.CtImageStorage, output.Dataset.GetString(new DicomTag(0x0008, 0x0016)));
        Assert.Equal(DeidentificationEngine.CtImageStorage, output.Dataset.GetSequence(new DicomTag(0x0008, 0x1140)).Items[0].GetString(new DicomTag(0x0008, 0x1150)));
    }

    /// <summary>A well-known frame of reference (Talairach, PS3.6 Table A-2) stays what it is.</summary>
    [Theory]
    [InlineData("1.2.840.10008.1.4.1.1")]
    [InlineData("1.2.840.10008.1.4.2.2")]
    public void WellKnownFrameOfReference_IsKept(string uid)
    {
        var ds = CtDataset();
        ds.SetString(new DicomTag(0x0020, 0x0052), DicomVR.UI, uid);

        DeidentifyToBytes(Reencode(new DicomFile(ds)), out var output);

        Assert.Equal(uid, output.Dataset.GetString(new DicomTag(0x0020, 0x0052)));
    }

    /// <summary>
    /// The output of the round's probes together (values relabelled with their attribute's VR, fragments removed, a number
    /// under a foreign label kept) parses in dcmtk and pydicom, explicit VR little and big endian.
    /// </summary>
    [Theory]
    [InlineData("1.2.840.10008.1.2.1")]
    [InlineData("1.2.840.10008.1.2.2")]
    public void Outputs_ParseInPeers(string transferSyntax)
    {
        var ds = CtDataset();
        ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x0008, 0x0070), DicomVR.OB, Ascii("SIEMENS " + Marker + " ")));
        ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x0018, 0x0050), DicomVR.OW, Ascii("1.25")));
        ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x0028, 0x0120), DicomVR.UN, new byte[] { 0x18, 0xFC }));
        ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x0028, 0x0106), DicomVR.UN, Ascii(Marker + "XY")));
        ds.AddOrUpdate(new DicomFragmentSequence(new DicomTag(0x0018, 0x1210), DicomVR.OB, ReadOnlyMemory<byte>.Empty, [new DicomFragment(Ascii(Marker + "XY"))]));
        ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x7FE0, 0x0008), DicomVR.OF, Ascii(Marker + "XY")));
        var input = Reencode(new DicomFile(ds, TransferSyntax.Lookup(transferSyntax)));
        Assert.True(new DeidentificationEngine(DeidentificationEngineTests.Key).DeidentifyFile(input).Accepted);
        var path = Path.Combine(Path.GetTempPath(), "covidfn-probe3-" + Guid.NewGuid().ToString("N") + ".dcm");
        try
        {
            input.Save(path);
            AssertAbsent(File.ReadAllBytes(path), Marker);
            var output = DicomFile.Open(path);
            Assert.Equal("SIEMENS", output.Dataset.GetString(new DicomTag(0x0008, 0x0070)));
            Assert.Equal(DicomVR.LO, output.Dataset[new DicomTag(0x0008, 0x0070)].VR);
            Assert.Equal("1.25", output.Dataset.GetString(new DicomTag(0x0018, 0x0050)));
            RealFileDeidentificationTests.AssertParsesInDcmtkAndPydicom(path);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
