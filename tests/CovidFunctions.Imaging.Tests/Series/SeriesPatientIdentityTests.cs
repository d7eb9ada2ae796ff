using CovidFunctions.Dicom;
using CovidFunctions.Imaging.Phantoms;
using CovidFunctions.Imaging.Series;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Imaging.Tests.Series;

/// <summary>
/// An instance of another patient inside one series (same Study and Series Instance UID, another PatientID) is not
/// screened with it: the assembler leaves it out with a note naming the file and "another patient", never the identities.
/// A series with no clear majority patient (half and half) is refused (<c>mixed-patients</c>): a patient-level diagnosis
/// over two patients is wrong. Found in the session-22 incident drill: a slice whose PatientID and PatientName had been
/// changed (pydicom) in a real 30-slice series was screened with the other 29, without any warning.
/// Series from the repository's chest phantom (<see cref="CtPhantom"/>).
/// </summary>
public sealed class SeriesPatientIdentityTests : IDisposable
{
    private const int Slices = 8;
    private const string OtherId = "OTHER-PATIENT-0042";
    private const string OtherName = "Doe^Jane";
    private readonly TempDirectory _temp = TestData.CreateTempDirectory();

    public void Dispose() => _temp.Dispose();

    public static TheoryData<string, Action<DicomDataset>> OtherPatients() => new()
    {
        { "PatientID and PatientName (the drill)", ds => { ds.SetString(DicomTags.PatientID, DicomVR.LO, OtherId); ds.SetString(DicomTags.PatientName, DicomVR.PN, OtherName); } },
        { "PatientID only", ds => ds.SetString(DicomTags.PatientID, DicomVR.LO, OtherId) },
        { "IssuerOfPatientID (same number, another hospital's)", ds => ds.SetString(DicomTags.IssuerOfPatientID, DicomVR.LO, "OTHER-HOSPITAL") },
        { "Patient's Birth Date, same PatientID", ds => ds.SetString(DicomTags.PatientBirthDate, DicomVR.DA, "19800101") },
        { "Patient's Sex, same PatientID", ds => ds.SetString(DicomTags.PatientSex, DicomVR.CS, "M") },
    };

    [Theory]
    [MemberData(nameof(OtherPatients))]
    public void An_instance_of_another_patient_is_left_out_of_its_series_with_a_note_and_no_identity_in_it(string change, Action<DicomDataset> spoil)
    {
        var folder = Path.Combine(_temp.Path, "upload");
        var paths = Phantom().WriteFolder(folder);
        Change(paths[3], spoil);

        using var series = SeriesAssembler.Assemble(folder);

        Assert.True(Slices - 1 == series.SliceCount, $"{change}: {series.SliceCount} slices");
        Assert.DoesNotContain(series.Slices, s => s.SourceName == paths[3]);
        var skipped = Assert.Single(series.Report.Skipped);
        Assert.Equal((paths[3], SkipKind.AnotherPatient), (skipped.Source, skipped.Kind));
        Assert.StartsWith($"{paths[3]}: another patient", skipped.Note, StringComparison.Ordinal);
        Assert.Contains($"the other {Slices - 1} instance(s) of its series", skipped.Reason, StringComparison.Ordinal);
        AssertNoIdentity(skipped.Note);
        Assert.Equal(Slices - 1, series.Report.Selected.SliceCount);
    }

    [Fact]
    public void The_drill_a_real_30_slice_series_with_one_slice_of_another_patient_is_assembled_from_the_other_29()
    {
        // The incident drill's input: lung-pet-ct-dx A0002 B40f (30 slices), one file's PatientID and PatientName changed.
        var folder = Path.Combine(_temp.Path, "b40f");
        Directory.CreateDirectory(folder);
        var files = Directory.GetFiles(TestData.Shared("dicom", "chest-ct", "lung-pet-ct-dx", "A0002-s3-b40f"), "*.dcm").Order(StringComparer.Ordinal).ToList();
        Assert.Equal(30, files.Count);
        foreach (var file in files)
        {
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        }

        var other = Path.Combine(folder, "1-15.dcm");
        Change(other, ds => { ds.SetString(DicomTags.PatientID, DicomVR.LO, OtherId); ds.SetString(DicomTags.PatientName, DicomVR.PN, OtherName); });

        using var series = SeriesAssembler.Assemble(folder);

        Assert.Equal(29, series.SliceCount);
        var skipped = Assert.Single(series.Report.Skipped);
        Assert.Equal((other, SkipKind.AnotherPatient), (skipped.Source, skipped.Kind));
        Assert.StartsWith($"{other}: another patient: its patient identity", skipped.Note, StringComparison.Ordinal);
        Assert.Contains("the other 29 instance(s) of its series", skipped.Reason, StringComparison.Ordinal);
        AssertNoIdentity(skipped.Note);
        Assert.Contains(series.Report.Issues, i => i.Kind == "gap");
    }

    [Fact]
    public void An_instance_without_PatientID_keeps_its_series_when_the_name_is_the_same_and_all_lack_it()
    {
        // The identity is what the pseudonym is keyed on: PatientID (with its issuer), or the name when no instance has an
        // ID. A series written without PatientID is one patient when the names agree.
        var folder = Path.Combine(_temp.Path, "no-id");
        foreach (var path in Phantom().WriteFolder(folder))
        {
            Change(path, ds => ds.Remove(DicomTags.PatientID));
        }

        using var series = SeriesAssembler.Assemble(folder);

        Assert.Equal(Slices, series.SliceCount);
        Assert.Empty(series.Report.Skipped);
    }

    [Fact]
    public void A_series_without_a_majority_patient_is_refused_naming_no_identity()
    {
        var folder = Path.Combine(_temp.Path, "half");
        var paths = Phantom().WriteFolder(folder);
        foreach (var path in paths.Take(Slices / 2))
        {
            Change(path, ds => { ds.SetString(DicomTags.PatientID, DicomVR.LO, OtherId); ds.SetString(DicomTags.PatientName, DicomVR.PN, OtherName); });
        }

        var refused = Assert.Throws<SeriesAssemblyException>(() => SeriesAssembler.Assemble(folder));

        Assert.Equal("mixed-patients", refused.Reason);
        Assert.Contains("2 patients", refused.Message, StringComparison.Ordinal);
        Assert.Contains("no patient has more than half", refused.Message, StringComparison.Ordinal);
        AssertNoIdentity(refused.Message);
    }

    [Fact]
    public void A_series_of_one_patient_is_assembled_whole()
    {
        var folder = Path.Combine(_temp.Path, "one-patient");
        var paths = Phantom().WriteFolder(folder);

        using var series = SeriesAssembler.Assemble(folder);

        Assert.Equal(paths.Count, series.SliceCount);
        Assert.Empty(series.Report.Skipped);
    }

    private static void AssertNoIdentity(string text)
    {
        foreach (var phi in new[] { OtherId, OtherName, "Doe", PlantedPhi.PatientId, PlantedPhi.PatientName, PlantedPhi.PatientBirthDate, "19800101", "OTHER-HOSPITAL" })
        {
            Assert.DoesNotContain(phi, text, StringComparison.OrdinalIgnoreCase);
        }
    }

    private static CtPhantom Phantom() =>
        new(new CtPhantomOptions { Matrix = 64, Slices = Slices, SliceSpacing = 5, LesionCount = 0, Finding = PhantomFinding.None, NoiseHu = 0 });

    private static void Change(string path, Action<DicomDataset> change)
    {
        var file = DicomFile.Open(path);
        change(file.Dataset);
        file.Save(path);
    }
}
