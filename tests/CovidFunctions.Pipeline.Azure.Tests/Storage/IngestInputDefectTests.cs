using System.Text;
using System.Text.RegularExpressions;
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

    [Fact]
    public async Task Zip_entries_whose_Pixel_Data_is_short_are_left_out_on_the_first_attempt_whether_or_not_the_entry_is_short_too()
    {
        // The inputs said to reach the fail-at-once path (session 14: a zip entry whose Pixel Data is short while the entry
        // is not, which the zip scan of 83ec0c3 does not measure): ingest expands the zip and reads each de-identified
        // instance through its Pixel Data, so both are one instance's defects, decided on the first attempt. The rest of
        // the study is ingested, nothing is retried or failed, and both originals are kept in quarantine with why.
        var tenant = AzuriteFixture.NewTenant();
        var uploadPath = $"{tenant}/chest.zip";
        var slices = MidChestSlices(4);
        var cut = CutInPixelData(slices[1]);
        var halfValue = WithHalfPixelDataValue(slices[2]);
        var zip = Zip([slices[0], cut, halfValue, slices[3]]);
        Assert.True(new FileInfo(halfValue).Length > 512 * 512 * 2, "the entry itself holds more bytes than its Pixel Data needs");
        await Uploads.WriteAsync(uploadPath, new MemoryStream(zip), CancellationToken.None);
        var unit = new UploadUnit(tenant, "s-short-pixels", uploadPath, UploadUnitKind.SingleBlob, [new UploadBlob(uploadPath, DateTimeOffset.UtcNow, zip.Length)], null);
        var notifier = new RecordingNotifier();

        var outcome = await NewIngest(azurite.Storage.BlobContainers, notifier).IngestAsync(unit, CancellationToken.None);

        Assert.True((IngestStatus.Ingested, 2) == (outcome.Status, outcome.SliceCount), $"{outcome.Status} {outcome.SliceCount}: {outcome.Reason} {outcome.Detail}");
        var row = (await azurite.Storage.Studies.GetAsync(tenant, unit.StudyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Processing, 1, null), (row.Status, row.IngestAttempts, row.IngestError));
        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await ReadAsync(Quarantine, $"{tenant}/{unit.StudyId}/skipped/reason.json")));
        var kept = reason.Files!.ToDictionary(f => f.Name, f => f.Why, StringComparer.Ordinal);
        Assert.Equal(2, kept.Count);
        var cutName = $"chest.zip/{Path.GetFileName(cut)}";
        Assert.Matches($@"^not readable as DICOM \({Regex.Escape(cutName)}: \(7FE0,0010\) OW declares 524288 bytes but only \d+ remain at byte \d+\)$", kept[cutName]);
        Assert.Equal(
            "defective image attributes, left out of its series: Pixel Data (7FE0,0010) holds 262144 bytes, fewer than the 524288 that Rows 512 × Columns 512 × 16 bits need",
            kept[$"chest.zip/{Path.GetFileName(halfValue)}"]);
        Assert.Equal(await File.ReadAllBytesAsync(halfValue), await ReadAsync(Quarantine, $"{tenant}/{unit.StudyId}/skipped/chest.zip/{Path.GetFileName(halfValue)}"));
        Assert.Empty(notifier.Events);
    }

    /// <summary>A copy of a real slice cut off halfway through its Pixel Data (an interrupted copy).</summary>
    private string CutInPixelData(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var output = Path.Combine(_temp.Path, Path.GetFileName(path));
        File.WriteAllBytes(output, bytes[..(bytes.Length - (512 * 512))]);
        return output;
    }

    /// <summary>
    /// A copy of a real slice whose Pixel Data value is its first half, followed by Data Set Trailing Padding (FFFC,FFFC)
    /// as long as the other half: well formed, the file as long as before, the image half missing.
    /// </summary>
    private string WithHalfPixelDataValue(string path)
    {
        var file = DicomFile.Open(path);
        Assert.True(file.Dataset.TryGet(DicomTags.PixelData, out var element) && element is DicomValueElement, "native Pixel Data");
        var pixels = ((DicomValueElement)element).RawValue;
        file.Dataset.AddOrUpdate(new DicomValueElement(DicomTags.PixelData, DicomVR.OW, pixels[..(pixels.Length / 2)]));
        file.Dataset.AddOrUpdate(new DicomValueElement(new DicomTag(0xFFFC, 0xFFFC), DicomVR.OB, new byte[pixels.Length / 2]));
        var output = Path.Combine(_temp.Path, Path.GetFileName(path));
        file.Save(output);
        return output;
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
