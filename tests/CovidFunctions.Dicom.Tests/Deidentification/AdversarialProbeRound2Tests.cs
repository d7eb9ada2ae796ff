using System.Text;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Dicom.Imaging;
using CovidFunctions.Dicom.Tests.Imaging.Codecs;
using CovidFunctions.Dicom.Tests.IO;

namespace CovidFunctions.Dicom.Tests.Deidentification;

/// <summary>
/// Round 2 of the held-out-style PHI probes (round 1: <see cref="AdversarialProbeTests"/>). Each probe hides a marker where
/// a de-identifier may not look, goes through the bytes of a real encoding (written and read back in its transfer syntax),
/// is de-identified and written; the written bytes must not hold the marker as ASCII, UTF-16 (LE or BE), reversed or
/// base64 (any alignment), and the image must survive. Families that were already handled stay here as regression cover.
/// </summary>
public sealed class AdversarialProbeRound2Tests
{
    private const string Marker = "HBQPROBEMARKZ";

    /// <summary>A probe: what it plants in a CT dataset, and the markers it planted.</summary>
    public sealed record Probe(string Name, Action<DicomDataset, DicomDataset> Plant, string[] Markers)
    {
        public override string ToString() => Name;
    }

    /// <summary>
    /// Families that were removed or rewritten before this round (regression cover): file meta AE titles, private
    /// information and implementation version; data set trailing padding; retired and unknown public attributes; elements
    /// in the illegal odd groups 0001-0007; a creator's own text; overlay, curve and variable pixel data groups; the Icon
    /// Image Sequence; an encapsulated PDF; waveforms; SR content five items deep; request attributes, referenced patient,
    /// other patient IDs, original/modified attributes, digital signatures and MAC parameters; a private block inside an
    /// undefined-length item of a kept sequence; identifying digits in UIDs that are not obviously UIDs.
    /// </summary>
    public static TheoryData<Probe> RemovedFamilies()
    {
        var data = new TheoryData<Probe>();
        foreach (var probe in RemovedProbes())
        {
            data.Add(probe);
        }

        return data;
    }

    private static Probe[] RemovedProbes() =>
    [
        new("meta AE titles, private information, version name", (_, meta) =>
        {
            meta.SetString(new DicomTag(0x0002, 0x0016), DicomVR.AE, "HBQSRCAEMARKZ");
            meta.SetString(new DicomTag(0x0002, 0x0017), DicomVR.AE, "HBQSNDAEMARKZ");
            meta.SetString(new DicomTag(0x0002, 0x0018), DicomVR.AE, "HBQRCVAEMARKZ");
            meta.SetString(new DicomTag(0x0002, 0x0100), DicomVR.UI, "1.2.826.0.1.3680043.4455667788");
            meta.AddOrUpdate(new DicomValueElement(new DicomTag(0x0002, 0x0102), DicomVR.OB, Ascii("HBQPRIVINFOMARKZ")));
            meta.SetString(new DicomTag(0x0002, 0x0013), DicomVR.SH, "HBQIMPLVERMARKZ");
        }, ["HBQSRCAEMARKZ", "HBQSNDAEMARKZ", "HBQRCVAEMARKZ", "4455667788", "HBQPRIVINFOMARKZ", "HBQIMPLVERMARKZ"]),
        new("data set trailing padding", (ds, _) =>
            ds.AddOrUpdate(new DicomValueElement(new DicomTag(0xFFFC, 0xFFFC), DicomVR.OB, Ascii(Marker + " "))), [Marker]),
        new("retired and unknown public attributes", (ds, _) =>
        {
            ds.SetString(new DicomTag(0x0008, 0x0010), DicomVR.SH, "HBQRETIREDMARKZ"); // Recognition Code (retired)
            ds.SetString(new DicomTag(0x0035, 0x0010), DicomVR.LO, "HBQUNKNOWNMARKZ"); // not in the dictionary
            ds.SetString(new DicomTag(0x4008, 0x0300), DicomVR.ST, "HBQIMPRESSMARKZ"); // Impressions (retired results)
        }, ["HBQRETIREDMARKZ", "HBQUNKNOWNMARKZ", "HBQIMPRESSMARKZ"]),
        new("illegal odd groups 0001-0007 and a creator's own text", (ds, _) =>
        {
            ds.SetString(new DicomTag(0x0001, 0x0010), DicomVR.LO, "HBQGROUP1MARKZ");
            ds.SetString(new DicomTag(0x0003, 0x1000), DicomVR.LO, "HBQGROUP3MARKZ");
            ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x0007, 0x1000), DicomVR.UN, Ascii("HBQGROUP7MARKZ")));
            ds.SetString(new DicomTag(0x0009, 0x0010), DicomVR.LO, "HBQCREATORMARKZ");
            ds.SetString(new DicomTag(0x0009, 0x1001), DicomVR.LO, "1");
        }, ["HBQGROUP1MARKZ", "HBQGROUP3MARKZ", "HBQGROUP7MARKZ", "HBQCREATORMARKZ"]),
        new("overlay, curve and variable pixel data groups", (ds, _) =>
        {
            ds.SetString(new DicomTag(0x6000, 0x0022), DicomVR.LO, "HBQOVLDESCMARKZ");
            ds.SetString(new DicomTag(0x6002, 0x1500), DicomVR.LO, "HBQOVLLABELMARKZ");
            ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x6000, 0x3000), DicomVR.OW, Ascii("HBQOVLDATAMARKZ ")));
            ds.SetString(new DicomTag(0x5000, 0x0022), DicomVR.LO, "HBQCURVEMARKZ");
            ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x7F00, 0x0010), DicomVR.OW, Ascii("HBQVARPIXMARKZ")));
        }, ["HBQOVLDESCMARKZ", "HBQOVLLABELMARKZ", "HBQOVLDATAMARKZ", "HBQCURVEMARKZ", "HBQVARPIXMARKZ"]),
        new("icon image, encapsulated document, waveform", (ds, _) =>
        {
            var icon = new DicomDataset();
            icon.SetValues(new DicomTag(0x0028, 0x0010), DicomVR.US, 1);
            icon.AddOrUpdate(new DicomValueElement(new DicomTag(0x7FE0, 0x0010), DicomVR.OB, Ascii("HBQICONMARKZ")));
            ds.AddOrUpdate(new DicomSequence(new DicomTag(0x0088, 0x0200), [icon]));
            ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x0042, 0x0011), DicomVR.OB, Ascii("%PDF-1.4 HBQPDFMARKZ")));
            var wave = new DicomDataset();
            wave.AddOrUpdate(new DicomValueElement(new DicomTag(0x5400, 0x1010), DicomVR.OW, Ascii("HBQWAVEMARKZ")));
            ds.AddOrUpdate(new DicomSequence(new DicomTag(0x5400, 0x0100), [wave]));
        }, ["HBQICONMARKZ", "HBQPDFMARKZ", "HBQWAVEMARKZ"]),
        new("SR content five items deep", (ds, _) =>
        {
            var leaf = new DicomDataset();
            leaf.SetString(new DicomTag(0x0040, 0xA040), DicomVR.CS, "TEXT");
            leaf.SetString(new DicomTag(0x0040, 0xA160), DicomVR.UT, "HBQSRTEXTMARKZ");
            leaf.SetString(new DicomTag(0x0040, 0xA123), DicomVR.PN, "HBQSRPERSON^MARKZ");
            var item = leaf;
            for (var i = 0; i < 5; i++)
            {
                var parent = new DicomDataset();
                parent.SetString(new DicomTag(0x0040, 0xA040), DicomVR.CS, "CONTAINER");
                parent.AddOrUpdate(new DicomSequence(new DicomTag(0x0040, 0xA730), [item]));
                item = parent;
            }

            ds.AddOrUpdate(new DicomSequence(new DicomTag(0x0040, 0xA730), [item]));
        }, ["HBQSRTEXTMARKZ", "HBQSRPERSON"]),
        new("request attributes, referenced patient, other patient IDs", (ds, _) =>
        {
            var request = new DicomDataset();
            request.SetString(new DicomTag(0x0040, 0x1001), DicomVR.SH, "HBQREQPROCMARKZ");
            request.SetString(new DicomTag(0x0032, 0x1060), DicomVR.LO, "HBQREQDESCMARKZ");
            ds.AddOrUpdate(new DicomSequence(new DicomTag(0x0040, 0x0275), [request]));
            var patient = new DicomDataset();
            patient.SetString(new DicomTag(0x0008, 0x1150), DicomVR.UI, "1.2.840.10008.3.1.2.1.1");
            patient.SetString(new DicomTag(0x0008, 0x1155), DicomVR.UI, "1.2.826.0.1.3680043.1928374655");
            ds.AddOrUpdate(new DicomSequence(new DicomTag(0x0008, 0x1120), [patient]));
            var other = new DicomDataset();
            other.SetString(new DicomTag(0x0010, 0x0020), DicomVR.LO, "HBQOTHERPIDMARKZ");
            other.SetString(new DicomTag(0x0010, 0x0021), DicomVR.LO, "HBQOTHERISSMARKZ");
            ds.AddOrUpdate(new DicomSequence(new DicomTag(0x0010, 0x1002), [other]));
            ds.SetString(new DicomTag(0x0010, 0x1000), DicomVR.LO, "HBQOTHERIDSMARKZ");
        }, ["HBQREQPROCMARKZ", "HBQREQDESCMARKZ", "1928374655", "HBQOTHERPIDMARKZ", "HBQOTHERISSMARKZ", "HBQOTHERIDSMARKZ"]),
        new("original/modified attributes, digital signatures, MAC parameters", (ds, _) =>
        {
            var modified = new DicomDataset();
            modified.SetString(new DicomTag(0x0010, 0x0010), DicomVR.PN, "HBQORIGNAME^MARKZ");
            var original = new DicomDataset();
            original.AddOrUpdate(new DicomSequence(new DicomTag(0x0400, 0x0550), [modified]));
            original.SetString(new DicomTag(0x0400, 0x0563), DicomVR.LO, "HBQORIGSOURCEMARKZ");
            ds.AddOrUpdate(new DicomSequence(new DicomTag(0x0400, 0x0561), [original]));
            var signature = new DicomDataset();
            signature.AddOrUpdate(new DicomValueElement(new DicomTag(0x0400, 0x0120), DicomVR.OB, Ascii("HBQSIGNATUREMARKZ ")));
            signature.AddOrUpdate(new DicomValueElement(new DicomTag(0x0400, 0x0115), DicomVR.OB, Ascii("HBQCERTMARKZ")));
            ds.AddOrUpdate(new DicomSequence(new DicomTag(0xFFFA, 0xFFFA), [signature]));
            var mac = new DicomDataset();
            mac.SetString(new DicomTag(0x0400, 0x0015), DicomVR.CS, "HBQMACALGOMARKZ");
            ds.AddOrUpdate(new DicomSequence(new DicomTag(0x4FFE, 0x0001), [mac]));
        }, ["HBQORIGNAME", "HBQORIGSOURCEMARKZ", "HBQSIGNATUREMARKZ", "HBQCERTMARKZ", "HBQMACALGOMARKZ"]),
        new("private block inside an undefined-length item of a kept sequence", (ds, _) =>
        {
            var item = new DicomDataset();
            item.SetString(new DicomTag(0x0029, 0x0010), DicomVR.LO, "HBQITEMCREATORMARKZ");
            item.SetString(new DicomTag(0x0029, 0x1010), DicomVR.LO, "HBQITEMPRIVATEMARKZ");
            item.SetString(new DicomTag(0x0018, 0x9302), DicomVR.CS, "SPIRAL");
            ds.AddOrUpdate(new DicomSequence(new DicomTag(0x0018, 0x9301), [item]) { UndefinedLength = true });
        }, ["HBQITEMCREATORMARKZ", "HBQITEMPRIVATEMARKZ"]),
        new("digits in UIDs that are not obviously UIDs", (ds, _) =>
        {
            ds.SetString(new DicomTag(0x0020, 0x0052), DicomVR.UI, "1.2.826.0.1.3680043.123456789.19700101");
            var reference = new DicomDataset();
            reference.SetString(new DicomTag(0x0008, 0x1150), DicomVR.UI, DeidentificationEngine.CtImageStorage);
            reference.SetString(new DicomTag(0x0008, 0x1155), DicomVR.UI, "1.2.826.0.1.3680043.88877766655");
            var series = new DicomDataset();
            series.AddOrUpdate(new DicomSequence(new DicomTag(0x0008, 0x114A), [reference]));
            ds.AddOrUpdate(new DicomSequence(new DicomTag(0x0008, 0x1115), [series]));
            ds.SetString(new DicomTag(0x0040, 0xA124), DicomVR.UI, "1.2.826.0.1.3680043.55544433322");
            ds.SetString(new DicomTag(0x0088, 0x0140), DicomVR.UI, "1.2.826.0.1.3680043.66655544411");
            ds.SetString(new DicomTag(0x0043, 0x0010), DicomVR.LO, "GEMS_PARM_01");
            ds.SetString(new DicomTag(0x0043, 0x1028), DicomVR.UI, "1.2.826.0.1.3680043.33332222111");
        }, ["123456789", "19700101", "88877766655", "55544433322", "66655544411", "33332222111"]),
    ];

    public static TheoryData<string> TransferSyntaxes() =>
    [
        TransferSyntax.ExplicitVRLittleEndian.Uid, TransferSyntax.ImplicitVRLittleEndian.Uid,
        TransferSyntax.ExplicitVRBigEndian.Uid, TransferSyntax.DeflatedExplicitVRLittleEndian.Uid,
    ];

    [Theory]
    [MemberData(nameof(RemovedFamilies))]
    public void RemovedFamilies_LeaveNoMarker_InAnyTransferSyntax(Probe probe)
    {
        foreach (var syntax in new[] { TransferSyntax.ExplicitVRLittleEndian, TransferSyntax.ImplicitVRLittleEndian, TransferSyntax.ExplicitVRBigEndian, TransferSyntax.DeflatedExplicitVRLittleEndian })
        {
            var ds = CtDataset();
            var file = new DicomFile(ds, syntax);
            probe.Plant(ds, file.FileMetaInformation);
            var input = Reencode(file);
            AssertPresent(Written(input), probe.Markers); // the probe really carries its markers (deflated: in the stream)

            var written = DeidentifyToBytes(input, out var output);

            AssertAbsent(written, probe.Markers);
            Assert.Equal(syntax.Uid, output.TransferSyntax.Uid);
            Assert.Equal(Pixels(), PixelBytes(output));
        }
    }

    /// <summary>
    /// Kept attributes keep only their form. Before: the keep-list (Manufacturer, Body Part Examined, Modality, Specific
    /// Character Set, Convolution Kernel, Filter Type, Scan Options, Patient Position, Rescale Type, Stack ID) and kept
    /// numbers (Slice Thickness DS, Series Number IS) and times (Study Time, C under 113107) were copied verbatim, so any
    /// text a writer put there survived.
    /// </summary>
    [Theory]
    [InlineData(0x0008, 0x0070, "LO", "SIEMENS HBQPROBEMARKZ", "SIEMENS")]
    [InlineData(0x0018, 0x0015, "CS", "HBQPROBEMARKZ", "")]
    [InlineData(0x0008, 0x0060, "CS", "HBQPROBEMARKZ", "")]
    [InlineData(0x0008, 0x0005, "CS", "ISO_IR 100\\HBQPROBEMARKZ", "ISO_IR 100")]
    [InlineData(0x0018, 0x1210, "SH", "B70f\\HBQPROBEMARKZ", "B70f")]
    [InlineData(0x0018, 0x1160, "SH", "HBQPROBEMARKZ", "")]
    [InlineData(0x0018, 0x0022, "CS", "HELICAL MODE\\HBQPROBEMARKZ", "HELICAL MODE")]
    [InlineData(0x0018, 0x5100, "CS", "HBQPROBEMARKZ", "")]
    [InlineData(0x0028, 0x1054, "LO", "HBQPROBEMARKZ", "")]
    [InlineData(0x0020, 0x9056, "SH", "HBQPROBEMARKZ", "")]
    [InlineData(0x0020, 0x0020, "CS", "HBQPROBEMARKZ", "")]
    [InlineData(0x0018, 0x0050, "DS", "HBQPROBEMARKZ", "")]
    [InlineData(0x0020, 0x0011, "IS", "HBQPROBEMARKZ", "")]
    [InlineData(0x0008, 0x0030, "TM", "HBQPROBEMARKZ", "")]
    public void KeptText_ThatIsNotItsForm_IsCleaned(ushort group, ushort element, string vr, string planted, string expected)
    {
        var ds = CtDataset();
        var tag = new DicomTag(group, element);
        ds.SetString(tag, DicomVR.Parse(vr), planted);

        var written = DeidentifyToBytes(Reencode(new DicomFile(ds)), out var output);

        AssertAbsent(written, Marker);
        Assert.Equal(expected, output.Dataset.GetString(tag) ?? string.Empty);
    }

    /// <summary>Real values of the same attributes keep their exact text (the series selection reads kernel and modality).</summary>
    [Theory]
    [InlineData(0x0008, 0x0070, "LO", "GE MEDICAL SYSTEMS")]
    [InlineData(0x0008, 0x0070, "LO", "Philips Medical Systems")]
    [InlineData(0x0008, 0x0070, "LO", "TOSHIBA")]
    [InlineData(0x0018, 0x0015, "CS", "CHEST")]
    [InlineData(0x0018, 0x0015, "CS", "CHEST_TO_PELVIS")]
    [InlineData(0x0008, 0x0060, "CS", "CT")]
    [InlineData(0x0008, 0x0005, "CS", "\\ISO 2022 IR 87")]
    [InlineData(0x0018, 0x1210, "SH", "Br40d\\3")]
    [InlineData(0x0018, 0x1210, "SH", "YA")]
    [InlineData(0x0018, 0x1210, "SH", "FC08-H")]
    [InlineData(0x0018, 0x1210, "SH", "BONEPLUS")]
    [InlineData(0x0018, 0x1210, "SH", "Bf37f\\3")]
    [InlineData(0x0018, 0x1210, "SH", "Sa36f")]
    [InlineData(0x0018, 0x1160, "SH", "LARGE BOWTIE FIL")]
    [InlineData(0x0018, 0x0022, "CS", "HELICAL MODE")]
    [InlineData(0x0018, 0x5100, "CS", "HFS")]
    [InlineData(0x0028, 0x1054, "LO", "HU")]
    [InlineData(0x0020, 0x9056, "SH", "1")]
    [InlineData(0x0020, 0x0020, "CS", "L\\P")]
    [InlineData(0x0018, 0x0050, "DS", "0.625")]
    [InlineData(0x0028, 0x1050, "DS", "-600\\40")]
    [InlineData(0x0020, 0x0011, "IS", "-3")]
    [InlineData(0x0008, 0x0030, "TM", "173333.468000")]
    [InlineData(0x0008, 0x0030, "TM", "10:15:00")]
    public void KeptText_OfItsForm_IsKeptExactly(ushort group, ushort element, string vr, string value)
    {
        var ds = CtDataset();
        var tag = new DicomTag(group, element);
        ds.SetString(tag, DicomVR.Parse(vr), value);

        DeidentifyToBytes(Reencode(new DicomFile(ds)), out var output);

        Assert.Equal(value, output.Dataset.GetString(tag));
    }

    /// <summary>
    /// Binary kept values must be whole values within the VM, and a kept tag list (AT) must name standard attributes: text
    /// posing as Pixel Padding Value or as a Frame Increment Pointer is removed. A real pointer stays.
    /// </summary>
    [Fact]
    public void KeptBinary_ThatIsNotWholeValues_IsRemoved()
    {
        var ds = CtDataset();
        ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x0028, 0x0120), DicomVR.US, Ascii("HBQPADVALMARKZ")));
        ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x0028, 0x0009), DicomVR.AT, Ascii("HBQPOINTERMARKZ ")));
        var kept = CtDataset();
        kept.SetValues(new DicomTag(0x0028, 0x0009), DicomVR.AT, new DicomTag(0x0018, 0x1063));

        var half = CtDataset(); // half a tag (AT's byte-swap unit is 2, a value is 4): found by DeidFuzzTests, seed 20261127
        half.AddOrUpdate(new DicomValueElement(new DicomTag(0x0008, 0x0060), DicomVR.AT, new byte[] { 0x18, 0x00 }));
        half.AddOrUpdate(new DicomValueElement(new DicomTag(0x0028, 0x0009), DicomVR.AT, new byte[] { 0x18, 0x00 }));

        var written = DeidentifyToBytes(Reencode(new DicomFile(ds)), out var output);
        DeidentifyToBytes(Reencode(new DicomFile(kept)), out var keptOutput);
        DeidentifyToBytes(Reencode(new DicomFile(half)), out var halfOutput);

        AssertAbsent(written, "HBQPADVALMARKZ", "HBQPOINTERMARKZ");
        Assert.False(output.Dataset.Contains(new DicomTag(0x0028, 0x0120)));
        Assert.False(output.Dataset.Contains(new DicomTag(0x0028, 0x0009)));
        Assert.True(keptOutput.Dataset.Contains(new DicomTag(0x0028, 0x0009)));
        // Modality labelled AT is judged as the CS it is (round 3): two bytes that are no modality code leave it empty.
        Assert.Equal(string.Empty, halfOutput.Dataset.GetString(new DicomTag(0x0008, 0x0060)) ?? string.Empty);
        Assert.False(halfOutput.Dataset.Contains(new DicomTag(0x0028, 0x0009)));
    }

    /// <summary>
    /// A kept UID attribute under another text VR (changed in transit) is judged as the UID it is: a well-known SOP class
    /// labelled DS stays (and is written as UI, so the output passes the policy again: DeidFuzzTests case 615, seed
    /// 20261127), a site UID labelled LO in Referenced SOP Class UID is remapped.
    /// </summary>
    [Fact]
    public void KeptUidUnderAnotherTextVR_IsMappedAsAUid()
    {
        var ds = CtDataset();
        ds.SetString(new DicomTag(0x0008, 0x0016), DicomVR.DS, DeidentificationEngine.CtImageStorage);
        ds.SetString(new DicomTag(0x0008, 0x1150), DicomVR.LO, "1.2.826.0.1.3680043.4433221100");

        var written = DeidentifyToBytes(Reencode(new DicomFile(ds)), out var output);

        AssertAbsent(written, "4433221100");
        Assert.Equal(DeidentificationEngine.CtImageStorage, output.Dataset.GetString(new DicomTag(0x0008, 0x0016)));
        Assert.Equal(DicomVR.UI, output.Dataset[new DicomTag(0x0008, 0x0016)].VR);
        Assert.StartsWith("2.25.", output.Dataset.GetString(new DicomTag(0x0008, 0x1150)), StringComparison.Ordinal);
        Assert.True(new DeidentificationEngine(DeidentificationEngineTests.Key).DeidentifyFile(output).Accepted);
    }

    /// <summary>
    /// Modality and VOI LUT Sequences carry LUT Data, a table of any words (and a LUT Explanation): removed whole, like the
    /// palettes. Before: both sequences, LUT Descriptor and LUT Data were on the keep-list.
    /// </summary>
    [Fact]
    public void LookupTableSequences_AreRemoved()
    {
        var ds = CtDataset();
        foreach (var sequence in new[] { new DicomTag(0x0028, 0x3000), new DicomTag(0x0028, 0x3010) })
        {
            var lut = new DicomDataset();
            lut.SetValues(new DicomTag(0x0028, 0x3002), DicomVR.US, 4, 0, 16);
            lut.AddOrUpdate(new DicomValueElement(new DicomTag(0x0028, 0x3006), DicomVR.OW, Ascii("HBQLUTDATAMARKZ ")));
            ds.AddOrUpdate(new DicomSequence(sequence, [lut]));
        }

        var written = DeidentifyToBytes(Reencode(new DicomFile(ds)), out var output);

        AssertAbsent(written, "HBQLUTDATAMARKZ");
        Assert.False(output.Dataset.Contains(new DicomTag(0x0028, 0x3000)));
        Assert.False(output.Dataset.Contains(new DicomTag(0x0028, 0x3010)));
    }

    /// <summary>
    /// Encapsulated Pixel Data: text after a frame's data inside its fragment, an extra fragment after the last frame, and
    /// a Basic Offset Table that holds text. Before: the fragments were copied as read. Now the frames are decoded and
    /// written native (explicit VR little endian) with the same pixels.
    /// </summary>
    [Theory]
    [InlineData("tail")]
    [InlineData("extra-fragment")]
    [InlineData("offset-table")]
    public void EncapsulatedPixelData_IsWrittenAsPixelsOnly(string where)
    {
        var ds = CtDataset();
        var rle = RleTestEncoder.Encode(Pixels(), 2, 2, 1, 2);
        var fragments = where switch
        {
            "tail" => new[] { Pad([.. rle, .. Ascii(Marker)]) },
            "extra-fragment" => [Pad(rle), Pad(Ascii(Marker))],
            _ => [Pad(rle)],
        };
        var table = where == "offset-table" ? Pad(Ascii(Marker)) : [];
        ds.AddOrUpdate(new DicomFragmentSequence(
            new DicomTag(0x7FE0, 0x0010), DicomVR.OB, table, fragments.Select(f => new DicomFragment(f))));
        var input = Reencode(new DicomFile(ds, TransferSyntax.Lookup("1.2.840.10008.1.2.5")));
        Assert.Equal(Pixels(), DicomPixelData.Create(input).DecodeFrame(0).Data);

        var written = DeidentifyToBytes(input, out var output);

        AssertAbsent(written, Marker);
        Assert.Equal(TransferSyntax.ExplicitVRLittleEndian.Uid, output.TransferSyntax.Uid);
        Assert.Equal(Pixels(), PixelBytes(output));
    }

    /// <summary>
    /// Encapsulated Pixel Data that does not decode cannot be rewritten: the engine refuses the file (pixel-data-unreadable)
    /// and leaves it as read. Before: the file was accepted, de-identified, with its fragments as read and the refusal on
    /// a side property (DeidOutcome.PixelDataNotRewritten) that each caller had to remember to check.
    /// </summary>
    [Fact]
    public void EncapsulatedPixelData_ThatDoesNotDecode_IsRefused_AndTheFileLeftAsRead()
    {
        var ds = CtDataset();
        ds.AddOrUpdate(new DicomFragmentSequence(
            new DicomTag(0x7FE0, 0x0010), DicomVR.OB, ReadOnlyMemory<byte>.Empty, [new DicomFragment(Pad(Ascii(Marker)))]));
        var input = Reencode(new DicomFile(ds, TransferSyntax.Lookup("1.2.840.10008.1.2.5")));
        var before = Written(input);

        var outcome = new DeidentificationEngine(DeidentificationEngineTests.Key).DeidentifyFile(input);

        Assert.False(outcome.Accepted);
        Assert.Null(outcome.Audit);
        Assert.Equal(DeidRejectReason.PixelDataUnreadable, outcome.Rejection!.Reason);
        Assert.StartsWith("Encapsulated Pixel Data (1.2.840.10008.1.2.5) could not be decoded", outcome.Rejection.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Marker, outcome.Rejection.Message, StringComparison.Ordinal);
        Assert.Equal(before, Written(input));
        Assert.True(new DeidentificationEngine(DeidentificationEngineTests.Key).DeidentifyFile(Reencode(new DicomFile(CtDataset()))).Accepted);
    }

    /// <summary>
    /// The engine's own guarantee, whatever the caller checks: an accepted outcome never leaves encapsulated fragments in
    /// the file (its Pixel Data is a native value in a native transfer syntax, the marker gone); a refused one leaves the
    /// file byte for byte as read. Fragments that decode, fragments that do not (RLE, JPEG, JPEG-LS, JPEG 2000 headers
    /// that are text, a frame that decodes short), through both entry points (DeidentifyFile and the dataset-only
    /// Deidentify, which has no transfer syntax to decode with). Before: the undecodable cases were accepted with their
    /// fragments as read.
    /// </summary>
    [Theory]
    [InlineData("1.2.840.10008.1.2.5", "rle-with-text-after-the-frame", true)]
    [InlineData("1.2.840.10008.1.2.5", "text", false)]
    [InlineData("1.2.840.10008.1.2.5", "rle-frame-too-short", false)]
    [InlineData("1.2.840.10008.1.2.4.50", "text", false)]
    [InlineData("1.2.840.10008.1.2.4.70", "text", false)]
    [InlineData("1.2.840.10008.1.2.4.80", "text", false)]
    [InlineData("1.2.840.10008.1.2.4.90", "text", false)]
    [InlineData("1.2.840.10008.1.2.1.98", "text", true)] // uncompressed: its first 8 bytes are the 2x2 frame's samples
    public void NoAcceptedOutcome_CarriesEncapsulatedFragmentsThatWereNotRewritten(string transferSyntax, string fragment, bool decodes)
    {
        var ds = CtDataset();
        var rle = RleTestEncoder.Encode(Pixels(), 2, 2, 1, 2);
        var bytes = fragment switch
        {
            "rle-with-text-after-the-frame" => Pad([.. rle, .. Ascii(Marker)]),
            "rle-frame-too-short" => Pad(RleTestEncoder.Encode(Pixels()[..4], 2, 1, 1, 2)),
            _ => Pad(Ascii(Marker + " not a frame of this syntax")),
        };
        ds.AddOrUpdate(new DicomFragmentSequence(new DicomTag(0x7FE0, 0x0010), DicomVR.OB, ReadOnlyMemory<byte>.Empty, [new DicomFragment(bytes)]));
        var input = Reencode(new DicomFile(ds, TransferSyntax.Lookup(transferSyntax)));
        var before = Written(input);
        var engine = new DeidentificationEngine(DeidentificationEngineTests.Key);

        var outcome = engine.DeidentifyFile(input);

        if (outcome.Accepted)
        {
            Assert.IsType<DicomValueElement>(input.Dataset[new DicomTag(0x7FE0, 0x0010)]);
            Assert.False(input.TransferSyntax.IsEncapsulated);
            AssertAbsent(Written(input), Marker);
        }
        else
        {
            Assert.Equal(DeidRejectReason.PixelDataUnreadable, outcome.Rejection!.Reason);
            Assert.Equal(before, Written(input));
        }

        Assert.Equal(decodes, outcome.Accepted);

        // The dataset alone: no transfer syntax to decode the fragments with, so never accepted with them.
        var dataset = Reencode(new DicomFile(ds, TransferSyntax.Lookup(transferSyntax))).Dataset;
        var attributesOnly = engine.Deidentify(dataset);
        Assert.Equal(DeidRejectReason.PixelDataUnreadable, attributesOnly.Rejection?.Reason);
        Assert.IsType<DicomFragmentSequence>(dataset[new DicomTag(0x7FE0, 0x0010)]);
        Assert.Equal("Doe^John", dataset.GetString(new DicomTag(0x0010, 0x0010)));
    }

    /// <summary>Native Pixel Data longer than its frames: the bytes after the frames are not pixels and are cut.</summary>
    [Fact]
    public void NativePixelData_BeyondItsFrames_IsCut()
    {
        var ds = CtDataset();
        ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x7FE0, 0x0010), DicomVR.OW, Pad([.. Pixels(), .. Ascii(Marker)])));

        var written = DeidentifyToBytes(Reencode(new DicomFile(ds)), out var output);

        AssertAbsent(written, Marker);
        Assert.Equal(Pixels(), PixelBytes(output));
    }

    /// <summary>
    /// Bytes after the last element that are not an element (a tool appended text to the file). Before: the reader refused
    /// the file (an element declaring more bytes than remain), so the image was lost; now the bytes after the top-level
    /// Pixel Data are ignored (<see cref="DicomFile.TrailingDataOffset"/>) and never written.
    /// </summary>
    [Fact]
    public void TrailingBytesAfterPixelData_AreIgnored()
    {
        var bytes = Written(Reencode(new DicomFile(CtDataset())));
        var input = DicomFile.Read(new MemoryStream([.. bytes, .. Ascii(Marker + Marker + Marker)]));
        Assert.True(input.TrailingDataOffset > 0);

        var written = DeidentifyToBytes(input, out var output);

        AssertAbsent(written, Marker);
        Assert.Equal(Pixels(), PixelBytes(output));
    }

    /// <summary>
    /// A preamble full of text (a TIFF/DICOM dual file) and an unknown transfer syntax UID that carries digits: the preamble
    /// is zeroed and the output is written in explicit VR little endian under its own UID.
    /// </summary>
    [Fact]
    public void Preamble_AndUnknownTransferSyntaxUid_DoNotSurvive()
    {
        var bytes = Written(Reencode(new DicomFile(CtDataset())));
        Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat(Marker, 10)))[..128].CopyTo(bytes, 0);
        var at = bytes.AsSpan().IndexOf("1.2.840.10008.1.2.1\0"u8);
        "1.2.826.0.1.7766554\0"u8.CopyTo(bytes.AsSpan(at)); // same length: the meta group length stays right
        var input = DicomFile.Read(new MemoryStream(bytes));
        Assert.False(input.TransferSyntax.IsKnown);

        var written = DeidentifyToBytes(input, out var output);

        AssertAbsent(written, Marker, "7766554");
        Assert.Equal(TransferSyntax.ExplicitVRLittleEndian.Uid, output.TransferSyntax.Uid);
        Assert.Equal(Pixels(), PixelBytes(output));
    }

    /// <summary>The outputs of the transfer syntax probes parse in dcmtk and pydicom (peers, not only our reader).</summary>
    [Theory]
    [MemberData(nameof(TransferSyntaxes))]
    public void Outputs_ParseInPeers(string transferSyntax)
    {
        var ds = CtDataset();
        var file = new DicomFile(ds, TransferSyntax.Lookup(transferSyntax));
        foreach (var probe in RemovedProbes())
        {
            probe.Plant(ds, file.FileMetaInformation);
        }

        var input = Reencode(file);
        new DeidentificationEngine(DeidentificationEngineTests.Key).DeidentifyFile(input);
        var path = Path.Combine(Path.GetTempPath(), "covidfn-probe2-" + Guid.NewGuid().ToString("N") + ".dcm");
        try
        {
            input.Save(path);
            RealFileDeidentificationTests.AssertParsesInDcmtkAndPydicom(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>A CT dataset of 2x2 16-bit pixels with a full pixel module (so the frames can be measured and decoded).</summary>
    internal static DicomDataset CtDataset()
    {
        var ds = DeidentificationEngineTests.CtDataset();
        ds.SetValues(new DicomTag(0x0028, 0x0002), DicomVR.US, 1);
        ds.SetString(new DicomTag(0x0028, 0x0004), DicomVR.CS, "MONOCHROME2");
        ds.SetValues(new DicomTag(0x0028, 0x0100), DicomVR.US, 16);
        ds.SetValues(new DicomTag(0x0028, 0x0101), DicomVR.US, 12);
        ds.SetValues(new DicomTag(0x0028, 0x0102), DicomVR.US, 11);
        ds.SetValues(new DicomTag(0x0028, 0x0103), DicomVR.US, 0);
        ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x7FE0, 0x0010), DicomVR.OW, Pixels()));
        return ds;
    }

    internal static byte[] Pixels() => [0x10, 0x02, 0x20, 0x04, 0x30, 0x06, 0x40, 0x08];

    internal static byte[] Ascii(string text) => Encoding.ASCII.GetBytes(text);

    private static byte[] Pad(byte[] bytes) => bytes.Length % 2 == 0 ? bytes : [.. bytes, 0];

    internal static byte[] Written(DicomFile file)
    {
        using var stream = new MemoryStream();
        file.Write(stream);
        return stream.ToArray();
    }

    /// <summary>The file as its transfer syntax encodes it, read back: the probe goes through real bytes.</summary>
    internal static DicomFile Reencode(DicomFile file) => DicomFile.Read(new MemoryStream(Written(file)));

    /// <summary>
    /// De-identifies and writes the file; returns the written bytes, plus, for a deflated output, the inflated dataset
    /// (a marker inside the deflate stream is not visible in the bytes as written).
    /// </summary>
    internal static byte[] DeidentifyToBytes(DicomFile file, out DicomFile output)
    {
        var outcome = new DeidentificationEngine(DeidentificationEngineTests.Key).DeidentifyFile(file);
        Assert.True(outcome.Accepted, outcome.Rejection?.Message);
        var bytes = Written(file);
        output = DicomFile.Read(new MemoryStream(bytes, writable: false));
        return WithInflated(bytes);
    }

    /// <summary>The bytes, followed by the raw-inflated dataset when the file is deflated (PS3.5 A.5: after the meta group).</summary>
    private static byte[] WithInflated(byte[] bytes)
    {
        if (bytes.AsSpan().IndexOf(Encoding.ASCII.GetBytes(TransferSyntax.DeflatedExplicitVRLittleEndian.Uid)) < 0)
        {
            return bytes;
        }

        // The writer's meta group starts with (0002,0000) UL: 12 bytes, its value the length of the rest.
        var datasetStart = 132 + 12 + BitConverter.ToInt32(bytes, 140);
        using var inflater = new System.IO.Compression.DeflateStream(
            new MemoryStream(bytes, datasetStart, bytes.Length - datasetStart), System.IO.Compression.CompressionMode.Decompress);
        using var inflated = new MemoryStream();
        inflater.CopyTo(inflated);
        return [.. bytes, .. inflated.ToArray()];
    }

    internal static byte[] PixelBytes(DicomFile file) =>
        Assert.IsType<DicomValueElement>(file.Dataset[new DicomTag(0x7FE0, 0x0010)]).RawValue.ToArray();

    /// <summary>
    /// Every form a marker could take in the bytes: ASCII/Latin-1, byte-swapped in 16-bit words (OW in big endian),
    /// UTF-16 both orders, reversed, base64 at any alignment.
    /// </summary>
    private static IEnumerable<byte[]> Forms(string marker)
    {
        var ascii = Encoding.Latin1.GetBytes(marker);
        yield return ascii;
        var swapped = ascii[..(ascii.Length & ~1)];
        for (var i = 0; i + 1 < swapped.Length; i += 2)
        {
            (swapped[i], swapped[i + 1]) = (swapped[i + 1], swapped[i]);
        }

        yield return swapped[1..^1]; // either word alignment
        yield return Encoding.Unicode.GetBytes(marker);
        yield return Encoding.BigEndianUnicode.GetBytes(marker);
        yield return [.. ascii.Reverse()];
        for (var shift = 0; shift < 3; shift++)
        {
            var encoded = Convert.ToBase64String([.. new byte[shift], .. ascii]);
            var inner = encoded[(shift == 0 ? 0 : 4)..^4]; // the characters that depend on the marker alone
            if (inner.Length >= 8)
            {
                yield return Encoding.ASCII.GetBytes(inner);
            }
        }
    }

    internal static void AssertAbsent(byte[] written, params string[] markers)
    {
        foreach (var marker in markers)
        {
            foreach (var form in Forms(marker))
            {
                Assert.False(written.AsSpan().IndexOf(form) >= 0, $"'{marker}' survives de-identification (as {Encoding.Latin1.GetString(form)})");
            }
        }
    }

    /// <summary>The probe really carries its markers (as ASCII, or byte-swapped in a big endian OW value).</summary>
    internal static void AssertPresent(byte[] input, string[] markers)
    {
        var scanned = WithInflated(input);
        foreach (var marker in markers)
        {
            Assert.True(Forms(marker).Take(2).Any(f => scanned.AsSpan().IndexOf(f) >= 0), $"the probe does not carry '{marker}'");
        }
    }
}
