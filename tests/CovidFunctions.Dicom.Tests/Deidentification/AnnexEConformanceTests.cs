using System.Xml.Linq;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Dicom.Tests.Deidentification;

/// <summary>
/// Proves the action table against the standard itself: parses ../shared/data/standard/part15.xml (Table E.1-1, 2017c) at
/// test time and checks that every listed attribute is handled by our rules at least as strictly (strictness order in
/// <see cref="AnnexEStrictness"/>), under the default options and under each supported option alone.
/// </summary>
public sealed class AnnexEConformanceTests
{
    private static readonly XNamespace Db = "http://docbook.org/ns/docbook";
    private static readonly XNamespace Xml = "http://www.w3.org/XML/1998/namespace";

    private static readonly string[] Columns =
    [
        "Basic", "RetainSafePrivate", "RetainUids", "RetainDeviceIdentity", "RetainPatientCharacteristics",
        "RetainLongitudinalFullDates", "RetainLongitudinalModifiedDates", "CleanDescriptors", "CleanStructuredContent", "CleanGraphics",
    ];

    // Retain Institution Identity Option column of later editions (K); 2017c has no such column.
    private static readonly string[] InstitutionColumnK = ["(0008,0080)", "(0008,0081)", "(0008,0082)", "(0008,1040)"];

    public static TheoryData<string> OptionSets() => ["defaults", "none", "device", "institution", "all-supported"];

    [Fact]
    public void StandardRows_MatchPart15Xml_RowForRow()
    {
        var rows = ParseStandard();
        Assert.Equal(AnnexEActionTable.StandardRowCount, rows.Count);
        Assert.Equal(278, rows.Count);
        Assert.Equal("2017c", AnnexEActionTable.Edition);
        for (var i = 0; i < rows.Count; i++)
        {
            var ours = AnnexEActionTable.StandardRows[i];
            Assert.Equal(rows[i].Tag, ours.Tag);
            Assert.Equal(rows[i].Codes[0], ours.Basic);
            Assert.Equal(rows[i].Codes[6], ours.RetainLongitudinalModifiedDates);
            Assert.Equal(rows[i].Codes[7], ours.CleanDescriptors);
        }
    }

    [Theory]
    [MemberData(nameof(OptionSets))]
    public void EveryStandardAttribute_IsHandledAtLeastAsStrictly(string optionSet)
    {
        var options = Options(optionSet);
        var rules = new DeidRuleSet(options);
        var enabled = options.EnabledOptions;
        var failures = new List<string>();
        foreach (var row in ParseStandard())
        {
            // The standard's options relax the Basic Profile: the weakest code among Basic and the enabled columns is what it demands.
            var required = AnnexEStrictness.Of(row.Codes[0]);
            foreach (var option in enabled)
            {
                var column = ColumnIndex(option);
                if (column >= 0 && row.Codes[column] != AnnexECode.None)
                {
                    required = Math.Min(required, AnnexEStrictness.Of(row.Codes[column]));
                }
            }

            if (enabled.Contains(DeidOption.RetainInstitutionIdentity) && InstitutionColumnK.Contains(row.Tag))
            {
                required = 0; // the newer editions' Retain Institution Identity column (no column in 2017c)
            }

            foreach (var tag in SampleTags(row.Tag))
            {
                var (action, _) = rules.Lookup(tag);
                var ours = AnnexEStrictness.Of(action);
                if (tag is 0x00100010 or 0x00100020)
                {
                    ours = AnnexEStrictness.Of(DeidAction.Dummy); // the engine writes the pseudonym (a Z-permitted dummy)
                }

                if (ours < required)
                {
                    failures.Add($"{row.Tag} {row.Name}: ours {action} ({ours}) < required {required}");
                }
            }
        }

        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }

    [Fact]
    public void UnlistedAndPrivateTags_AreRemoved()
    {
        var rules = new DeidRuleSet(new DeidentificationOptions());
        var random = new Random(20261126);
        for (var i = 0; i < 5000; i++)
        {
            var group = (ushort)random.Next(0x0008, 0xFFFE);
            var element = (ushort)random.Next(0, 0x10000);
            var tag = ((uint)group << 16) | element;
            var (action, source) = rules.Lookup(tag);
            if ((group & 1) == 1)
            {
                Assert.Equal(DeidAction.Remove, action);
                Assert.Equal(DeidRuleSource.Private, source);
            }
            else if (source == DeidRuleSource.Unlisted)
            {
                Assert.Equal(DeidAction.Remove, action);
            }
            else
            {
                Assert.True(source is DeidRuleSource.AnnexE or DeidRuleSource.KeepList);
            }
        }
    }

    [Theory]
    [InlineData(0x50000000u)]
    [InlineData(0x50023000u)]
    [InlineData(0x60003000u)]
    [InlineData(0x60024000u)]
    [InlineData(0x60020010u)]
    [InlineData(0x601E0050u)]
    public void CurvesAndOverlays_AreRemoved(uint tag)
    {
        var rules = new DeidRuleSet(new DeidentificationOptions { CleanDescriptors = true });
        Assert.Equal(DeidAction.Remove, rules.Lookup(tag).Action);
    }

    [Fact]
    public void KeepList_HasNoIdentifyingAttributes()
    {
        // The keep-list must not shadow a table row (the row wins) and must not name patient/person/date attributes.
        foreach (var tag in DeidKeepList.All)
        {
            Assert.Null(AnnexEActionTable.Find(tag));
            var entry = DicomDictionary.Lookup(new DicomTag(tag));
            if (entry is null)
            {
                continue;
            }

            Assert.NotEqual(DicomVR.PN, entry.VR);
            Assert.NotEqual(DicomVR.DA, entry.VR);
            Assert.NotEqual(DicomVR.DT, entry.VR);
            Assert.NotEqual(DicomVR.TM, entry.VR);
        }
    }

    [Fact]
    public void Generator_Rerun_GivesNoDiff() =>
        TableGenerator.AssertRerunGivesNoDiff("gen_annex_e.py", "AnnexEActionTable.g.cs");

    private static DeidentificationOptions Options(string set) => set switch
    {
        "defaults" => new DeidentificationOptions(),
        "none" => new DeidentificationOptions
        {
            CleanDescriptors = false, RetainLongitudinalModifiedDates = false, RetainPatientCharacteristics = false,
        },
        "device" => new DeidentificationOptions { RetainDeviceIdentity = true },
        "institution" => new DeidentificationOptions { RetainInstitutionIdentity = true },
        "all-supported" => new DeidentificationOptions { RetainDeviceIdentity = true, RetainInstitutionIdentity = true },
        _ => throw new ArgumentOutOfRangeException(nameof(set)),
    };

    private static int ColumnIndex(DeidOption option) => option switch
    {
        DeidOption.RetainSafePrivate => 1,
        DeidOption.RetainUids => 2,
        DeidOption.RetainDeviceIdentity => 3,
        DeidOption.RetainPatientCharacteristics => 4,
        DeidOption.RetainLongitudinalFullDates => 5,
        DeidOption.RetainLongitudinalModifiedDates => 6,
        DeidOption.CleanDescriptors => 7,
        DeidOption.CleanStructuredContent => 8,
        DeidOption.CleanGraphics => 9,
        _ => -1, // Retain Institution Identity has no 2017c column: the Basic Profile applies.
    };

    private static IEnumerable<uint> SampleTags(string tag)
    {
        if (tag.StartsWith("(gggg,eeee)", StringComparison.Ordinal))
        {
            return [0x00090010u, 0x00091010u, 0x7FE11001u, 0x00290010u];
        }

        var hex = tag.Trim('(', ')').Replace(",", string.Empty, StringComparison.Ordinal);
        if (!hex.Contains('x', StringComparison.Ordinal))
        {
            return [Convert.ToUInt32(hex, 16)];
        }

        // Repeating groups: first, a middle and the last even group of the range; elements: a few values for xxxx.
        var samples = new List<uint>();
        foreach (var groupLow in new[] { "00", "0E", "1E" })
        {
            var h = hex[..2] + groupLow + hex[4..];
            foreach (var el in h[4..] == "xxxx" ? new[] { "0000", "0010", "3000", "FFFE" } : new[] { h[4..] })
            {
                samples.Add(Convert.ToUInt32(h[..4] + el, 16));
            }
        }

        return samples;
    }

    private static List<(string Tag, string Name, AnnexECode[] Codes)> ParseStandard()
    {
        var doc = XDocument.Load(TestData.Shared("standard", "part15.xml"));
        var table = doc.Descendants(Db + "table").Single(t => (string?)t.Attribute(Xml + "id") == "table_E.1-1");
        var result = new List<(string, string, AnnexECode[])>();
        foreach (var tr in table.Element(Db + "tbody")!.Elements(Db + "tr"))
        {
            var cells = tr.Elements(Db + "td").Select(td => string.Join(' ', td.Value.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))).ToArray();
            Assert.Equal(4 + Columns.Length, cells.Length);
            var codes = cells.Skip(4).Select(AnnexEStrictness.Parse).ToArray();
            result.Add((cells[1].Replace(", ", ",", StringComparison.Ordinal), cells[0], codes));
        }

        return result;
    }
}
