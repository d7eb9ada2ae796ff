using System.Text;
using CovidFunctions.Dicom.Deidentification;
using static CovidFunctions.Dicom.Tests.Deidentification.AdversarialProbeRound2Tests;
using static CovidFunctions.Dicom.Tests.Deidentification.ProbeValues;

namespace CovidFunctions.Dicom.Tests.Deidentification;

/// <summary>
/// Round 5 of the PHI probes (session 22; round 4: <see cref="AdversarialProbeRound4Tests"/>): the residuals round 4 left in
/// its Known limits. (a) Text one character per value: Dimension Index Values 72\66\81 spelling a name were numbers a real
/// index can have, and so were six character codes in Image Orientation (Patient). (b) Text shaped to a float's magnitude window: seven characters of eight in every FD value (the top byte
/// one of <c>&lt;=&gt;?@AB</c>), three of four in an FL. (c) Word forms passing surnames: a two-character token of any
/// letters passed the free-text keep-list attributes (Li, Wu, Ng, Xu ... in Body Part Examined or Convolution Kernel),
/// a lone direction word (West, North) Ethnic Group. (d) Retain Safe Private CS rows held to CS characters only, so an
/// upper-case name survived. Each probe goes through real bytes and the written bytes are searched as in round 2, plus
/// the forms a value-per-character probe takes (one character per 4-byte integer, either byte order).
/// </summary>
public sealed class AdversarialProbeRound5Tests
{
    private const string Marker = "HBQROUND5MARKZ";

    private static readonly DicomTag NumberOfFrames = new(0x0028, 0x0008);
    private static readonly DicomTag PerFrameFunctionalGroups = new(0x5200, 0x9230);
    private static readonly DicomTag FrameContentSequence = new(0x0020, 0x9111);
    private static readonly DicomTag DimensionIndexValues = new(0x0020, 0x9157);
    private static readonly DicomTag DimensionIndexSequence = new(0x0020, 0x9222);
    private static readonly DicomTag DimensionIndexPointer = new(0x0020, 0x9165);
    private static readonly DicomTag EthnicGroup = new(0x0010, 0x2160);

    private static readonly TransferSyntax[] Syntaxes =
        [TransferSyntax.ExplicitVRLittleEndian, TransferSyntax.ImplicitVRLittleEndian, TransferSyntax.ExplicitVRBigEndian];

    /// <summary>
    /// (a) A name one character per Dimension Index Values value: whole values, no printable run in any value's bytes, so
    /// round 4's check passed it. An index counts positions along a dimension (PS3.3 C.7.6.17.1: one value per item of the
    /// Dimension Index Sequence, starting at 1), so it is at most the number of frames and there are as many values as
    /// dimensions; a character code in a one- or two-frame instance is neither.
    /// </summary>
    [Theory]
    [InlineData("single-frame-top-level")] // 14 values in a single-frame CT without a Dimension Index Sequence
    [InlineData("single-frame-with-dimensions")] // the same beside a two-item Dimension Index Sequence
    [InlineData("two-frames-per-frame-items")] // Enhanced CT, 2 frames, 2 dimensions: "HB", "QR" per frame
    [InlineData("many-frames-too-many-values")] // 100 frames (values up to 100 fit), 2 dimensions, 14 values
    public void DimensionIndexValues_OneCharacterPerValue_IsRemoved(string probe)
    {
        var ds = CtDataset();
        var markers = PlantIndexProbe(ds, probe);
        foreach (var syntax in Syntaxes)
        {
            var input = Reencode(new DicomFile(ds.Clone(), syntax));
            var before = Written(input);
            Assert.Contains(markers, m => Contains(before, ULPerCharacter(m)) || Contains(before, ULPerCharacterBigEndian(m)));

            var written = DeidentifyToBytes(input, out var output);

            foreach (var marker in markers)
            {
                Assert.False(Contains(written, ULPerCharacter(marker)), $"'{marker}' one character per UL survives ({syntax.Uid})");
                Assert.False(Contains(written, ULPerCharacterBigEndian(marker)), $"'{marker}' one character per UL (BE) survives");
            }

            Assert.Null(Find(output.Dataset, DimensionIndexValues));
        }
    }

    /// <summary>Real indices stay: 1\1 and 1\2 of a two-frame Enhanced CT (as the corpus's CT0012 files), and 1\2 of 2 frames read as in liver_1frame (no Number of Frames, frames counted by items).</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void DimensionIndexValues_RealIndices_AreKept(bool withNumberOfFrames)
    {
        var ds = CtDataset();
        PlantEnhanced(ds, frames: 2, dimensions: 2, withNumberOfFrames, i => UL(1, (uint)(i + 1)));
        foreach (var syntax in Syntaxes)
        {
            DeidentifyToBytes(Reencode(new DicomFile(ds.Clone(), syntax)), out var output);

            var items = output.Dataset.GetSequence(PerFrameFunctionalGroups).Items;
            for (var i = 0; i < items.Count; i++)
            {
                var frame = items[i].GetSequence(FrameContentSequence).Items.Single();
                Assert.Equal(UL(1, (uint)(i + 1)), Assert.IsType<DicomValueElement>(frame[DimensionIndexValues]).RawValue.ToArray());
            }
        }
    }

    /// <summary>
    /// (a) The same one character per value in Image Orientation (Patient), six DS values, at the top level and in a
    /// Plane Orientation item: direction cosines are within [-1, 1], a character code is at least 32. Emptied (DS text).
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ImageOrientation_CharacterCodes_AreEmptied(bool inPlaneOrientationItem)
    {
        const string Codes = "72\\66\\81\\82\\79\\85";
        var ds = CtDataset();
        var orientation = new DicomTag(0x0020, 0x0037);
        var holder = ds;
        if (inPlaneOrientationItem)
        {
            holder = new DicomDataset();
            var shared = new DicomDataset();
            shared.AddOrUpdate(new DicomSequence(new DicomTag(0x0020, 0x9116), [holder]));
            ds.AddOrUpdate(new DicomSequence(new DicomTag(0x5200, 0x9229), [shared]));
        }

        holder.SetString(orientation, DicomVR.DS, Codes);
        var input = Reencode(new DicomFile(ds));
        AssertPresent(Written(input), [Codes]);

        var written = DeidentifyToBytes(input, out var output);

        AssertAbsent(written, Codes);
        var kept = inPlaneOrientationItem
            ? output.Dataset.GetSequence(new DicomTag(0x5200, 0x9229)).Items.Single().GetSequence(new DicomTag(0x0020, 0x9116)).Items.Single()
            : output.Dataset;
        Assert.Equal(string.Empty, kept.GetString(orientation));
    }

    /// <summary>Real orientations stay: axial, and an oblique one with a writer's rounding.</summary>
    [Theory]
    [InlineData("1\\0\\0\\0\\1\\0")]
    [InlineData("0.999998\\-0.00174\\0\\0.00174\\0.999998\\-1.0000001")]
    public void ImageOrientation_Cosines_AreKept(string value)
    {
        var ds = CtDataset();
        ds.SetString(new DicomTag(0x0020, 0x0037), DicomVR.DS, value);

        DeidentifyToBytes(Reencode(new DicomFile(ds)), out var output);

        Assert.Equal(value, output.Dataset.GetString(new DicomTag(0x0020, 0x0037)));
    }

    /// <summary>
    /// (b) Text shaped to a float's window: the top byte of each 8-byte value one of <c>&lt;=&gt;?@AB</c> (so the value is
    /// within [2^-64, 2^40]), the seven below it a name; the top byte of each 4-byte value a character of <c>8-9:;&lt;=&gt;?@A-G</c>.
    /// A measured value is written from a decimal of a few significant digits (38.4, 0.35, 0.79); text in the low bytes
    /// fills the mantissa, so its shortest decimal needs 15 to 17 digits (9 for a 4-byte float).
    /// </summary>
    [Theory]
    [InlineData(0x0018, 0x9345, "FD", "HBQRND5@", "HBQRND5")] // CTDIvol (FD 1): seven characters
    [InlineData(0x0018, 0x9313, "FD", "HBQROUN@D5MARKZ@SMITHJO@", "HBQROUN")] // Data Collection Center (FD 3): 21
    [InlineData(0x0018, 0x9318, "FD", "JOHNDOE>SMITHJA?HBQRND5@", "JOHNDOE")] // Reconstruction Target Center
    [InlineData(0x0018, 0x9352, "FL", "HBQ@ROU@ND5@", "HBQ@ROU@ND5@")] // Calcium Scoring Mass Factor Device (FL 3)
    [InlineData(0x0020, 0x9241, "FL", "DOE?", "DOE?")] // Nominal Percentage of Cardiac Phase (FL 1)
    public void KeptFloat_ShapedText_IsRemoved(int group, int element, string vr, string value, string marker)
    {
        var tag = new DicomTag((ushort)group, (ushort)element);
        var bytes = Ascii(value);
        var ds = CtDataset();
        ds.AddOrUpdate(new DicomValueElement(tag, DicomVR.Parse(vr), bytes));
        foreach (var syntax in Syntaxes)
        {
            var input = Reencode(new DicomFile(ds.Clone(), syntax));
            Assert.True(input.Dataset.Contains(tag));

            var written = DeidentifyToBytes(input, out var output);

            AssertAbsent(written, marker);
            Assert.False(output.Dataset.Contains(tag), $"{tag} kept ({syntax.Uid})");
        }
    }

    /// <summary>
    /// Real floats stay byte for byte, the printable ones included: 38.4 (<c>333333C@</c>), 0.35 as a 4-byte float widened
    /// (0.3499999940395355), the corpus's 0.79\0.833\0.872 FL (twelve printable bytes), a computed coordinate
    /// (-185.49999999999997), cos(90 degrees) 6.1e-17 and -2^-46, a Siemens value of eleven digits (129.60000193, all eight
    /// bytes printable).
    /// </summary>
    [Fact]
    public void KeptFloat_RealValues_AreKeptByteForByte()
    {
        var ds = CtDataset();
        var real = new Dictionary<DicomTag, (DicomVR Vr, byte[] Bytes)>
        {
            [new DicomTag(0x0018, 0x9345)] = (DicomVR.FD, FD(38.4)),
            [new DicomTag(0x0018, 0x9305)] = (DicomVR.FD, FD(0.35f)),
            [new DicomTag(0x0018, 0x9313)] = (DicomVR.FD, FD(-129.60000193, -110.0, 129.60000193)),
            [new DicomTag(0x0018, 0x9318)] = (DicomVR.FD, FD(-185.49999999999997, 6.123233995736766e-17, -1.4210854715202004e-14)),
            [new DicomTag(0x0018, 0x9352)] = (DicomVR.FL, FL(0.79f, 0.833f, 0.872f)),
            [new DicomTag(0x0020, 0x9241)] = (DicomVR.FL, FL(1f / 3)),
        };
        foreach (var (tag, (vr, bytes)) in real)
        {
            ds.AddOrUpdate(new DicomValueElement(tag, vr, bytes));
        }

        foreach (var syntax in Syntaxes)
        {
            DeidentifyToBytes(Reencode(new DicomFile(ds.Clone(), syntax)), out var output);

            foreach (var (tag, (_, bytes)) in real)
            {
                Assert.Equal(bytes, Assert.IsType<DicomValueElement>(output.Dataset[tag]).RawValue.ToArray());
            }
        }
    }

    /// <summary>
    /// (c) Surnames that passed a shape: any two letters were a free-text token (for Philips kernels B, YA), so the
    /// two-letter surnames of the Faker locales (Li, Wu, Ng, Xu, Yu, Ho, Le, Lu, Ma ...) survived in Manufacturer, Body Part
    /// Examined, Convolution Kernel, Filter Type; two letters are now kept only when they are a listed code.
    /// </summary>
    [Theory]
    [InlineData(0x0018, 0x0015, "CS", "WU LI", "")] // Body Part Examined
    [InlineData(0x0018, 0x1210, "SH", "NG", "")] // Convolution Kernel
    [InlineData(0x0018, 0x1210, "SH", "B30f XU", "B30f")]
    [InlineData(0x0008, 0x0070, "LO", "SIEMENS HO LE", "SIEMENS")] // Manufacturer
    [InlineData(0x0018, 0x1160, "SH", "YU MA", "")] // Filter Type
    [InlineData(0x0020, 0x9056, "SH", "LU", "")] // Stack ID
    public void FreeText_TwoLetterSurname_IsDropped(int group, int element, string vr, string value, string expected)
    {
        var tag = new DicomTag((ushort)group, (ushort)element);
        var ds = CtDataset();
        ds.SetString(tag, DicomVR.Parse(vr), value);

        DeidentifyToBytes(Reencode(new DicomFile(ds)), out var output);

        Assert.Equal(expected, output.Dataset.GetString(tag));
    }

    /// <summary>Real one- and two-character codes stay: the corpus's Scan Options FC\SP and SAT2\FS, kernels C and YA, GE, 3D, 11.</summary>
    [Theory]
    [InlineData(0x0018, 0x0022, "CS", "FC\\SP")]
    [InlineData(0x0018, 0x1210, "SH", "C")]
    [InlineData(0x0018, 0x1210, "SH", "YA")]
    [InlineData(0x0018, 0x1210, "SH", "11")]
    [InlineData(0x0018, 0x1160, "SH", "D")]
    [InlineData(0x0018, 0x9323, "CS", "3D")]
    [InlineData(0x0008, 0x0070, "LO", "GE MEDICAL SYSTEMS")]
    [InlineData(0x0008, 0x0070, "LO", "Philips Medical Systems, Inc.")]
    [InlineData(0x0020, 0x9056, "SH", "1")]
    public void FreeText_RealCodes_AreKept(int group, int element, string vr, string value)
    {
        var tag = new DicomTag((ushort)group, (ushort)element);
        var ds = CtDataset();
        ds.SetString(tag, DicomVR.Parse(vr), value);

        DeidentifyToBytes(Reencode(new DicomFile(ds)), out var output);

        Assert.Equal(value, output.Dataset.GetString(tag));
    }

    /// <summary>
    /// (c) Ethnic Group: a direction or a connective names no group (West, North, South, Central, Middle, Non, And); alone
    /// they are surnames (West is in the Faker lists). A value must hold at least one group or answer word.
    /// </summary>
    [Theory]
    [InlineData("WEST")]
    [InlineData("North")]
    [InlineData("South West")]
    [InlineData("Middle")]
    [InlineData("CENTRAL")]
    public void EthnicGroup_OnlyModifiers_IsEmptied(string value)
    {
        var ds = CtDataset();
        ds.SetString(EthnicGroup, DicomVR.SH, value);

        DeidentifyToBytes(Reencode(new DicomFile(ds)), out var output);

        Assert.Equal(string.Empty, output.Dataset.GetString(EthnicGroup));
    }

    /// <summary>Groups with a direction stay.</summary>
    [Theory]
    [InlineData("West Indian")]
    [InlineData("South Asian")]
    [InlineData("Middle Eastern")]
    [InlineData("Non-Hispanic")]
    [InlineData("NON HISPANIC")]
    public void EthnicGroup_GroupWithModifier_IsKept(string value)
    {
        var ds = CtDataset();
        ds.SetString(EthnicGroup, DicomVR.SH, value);

        DeidentifyToBytes(Reencode(new DicomFile(ds)), out var output);

        Assert.Equal(value, output.Dataset.GetString(EthnicGroup));
    }

    /// <summary>
    /// (d) Retain Safe Private CS rows kept any upper-case text (CS characters): a name in Acquisition Type, Phantom Type,
    /// Diffusion Direction(ality), Raw Data Object Type. Each now keeps only its terms, and a row whose terms cannot be
    /// stated is removed.
    /// </summary>
    [Theory]
    [InlineData(0x01F1, "ELSCINT1", 0x01, "DOE JOHN")] // Acquisition Type
    [InlineData(0x01E1, "ELSCINT1", 0x26, "SMITH JANE")] // Phantom Type
    [InlineData(0x2001, "Philips Imaging DD 001", 0x04, "HBQROUND5MARKZ")] // Diffusion Direction
    [InlineData(0x0019, "SIEMENS MR HEADER", 0x0D, "DOE JOHN")] // Diffusion Directionality
    [InlineData(0x0129, "SIEMENS Ultrasound SC2000", 0x30, "HBQROUND5MARKZ")] // Raw Data Object Type
    public void SafePrivateCsRow_HoldingPhi_IsRemoved(int group, string creator, int offset, string value)
    {
        var ds = CtDataset();
        var tag = PlantPrivate(ds, (ushort)group, creator, (byte)offset, "CS", Ascii(value.Length % 2 == 0 ? value : value + " "));
        var input = Reencode(new DicomFile(ds));
        AssertPresent(Written(input), [value]);

        var written = DeidentifySafePrivate(input, out var output);

        AssertAbsent(written, value);
        Assert.False(output.Dataset.Contains(tag));
    }

    /// <summary>Real CS row values stay: the corpus's ELSCINT1 Acquisition Type SLICES, the standard's directionality terms, a Philips direction letter.</summary>
    [Theory]
    [InlineData(0x01F1, "ELSCINT1", 0x01, "SLICES")]
    [InlineData(0x0019, "SIEMENS MR HEADER", 0x0D, "DIRECTIONAL ")]
    [InlineData(0x0019, "SIEMENS MR HEADER", 0x0D, "NONE")]
    [InlineData(0x2001, "Philips Imaging DD 001", 0x04, "I ")]
    [InlineData(0x01E1, "ELSCINT1", 0x26, "BODY")]
    public void SafePrivateCsRow_RealValue_IsKept(int group, string creator, int offset, string value)
    {
        var ds = CtDataset();
        var tag = PlantPrivate(ds, (ushort)group, creator, (byte)offset, "CS", Ascii(value));

        DeidentifySafePrivate(Reencode(new DicomFile(ds)), out var output);

        Assert.Equal(Ascii(value), Assert.IsType<DicomValueElement>(output.Dataset[tag]).RawValue.ToArray());
    }

    /// <summary>Plants one index probe; returns the markers it spells one character per UL value.</summary>
    private static string[] PlantIndexProbe(DicomDataset ds, string probe)
    {
        switch (probe)
        {
            case "single-frame-top-level":
                ds.AddOrUpdate(new DicomValueElement(DimensionIndexValues, DicomVR.UL, ULPerCharacter(Marker)));
                return [Marker];
            case "single-frame-with-dimensions":
                ds.AddOrUpdate(new DicomSequence(DimensionIndexSequence, [Dimension(), Dimension()]));
                ds.AddOrUpdate(new DicomValueElement(DimensionIndexValues, DicomVR.UL, ULPerCharacter("HB")));
                return ["HB"];
            case "two-frames-per-frame-items":
                PlantEnhanced(ds, frames: 2, dimensions: 2, withNumberOfFrames: true, i => ULPerCharacter(i == 0 ? "HB" : "QR"));
                return ["HB", "QR"];
            case "many-frames-too-many-values":
                // Values up to 100 are indices a 100-frame instance can have; 14 of them for 2 dimensions are not.
                PlantEnhanced(ds, frames: 100, dimensions: 2, withNumberOfFrames: true, _ => ULPerCharacter("D1931 04 17 "));
                return ["D1931 04 17 "];
            default:
                throw new ArgumentOutOfRangeException(nameof(probe), probe, null);
        }
    }

    /// <summary>
    /// Makes <paramref name="ds"/> an Enhanced CT of <paramref name="frames"/> frames (pixels for each), a Dimension Index
    /// Sequence of <paramref name="dimensions"/> items and one Per-frame Functional Groups item per frame whose Frame
    /// Content item holds <paramref name="values"/>(frame) as Dimension Index Values.
    /// </summary>
    private static void PlantEnhanced(DicomDataset ds, int frames, int dimensions, bool withNumberOfFrames, Func<int, byte[]> values)
    {
        ds.SetString(DicomTags.SOPClassUID, DicomVR.UI, DeidentificationEngine.EnhancedCtImageStorage);
        if (withNumberOfFrames)
        {
            ds.SetString(NumberOfFrames, DicomVR.IS, frames.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        ds.AddOrUpdate(new DicomValueElement(new DicomTag(0x7FE0, 0x0010), DicomVR.OW, Enumerable.Repeat(Pixels(), frames).SelectMany(p => p).ToArray()));
        ds.AddOrUpdate(new DicomSequence(DimensionIndexSequence, [.. Enumerable.Range(0, dimensions).Select(_ => Dimension())]));
        var items = new List<DicomDataset>();
        for (var i = 0; i < frames; i++)
        {
            var content = new DicomDataset();
            content.AddOrUpdate(new DicomValueElement(DimensionIndexValues, DicomVR.UL, values(i)));
            var perFrame = new DicomDataset();
            perFrame.AddOrUpdate(new DicomSequence(FrameContentSequence, [content]));
            items.Add(perFrame);
        }

        ds.AddOrUpdate(new DicomSequence(PerFrameFunctionalGroups, items));
    }

    private static DicomDataset Dimension()
    {
        var item = new DicomDataset();
        item.AddOrUpdate(new DicomValueElement(DimensionIndexPointer, DicomVR.AT, new byte[] { 0x20, 0x00, 0x57, 0x90 })); // In-Stack Position Number
        return item;
    }

    /// <summary>One UL per character, as a little endian file (and memory) holds it: 'H' is 48 00 00 00.</summary>
    private static byte[] ULPerCharacter(string text) => UL([.. text.Select(c => (uint)c)]);

    /// <summary>The same as a big endian file writes it: 00 00 00 48.</summary>
    private static byte[] ULPerCharacterBigEndian(string text) =>
        [.. text.SelectMany(c => new byte[] { 0, 0, 0, (byte)c })];

    private static bool Contains(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle) >= 0;
}
