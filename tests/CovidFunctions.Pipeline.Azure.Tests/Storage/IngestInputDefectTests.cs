using System.Text;
using CovidFunctions.Dicom;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

using static CovidFunctions.Pipeline.Azure.Tests.Storage.UploadTestFiles;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// A study-level defect that a retry cannot change (the same upload through the same code fails the same way) fails the
/// study on its first attempt, with the upload and the cause in the reason and the originals in quarantine as the
/// give-up path keeps them; a storage failure, whatever its type, is still retried. On a real Azurite, each attempt by a
/// fresh handler (a restarted process). A slice with unusable image attributes is not such a defect: the assembler leaves
/// it out and the rest of the study is screened (its first test, which failed the study before).
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class IngestInputDefectTests(AzuriteFixture azurite) : IDisposable
{
    private static readonly DeidKey Key = DeidKey.Generate();
    private readonly TempDirectory _temp = TestData.CreateTempDirectory();

    private IBlobStore Uploads => azurite.Storage.BlobContainers.Get(PipelineNames.UploadsContainer);

    private IBlobStore Quarantine => azurite.Storage.BlobContainers.Get(PipelineNames.QuarantineContainer);

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task A_slice_with_empty_Rows_is_left_out_and_the_rest_of_the_study_is_ingested_with_the_slice_kept_in_quarantine()
    {
        // One slice whose Rows is present but empty: de-identification keeps it (an empty value is whole values). Before
        // (9b7f788), the series assembler's header scan threw a DicomException on it and the whole study failed at once
        // (ingest-failed); before that, it was retried MaxIngestAttempts times and then failed. Now the assembler leaves
        // that slice out with the reason, the other two are screened, and the slice is kept in quarantine as not screened.
        var tenant = AzuriteFixture.NewTenant();
        var uploadPath = $"{tenant}/Doe_Jane_chest.zip";
        var slices = MidChestSlices(3);
        slices[1] = WithEmptyRows(slices[1]);
        var zip = Zip(slices);
        await Uploads.WriteAsync(uploadPath, new MemoryStream(zip), CancellationToken.None);
        var unit = new UploadUnit(tenant, "s-defect", uploadPath, UploadUnitKind.SingleBlob, [new UploadBlob(uploadPath, DateTimeOffset.UtcNow, zip.Length)], null);
        var notifier = new RecordingNotifier();

        var outcome = await NewIngest(azurite.Storage.BlobContainers, notifier).IngestAsync(unit, CancellationToken.None);

        Assert.Equal((IngestStatus.Ingested, 2), (outcome.Status, outcome.SliceCount));
        var row = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Processing, 1), (row.Status, row.IngestAttempts));
        const string Why = "defective image attributes, left out of its series: Rows (0028,0010) is empty";
        Assert.Contains($"[name]: {Why}", row.SeriesJson, StringComparison.Ordinal);
        Assert.DoesNotContain("Doe_Jane", row.SeriesJson, StringComparison.Ordinal);
        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await ReadAsync(Quarantine, $"{tenant}/{unit.StudyId}/skipped/reason.json")));
        var kept = Assert.Single(reason.Files!);
        Assert.Equal(($"Doe_Jane_chest.zip/{Path.GetFileName(slices[1])}", Why), (kept.Name, kept.Why));
        Assert.Equal(await File.ReadAllBytesAsync(slices[1]), await ReadAsync(Quarantine, $"{tenant}/{unit.StudyId}/skipped/{kept.Name}"));
        Assert.DoesNotContain(notifier.Events, e => e.EventType == StudyEventTypes.Failed);
    }

    [Fact]
    public async Task A_storage_failure_while_tiling_is_retried_whatever_its_type()
    {
        // Tiling decodes (the upload's content) and writes (storage) in one call; only what the store itself threw says
        // storage. An SDK that surfaces an outage as InvalidOperationException (not an IOException) must still be retried,
        // never taken for a defect of the upload.
        var tenant = AzuriteFixture.NewTenant();
        var uploadPath = $"{tenant}/scan.zip";
        var zip = Zip(MidChestSlices(3));
        await Uploads.WriteAsync(uploadPath, new MemoryStream(zip), CancellationToken.None);
        var unit = new UploadUnit(tenant, "s-storage", uploadPath, UploadUnitKind.SingleBlob, [new UploadBlob(uploadPath, DateTimeOffset.UtcNow, zip.Length)], null);
        var containers = new TilesWritesFail(azurite.Storage.BlobContainers, () => new InvalidOperationException("the storage account is being failed over"));
        var notifier = new RecordingNotifier();

        var thrown = await Assert.ThrowsAsync<InvalidOperationException>(() => NewIngest(containers, notifier).IngestAsync(unit, CancellationToken.None));

        Assert.Equal("the storage account is being failed over", thrown.Message);
        var row = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Processing, 1, "InvalidOperationException: the storage account is being failed over"), (row.Status, row.IngestAttempts, row.IngestError));
        Assert.True(await Uploads.ExistsAsync(uploadPath, CancellationToken.None), "the upload stays while a retry may still succeed");
        Assert.Empty(notifier.Events);

        // Storage back: the next attempt ingests it.
        var outcome = await NewIngest(azurite.Storage.BlobContainers, notifier).IngestAsync(unit, CancellationToken.None);
        Assert.Equal((IngestStatus.Ingested, 3), (outcome.Status, outcome.SliceCount));
    }

    /// <summary>A copy of the slice at <paramref name="path"/> whose Rows (0028,0010) is present with an empty value.</summary>
    private string WithEmptyRows(string path)
    {
        var file = DicomFile.Open(path);
        file.Dataset.AddOrUpdate(new DicomValueElement(new DicomTag(0x0028, 0x0010), DicomVR.US, Array.Empty<byte>()));
        var output = Path.Combine(_temp.Path, Path.GetFileName(path));
        file.Save(output);
        return output;
    }

    private IngestHandler NewIngest(IBlobContainers containers, IStudyNotifier notifier) =>
        IngestOnAzurite.NewHandler(azurite, Key, new StartedOrchestrations(), containers, notifier);
}
