using System.Text.Json.Nodes;

namespace CovidFunctions.Dicom.Tests.Peers;

/// <summary>
/// Every DICOM file under shared/data/dicom read by us, by pydicom 2.3 and by dcmtk's dcmdump: the elements (tag, VR,
/// value) agree, recursively through sequences, except for the intended differences listed here with their reasons.
/// Our writer's explicit VR little endian re-encoding of each file is accepted by dcmdump and read back by pydicom
/// with the same elements. The peers run once per test run (<see cref="PeerFixture"/>).
/// </summary>
public class PeerComparisonTests : IClassFixture<PeerFixture>
{
    /// <summary>Files pydicom 2.3 cannot read, with its error. Each must still be read, or rejected with DicomFormatException, by us.</summary>
    private static readonly Dictionary<string, string> PydicomUnreadable = new(StringComparer.Ordinal)
    {
        ["conformance/fodicom-testdata/GH177_D_CLUNIE_CT1_IVRLE_BigEndian_undefined_length.dcm"] = "OSError: No tag to read (pixel data with undefined length in a non-encapsulated syntax)",
        ["conformance/fodicom-testdata/GH364.dcm"] = "NotImplementedError: Unknown Value Representation 'NONE' in tag (fffe,e000) (an item outside a sequence)",
    };

    /// <summary>Malformed files we reject with DicomFormatException, with the reason. dcmdump rejects each of them too (asserted).</summary>
    private static readonly Dictionary<string, string> WeReject = new(StringComparer.Ordinal)
    {
        ["conformance/dcm4che-testdata/3gb-bulk-data-truncated"] = "Pixel Data declares 3 GiB, the file has 98 KB",
        ["conformance/fodicom-testdata/GH179B.dcm"] = "(0028,0120) written with VR bytes 0x2020 and a long value running past the end",
        ["conformance/fodicom-testdata/GH364.dcm"] = "an item tag outside a sequence",
        ["conformance/fodicom-testdata/GH626.dcm"] = "a command group length declaring more bytes than the file has",
        ["conformance/pydicom-testfiles/test_files/MR_truncated.dcm"] = "Pixel Data longer than the rest of the file",
        ["conformance/pydicom-testfiles/test_files/no_meta.dcm"] = "no preamble and no meta: the reader's explicit-VR guess fails (dcmdump fails the same way)",
        ["conformance/pydicom-testfiles/test_files/rtplan_truncated.dcm"] = "sequence longer than the rest of the file",
    };

    /// <summary>Files dcmdump (dcmtk 3.6.7) reports errors on. For these the structural comparison is skipped.</summary>
    private static readonly Dictionary<string, string> DcmdumpUnreadable = new(StringComparer.Ordinal)
    {
        ["conformance/dcm4che-testdata/3gb-bulk-data-truncated"] = "Pixel Data larger than the file",
        ["conformance/dcm4che-testdata/Tag-0040-A170-VR-CS.dcm"] = "(0040,A170) holds CS bytes where the dictionary says SQ (we keep it as UN)",
        ["conformance/fodicom-testdata/GH1339.dcm"] = "no sequence delimitation item after the last fragment (we keep the fragments)",
        ["conformance/fodicom-testdata/GH179B.dcm"] = "invalid VR; length past the end",
        ["conformance/fodicom-testdata/GH364.dcm"] = "item outside a sequence",
        ["conformance/fodicom-testdata/GH626.dcm"] = "command group length past the end",
        ["conformance/pydicom-data/data/emri_small_jpeg_2k_lossless_too_short.dcm"] = "file ends inside encapsulated Pixel Data (we keep the complete fragments)",
        ["conformance/pydicom-testfiles/test_files/MR_truncated.dcm"] = "Pixel Data longer than the file",
        ["conformance/pydicom-testfiles/test_files/SC_rgb_jpeg.dcm"] = "dcmtk mis-detects the transfer syntax of this file and reads garbage",
        ["conformance/pydicom-testfiles/test_files/no_meta.dcm"] = "bare implicit dataset without meta",
        ["conformance/pydicom-testfiles/test_files/rtplan_truncated.dcm"] = "sequence longer than the file",
        ["conformance/dcm4che-testdata/no_preamble_dicm_in_data"] = "see PeersMisread",
    };

    /// <summary>Per-file structural differences from dcmdump that are dcmtk's choices: a reason and the tags skipped.</summary>
    private static readonly Dictionary<string, (string Reason, Func<string, bool> Tags)> DcmdumpKnownDifferences = new(StringComparer.Ordinal)
    {
        ["conformance/fodicom-testdata/GH179A.dcm"] =
            ("(0028,0120) has VR bytes 0x2020: dcmtk reports UN, we report the dictionary VR (SS) read with a 2-byte length", tag => tag == "00280120"),
    };

    /// <summary>
    /// Re-encodings pydicom cannot read back, with the reason. dcmdump must still accept them and we must read them back
    /// with the same elements.
    /// </summary>
    private static readonly Dictionary<string, string> ReencodingPydicomCannotRead = new(StringComparer.Ordinal)
    {
        ["conformance/pydicom-testfiles/test_files/dicomdirtests/DICOMDIR-implicit"] =
            "a DICOMDIR's record offsets (0004,1200/1202/1400/1420) are byte offsets into the file; re-encoding implicit to explicit VR moves the records and the writer does not recompute the offsets (reported to the core owner), so pydicom's record lookup fails",
    };

    /// <summary>
    /// Files both peers misread, so element comparison is meaningless; we read them as the standard says.
    /// </summary>
    private static readonly Dictionary<string, string> PeersMisread = new(StringComparer.Ordinal)
    {
        ["conformance/dcm4che-testdata/no_preamble_dicm_in_data"] =
            "a bare explicit VR dataset (no preamble) whose data holds the bytes 'DICM' at offset 128: pydicom and dcmdump take it for a Part 10 header",
    };

    /// <summary>
    /// Per-file element differences from pydicom that are pydicom's, not ours: a reason and the tags skipped (anywhere
    /// in the tree).
    /// </summary>
    private static readonly Dictionary<string, (string Reason, Func<string, bool> Tags)> PydicomKnownDifferences = new(StringComparer.Ordinal)
    {
        ["conformance/fodicom-testdata/charset/chrGB2312.dcm"] =
            ("pydicom 2.3 does not strip the ISO 2022 IR 58 escape (ESC $ ) A) and keeps '$)A' in the name", tag => tag == "00100010"),
        ["conformance/pydicom-data/data/emri_small_jpeg_2k_lossless_too_short.dcm"] =
            ("pydicom silently drops encapsulated Pixel Data cut short by the end of file; we keep the complete fragments", tag => tag == "7FE00010"),
        ["conformance/fodicom-testdata/GH1339.dcm"] =
            ("pydicom silently drops encapsulated Pixel Data without a sequence delimiter; we keep the fragments", tag => tag == "7FE00010"),
        ["conformance/dcm4che-testdata/Tag-0040-A170-VR-CS.dcm"] =
            ("(0040,A170) holds CS bytes in implicit VR; pydicom forces the dictionary's SQ, we keep UN", tag => tag == "0040A170"),
        ["conformance/fodicom-testdata/GH179A.dcm"] =
            ("(0028,0120) has VR bytes 0x2020: pydicom reads a 4-byte length and swallows the following elements, we use the dictionary VR and a 2-byte length",
             tag => string.CompareOrdinal(tag, "00280120") >= 0 && string.CompareOrdinal(tag, "7FE00000") < 0),
    };

    private readonly PeerFixture _fixture;

    public PeerComparisonTests(PeerFixture fixture) => _fixture = fixture;

    public static IEnumerable<object[]> Files() => PeerCorpus.FileRows();

    [Fact]
    public void Corpus_Files_AreFoundInSharedData()
    {
        Assert.True(PeerCorpus.Files.Count >= 380, $"only {PeerCorpus.Files.Count} DICOM files found under {PeerCorpus.Root}");
    }

    [Fact]
    public void Reader_EveryCorpusFile_ReadsOrThrowsOnlyDicomFormatException()
    {
        var unexpected = _fixture.Ours
            .Where(p => p.Value.Error is not null and not DicomFormatException)
            .Select(p => $"{PeerCorpus.Relative(p.Key)}: {p.Value.Error!.GetType().Name}: {p.Value.Error.Message}")
            .ToList();

        Assert.Empty(unexpected);
    }

    [Fact]
    public void Reader_RejectedFiles_AreExactlyTheDocumentedOnes()
    {
        var rejected = _fixture.Ours.Where(p => p.Value.Error is not null)
            .ToDictionary(p => PeerCorpus.Relative(p.Key), p => p.Value.Error!.Message, StringComparer.Ordinal);

        var unexpected = rejected.Where(r => !WeReject.ContainsKey(r.Key)).Select(r => $"rejected but not listed: {r.Key}: {r.Value}");
        var missing = WeReject.Keys.Where(k => !rejected.ContainsKey(k)).Select(k => $"listed but read: {k}");
        var problems = unexpected.Concat(missing).ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void Pydicom_UnreadableFiles_AreExactlyTheDocumentedOnes()
    {
        var failing = _fixture.Pydicom.Values.Where(r => r["ok"]!.GetValue<bool>() == false)
            .ToDictionary(r => PeerCorpus.Relative(r["file"]!.GetValue<string>()), r => r["error"]?.GetValue<string>() ?? string.Empty, StringComparer.Ordinal);

        var unexpected = failing.Where(r => !PydicomUnreadable.ContainsKey(r.Key)).Select(r => $"pydicom fails but not listed: {r.Key}: {r.Value}");
        var missing = PydicomUnreadable.Keys.Where(k => !failing.ContainsKey(k)).Select(k => $"listed but pydicom reads it: {k}");
        var problems = unexpected.Concat(missing).ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void Dcmdump_UnreadableFiles_AreExactlyTheDocumentedOnes()
    {
        var failing = _fixture.Dcmdump.Values.Where(r => r["ok"]!.GetValue<bool>() == false)
            .ToDictionary(r => PeerCorpus.Relative(r["file"]!.GetValue<string>()), r => r["error"]?.GetValue<string>() ?? string.Empty, StringComparer.Ordinal);

        var unexpected = failing.Where(r => !DcmdumpUnreadable.ContainsKey(r.Key)).Select(r => $"dcmdump fails but not listed: {r.Key}: {r.Value}");
        var missing = DcmdumpUnreadable.Keys.Where(k => !failing.ContainsKey(k)).Select(k => $"listed but dcmdump reads it: {k}");
        var problems = unexpected.Concat(missing).ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void Dcmdump_FilesWeReject_AreRejectedByDcmdumpToo()
    {
        var accepted = WeReject.Keys
            .Where(relative => _fixture.Dcmdump[Path.Combine(PeerCorpus.Root, relative)]["ok"]!.GetValue<bool>())
            .ToList();

        Assert.Empty(accepted);
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void Pydicom_CorpusFile_ElementsAgree(string relative)
    {
        var path = Path.Combine(PeerCorpus.Root, relative);
        var ours = _fixture.Ours[path];
        var peer = _fixture.Pydicom[path];
        if (ours.Error is not null || !peer["ok"]!.GetValue<bool>() || PeersMisread.ContainsKey(relative))
        {
            // Covered by the Reader_/Pydicom_ list tests above.
            return;
        }

        var comparer = new PeerComparer { Ignore = IgnoreFor(relative), PeerReplacedUN = peer["un_replaced"]?.GetValue<bool>() == true };
        comparer.CompareLists(ours.PydicomShape!, peer["elements"]!.AsArray(), string.Empty);

        Assert.True(comparer.Differences.Count == 0, Report(relative, comparer.Differences));
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void Dcmdump_CorpusFile_StructureAgrees(string relative)
    {
        var path = Path.Combine(PeerCorpus.Root, relative);
        var ours = _fixture.Ours[path];
        var peer = _fixture.Dcmdump[path];
        if (ours.Error is not null || DcmdumpUnreadable.ContainsKey(relative) || PeersMisread.ContainsKey(relative))
        {
            return;
        }

        var comparer = new PeerComparer { Structural = true, Ignore = IgnoreForDcmdump(relative) };
        comparer.CompareLists(ours.DcmdumpShape!, peer["elements"]!.AsArray(), string.Empty);

        Assert.True(comparer.Differences.Count == 0, Report(relative, comparer.Differences));
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void Writer_ReencodedFile_AcceptedByDcmdumpAndPydicomWithSameElements(string relative)
    {
        var path = Path.Combine(PeerCorpus.Root, relative);
        if (_fixture.Ours[path].Error is not null)
        {
            return;
        }

        Assert.False(_fixture.WriteErrors.TryGetValue(path, out var writeError), $"{relative}: writer failed: {writeError}");
        var target = _fixture.Reencoded[path];
        var dump = _fixture.ReencodedDcmdump[target];
        Assert.True(dump["ok"]!.GetValue<bool>(), $"{relative}: dcmdump rejects our re-encoding: rc {dump["rc"]}, {dump["error"]}");

        var reread = _fixture.ReencodedOurs[path];
        Assert.True(reread.Error is null, $"{relative}: we cannot read our re-encoding: {reread.Error}");

        // pydicom reads our re-encoding with the same elements as we do...
        var py = _fixture.ReencodedPydicom[target];
        if (ReencodingPydicomCannotRead.ContainsKey(relative))
        {
            Assert.False(py["ok"]!.GetValue<bool>(), $"{relative}: listed as unreadable by pydicom after re-encoding, but pydicom reads it now: update the list");
        }
        else
        {
            Assert.True(py["ok"]!.GetValue<bool>(), $"{relative}: pydicom cannot read our re-encoding: {py["error"]}");
            var peerCheck = new PeerComparer { Ignore = IgnoreFor(relative), PeerReplacedUN = py["un_replaced"]?.GetValue<bool>() == true };
            peerCheck.CompareLists(reread.PydicomShape!, py["elements"]!.AsArray(), string.Empty);
            Assert.True(peerCheck.Differences.Count == 0, Report(relative + " (re-encoded: ours vs pydicom)", peerCheck.Differences));
        }

        // ...and those are the elements of the original (the meta group and group lengths legitimately change; private
        // elements of an implicit VR original have no VR to keep and are written as UN).
        var implicitOriginal = !(_fixture.Ours[path].File!.ReadTransferSyntax ?? _fixture.Ours[path].File!.TransferSyntax).IsExplicitVR;
        var roundTrip = new PeerComparer
        {
            Ignore = tag => tag.EndsWith("0000", StringComparison.Ordinal) || tag.StartsWith("0002", StringComparison.Ordinal)
                || (implicitOriginal && IsOddGroup(tag)),
        };
        roundTrip.CompareLists(ToExplicit(_fixture.Ours[path].PydicomShape!), ToExplicit(reread.PydicomShape!), string.Empty);
        Assert.True(roundTrip.Differences.Count == 0, Report(relative + " (re-encoded vs original, ours)", roundTrip.Differences));
    }

    private static bool IsOddGroup(string tag) => tag.Length == 8 && "13579BDF".Contains(tag[3], StringComparison.Ordinal);

    /// <summary>
    /// The original may be implicit VR (VR "*" and "raw" keys) while the re-encoding is explicit: compare the explicit
    /// view, dropping the implicit-only keys and the private elements whose VR only the implicit reading guessed.
    /// </summary>
    private static JsonArray ToExplicit(JsonArray list)
    {
        var result = new JsonArray();
        foreach (var node in list)
        {
            var obj = node!.DeepClone().AsObject();
            obj.Remove("raw");
            if (obj["vr"]!.GetValue<string>() == "*")
            {
                continue;
            }

            if (obj["items"] is JsonArray items)
            {
                var converted = new JsonArray();
                foreach (var item in items)
                {
                    converted.Add(ToExplicit(item!.AsArray()));
                }

                obj["items"] = converted;
            }

            result.Add(obj);
        }

        return result;
    }

    private static Func<string, bool>? IgnoreFor(string relative) =>
        PydicomKnownDifferences.TryGetValue(relative, out var known) ? known.Tags : null;

    private static Func<string, bool>? IgnoreForDcmdump(string relative) =>
        DcmdumpKnownDifferences.TryGetValue(relative, out var known) ? known.Tags : null;

    /// <summary>
    /// The failure message (first 25 differences). With COVIDFN_PEER_REPORT set to a file path, every difference of
    /// every failing file is also appended there.
    /// </summary>
    private static string Report(string relative, IReadOnlyList<string> differences)
    {
        if (differences.Count > 0 && Environment.GetEnvironmentVariable("COVIDFN_PEER_REPORT") is { Length: > 0 } report)
        {
            lock (ReportLock)
            {
                File.AppendAllText(report, $"== {relative}\n" + string.Concat(differences.Select(d => "  " + d + "\n")));
            }
        }

        return $"{relative}: {differences.Count} difference(s):\n  " + string.Join("\n  ", differences.Take(25));
    }

    private static readonly Lock ReportLock = new();
}
