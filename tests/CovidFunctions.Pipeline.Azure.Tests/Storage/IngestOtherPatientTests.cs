using System.Text;
using CovidFunctions.Dicom;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.TestHelpers;

using static CovidFunctions.Pipeline.Azure.Tests.Storage.UploadTestFiles;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// A slice of another patient inside one series (same Study and Series Instance UID, another PatientID and PatientName)
/// is not screened: ingest keeps it in quarantine under <c>skipped/</c> with a reason naming it and "another patient"
/// (no identity in the reason, the row or the outcome), and the rest of the series is ingested. A series half one
/// patient's and half another's is rejected (<c>mixed-patients</c>). Found in the session-22 incident drill: such a slice
/// in a real 30-slice series was screened with the rest (deidentifiedInstances 30, notScreenedFiles 0). Real slices
/// (lung-pet-ct-dx A0002 B70f), a real Azurite, each ingest by a fresh handler.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class IngestOtherPatientTests(AzuriteFixture azurite) : IDisposable
{
    private const string OtherId = "OTHER-PATIENT-0042";
    private const string OtherName = "Doe^Jane";
    private static readonly DeidKey Key = DeidKey.Generate();
    private readonly TempDirectory _temp = TestData.CreateTempDirectory();

    private IBlobStore Uploads => azurite.Storage.BlobContainers.Get(PipelineNames.UploadsContainer);

    private IBlobStore Quarantine => azurite.Storage.BlobContainers.Get(PipelineNames.QuarantineContainer);

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task A_slice_of_another_patient_is_kept_not_screened_and_the_rest_of_its_series_is_ingested()
    {
        var tenant = AzuriteFixture.NewTenant();
        var uploadPath = $"{tenant}/chest.zip";
        var slices = MidChestSlices(4);
        slices[2] = OfAnotherPatient(slices[2]);
        var zip = Zip(slices);
        await Uploads.WriteAsync(uploadPath, new MemoryStream(zip), CancellationToken.None);
        var unit = new UploadUnit(tenant, "s-other-patient", uploadPath, UploadUnitKind.SingleBlob, [new UploadBlob(uploadPath, DateTimeOffset.UtcNow, zip.Length)], null);

        var outcome = await NewIngest(new RecordingNotifier()).IngestAsync(unit, CancellationToken.None);

        Assert.True((IngestStatus.Ingested, 3) == (outcome.Status, outcome.SliceCount), $"{outcome.Status} {outcome.SliceCount}: {outcome.Reason} {outcome.Detail}");
        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await ReadAsync(Quarantine, $"{tenant}/{unit.StudyId}/skipped/reason.json")));
        var kept = Assert.Single(reason.Files!);
        Assert.Equal($"chest.zip/{Path.GetFileName(slices[2])}", kept.Name);
        Assert.StartsWith("another patient: its patient identity", kept.Why, StringComparison.Ordinal);
        Assert.Contains("the other 3 instance(s) of its series", kept.Why, StringComparison.Ordinal);
        Assert.Equal(await File.ReadAllBytesAsync(slices[2]), await ReadAsync(Quarantine, $"{tenant}/{unit.StudyId}/skipped/{kept.Name}"));
        var row = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Contains("another patient", row.SeriesJson, StringComparison.Ordinal);
        foreach (var text in new[] { row.SeriesJson, reason.Detail, kept.Why })
        {
            Assert.DoesNotContain(OtherId, text, StringComparison.Ordinal);
            Assert.DoesNotContain("Doe", text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_series_half_of_another_patient_is_rejected_as_mixed_patients()
    {
        var tenant = AzuriteFixture.NewTenant();
        var uploadPath = $"{tenant}/chest.zip";
        var slices = MidChestSlices(4);
        slices[0] = OfAnotherPatient(slices[0]);
        slices[3] = OfAnotherPatient(slices[3]);
        var zip = Zip(slices);
        await Uploads.WriteAsync(uploadPath, new MemoryStream(zip), CancellationToken.None);
        var unit = new UploadUnit(tenant, "s-mixed-patients", uploadPath, UploadUnitKind.SingleBlob, [new UploadBlob(uploadPath, DateTimeOffset.UtcNow, zip.Length)], null);

        var outcome = await NewIngest(new RecordingNotifier()).IngestAsync(unit, CancellationToken.None);

        Assert.True((IngestStatus.Rejected, "mixed-patients") == (outcome.Status, outcome.Reason), $"{outcome.Status} {outcome.SliceCount}: {outcome.Reason} {outcome.Detail}");
        Assert.Contains("no patient has more than half", outcome.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(OtherId, outcome.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("Doe", outcome.Detail, StringComparison.Ordinal);
        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await ReadAsync(Quarantine, $"{tenant}/{unit.StudyId}/reason.json")));
        Assert.Equal("mixed-patients", reason.Reason);
    }

    /// <summary>A copy of the slice with another PatientID and PatientName (the drill's pydicom edit).</summary>
    private string OfAnotherPatient(string path)
    {
        var file = DicomFile.Open(path);
        file.Dataset.SetString(DicomTags.PatientID, DicomVR.LO, OtherId);
        file.Dataset.SetString(DicomTags.PatientName, DicomVR.PN, OtherName);
        var output = Path.Combine(_temp.Path, Path.GetFileName(path));
        file.Save(output);
        return output;
    }

    private IngestHandler NewIngest(IStudyNotifier notifier) =>
        IngestOnAzurite.NewHandler(azurite, Key, new StartedOrchestrations(), azurite.Storage.BlobContainers, notifier);
}
