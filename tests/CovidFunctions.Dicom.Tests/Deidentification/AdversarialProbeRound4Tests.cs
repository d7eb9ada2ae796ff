using System.Text;
using CovidFunctions.Dicom.Deidentification;
using static CovidFunctions.Dicom.Tests.Deidentification.AdversarialProbeRound2Tests;
using static CovidFunctions.Dicom.Tests.Deidentification.ProbeValues;

namespace CovidFunctions.Dicom.Tests.Deidentification;

/// <summary>
/// Round 4 of the PHI probes (session 21; rounds 1-3: <see cref="AdversarialProbeTests"/>, <see cref="AdversarialProbeRound2Tests"/>,
/// <see cref="AdversarialProbeRound3Tests"/>): the three residuals round 3 left. Kept binary numbers were judged by their
/// count only, so text written as whole values (a name as Dimension Index Values UL, a birth date as CTDIvol FD) was kept;
/// Ethnic Group (113108) was kept as written; Retain Safe Private kept its text (LO SH LT) and OB rows unread. Each probe
/// goes through real bytes (written in its transfer syntax, read back), is de-identified and written, and the written
/// bytes are searched in every form of round 2 (ASCII, byte-swapped, UTF-16 both orders, reversed, base64).
/// </summary>
public sealed class AdversarialProbeRound4Tests
{
    private const string Marker = "HBQROUND4MARKZ";

    private static readonly DicomTag PerFrameFunctionalGroups = new(0x5200, 0x9230);
    private static readonly DicomTag FrameContentSequence = new(0x0020, 0x9111);
    private static readonly DicomTag DimensionIndexValues = new(0x0020, 0x9157);
    private static readonly DicomTag EthnicGroup = new(0x0010, 0x2160);

    /// <summary>
    /// Text written as the bytes of a kept number: whole values, so the count check (VM 1-n, or the FD/FL triple's 3) let
    /// it through. Removed now (the engine's convention for a binary value not of its form). The 3-in-4 packing (a NUL in
    /// each UL's top byte) and the UTF-16 form (a character per 16 bits) are caught too.
    /// </summary>
    [Theory]
    [InlineData("dimension-index-ascii")]
    [InlineData("dimension-index-nested")]
    [InlineData("dimension-index-utf16")]
    [InlineData("dimension-index-three-per-value")]
    [InlineData("in-stack-position-ascii")]
    [InlineData("ctdivol-birth-date")]
    [InlineData("data-collection-center-text")]
    [InlineData("calcium-device-text")]
    public void KeptNumber_HoldingText_IsRemoved(string probe)
    {
        var ds = CtDataset();
        var (tag, markers) = PlantNumberProbe(ds, probe);
        foreach (var syntax in new[] { TransferSyntax.ExplicitVRLittleEndian, TransferSyntax.ImplicitVRLittleEndian, TransferSyntax.ExplicitVRBigEndian })
        {
            var input = Reencode(new DicomFile(ds.Clone(), syntax));
            Assert.True(Find(input.Dataset, tag) is not null, "the probe does not carry its element");

            var written = DeidentifyToBytes(input, out var output);

            AssertAbsent(written, markers);
            Assert.Null(Find(output.Dataset, tag));
            Assert.Equal(Pixels(), PixelBytes(output));
        }
    }

    /// <summary>
    /// Real numbers stay byte for byte, including those whose bytes are printable (38.4 as FD is <c>333333C@</c>; the
    /// corpus's Calcium Scoring Mass Factor Device 0.79\0.833\0.872 is twelve printable bytes), computed near-zero residues
    /// of a coordinate (1e-14, 6e-17), small indices, negative padding and zeros. The indices are those of a two-frame
    /// instance with two dimensions (round 5 holds Dimension Index Values to the instance's frames and dimensions; this
    /// test's 1\2\45\300 in a one-frame instance without a Dimension Index Sequence were not indices of it).
    /// </summary>
    [Fact]
    public void KeptNumber_RealValues_AreKeptByteForByte()
    {
        var ds = CtDataset();
        var frame = new DicomDataset();
        frame.AddOrUpdate(new DicomValueElement(DimensionIndexValues, DicomVR.UL, UL(1, 2)));
        ds.SetString(new DicomTag(0x0028, 0x0008), DicomVR.IS, "2");
        ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x7FE0, 0x0010), DicomVR.OW, Pixels().Concat(Pixels()).ToArray()));
        var dimension = new DicomDataset();
        dimension.AddOrUpdate(new DicomValueElement(new DicomTag(0x0020, 0x9165), DicomVR.AT, new byte[] { 0x20, 0x00, 0x57, 0x90 }));
        ds.AddOrUpdate(new DicomSequence(new DicomTag(0x0020, 0x9222), [dimension, dimension.Clone()]));
        var perFrame = new DicomDataset();
        perFrame.AddOrUpdate(new DicomSequence(FrameContentSequence, [frame]));
        ds.AddOrUpdate(new DicomSequence(PerFrameFunctionalGroups, [perFrame]));
        var real = new Dictionary<DicomTag, (DicomVR Vr, byte[] Bytes)>
        {
            [new DicomTag(0x0018, 0x9345)] = (DicomVR.FD, FD(38.4)), // CTDIvol
            [new DicomTag(0x0018, 0x9305)] = (DicomVR.FD, FD(0.35)), // Revolution Time (ffffff, from the corpus)
            [new DicomTag(0x0018, 0x9313)] = (DicomVR.FD, FD(0.0, -185.5, 1234.25)), // Data Collection Center (Patient)
            [new DicomTag(0x0018, 0x9318)] = (DicomVR.FD, FD(-1.4210854715202004e-14, 6.123233995736766e-17, 250.0)),
            [new DicomTag(0x0018, 0x9352)] = (DicomVR.FL, FL(0.79f, 0.833f, 0.872f)), // Calcium Scoring Mass Factor Device
            [new DicomTag(0x0020, 0x9241)] = (DicomVR.FL, FL(75f)), // Nominal Percentage of Cardiac Phase
            [new DicomTag(0x0020, 0x9057)] = (DicomVR.UL, UL(1)), // In-Stack Position Number
            [new DicomTag(0x0028, 0x0120)] = (DicomVR.SS, [0x30, 0xF8]), // Pixel Padding Value -2000
            [new DicomTag(0x0028, 0x0107)] = (DicomVR.US, [0x20, 0x20]), // Largest Image Pixel Value 8224
        };
        foreach (var (tag, (vr, bytes)) in real)
        {
            ds.AddOrUpdate(new DicomValueElement(tag, vr, bytes));
        }

        foreach (var syntax in new[] { TransferSyntax.ExplicitVRLittleEndian, TransferSyntax.ExplicitVRBigEndian })
        {
            DeidentifyToBytes(Reencode(new DicomFile(ds.Clone(), syntax)), out var output);

            foreach (var (tag, (_, bytes)) in real)
            {
                Assert.Equal(bytes, Assert.IsType<DicomValueElement>(output.Dataset[tag]).RawValue.ToArray());
            }

            Assert.Equal(UL(1, 2), Assert.IsType<DicomValueElement>(Find(output.Dataset, DimensionIndexValues)).RawValue.ToArray());
        }
    }

    /// <summary>
    /// Ethnic Group (SH), kept by Retain Patient Characteristics (113108, on by default), was kept as written: a name, a
    /// birth date, an ID or initials there reached the output. Now a value that is not made of ethnic or racial group
    /// terms is emptied, like any other characteristic without its form.
    /// </summary>
    [Theory]
    [InlineData("DOE^JOHN", "DOE^JOHN")]
    [InlineData("HBQROUND4MARKZ", "HBQROUND4MARKZ")]
    [InlineData("19310417", "19310417")]
    [InlineData("MRN 5551234", "5551234")]
    [InlineData("Smith John", "Smith John")]
    [InlineData("White Smith", "White Smith")]
    [InlineData("JD", null)] // initials: too short to search the bytes for, the value is checked
    public void EthnicGroup_HoldingPhi_IsEmptied(string value, string? marker)
    {
        var ds = CtDataset();
        ds.SetString(EthnicGroup, DicomVR.SH, value);
        var input = Reencode(new DicomFile(ds));
        if (marker is not null)
        {
            AssertPresent(Written(input), [marker]);
        }

        var written = DeidentifyToBytes(input, out var output);

        if (marker is not null)
        {
            AssertAbsent(written, marker);
        }

        Assert.Equal(string.Empty, output.Dataset.GetString(EthnicGroup));
    }

    /// <summary>Ethnic and racial group terms (OMB/CDC categories, PS3.16 CID 6099 meanings, one-letter codes) are kept.</summary>
    [Theory]
    [InlineData("WHITE")]
    [InlineData("Caucasian")]
    [InlineData("Black")]
    [InlineData("African American")]
    [InlineData("ASIAN")]
    [InlineData("Hispanic")]
    [InlineData("Non-Hispanic")]
    [InlineData("W")]
    [InlineData("Unknown")]
    [InlineData("Other")]
    public void EthnicGroup_RealValue_IsKept(string value)
    {
        var ds = CtDataset();
        ds.SetString(EthnicGroup, DicomVR.SH, value);

        DeidentifyToBytes(Reencode(new DicomFile(ds)), out var output);

        Assert.Equal(value, output.Dataset.GetString(EthnicGroup));
    }

    /// <summary>
    /// Retain Safe Private (113111) kept its text rows (LO, SH, LT), its OB rows and the rows the standard gives no VR as
    /// written; its binary number rows by count only. Now each text row keeps only its form (pulse sequence name, pitch
    /// ratio, version, unit), rows without one are removed, OB rows keep only padding, binary rows must read as numbers.
    /// </summary>
    [Theory]
    [InlineData(0x0019, "GEMS_ACQU_01", 0x9E, "LO", "DOE^JOHN HBQMARK1")] // Internal Pulse Sequence Name
    [InlineData(0x0019, "GEMS_ACQU_01", 0x9E, "LO", "HBQROUND4MARKZ")]
    [InlineData(0x0043, "GEMS_PARM_01", 0x27, "SH", "19310417")] // Scan Pitch Ratio
    [InlineData(0x7E01, "HOLOGIC, Inc.", 0x01, "LO", "5551234567")] // Codec Version
    [InlineData(0x7E01, "HOLOGIC, Inc.", 0x01, "LO", "1931.04.17")]
    [InlineData(0x7E01, "HOLOGIC, Inc.", 0x02, "SH", "HBQROUND4MARKZ")] // Codec Content Type
    [InlineData(0x0099, "NQHeader", 0x05, "LT", "Patient HBQROUND4MARKZ born 19310417")] // Return Message
    [InlineData(0x0099, "NQHeader", 0x20, "SH", "HBQROUND4MARKZ")] // Units
    [InlineData(0x0119, "SIEMENS Ultrasound SC2000", 0x00, "LO", "HBQROUND4MARKZ")] // Acoustic Meta Information Version
    [InlineData(0x0119, "SIEMENS Ultrasound SC2000", 0x10, "SH", "HBQROUND4MARKZ")] // Acoustic Stream Type
    [InlineData(0x0119, "SIEMENS Ultrasound SC2000", 0x21, "SH", "HBQROUND4MARKZ")] // (no meaning)
    [InlineData(0x0119, "SIEMENS Ultrasound SC2000", 0x11, "UN", "HBQROUND4MARKZ")] // Stage Timer Time (no VR)
    [InlineData(0x7E01, "HOLOGIC, Inc.", 0x12, "OB", "HBQROUND4MARKZ")] // Codec Content
    [InlineData(0x7FD1, "SIEMENS SYNGO ULTRA-SOUND TOYON DATA STREAMING", 0x01, "OB", "HBQROUND4MARKZ")] // Padding
    [InlineData(0x0129, "SIEMENS Ultrasound SC2000", 0x08, "OB", "HBQROUND4MARKZ")] // Visualization Information
    [InlineData(0x0149, "SIEMENS Ultrasound SC2000", 0x01, "FD", "HBQROUND4MARKZXY")] // Vector of BROI Points (FD 1-n)
    [InlineData(0x0025, "GEMS_SERS_01", 0x07, "SL", "HBQ4")] // Images in Series (SL 1)
    [InlineData(0x0045, "GEMS_HELIOS_01", 0x02, "FL", "HBQZ")] // Macro width at ISO Center (FL 1)
    public void SafePrivateRow_HoldingPhi_IsRemoved(int group, string creator, int offset, string vr, string value)
    {
        var ds = CtDataset();
        var tag = PlantPrivate(ds, (ushort)group, creator, (byte)offset, vr, Ascii(value.Length % 2 == 0 ? value : value + " "));
        // Words of eight or more characters (the record the engine writes says "Patient"), else the whole value.
        var words = value.Split(' ').Where(m => m.Length >= 8).ToArray();
        var markers = words.Length > 0 ? words : [value];
        var input = Reencode(new DicomFile(ds));
        AssertPresent(Written(input), markers);

        var written = DeidentifySafePrivate(input, out var output);

        AssertAbsent(written, markers);
        Assert.False(output.Dataset.Contains(tag));
    }

    /// <summary>Real safe-private values stay: the corpus's GE pulse sequence name, GE binary rows, and each text form.</summary>
    [Fact]
    public void SafePrivateRow_RealValues_AreKept()
    {
        var ds = CtDataset();
        var real = new List<(DicomTag Tag, byte[] Bytes)>
        {
            (PlantPrivate(ds, 0x0019, "GEMS_ACQU_01", 0x9E, "LO", Ascii("EFGRE3D ")), Ascii("EFGRE3D ")),
            (PlantPrivate(ds, 0x0043, "GEMS_PARM_01", 0x27, "SH", Ascii("1.375:1 ")), Ascii("1.375:1 ")),
            (PlantPrivate(ds, 0x0099, "NQHeader", 0x20, "SH", Ascii("mm")), Ascii("mm")),
            (PlantPrivate(ds, 0x7E01, "HOLOGIC, Inc.", 0x01, "LO", Ascii("1.2.3 ")), Ascii("1.2.3 ")),
            (PlantPrivate(ds, 0x0119, "SIEMENS Ultrasound SC2000", 0x00, "LO", Ascii("V2.0")), Ascii("V2.0")),
            (PlantPrivate(ds, 0x7FD1, "SIEMENS SYNGO ULTRA-SOUND TOYON DATA STREAMING", 0x01, "OB", new byte[8]), new byte[8]),
            (PlantPrivate(ds, 0x0045, "GEMS_HELIOS_01", 0x02, "FL", FL(0.625f)), FL(0.625f)),
            (PlantPrivate(ds, 0x0025, "GEMS_SERS_01", 0x07, "SL", UL(16777216)), UL(16777216)), // as in the corpus
            (PlantPrivate(ds, 0x0045, "GEMS_HELIOS_01", 0x01, "SS", [64, 0]), [64, 0]),
        };
        var subnormal = new DicomDataset(); // GE writes integers into FL rows: bit pattern 1, a subnormal float (in the corpus)
        ds.AddOrUpdate(new DicomSequence(new DicomTag(0x0008, 0x1140), [subnormal]));
        var inItem = PlantPrivate(subnormal, 0x0045, "GEMS_HELIOS_01", 0x02, "FL", UL(1));

        DeidentifySafePrivate(Reencode(new DicomFile(ds)), out var output);

        foreach (var (tag, bytes) in real)
        {
            Assert.Equal(bytes, Assert.IsType<DicomValueElement>(output.Dataset[tag]).RawValue.ToArray());
        }

        var item = output.Dataset.GetSequence(new DicomTag(0x0008, 0x1140)).Items.Single();
        Assert.Equal(UL(1), Assert.IsType<DicomValueElement>(item[inItem]).RawValue.ToArray());
    }

    /// <summary>The round's outputs (numbers removed, Ethnic Group emptied, safe-private rows removed) parse in dcmtk and pydicom.</summary>
    [Theory]
    [InlineData("1.2.840.10008.1.2.1")]
    [InlineData("1.2.840.10008.1.2.2")]
    public void Outputs_ParseInPeers(string transferSyntax)
    {
        var ds = CtDataset();
        PlantNumberProbe(ds, "dimension-index-nested");
        PlantNumberProbe(ds, "data-collection-center-text");
        ds.SetString(EthnicGroup, DicomVR.SH, "DOE^JOHN");
        PlantPrivate(ds, 0x0019, "GEMS_ACQU_01", 0x9E, "LO", Ascii(Marker));
        PlantPrivate(ds, 0x0019, "GEMS_ACQU_01", 0x23, "DS", Ascii("39.375"));
        PlantPrivate(ds, 0x7E01, "HOLOGIC, Inc.", 0x12, "OB", Ascii(Marker + "XY"));
        var input = Reencode(new DicomFile(ds, TransferSyntax.Lookup(transferSyntax)));
        var engine = new DeidentificationEngine(DeidentificationEngineTests.Key, new DeidentificationOptions { RetainSafePrivate = true });
        Assert.True(engine.DeidentifyFile(input).Accepted);
        var path = Path.Combine(Path.GetTempPath(), "covidfn-probe4-" + Guid.NewGuid().ToString("N") + ".dcm");
        try
        {
            input.Save(path);
            AssertAbsent(File.ReadAllBytes(path), Marker, "DOE^JOHN");
            var output = DicomFile.Open(path);
            Assert.Equal("39.375", output.Dataset.GetString(new DicomTag(0x0019, 0x1023)));
            Assert.Equal(string.Empty, output.Dataset.GetString(EthnicGroup));
            RealFileDeidentificationTests.AssertParsesInDcmtkAndPydicom(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>Plants one number probe; returns the tag it planted (at the top level or in a Frame Content item) and its markers.</summary>
    private static (DicomTag Tag, string[] Markers) PlantNumberProbe(DicomDataset ds, string probe)
    {
        switch (probe)
        {
            case "dimension-index-ascii":
                ds.AddOrUpdate(new DicomValueElement(DimensionIndexValues, DicomVR.UL, Ascii(Marker + "XY")));
                return (DimensionIndexValues, [Marker]);
            case "dimension-index-nested":
                ds.AddOrUpdate(new DicomSequence(PerFrameFunctionalGroups, [FrameContent(Ascii(Marker + "XY"))]));
                return (DimensionIndexValues, [Marker]);
            case "dimension-index-utf16":
                ds.AddOrUpdate(new DicomSequence(PerFrameFunctionalGroups, [FrameContent(Encoding.Unicode.GetBytes("HBQUTF16MARKZX"))]));
                return (DimensionIndexValues, ["HBQUTF16MARKZX"]);
            case "dimension-index-three-per-value":
                // "HBQ", "ROU", "ND4", "MAR": three characters and a NUL per UL, so no run of four; readable all the same.
                ds.AddOrUpdate(new DicomSequence(PerFrameFunctionalGroups, [FrameContent(Ascii("HBQ\0ROU\0ND4\0MAR\0"))]));
                return (DimensionIndexValues, ["HBQ\0ROU"]);
            case "in-stack-position-ascii":
                ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x0020, 0x9057), DicomVR.UL, Ascii("HBQ7")));
                return (new DicomTag(0x0020, 0x9057), ["HBQ7"]);
            case "ctdivol-birth-date":
                ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x0018, 0x9345), DicomVR.FD, Ascii("19310417")));
                return (new DicomTag(0x0018, 0x9345), ["19310417"]);
            case "data-collection-center-text":
                ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x0018, 0x9313), DicomVR.FD, Ascii(Marker + "XY55512345")));
                return (new DicomTag(0x0018, 0x9313), [Marker, "55512345"]);
            case "calcium-device-text":
                ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x0018, 0x9352), DicomVR.FL, Ascii("HBQROUND4MAR")));
                return (new DicomTag(0x0018, 0x9352), ["HBQROUND4MAR"]);
            default:
                throw new ArgumentOutOfRangeException(nameof(probe), probe, null);
        }
    }

    private static DicomDataset FrameContent(byte[] dimensionIndexValues)
    {
        var frame = new DicomDataset();
        frame.AddOrUpdate(new DicomValueElement(DimensionIndexValues, DicomVR.UL, dimensionIndexValues));
        var perFrame = new DicomDataset();
        perFrame.AddOrUpdate(new DicomSequence(FrameContentSequence, [frame]));
        return perFrame;
    }
}
