using CovidFunctions.TestHelpers;

namespace CovidFunctions.Dicom.Tests.IO;

/// <summary>
/// Read → write → read over the whole shared DICOM corpus: an unchanged dataset re-encoded in its own transfer syntax
/// and layout must be byte-identical to the input, except for the files named here with the reason.
/// </summary>
public class DicomRoundTripTests
{
    /// <summary>Files that must fail to parse, with a fragment of the expected error.</summary>
    private static readonly Dictionary<string, string> ExpectedFailures = new(StringComparer.Ordinal)
    {
        ["conformance/dcm4che-testdata/3gb-bulk-data-truncated"] = "declares 3221225472 bytes",
        ["conformance/pydicom-testfiles/test_files/MR_truncated.dcm"] = "declares 8192 bytes",
        ["conformance/pydicom-testfiles/test_files/rtplan_truncated.dcm"] = "declares 976 bytes",
        // Starts with a stray byte: the first tag reads (0820,0500); DCMTK fails the same way.
        ["conformance/pydicom-testfiles/test_files/no_meta.dcm"] = "(0820,0500)",
        // A second (0028,0120) with VR "  " and no length field; DCMTK fails too.
        ["conformance/fodicom-testdata/GH179B.dcm"] = "invalid VR bytes",
        // An item tag in the top-level dataset; DCMTK fails too.
        ["conformance/fodicom-testdata/GH364.dcm"] = "outside a sequence",
        // A Philips private sequence whose defined length is 4 bytes short; DCMTK fails too.
        ["conformance/fodicom-testdata/GH626.dcm"] = "(0000,0000) UL declares",
    };

    /// <summary>Files that parse but cannot come back byte-identical, and why.</summary>
    private static readonly Dictionary<string, string> ExpectedDifferences = new(StringComparer.Ordinal)
    {
        ["conformance/fodicom-testdata/GH1339.dcm"] = "missing sequence delimiter after the last fragment is written",
        ["conformance/pydicom-data/data/emri_small_jpeg_2k_lossless_too_short.dcm"] = "missing sequence delimiter after the last fragment is written",
        ["conformance/fodicom-testdata/GH179A.dcm"] = "VR '  ' is written as the dictionary VR",
        ["conformance/pydicom-data/data/JLSL_RGB_ILV0.dcm"] = "meta group lacks (0002,0000) and (0002,0001): completed",
        ["conformance/pydicom-data/data/JLSL_RGB_ILV1.dcm"] = "meta group lacks (0002,0000) and (0002,0001): completed",
        ["conformance/pydicom-data/data/JLSL_RGB_ILV2.dcm"] = "meta group lacks (0002,0000) and (0002,0001): completed",
        ["conformance/pydicom-data/data/JLSN_RGB_ILV0.dcm"] = "meta group lacks (0002,0000) and (0002,0001): completed",
        ["conformance/dcm4che-testdata/NM-MONO2-16-13x-heart"] = "meta group lacks (0002,0002) and (0002,0003): completed from the dataset",
        ["conformance/pydicom-testfiles/test_files/meta_missing_tsyntax.dcm"] = "meta group lacks (0002,0010): completed",
        ["conformance/pydicom-testfiles/test_files/no_meta_group_length.dcm"] = "meta group lacks (0002,0000): completed",
        ["conformance/pydicom-testfiles/test_files/nested_priv_SQ.dcm"] = "odd-length value padded",
        ["conformance/pydicom-testfiles/test_files/dicomdirtests/DICOMDIR-nooffset"] = "item length beyond the sequence corrected",
        ["conformance/pydicom-testfiles/test_files/SC_rgb_jpeg.dcm"] = "implicit element in an explicit dataset written explicitly",
    };

    public static TheoryData<string> CorpusFiles()
    {
        var root = TestData.Shared("dicom");
        var data = new TheoryData<string>();
        foreach (var path in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            if (IsDicomCandidate(path))
            {
                data.Add(Path.GetRelativePath(root, path).Replace('\\', '/'));
            }
        }

        return data;
    }

    [Fact]
    public void Corpus_IsLargeEnoughToMean_Something()
    {
        Assert.True(CorpusFiles().Count > 450);
    }

    [Theory]
    [MemberData(nameof(CorpusFiles))]
    public void RoundTrip_CorpusFile_IsByteIdenticalOrExplained(string relative)
    {
        var path = TestData.Shared("dicom", relative);

        DicomFile file;
        try
        {
            file = DicomFile.Open(path);
        }
        catch (DicomFormatException ex) when (ExpectedFailures.TryGetValue(relative, out var expected))
        {
            Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
            Assert.Equal(path, ex.FilePath);
            return;
        }

        Assert.False(ExpectedFailures.ContainsKey(relative), $"{relative} was expected to fail but parsed");

        using var output = new MemoryStream();
        file.Write(output, new DicomWriteOptions { Format = file.Format });
        var written = output.ToArray();
        var original = File.ReadAllBytes(path);

        if (file.TransferSyntax.IsDeflated || ExpectedDifferences.ContainsKey(relative))
        {
            // Deflate output depends on the compressor; the other files are listed with their reason. Their
            // datasets must still survive the round trip.
            output.Position = 0;
            var again = DicomFile.Read(output, null, relative + " (rewritten)");
            Assert.Null(DatasetComparer.Difference(file.Dataset, again.Dataset, compareVR: !relative.EndsWith("GH179A.dcm", StringComparison.Ordinal)));
            return;
        }

        if (!original.AsSpan().SequenceEqual(written))
        {
            var at = original.AsSpan().CommonPrefixLength(written);
            Assert.Fail($"{relative}: rewritten bytes differ at byte {at} (lengths {original.Length} vs {written.Length})");
        }
    }

    [Theory]
    [InlineData("conformance/dicomparser-testimages/CT1_UNC.explicit_little_endian.dcm")]
    [InlineData("conformance/pydicom-testfiles/test_files/rtplan.dcm")]
    [InlineData("conformance/pydicom-testfiles/test_files/nested_priv_SQ.dcm")]
    [InlineData("conformance/pydicom-data/data/emri_small_big_endian.dcm")]
    [InlineData("chest-ct/lung-pet-ct-dx/A0002-s2-b70f/1-01.dcm")]
    public void Transcode_NativeSyntaxes_KeepTheDataset(string relative)
    {
        var path = TestData.Shared("dicom", relative);
        var original = DicomFile.Open(path);
        TransferSyntax[] targets =
        [
            TransferSyntax.ExplicitVRLittleEndian, TransferSyntax.ImplicitVRLittleEndian, TransferSyntax.ExplicitVRBigEndian,
            TransferSyntax.DeflatedExplicitVRLittleEndian,
        ];
        foreach (var ts in targets)
        {
            using var output = new MemoryStream();
            original.Write(output, new DicomWriteOptions { TransferSyntax = ts });
            output.Position = 0;

            var again = DicomFile.Read(output, null, $"{relative} as {ts.Keyword}");

            Assert.Same(ts, again.TransferSyntax);
            Assert.Equal(ts.Uid, again.FileMetaInformation.GetString(DicomTags.TransferSyntaxUID));
            var diff = DatasetComparer.Difference(original.Dataset, again.Dataset, compareVR: ts.IsExplicitVR && original.TransferSyntax.IsExplicitVR);
            Assert.True(diff is null, $"{ts.Keyword}: {diff}");
        }
    }

    [Fact]
    public void Write_ChangedDataset_RecomputesLengths()
    {
        var original = DicomFile.Open(TestData.Shared("dicom", "conformance", "pydicom-testfiles", "test_files", "rtplan.dcm"));
        var sequence = original.Dataset.First(e => e is DicomSequence { UndefinedLength: false, Items.Count: > 0 }) as DicomSequence;
        Assert.NotNull(sequence);
        sequence.Items[0].SetString(DicomTags.PatientComments, DicomVR.LT, "a new, longer comment");
        var groupLengthBefore = original.FileMetaInformation.GetInt32(DicomTags.FileMetaInformationGroupLength);

        using var output = new MemoryStream();
        original.Write(output);
        output.Position = 0;
        var again = DicomFile.Read(output);

        Assert.Null(DatasetComparer.Difference(original.Dataset, again.Dataset));
        Assert.Equal(groupLengthBefore, again.FileMetaInformation.GetInt32(DicomTags.FileMetaInformationGroupLength));
    }

    [Fact]
    public void Write_NewDataset_GetsAPart10Header()
    {
        var ds = new DicomDataset();
        ds.SetString(DicomTags.SOPClassUID, DicomVR.UI, "1.2.840.10008.5.1.4.1.1.2");
        ds.SetString(DicomTags.SOPInstanceUID, DicomVR.UI, "1.2.3.4");
        ds.SetString(DicomTags.PatientName, DicomVR.PN, "Doe^Jane");
        ds.SetValues(DicomTags.Rows, DicomVR.US, 2);
        var file = new DicomFile(ds);
        using var temp = TestData.CreateTempDirectory();
        var path = Path.Combine(temp.Path, "new.dcm");

        file.Save(path);
        var again = DicomFile.Open(path);

        var bytes = File.ReadAllBytes(path);
        Assert.Equal("DICM"u8.ToArray(), bytes[128..132]);
        Assert.Same(TransferSyntax.ExplicitVRLittleEndian, again.TransferSyntax);
        Assert.Equal("1.2.840.10008.5.1.4.1.1.2", again.FileMetaInformation.GetString(DicomTags.MediaStorageSOPClassUID));
        Assert.Equal("1.2.3.4", again.FileMetaInformation.GetString(DicomTags.MediaStorageSOPInstanceUID));
        Assert.Equal(bytes.Length - 132 - 12 - DatasetBytes(again), again.FileMetaInformation.GetInt32(DicomTags.FileMetaInformationGroupLength));
        Assert.Equal("Doe^Jane", again.Dataset.GetString(DicomTags.PatientName));
        Assert.Equal(2, again.Dataset.GetInt32(DicomTags.Rows));
    }

    [Fact]
    public void Save_OverTheSourceFile_KeepsBulkData()
    {
        using var temp = TestData.CreateTempDirectory();
        var path = Path.Combine(temp.Path, "ct.dcm");
        File.Copy(TestData.Shared("dicom", "chest-ct", "lung-pet-ct-dx", "A0002-s2-b70f", "1-01.dcm"), path);
        var original = File.ReadAllBytes(path);
        var file = DicomFile.Open(path);

        file.Save(path);

        Assert.Equal(original, File.ReadAllBytes(path));
    }

    [Fact]
    public void Write_EncapsulatedToNative_ThrowsUnsupported()
    {
        var file = DicomFile.Open(TestData.Shared("dicom", "conformance", "pydicom-testfiles", "test_files", "SC_rgb_rle_2frame.dcm"));
        using var output = new MemoryStream();
        var ex = Assert.Throws<UnsupportedTransferSyntaxException>(() =>
            file.Write(output, new DicomWriteOptions { TransferSyntax = TransferSyntax.ExplicitVRLittleEndian }));
        Assert.Equal(TransferSyntax.RLELossless.Uid, ex.TransferSyntaxUid);
    }

    private static int DatasetBytes(DicomFile file)
    {
        using var output = new MemoryStream();
        file.Write(output, new DicomWriteOptions { Format = DicomFileFormat.DatasetOnly });
        return (int)output.Length;
    }

    private static bool IsDicomCandidate(string path)
    {
        var name = Path.GetFileName(path);
        if (name.StartsWith("LICENSE", StringComparison.Ordinal) || name.StartsWith("README", StringComparison.Ordinal)
            || name is "SOURCE.txt" or "metadata")
        {
            return false;
        }

        var ext = Path.GetExtension(name).ToLowerInvariant();
        return ext is not (".md" or ".txt" or ".json" or ".csv" or ".xml" or ".nrrd" or ".zip" or ".icc" or ".dump" or ".dat"
            or ".gz" or ".bz2" or ".py" or ".upstream" or ".png" or ".jpg");
    }
}
