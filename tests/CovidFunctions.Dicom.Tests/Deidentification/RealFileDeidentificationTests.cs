using System.Diagnostics;
using System.Globalization;
using System.Text;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Dicom.Tests.Deidentification;

/// <summary>
/// End-to-end proof on real CT files from ../shared/data: planted-PHI byte scan, referential integrity, date intervals,
/// determinism, character sets, and that dcmtk and pydicom parse the output.
/// </summary>
public sealed class RealFileDeidentificationTests
{
    private static readonly DeidKey Key = DeidentificationEngineTests.Key;

    public static TheoryData<string> CtFiles() =>
    [
        "lung-pet-ct-dx/A0002-s2-b70f/1-01.dcm",
        "lung-pet-ct-dx/A0002-s3-b40f/1-16.dcm",
        "covid19-ny-sbu/A002304/axial/19001231-076.dcm",
        "covid19-ny-sbu/A058062/axial/" + "*",
    ];

    private static string ChestCt(string relative)
    {
        if (relative.EndsWith('*'))
        {
            var dir = TestData.Shared("dicom", "chest-ct", Path.GetDirectoryName(relative)!);
            return Directory.GetFiles(dir, "*.dcm").Order(StringComparer.Ordinal).First();
        }

        return TestData.Shared("dicom", "chest-ct", relative);
    }

    [Theory]
    [MemberData(nameof(CtFiles))]
    public void PlantedPhi_AfterDeidentification_NoMarkerSurvivesExceptKeptOnPurpose(string relative)
    {
        using var temp = TestData.CreateTempDirectory();
        var source = DicomFile.Open(ChestCt(relative));
        var planted = PlantedPhiCorpus.Plant(source);
        var plantedPath = Path.Combine(temp.Path, "planted.dcm");
        source.Save(plantedPath);
        Assert.NotEmpty(PlantedPhiCorpus.Scan(File.ReadAllBytes(plantedPath))); // the corpus really carries markers

        var file = DicomFile.Open(plantedPath);
        var engine = new DeidentificationEngine(Key);
        var outcome = engine.DeidentifyFile(file);
        Assert.True(outcome.Accepted, outcome.Rejection?.Message);
        var outPath = Path.Combine(temp.Path, "out.dcm");
        file.Save(outPath);

        // Attributes kept on purpose by an enabled option: asserted one by one, their markers allowed.
        var allowed = new HashSet<string>(StringComparer.Ordinal);
        var output = DicomFile.Open(outPath);
        foreach (var p in planted)
        {
            var (action, _) = engine.Rules.Lookup(p.Tag.Value);
            if (action == DeidAction.Keep && p.Tag.Value is not (0x00100010 or 0x00100020))
            {
                if (PatientCharacteristics.IsChecked(p.Tag.Value) && output.Dataset.GetString(p.Tag) == string.Empty)
                {
                    continue; // a marker where a characteristic belongs (sex, age...): emptied, so not allowed either
                }

                Assert.Equal(p.Value, output.Dataset.GetString(p.Tag));
                if (p.Marker is not null)
                {
                    allowed.Add(p.Marker);
                }
            }
        }

        var leaks = PlantedPhiCorpus.Scan(File.ReadAllBytes(outPath)).Where(m => !allowed.Contains(m)).Distinct().ToList();
        Assert.True(leaks.Count == 0, "Leaked markers: " + string.Join(", ", leaks.Select(m => Describe(m, planted))));
        Assert.Equal("YES", output.Dataset.GetString(DicomTags.PatientIdentityRemoved));
        Assert.Equal(output.Dataset.GetString(DicomTags.SOPInstanceUID), output.FileMetaInformation.GetString(DicomTags.MediaStorageSOPInstanceUID));
        Assert.True(output.Dataset.Contains(DicomTags.PixelData));
        AssertParsesInDcmtkAndPydicom(outPath);
    }

    [Fact]
    public void ReferencedInstance_AfterDeidentification_PointsAtTheNewUid()
    {
        var a = DicomFile.Open(ChestCt("lung-pet-ct-dx/A0002-s2-b70f/1-01.dcm"));
        var b = DicomFile.Open(ChestCt("lung-pet-ct-dx/A0002-s3-b40f/1-16.dcm"));
        var item = new DicomDataset();
        item.SetString(DicomTags.ReferencedSOPClassUID, DicomVR.UI, DeidentificationEngine.CtImageStorage);
        item.SetString(DicomTags.ReferencedSOPInstanceUID, DicomVR.UI, a.Dataset.GetString(DicomTags.SOPInstanceUID)!);
        b.Dataset.AddOrUpdate(new DicomSequence(DicomTags.SourceImageSequence, item));

        // Two engines (as two Function instances would be) with the same key.
        new DeidentificationEngine(Key).DeidentifyFile(a);
        new DeidentificationEngine(DeidKey.FromBytes(Enumerable.Range(100, 32).Select(i => (byte)i).ToArray())).DeidentifyFile(b);

        var reference = b.Dataset.GetSequence(DicomTags.SourceImageSequence).Items.Single().GetString(DicomTags.ReferencedSOPInstanceUID);
        Assert.Equal(a.Dataset.GetString(DicomTags.SOPInstanceUID), reference);
        Assert.Equal(a.Dataset.GetString(DicomTags.StudyInstanceUID), b.Dataset.GetString(DicomTags.StudyInstanceUID));
        Assert.Equal(a.Dataset.GetString(DicomTags.PatientID), b.Dataset.GetString(DicomTags.PatientID));
    }

    [Fact]
    public void TwoTimePointsOfOnePatient_ShiftedIntervalEqualsOriginal()
    {
        var root = TestData.Shared("dicom", "chest-ct", "covid19-ny-sbu");
        var checkedPatients = 0;
        foreach (var patientDir in Directory.GetDirectories(root).Order(StringComparer.Ordinal))
        {
            var files = Directory.GetFiles(Path.Combine(patientDir, "axial"), "*.dcm").Order(StringComparer.Ordinal).ToArray();
            var studies = files.Select(f => DicomFile.Open(f)).GroupBy(f => f.Dataset.GetString(DicomTags.StudyDate)).Select(g => g.First()).ToArray();
            if (studies.Length < 2)
            {
                continue;
            }

            var originalDays = Days(studies[1].Dataset.GetString(DicomTags.StudyDate)!) - Days(studies[0].Dataset.GetString(DicomTags.StudyDate)!);
            var first = new DeidentificationEngine(Key);
            var second = new DeidentificationEngine(Key);
            Assert.True(first.DeidentifyFile(studies[0]).Accepted);
            Assert.True(second.DeidentifyFile(studies[1]).Accepted);

            var shiftedDays = Days(studies[1].Dataset.GetString(DicomTags.StudyDate)!) - Days(studies[0].Dataset.GetString(DicomTags.StudyDate)!);
            Assert.Equal(originalDays, shiftedDays);
            Assert.Equal(studies[0].Dataset.GetString(DicomTags.PatientID), studies[1].Dataset.GetString(DicomTags.PatientID));
            Assert.Equal("MODIFIED", studies[1].Dataset.GetString(DicomTags.LongitudinalTemporalInformationModified));
            checkedPatients++;
        }

        Assert.True(checkedPatients >= 5, $"only {checkedPatients} patients with two time points");

        static int Days(string da) => DateOnly.ParseExact(da, "yyyyMMdd", CultureInfo.InvariantCulture).DayNumber;
    }

    [Fact]
    public void SameInputAndKey_GiveIdenticalBytes()
    {
        using var temp = TestData.CreateTempDirectory();
        var path = ChestCt("covid19-ny-sbu/A002304/axial/19001231-076.dcm");
        var outputs = new List<byte[]>();
        for (var i = 0; i < 2; i++)
        {
            var file = DicomFile.Open(path);
            new DeidentificationEngine(DeidKey.FromBytes(Enumerable.Range(100, 32).Select(b => (byte)b).ToArray())).DeidentifyFile(file);
            var outPath = Path.Combine(temp.Path, $"out{i}.dcm");
            file.Save(outPath);
            outputs.Add(File.ReadAllBytes(outPath));
        }

        Assert.Equal(outputs[0], outputs[1]);
    }

    public static TheoryData<string> CharsetFiles() =>
    [
        "chrArab.dcm", "chrFren.dcm", "chrFrenMulti.dcm", "chrGerm.dcm", "chrGreek.dcm", "chrH31.dcm", "chrH32.dcm", "chrHbrw.dcm",
        "chrI2.dcm", "chrJapMulti.dcm", "chrJapMultiExplicitIR6.dcm", "chrKoreanMulti.dcm", "chrRuss.dcm", "chrSQEncoding.dcm",
        "chrSQEncoding1.dcm", "chrX1.dcm", "chrX2.dcm",
    ];

    [Theory]
    [MemberData(nameof(CharsetFiles))]
    public void NonAsciiPatientName_IsReplacedByThePseudonym(string name)
    {
        using var temp = TestData.CreateTempDirectory();
        var file = DicomFile.Open(TestData.Shared("dicom", "conformance", "pydicom-testfiles", "charset_files", name));
        var originalName = file.Dataset.GetString(DicomTags.PatientName) ?? string.Empty;
        var originalBytes = file.Dataset.TryGet(DicomTags.PatientName, out var e) && e is DicomValueElement v ? v.RawValue.ToArray() : [];
        // The charset files are not CT images: make them pass the burned-in text policy to exercise the text path.
        file.Dataset.SetString(DicomTags.SOPClassUID, DicomVR.UI, DeidentificationEngine.CtImageStorage);
        file.Dataset.SetValues(DicomTags.ImageType, DicomVR.CS, "ORIGINAL", "PRIMARY");

        Assert.True(new DeidentificationEngine(Key).DeidentifyFile(file).Accepted);
        var outPath = Path.Combine(temp.Path, "out.dcm");
        file.Save(outPath);

        var output = DicomFile.Open(outPath);
        Assert.Matches("^ANON-[A-Z2-7]{16}$", output.Dataset.GetString(DicomTags.PatientName));
        var bytes = File.ReadAllBytes(outPath);
        if (originalBytes.Length >= 6)
        {
            Assert.True(bytes.AsSpan().IndexOf(originalBytes.AsSpan(0, originalBytes.Length - (originalBytes.Length % 2 == 0 ? 1 : 0))) < 0, "original name bytes survive");
        }

        foreach (var component in originalName.Split('^', '=', ' ').Where(c => c.Length >= 4))
        {
            Assert.DoesNotContain(component, Encoding.UTF8.GetString(bytes), StringComparison.Ordinal);
        }

        AssertParsesInDcmtkAndPydicom(outPath);
    }

    private static string Describe(string marker, List<PlantedPhiCorpus.Planted> planted)
    {
        var hit = planted.FirstOrDefault(p => p.Marker == marker || p.Value.Contains(marker, StringComparison.Ordinal));
        return hit is null ? marker : $"{marker} ({hit.Tag} {DicomDictionary.Lookup(hit.Tag)?.Keyword})";
    }

    internal static void AssertParsesInDcmtkAndPydicom(string path)
    {
        var (dcmRc, dcmOut) = Run("dcmdump", ["-q", path]);
        Assert.True(dcmRc == 0, "dcmdump failed: " + dcmOut);
        Assert.DoesNotContain("E: ", dcmOut, StringComparison.Ordinal);
        var (pyRc, pyOut) = Run("/usr/bin/python3", ["-c",
            "import sys, pydicom; ds = pydicom.dcmread(sys.argv[1]); ds.walk(lambda d, e: e.value); "
            + "assert str(ds.PatientIdentityRemoved) == 'YES'; print(ds.get('SOPInstanceUID'))", path]);
        Assert.True(pyRc == 0, "pydicom failed: " + pyOut);
    }

    private static (int ExitCode, string Output) Run(string exe, string[] args)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result + stderr);
    }
}
