using System.Text;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Dicom.Tests.Peers;
using Xunit.Abstractions;

namespace CovidFunctions.Dicom.Tests.Deidentification;

/// <summary>
/// The forms of round 4 (<see cref="AdversarialProbeRound4Tests"/>) against the real values of ../shared/data/dicom, read in
/// place: every binary number the rules keep (keep-list or an option's K, at any depth, whatever the SOP class, so MR, US,
/// NM ... attributes count too) that was whole values within its VM must still read as numbers; every value of a Table
/// E.3.10-1 row (Retain Safe Private) that fitted before must still fit, text rows included; every Ethnic Group value is
/// listed with whether it is kept. Measured, not sampled: the counts are printed.
/// </summary>
public sealed class CorpusKeptValueFormsTests(ITestOutputHelper output)
{
    [Fact]
    public void RealKeptValues_KeepTheirForm()
    {
        var rules = new DeidentificationEngine(
            DeidentificationEngineTests.Key, new DeidentificationOptions { RetainSafePrivate = true }).Rules;
        var tally = new Tally();
        int readable = 0, unreadable = 0;
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

            readable++;
            Walk(file.Dataset, rules, PeerCorpus.Relative(path), tally);
        }

        output.WriteLine($"{readable} readable instances ({unreadable} unreadable)");
        output.WriteLine($"kept binary numbers: {tally.Numbers} values checked ({tally.NumbersByVr}); failing ReadsAsNumbers: {tally.NumbersTouched.Count}");
        output.WriteLine($"safe-private binary rows: {tally.SafeNumbers} checked; failing: {tally.SafeTouched.Count}");
        foreach (var line in tally.SafeText.Distinct())
        {
            output.WriteLine("safe-private text row: " + line);
        }

        foreach (var line in tally.Ethnic.GroupBy(l => l).Select(g => $"{g.Key} x{g.Count()}"))
        {
            output.WriteLine("Ethnic Group: " + line);
        }

        Assert.True(readable >= 480, $"only {readable} readable instances: the measurement would prove little");
        Assert.True(tally.Numbers >= 3000, $"only {tally.Numbers} kept binary numbers were checked");
        Assert.True(tally.NumbersTouched.Count == 0, "real kept numbers judged text:\n" + string.Join('\n', tally.NumbersTouched.Take(40)));
        Assert.True(tally.SafeTouched.Count == 0, "real safe-private values judged unfit:\n" + string.Join('\n', tally.SafeTouched.Take(40)));
        Assert.DoesNotContain(tally.SafeText, l => l.EndsWith("removed", StringComparison.Ordinal));
        Assert.DoesNotContain(tally.Ethnic, l => l.EndsWith("emptied", StringComparison.Ordinal));
    }

    private static void Walk(DicomDataset dataset, DeidRuleSet rules, string file, Tally tally)
    {
        foreach (var element in dataset)
        {
            if (element is DicomSequence sequence)
            {
                foreach (var item in sequence.Items)
                {
                    Walk(item, rules, file, tally);
                }

                continue;
            }

            if (element is not DicomValueElement value || element.Tag.IsGroupLength || element.Tag.Group is 0x7FE0 or 0x0002)
            {
                continue;
            }

            var tag = element.Tag;
            if (tag.IsPrivate)
            {
                if (tag.PrivateCreatorTag is { } creatorTag && dataset.TryGetString(creatorTag, out var creator)
                    && SafePrivateAttributes.Find(tag.Group, creator, (byte)(tag.Element & 0xFF)) is { } row)
                {
                    CheckSafeRow(row, value, file, tally);
                }

                continue;
            }

            if (tag.Value == 0x00102160)
            {
                var text = dataset.GetString(tag) ?? string.Empty;
                tally.Ethnic.Add($"'{text}' " + (PatientCharacteristics.IsEthnicGroup(text) ? "kept" : "emptied"));
                continue;
            }

            // The VR the engine judges a kept binary value by: its own, or its attribute's when it carries one the attribute
            // never has (UN, OB ...).
            var vr = value.VR;
            if (!vr.IsBinaryNumber && DicomDictionary.Lookup(tag) is { } entry && entry.VR.IsBinaryNumber && !entry.ValueRepresentations.Contains(vr))
            {
                vr = entry.VR;
            }

            if (!vr.IsBinaryNumber || rules.Lookup(tag.Value).Action != DeidAction.Keep
                || !KeptValueForms.BinaryFits(tag, vr, value.RawValue.Span))
            {
                continue;
            }

            tally.Numbers++;
            tally.CountVr(vr.Code);
            if (!KeptValueForms.ReadsAsNumbers(vr, value.RawValue.Span))
            {
                tally.NumbersTouched.Add($"{file}: {tag} {vr.Code} {Convert.ToHexString(value.RawValue.Span)}");
            }
        }
    }

    private static void CheckSafeRow(SafePrivateAttribute row, DicomValueElement value, string file, Tally tally)
    {
        var raw = value.RawValue.Span;
        var unit = row.VR switch { "FL" or "SL" or "UL" => 4, "FD" => 8, "SS" or "US" => 2, _ => 0 };
        if (unit > 0)
        {
            var max = int.TryParse(row.VM.Split('-')[^1], out var m) ? m : int.MaxValue;
            if (raw.Length % unit != 0 || raw.Length / unit > max)
            {
                return; // not whole values within the VM: removed before this round too
            }

            tally.SafeNumbers++;
            if (!SafePrivateAttributes.ValueFits(row, raw))
            {
                tally.SafeTouched.Add($"{file}: {row.Tag} {row.Creator} {row.VR} {Convert.ToHexString(raw)}");
            }
        }
        else if (row.VR is "LO" or "SH" or "LT" or "OB" or "")
        {
            var shown = row.VR == "OB" ? $"{raw.Length} bytes" : "'" + Encoding.Latin1.GetString(raw).TrimEnd('\0', ' ') + "'";
            tally.SafeText.Add($"{row.Tag} {row.Creator} {row.VR} {shown} " + (SafePrivateAttributes.ValueFits(row, raw) ? "kept" : "removed"));
        }
    }

    private sealed class Tally
    {
        private readonly SortedDictionary<string, int> _byVr = new(StringComparer.Ordinal);

        public int Numbers { get; set; }

        public int SafeNumbers { get; set; }

        public List<string> NumbersTouched { get; } = [];

        public List<string> SafeTouched { get; } = [];

        public List<string> SafeText { get; } = [];

        public List<string> Ethnic { get; } = [];

        public string NumbersByVr => string.Join(", ", _byVr.Select(p => $"{p.Key} {p.Value}"));

        public void CountVr(string vr) => _byVr[vr] = _byVr.GetValueOrDefault(vr) + 1;
    }
}
