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
            Walk(file.Dataset, rules, PeerCorpus.Relative(path), tally, KeptValueForms.FrameShape(file.Dataset));
        }

        output.WriteLine($"{readable} readable instances ({unreadable} unreadable)");
        output.WriteLine($"kept binary numbers: {tally.Numbers} values checked ({tally.NumbersByVr}); failing ReadsAsNumbers: {tally.NumbersTouched.Count}");
        output.WriteLine($"kept float values whose mantissa bytes hold a printable run (judged by their digits, round 5): {tally.PrintableFloats}; full-precision values (over 6 digits as 4-byte, 12 as 8-byte): {tally.FullPrecisionFloats}");
        output.WriteLine($"Image Orientation (Patient): {tally.Orientations} checked; not cosines: {tally.OrientationsTouched.Count}");
        output.WriteLine($"Dimension Index Values: {tally.Indices} checked; not indices of their instance: {tally.IndicesTouched.Count}");
        output.WriteLine($"free-text keep-list tokens of one or two characters: {tally.ShortTokens.Count} ({string.Join(", ", tally.ShortTokens.Distinct())}); dropped: {tally.ShortTokensDropped.Count}");
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
        Assert.True(tally.Indices >= 40, $"only {tally.Indices} Dimension Index Values were checked");
        Assert.True(tally.IndicesTouched.Count == 0, "real Dimension Index Values judged not indices:\n" + string.Join('\n', tally.IndicesTouched.Take(40)));
        Assert.True(tally.OrientationsTouched.Count == 0, "real Image Orientation values emptied:\n" + string.Join('\n', tally.OrientationsTouched.Take(40)));
        Assert.True(tally.ShortTokensDropped.Count == 0, "real free-text codes dropped:\n" + string.Join('\n', tally.ShortTokensDropped.Take(40)));
        Assert.True(tally.SafeTouched.Count == 0, "real safe-private values judged unfit:\n" + string.Join('\n', tally.SafeTouched.Take(40)));
        Assert.DoesNotContain(tally.SafeText, l => l.EndsWith("removed", StringComparison.Ordinal));
        Assert.DoesNotContain(tally.Ethnic, l => l.EndsWith("emptied", StringComparison.Ordinal));
    }

    private static void Walk(DicomDataset dataset, DeidRuleSet rules, string file, Tally tally, (int Frames, int? Dimensions) shape)
    {
        foreach (var element in dataset)
        {
            if (element is DicomSequence sequence)
            {
                foreach (var item in sequence.Items)
                {
                    Walk(item, rules, file, tally, shape);
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

            if (tag.Value == 0x00200037 && value.VR == DicomVR.DS)
            {
                // Round 5: Image Orientation (Patient) holds direction cosines.
                var text = dataset.GetString(tag) ?? string.Empty;
                tally.Orientations++;
                if (KeptValueForms.CleanText(tag.Value, DicomVR.DS, text) != text)
                {
                    tally.OrientationsTouched.Add($"{file}: '{text}'");
                }

                continue;
            }

            if (FreeText.Contains(tag.Value) && value.VR.IsString)
            {
                // Round 5: two-character tokens are kept only when listed; every short token of a real value must stay.
                foreach (var token in (dataset.GetString(tag) ?? string.Empty).Split(['\\', ' ', '_', ',', '-', '/', '+', '(', ')'], StringSplitOptions.RemoveEmptyEntries))
                {
                    if (token.Length <= 2 && token.All(char.IsAsciiLetterOrDigit))
                    {
                        tally.ShortTokens.Add(token);
                        if (KeptValueForms.CleanText(tag.Value, value.VR, token) != token)
                        {
                            tally.ShortTokensDropped.Add($"{file}: {tag} '{token}'");
                        }
                    }
                }

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
            else if (tag.Value == 0x00209157)
            {
                tally.Indices++;
                if (!KeptValueForms.DimensionIndexValuesFit(value.RawValue.Span, shape.Frames, shape.Dimensions))
                {
                    tally.IndicesTouched.Add($"{file}: {Convert.ToHexString(value.RawValue.Span)} frames {shape.Frames} dimensions {shape.Dimensions}");
                }
            }

            if (vr == DicomVR.FL || vr == DicomVR.FD)
            {
                var unit = vr == DicomVR.FL ? 4 : 8;
                for (var i = 0; i + unit <= value.RawValue.Length; i += unit)
                {
                    var bytes = value.RawValue.Span.Slice(i, unit);
                    tally.PrintableFloats += HasPrintableRun(bytes[..(unit - (unit == 4 ? 1 : 2))]) ? 1 : 0;
                    tally.FullPrecisionFloats += IsFullPrecision(bytes, unit) ? 1 : 0;
                }
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
        else if (row.VR is "LO" or "SH" or "LT" or "OB" or "CS" or "")
        {
            var shown = row.VR == "OB" ? $"{raw.Length} bytes" : "'" + Encoding.Latin1.GetString(raw).TrimEnd('\0', ' ') + "'";
            tally.SafeText.Add($"{row.Tag} {row.Creator} {row.VR} {shown} " + (SafePrivateAttributes.ValueFits(row, raw) ? "kept" : "removed"));
        }
    }

    /// <summary>The free-text keep-list attributes (<see cref="KeptValueForms"/>: Manufacturer, Body Part Examined, Scan Options, Filter Type, Convolution Kernel, Exposure Modulation Type, Stack ID).</summary>
    private static readonly HashSet<uint> FreeText = [0x00080070, 0x00180015, 0x00180022, 0x00181160, 0x00181210, 0x00189323, 0x00209056];

    /// <summary>A value whose shortest decimal needs more digits than a measured one (the round-5 digits rule's other half).</summary>
    private static bool IsFullPrecision(ReadOnlySpan<byte> bytes, int unit)
    {
        var d = unit == 4 ? System.Buffers.Binary.BinaryPrimitives.ReadSingleLittleEndian(bytes) : System.Buffers.Binary.BinaryPrimitives.ReadDoubleLittleEndian(bytes);
        if (d == 0 || !double.IsFinite(d))
        {
            return false;
        }

        var asFloat = (float)d;
        var shortest = unit == 4 || asFloat == d ? asFloat.ToString("R", System.Globalization.CultureInfo.InvariantCulture) : d.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        var mantissa = shortest.Split('E')[0];
        var digits = new string([.. mantissa.Where(char.IsAsciiDigit)]).Trim('0').Length;
        return digits > (unit == 4 || asFloat == d ? 6 : 12);
    }

    private static bool HasPrintableRun(ReadOnlySpan<byte> bytes)
    {
        var run = 0;
        foreach (var b in bytes)
        {
            run = b is >= 0x20 and <= 0x7E ? run + 1 : 0;
            if (run >= 3)
            {
                return true;
            }
        }

        return false;
    }

    private sealed class Tally
    {
        private readonly SortedDictionary<string, int> _byVr = new(StringComparer.Ordinal);

        public int Numbers { get; set; }

        public int SafeNumbers { get; set; }

        public int PrintableFloats { get; set; }

        public int FullPrecisionFloats { get; set; }

        public int Orientations { get; set; }

        public List<string> OrientationsTouched { get; } = [];

        public int Indices { get; set; }

        public List<string> IndicesTouched { get; } = [];

        public List<string> ShortTokens { get; } = [];

        public List<string> ShortTokensDropped { get; } = [];

        public List<string> NumbersTouched { get; } = [];

        public List<string> SafeTouched { get; } = [];

        public List<string> SafeText { get; } = [];

        public List<string> Ethnic { get; } = [];

        public string NumbersByVr => string.Join(", ", _byVr.Select(p => $"{p.Key} {p.Value}"));

        public void CountVr(string vr) => _byVr[vr] = _byVr.GetValueOrDefault(vr) + 1;
    }
}
