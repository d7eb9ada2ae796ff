using System.Diagnostics;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Dicom.Tests.Deidentification;
using CovidFunctions.Dicom.Tests.IO;

namespace CovidFunctions.Dicom.Tests.Fuzz;

/// <summary>
/// Mutation fuzzing of de-identification: every mutated case that reads is de-identified
/// (<see cref="DeidentificationEngine.DeidentifyFile"/>, a fixed test key, Retain Safe Private on every other case); an
/// accepted output is written and must read back with our reader. Most corpus seeds are not CT or not ORIGINAL\PRIMARY,
/// so a case the policy refuses is run a second time with SOP Class UID and Image Type set to pass it: the rules then see
/// every kind of element the corpus holds. Synthetic CT seeds carry keep-list sequences encoded as UN (explicit little
/// and big endian, implicit; nested; not items) so <see cref="IO.DicomReader.ReadUNValueAsSequence"/> is fuzzed too.
/// Oracle: de-identifying and writing may only throw the <see cref="DicomException"/> family (a value the engine cannot
/// decode or encode, Pixel Data that cannot be written in the file's syntax: the CLI refuses such an instance); never
/// IndexOutOfRange, ArgumentOutOfRange, NullReference, InvalidOperation, Overflow, OutOfMemory, nor a hang (10 s per case).
/// An accepted output must read back, and de-identifying it again must accept it without an exception.
/// CI runs <see cref="DefaultCases"/> cases bounded to about a minute; COVIDFN_FUZZ_CASES / COVIDFN_FUZZ_SEED as for
/// <see cref="DicomFuzzTests"/> (docs/fuzzing.md).
/// </summary>
public class DeidFuzzTests
{
    private const int DefaultCases = 6000;
    private const int DefaultSeed = 20261127;
    private static readonly DicomTag SopClassUid = new(0x0008, 0x0016);
    private static readonly DicomTag ImageType = new(0x0008, 0x0008);
    private static readonly DicomTag BurnedInAnnotation = new(0x0028, 0x0301);

    private static readonly DeidentificationEngine Engine = new(DeidentificationEngineTests.Key);
    private static readonly DeidentificationEngine SafePrivateEngine = new(DeidentificationEngineTests.Key, new DeidentificationOptions { RetainSafePrivate = true });

    [Fact]
    public async Task Deidentify_MutatedFiles_ThrowsOnlyDicomExceptionsAndOutputsReadBack()
    {
        var (cases, seed, budget) = FuzzDriver.Settings(DefaultCases, DefaultSeed);
        var seeds = Seeds();
        Assert.NotEmpty(seeds);

        var random = new Random(seed);
        var failures = new List<string>();
        var outcomes = new Dictionary<string, int>(StringComparer.Ordinal);
        var clock = Stopwatch.StartNew();
        var run = 0;
        for (; run < cases && clock.Elapsed < budget && failures.Count < 10; run++)
        {
            // Synthetic UN seeds are a handful among ~60 corpus files: picked a third of the time so they are fuzzed often.
            var (name, original) = random.Next(3) == 0 ? seeds[random.Next(SyntheticSeeds.Value.Count)] : seeds[random.Next(seeds.Count)];
            // Byte mutations mostly break the file (the reader's job, DicomFuzzTests); value mutations keep it readable and
            // put hostile values where the rules look (dates, UIDs, characteristics, Image Type, UN bytes).
            var (mutation, bytes) = random.Next(2) == 0 ? DicomFuzzTests.Mutate(original, random) : MutateValues(original, random);
            var safePrivate = run % 2 == 1;
            var outcome = await FuzzDriver.RunCaseAsync(() => Exercise(bytes, safePrivate));
            if (outcome is null)
            {
                failures.Add($"case {run} ({name}, {mutation}): no result within {FuzzDriver.CaseDeadline.TotalSeconds} s — {DicomFuzzTests.Save(bytes, run)}");
                continue;
            }

            if (outcome.Unexpected is { } ex)
            {
                failures.Add($"case {run} ({name}, {mutation}, safe private {safePrivate}): {outcome.Kind}: {ex.GetType().Name}: {ex.Message} — {DicomFuzzTests.Save(bytes, run)}\n{ex.StackTrace}");
                continue;
            }

            var kind = (mutation.StartsWith("value mutation: ", StringComparison.Ordinal) ? "values: " : mutation.StartsWith("value", StringComparison.Ordinal) ? "values (unwritable, seed as is): " : "bytes: ") + outcome.Kind;
            outcomes[kind] = outcomes.GetValueOrDefault(kind) + 1;
        }

        var summary = $"deid seed {seed}: {run} cases in {clock.Elapsed.TotalSeconds:F1} s; " + string.Join(", ", outcomes.OrderBy(o => o.Key, StringComparer.Ordinal).Select(o => $"{o.Key} {o.Value}"));
        Console.WriteLine(summary);
        Assert.True(failures.Count == 0, summary + "\n" + string.Join("\n", failures));
        Assert.True(run >= Math.Min(cases, 300), $"only {run} cases ran in the budget: {summary}");
        Assert.True(outcomes.Where(o => o.Key.StartsWith("values: accepted", StringComparison.Ordinal)).Sum(o => o.Value) > 0, "no value-mutated case reached the rules and the writer: " + summary);
    }

    /// <summary>The synthetic seeds first (so <c>seeds[random.Next(SyntheticSeeds.Value.Count)]</c> picks one), then the corpus seeds.</summary>
    private static List<(string Name, byte[] Bytes)> Seeds() => [.. SyntheticSeeds.Value, .. DicomFuzzTests.LoadSeeds()];

    private static readonly Lazy<List<(string Name, byte[] Bytes)>> SyntheticSeeds = new(BuildSyntheticSeeds);

    /// <summary>
    /// Reads <paramref name="bytes"/>, de-identifies them (with the policy forced to pass when it refused), writes an
    /// accepted output and reads it back; classifies the outcome. Unexpected carries any exception the oracle forbids.
    /// </summary>
    internal static DicomFuzzTests.Outcome Exercise(byte[] bytes, bool retainSafePrivate)
    {
        DicomFile file;
        try
        {
            file = DicomFile.Read(new MemoryStream(bytes, writable: false), DicomReadOptions.Default, "fuzz-case");
        }
        catch (DicomFormatException)
        {
            return new DicomFuzzTests.Outcome("unreadable", null);
        }
        catch (Exception ex)
        {
            return new DicomFuzzTests.Outcome("crash in read", ex);
        }

        var engine = retainSafePrivate ? SafePrivateEngine : Engine;
        DeidOutcome outcome;
        var forced = false;
        try
        {
            outcome = engine.DeidentifyFile(file);
            if (!outcome.Accepted)
            {
                // Refused files are left untouched: make them pass the policy so the rules run on what they hold.
                file.Dataset.SetString(SopClassUid, DicomVR.UI, DeidentificationEngine.CtImageStorage);
                file.Dataset.SetString(ImageType, DicomVR.CS, "ORIGINAL\\PRIMARY\\AXIAL");
                file.Dataset.Remove(BurnedInAnnotation);
                forced = true;
                outcome = engine.DeidentifyFile(file);
            }
        }
        catch (DicomException ex)
        {
            return new DicomFuzzTests.Outcome($"deid refused ({ex.GetType().Name})", null);
        }
        catch (Exception ex)
        {
            return new DicomFuzzTests.Outcome("crash in deid", ex);
        }

        if (!outcome.Accepted)
        {
            return new DicomFuzzTests.Outcome("deid policy refused", null);
        }

        byte[] written;
        DicomFile output;
        try
        {
            using var stream = new MemoryStream();
            file.Write(stream);
            written = stream.ToArray();
        }
        catch (DicomException ex)
        {
            return new DicomFuzzTests.Outcome($"write refused ({ex.GetType().Name})", null);
        }
        catch (Exception ex)
        {
            return new DicomFuzzTests.Outcome("crash in write", ex);
        }

        try
        {
            var reread = DicomFile.Read(new MemoryStream(written, writable: false), DicomReadOptions.Default, "fuzz-output");
            _ = reread.Dataset.Count;
            output = reread;
        }
        catch (Exception ex)
        {
            return new DicomFuzzTests.Outcome("output does not read back", ex);
        }

        try
        {
            // What the engine wrote is a CT instance it accepts again (a de-identified file fed back, as a re-run does).
            if (!engine.DeidentifyFile(output).Accepted)
            {
                return new DicomFuzzTests.Outcome("output refused on a second pass", new InvalidOperationException("the engine refused its own output"));
            }
        }
        catch (Exception ex)
        {
            return new DicomFuzzTests.Outcome("crash in second pass", ex);
        }

        return new DicomFuzzTests.Outcome(forced ? "accepted+reread (policy forced)" : "accepted+reread", null);
    }

    private static readonly string[] HostileTexts =
    [
        "", " ", "\\", "\\\\\\", "99999999999999999999", "-2147483649", "1e400", "NaN", "-0", "19000229", "20201301", "99991231",
        "00000000", "2020", "202001011212129999999+9999", "-1200", "1.2.3\\", "2.25.99999999999999999999999999999999999999999",
        "0.0", ".", "999Y", "000D", "Y", "ORIGINAL\\PRIMARY\\", "ORIGINAL\\PRIMARY\\AXIAL\\JOHN^DOE\\\\", "YES\\NO",
        "\0\0\0\0", "DOE^JOHN^^^", "=", "^^^^", "M\\F", "ISO_IR 192", "\u001b$B", "1 2 3 4 5", "NQHeader", "\u00ff\u00fe",
    ];

    private static readonly DicomVR[] RetypeVRs =
        [DicomVR.UN, DicomVR.UN, DicomVR.UN, DicomVR.CS, DicomVR.DA, DicomVR.DT, DicomVR.UI, DicomVR.PN, DicomVR.US, DicomVR.FD, DicomVR.AT, DicomVR.OB, DicomVR.DS, DicomVR.IS, DicomVR.AS];

    /// <summary>
    /// Reads <paramref name="original"/>, changes the values of 1-4 elements at any depth (random bytes, hostile text, the
    /// same bytes under another VR, UN above all, or an item's element copied as a raw UN), and writes the file again in its
    /// own syntax. A value the writer cannot encode gives back the original bytes.
    /// </summary>
    internal static (string Mutation, byte[] Bytes) MutateValues(byte[] original, Random random)
    {
        DicomFile file;
        try
        {
            file = DicomFile.Read(new MemoryStream(original, writable: false), DicomReadOptions.Default, "fuzz-seed");
        }
        catch (DicomFormatException)
        {
            return ("value mutation: seed unreadable", original);
        }

        var slots = new List<(DicomDataset Dataset, DicomElement Element)>();
        Collect(file.Dataset, slots);
        if (slots.Count == 0)
        {
            return ("value mutation: no element", original);
        }

        var names = new List<string>();
        for (int r = 0, rounds = 1 + random.Next(4); r < rounds; r++)
        {
            var (dataset, element) = slots[random.Next(slots.Count)];
            var vr = element.VR == DicomVR.SQ ? DicomVR.UN : element.VR;
            ReadOnlyMemory<byte> value;
            switch (random.Next(4))
            {
                case 0:
                    var bytes = new byte[random.Next(65)];
                    random.NextBytes(bytes);
                    value = bytes;
                    names.Add($"{element.Tag} random {bytes.Length} bytes");
                    break;
                case 1:
                    var text = HostileTexts[random.Next(HostileTexts.Length)];
                    value = System.Text.Encoding.Latin1.GetBytes(text);
                    names.Add($"{element.Tag} text '{text}'");
                    break;
                case 2:
                    vr = RetypeVRs[random.Next(RetypeVRs.Length)];
                    value = element is DicomValueElement { IsBulkData: false } v ? v.RawValue : ItemsAsUN(element as DicomSequence, random);
                    names.Add($"{element.Tag} as {vr.Code}");
                    break;
                default:
                    // A sequence the writer re-encodes as UN: its items as implicit VR little endian bytes (PS3.5 6.2.2).
                    vr = DicomVR.UN;
                    value = ItemsAsUN(element as DicomSequence, random);
                    names.Add($"{element.Tag} as UN items");
                    break;
            }

            try
            {
                dataset.AddOrUpdate(new DicomValueElement(element.Tag, vr, value));
            }
            catch (ArgumentException)
            {
                names.Add("(not settable)");
            }
        }

        try
        {
            using var stream = new MemoryStream();
            file.Write(stream);
            return ("value mutation: " + string.Join("; ", names), stream.ToArray());
        }
        catch (DicomException)
        {
            return ("value mutation unwritable: " + string.Join("; ", names), original);
        }
    }

    private static void Collect(DicomDataset dataset, List<(DicomDataset, DicomElement)> slots)
    {
        foreach (var element in dataset)
        {
            if (element.Tag.Group == 0x7FE0 || element is DicomValueElement { IsBulkData: true })
            {
                continue; // pixels: no rule looks into them
            }

            slots.Add((dataset, element));
            if (element is DicomSequence sequence)
            {
                foreach (var item in sequence.Items)
                {
                    Collect(item, slots);
                }
            }
        }
    }

    /// <summary>The items of <paramref name="sequence"/> written as implicit VR little endian item bytes (random bytes for none).</summary>
    private static ReadOnlyMemory<byte> ItemsAsUN(DicomSequence? sequence, Random random)
    {
        if (sequence is null || sequence.Items.Count == 0)
        {
            var bytes = new byte[8 + random.Next(32)];
            random.NextBytes(bytes);
            bytes[0] = 0xFE;
            bytes[1] = 0xFF;
            bytes[2] = 0x00;
            bytes[3] = 0xE0; // an item tag, then whatever follows
            return bytes;
        }

        var items = new IO.DicomBytes(explicitVR: false);
        foreach (var item in sequence.Items)
        {
            using var stream = new MemoryStream();
            try
            {
                new DicomFile(item, TransferSyntax.ImplicitVRLittleEndian).Write(stream);
            }
            catch (DicomException)
            {
                continue;
            }

            var body = DatasetBody(stream.ToArray());
            items.ItemStart((uint)body.Length).Raw(body);
        }

        return items.ToArray();
    }

    /// <summary>The dataset bytes of a Part 10 file (after the preamble, DICM and the meta group).</summary>
    private static byte[] DatasetBody(byte[] part10)
    {
        var metaLength = BitConverter.ToUInt32(part10, 128 + 4 + 8);
        return part10[(int)(128 + 4 + 12 + metaLength)..];
    }

    /// <summary>
    /// CT instances whose keep-list sequences are encoded as UN (PS3.5 6.2.2: implicit VR little endian items whatever the
    /// file's syntax), in explicit little endian, explicit big endian and implicit little endian files; one nests a UN
    /// sequence in a UN item, one holds a UN value that is not items, one a kept UID as UN and a safe private block.
    /// </summary>
    private static List<(string Name, byte[] Bytes)> BuildSyntheticSeeds()
    {
        const string explicitLittle = "1.2.840.10008.1.2.1";
        const string explicitBig = "1.2.840.10008.1.2.2";
        const string implicitLittle = "1.2.840.10008.1.2";

        var innerItem = new DicomBytes(explicitVR: false)
            .Text(0x0008, 0x0080, "LO", "FUZZHOSPITAL")
            .Text(0x0008, 0x1155, "UI", "1.2.826.0.1.3680043.99.42", 0)
            .Text(0x0018, 0x9302, "CS", "SPIRAL")
            .Text(0x0040, 0xA123, "PN", "FUZZ^PERSON")
            .Text(0x0008, 0x0020, "DA", "20200101")
            .ToArray();
        var definedItems = new DicomBytes(explicitVR: false).ItemStart((uint)innerItem.Length).Raw(innerItem).ToArray();
        var undefinedItems = new DicomBytes(explicitVR: false).ItemStart().Raw(innerItem).ItemEnd().ItemStart((uint)innerItem.Length).Raw(innerItem).ToArray();
        // A UN sequence inside the item of a UN sequence (Shared Functional Groups > CT Acquisition Type).
        var nestedItem = new DicomBytes(explicitVR: false).Element(0x0018, 0x9301, "UN", definedItems).Raw(innerItem).ToArray();
        var nested = new DicomBytes(explicitVR: false).ItemStart((uint)nestedItem.Length).Raw(nestedItem).ToArray();

        var seeds = new List<(string, byte[])>();
        foreach (var (syntax, label) in new[] { (explicitLittle, "explicit LE"), (explicitBig, "explicit BE"), (implicitLittle, "implicit LE") })
        {
            seeds.Add(($"synthetic UN sequences ({label})", CtFile(syntax, b => b
                .Element(0x0008, 0x1140, "UN", definedItems)      // Referenced Image Sequence (UIDs remapped)
                .Element(0x0018, 0x9301, "UN", undefinedItems)    // CT Acquisition Type Sequence (keep-list)
                .Element(0x5200, 0x9229, "UN", nested))));        // Shared Functional Groups Sequence (keep-list)
        }

        seeds.Add(("synthetic UN not items + UN UID + safe private (explicit LE)", CtFile(explicitLittle, b => b
            .Element(0x0008, 0x1150, "UN", "1.2.826.0.1.3680043.99.7\0"u8.ToArray())
            .Element(0x0018, 0x9301, "UN", "NOTITEMS"u8.ToArray())
            .Text(0x0099, 0x0010, "LO", "NQHeader")
            .Text(0x0099, 0x1002, "UI", "1.2.826.0.1.3680043.99.8", 0)
            .Element(0x0099, 0x1004, "UN", definedItems))));

        // Each must read before mutation, or it seeds nothing.
        foreach (var (name, bytes) in seeds)
        {
            _ = DicomFile.Read(new MemoryStream(bytes, writable: false), DicomReadOptions.Default, name);
        }

        return seeds;
    }

    private static byte[] CtFile(string transferSyntax, Action<DicomBytes> more)
    {
        var b = DicomBytes.Part10(transferSyntax)
            .Text(0x0008, 0x0008, "CS", "ORIGINAL\\PRIMARY\\AXIAL")
            .Text(0x0008, 0x0016, "UI", DeidentificationEngine.CtImageStorage, 0)
            .Text(0x0008, 0x0018, "UI", "1.2.826.0.1.3680043.99.1", 0)
            .Text(0x0008, 0x0060, "CS", "CT")
            .Text(0x0010, 0x0010, "PN", "Fuzz^Patient")
            .Text(0x0010, 0x0020, "LO", "FUZZPID01");
        more(b);
        b.UShort(0x0028, 0x0010, 2).UShort(0x0028, 0x0011, 2).UShort(0x0028, 0x0100, 16);
        b.Element(0x7FE0, 0x0010, "OW", new byte[8]);
        return b.ToArray();
    }
}
