using System.Text;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Dicom.Tests.Peers;
using Xunit.Abstractions;

namespace CovidFunctions.Dicom.Tests.Deidentification;

/// <summary>
/// A leak scan over every DICOM file in ../shared/data/dicom, with the files' own values instead of planted markers:
/// for each instance the engine accepts (default options), every text value of an attribute the rules remove, empty,
/// replace with a dummy or a keyed UID, and every date the rules shift, taken at any depth, must be absent from the
/// written output (pixel data aside). Values that also stand in an attribute the rules keep are not evidence, since
/// the kept copy is meant to be there.
/// </summary>
public sealed class CorpusLeakScanTests(ITestOutputHelper output)
{
    private const int MinLength = 6;

    private static readonly HashSet<string> TextVrs = ["AE", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "UC", "UI", "UR", "UT"];

    /// <summary>String VRs whose kept values may legitimately repeat a removed one (e.g. Body Part Examined, CS).</summary>
    private static readonly HashSet<string> KeptVrs = [.. TextVrs, "AS", "CS", "DS", "IS", "TM"];

    /// <summary>
    /// <paramref name="everyModality"/>: the burned-in-text policy would refuse most of the corpus (MR, US, SR,
    /// secondary captures...), so each instance is first relabelled as an original CT (SOP class, Image Type, Burned In
    /// Annotation) to let the attribute rules run on every IOD's attributes, not only CT's.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EveryCorpusInstance_OutputHoldsNoneOfItsRemovedOrReplacedValues(bool everyModality)
    {
        using var temp = CovidFunctions.TestHelpers.TestData.CreateTempDirectory();
        var engine = new DeidentificationEngine(DeidentificationEngineTests.Key);
        int accepted = 0, refused = 0, unreadable = 0, scanned = 0;
        var leaks = new List<string>();
        foreach (var path in PeerCorpus.Files)
        {
            DicomFile file;
            try
            {
                file = DicomFile.Open(path);
            }
            catch (DicomFormatException)
            {
                unreadable++;
                continue;
            }

            if (everyModality)
            {
                file.Dataset.SetString(new DicomTag(0x0008, 0x0016), DicomVR.UI, "1.2.840.10008.5.1.4.1.1.2");
                file.FileMetaInformation.SetString(new DicomTag(0x0002, 0x0002), DicomVR.UI, "1.2.840.10008.5.1.4.1.1.2");
                file.Dataset.SetString(new DicomTag(0x0008, 0x0008), DicomVR.CS, "ORIGINAL\\PRIMARY\\AXIAL");
                file.Dataset.Remove(new DicomTag(0x0028, 0x0301));
            }

            var secret = new HashSet<string>(StringComparer.Ordinal);
            var kept = new StringBuilder();
            Collect(file.Dataset, engine.Rules, secret, kept);
            foreach (var element in file.FileMetaInformation)
            {
                if (element is DicomValueElement { Tag.Value: 0x00020003 or 0x00020016 or 0x00020100 } value)
                {
                    AddComponents(value.RawValue.Span, value.VR.Code == "UI", value.Tag.Value == 0x00020003, secret);
                }
            }

            var outcome = engine.DeidentifyFile(file);
            if (!outcome.Accepted)
            {
                refused++;
                continue;
            }

            accepted++;
            file.Dataset.Remove(new DicomTag(0x7FE0, 0x0010));
            var outPath = Path.Combine(temp.Path, "out.dcm");
            file.Save(outPath);
            var written = Encoding.Latin1.GetString(File.ReadAllBytes(outPath));

            // What the engine writes itself (pseudonym, the de-identification record of group 0012) may repeat an
            // input that was de-identified before: the same option codes and meanings are not a leak.
            AppendText(file.Dataset, element => element.Tag.Group == 0x0012 || element.Tag.Value is 0x00100010 or 0x00100020, kept);
            var keptText = kept.ToString();
            foreach (var value in secret)
            {
                if (keptText.Contains(value, StringComparison.Ordinal))
                {
                    continue;
                }

                scanned++;
                if (written.Contains(value, StringComparison.Ordinal))
                {
                    leaks.Add($"{PeerCorpus.Relative(path)}: '{value}'");
                }
            }
        }

        output.WriteLine($"every modality: {everyModality}; {PeerCorpus.Files.Count} files: {accepted} accepted, {refused} refused by policy, {unreadable} unreadable; {scanned} original values scanned for");
        Assert.True(leaks.Count == 0, $"{leaks.Count} original value(s) survive de-identification:\n" + string.Join("\n", leaks.Take(40)));
        Assert.True(accepted >= (everyModality ? 400 : 100), $"only {accepted} instances were accepted: the scan would prove little");
        Assert.True(scanned >= (everyModality ? 5000 : 1000), $"only {scanned} values were scanned for");
    }

    /// <summary>
    /// Splits the dataset's text values into those that must not survive (<paramref name="secret"/>) and those kept on
    /// purpose (<paramref name="kept"/>, one string to search in), recursing into sequences.
    /// </summary>
    private static void Collect(DicomDataset dataset, DeidRuleSet rules, HashSet<string> secret, StringBuilder kept)
    {
        foreach (var element in dataset)
        {
            var (action, _) = rules.Lookup(element.Tag.Value);
            if (element is DicomSequence sequence)
            {
                foreach (var item in sequence.Items)
                {
                    Collect(item, rules, secret, kept);
                }

                continue;
            }

            if (element is not DicomValueElement value || value.IsBulkData || !KeptVrs.Contains(value.VR.Code))
            {
                continue;
            }

            var vr = value.VR.Code;
            var mustGo = action switch
            {
                DeidAction.Remove or DeidAction.Zero or DeidAction.Dummy => true,
                DeidAction.RemapUid => vr == "UI",
                DeidAction.Clean => vr is "DA" or "DT",
                _ => false,
            };
            if (mustGo && TextVrs.Contains(vr))
            {
                AddComponents(value.RawValue.Span, vr == "UI", action == DeidAction.RemapUid, secret);
            }
            else if (action == DeidAction.Keep || action == DeidAction.Clean)
            {
                kept.Append(Encoding.Latin1.GetString(value.RawValue.Span)).Append('\n');
            }
        }
    }

    private static void AppendText(DicomDataset dataset, Func<DicomElement, bool> select, StringBuilder text)
    {
        foreach (var element in dataset)
        {
            if (element is DicomSequence sequence && select(element))
            {
                foreach (var item in sequence.Items)
                {
                    AppendText(item, _ => true, text);
                }
            }
            else if (element is DicomValueElement { IsBulkData: false } value && select(element))
            {
                text.Append(Encoding.Latin1.GetString(value.RawValue.Span)).Append('\n');
            }
        }
    }

    private static void AddComponents(ReadOnlySpan<byte> raw, bool uid, bool instanceUid, HashSet<string> secret)
    {
        foreach (var part in Encoding.Latin1.GetString(raw).Split('\\'))
        {
            var component = part.Trim(' ', '\0');
            if (component.Length < MinLength || component.Distinct().Count() < 3)
            {
                continue; // too short or too uniform ("000000") to be evidence of anything
            }

            if (uid && component.StartsWith("1.2.840.10008.", StringComparison.Ordinal)
                && (!instanceUid || KeyedMappings.IsWellKnownInstanceUid(component)))
            {
                // A UID defined by the standard (SOP class, transfer syntax, coding scheme, well-known frame) is not PHI; an
                // instance UID (U rule) under the root is not the standard's and must be mapped (session 20).
                continue;
            }

            secret.Add(component);
        }
    }
}
