using System.Text;
using Azure.Storage.Blobs;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

using static CovidFunctions.Pipeline.Azure.Tests.Storage.UploadTestFiles;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// Upload blob names that Blob Storage keeps as they are but a file system would not (an empty segment, spaces,
/// non-ASCII letters, '%' and '#'), written with the SDK directly as an uploader's tool would, then planned, ingested
/// or rejected, and quarantined on a real Azurite.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class UploadBlobNameTests(AzuriteFixture azurite)
{
    private static readonly DeidKey Key = DeidKey.Generate();

    private BlobContainerClient RawUploads => ((AzureBlobStore)azurite.Storage.BlobContainers.Get(PipelineNames.UploadsContainer)).Container;

    private IBlobStore Quarantine => azurite.Storage.BlobContainers.Get(PipelineNames.QuarantineContainer);

    [Fact]
    public async Task A_folder_holding_a_name_with_an_empty_segment_is_ingested_whole()
    {
        // "scan//part-2.zip" is a valid blob name (azcopy or a script joining "scan/" and "/part-2.zip" writes it).
        // Before, the Azure store refused to read it: ingest threw on every attempt, the study failed, and the folder
        // (good part included) could not be moved to quarantine either, so it stayed in ct-uploads with no reason.json.
        var tenant = AzuriteFixture.NewTenant();
        var slices = MidChestSlices(6);
        await UploadAsync($"{tenant}/scan/part-1.zip", Zip(slices.Take(3)));
        await UploadAsync($"{tenant}/scan//part-2.zip", Zip(slices.Skip(3)));
        await UploadAsync($"{tenant}/scan/{PipelineNames.CompleteMarker}", []);
        var orchestrations = new RecordingOrchestrations();

        var unit = await PlanAsync(tenant);
        Assert.Equal([$"{tenant}/scan//part-2.zip", $"{tenant}/scan/part-1.zip"], unit.BlobPaths);
        var outcome = await NewIngest(orchestrations).IngestAsync(unit, CancellationToken.None);

        Assert.Equal((IngestStatus.Ingested, 6), (outcome.Status, outcome.SliceCount));
        Assert.Single(orchestrations.Started);
        Assert.Equal(3, await CountAsync(RawUploads, $"{tenant}/"));
    }

    [Fact]
    public async Task A_reject_whose_names_have_an_empty_segment_spaces_and_non_ascii_letters_keeps_every_original_in_quarantine()
    {
        var tenant = AzuriteFixture.NewTenant();
        var notes = Encoding.UTF8.GetBytes("not an image");
        var other = Encoding.UTF8.GetBytes("not an image either");
        await UploadAsync($"{tenant}/Müller Hans #2/notes 100%.txt", notes);
        await UploadAsync($"{tenant}/Müller Hans #2//other.txt", other);
        await UploadAsync($"{tenant}/Müller Hans #2/{PipelineNames.CompleteMarker}", []);

        var outcome = await NewIngest(new RecordingOrchestrations()).IngestAsync(await PlanAsync(tenant), CancellationToken.None);

        Assert.Equal((IngestStatus.Rejected, "no-images"), (outcome.Status, outcome.Reason));
        Assert.Contains("notes 100%.txt", outcome.Detail, StringComparison.Ordinal);
        Assert.Contains("other.txt", outcome.Detail, StringComparison.Ordinal);
        Assert.Equal(notes, await ReadAsync(Quarantine, $"{tenant}/{outcome.StudyId}/original/notes 100%.txt"));
        Assert.Equal(other, await ReadAsync(Quarantine, $"{tenant}/{outcome.StudyId}/original/_/other.txt"));
        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await ReadAsync(Quarantine, $"{tenant}/{outcome.StudyId}/reason.json")));
        Assert.Equal(($"{tenant}/Müller Hans #2/", "no-images"), (reason.UploadPath, reason.Reason));
        Assert.Equal(0, await CountAsync(RawUploads, $"{tenant}/"));
    }

    [Fact]
    public async Task Names_a_local_file_system_cannot_hold_are_screened_or_kept_not_retried_until_the_study_fails()
    {
        // A 300-character name (a file system allows 255 bytes per name) and a blob "notes" next to a blob
        // "notes/readme.txt" (a file and a folder of one name), in the folder and inside a zip. Before, ingest copied each
        // under its own name to local disk: PathTooLongException / IOException on every attempt, retried until the study
        // failed (ingest-failed), though every slice could be screened.
        var tenant = AzuriteFixture.NewTenant();
        var slices = MidChestSlices(4);
        var longName = new string('x', 296) + ".dcm";
        await UploadAsync($"{tenant}/scan/{longName}", await File.ReadAllBytesAsync(slices[0]));
        await UploadAsync($"{tenant}/scan/{Path.GetFileName(slices[1])}", await File.ReadAllBytesAsync(slices[1]));
        await UploadAsync($"{tenant}/scan/notes", Encoding.UTF8.GetBytes("scanner notes"));
        await UploadAsync($"{tenant}/scan/notes/readme.txt", Encoding.UTF8.GetBytes("more notes"));
        await UploadAsync($"{tenant}/scan/more.zip", ZipEntries(
            (longName, await File.ReadAllBytesAsync(slices[2])),
            ("s/" + Path.GetFileName(slices[3]), await File.ReadAllBytesAsync(slices[3])),
            ("extra", Encoding.UTF8.GetBytes("extra notes")),
            ("extra/readme.txt", Encoding.UTF8.GetBytes("more extra notes"))));
        await UploadAsync($"{tenant}/scan/{PipelineNames.CompleteMarker}", []);
        var orchestrations = new RecordingOrchestrations();

        var outcome = await NewIngest(orchestrations).IngestAsync(await PlanAsync(tenant), CancellationToken.None);

        Assert.True(outcome.Status == IngestStatus.Ingested, $"{outcome.Status}: {outcome.Reason} {outcome.Detail}");
        Assert.Equal(4, outcome.SliceCount);
        Assert.Single(orchestrations.Started);
        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await ReadAsync(Quarantine, $"{tenant}/{outcome.StudyId}/skipped/reason.json")));
        Assert.Equal(
            ["more.zip/extra", "more.zip/extra/readme.txt", "notes", "notes/readme.txt"],
            reason.Files!.Select(f => f.Name).Order(StringComparer.Ordinal));
        Assert.Equal(Encoding.UTF8.GetBytes("more extra notes"), await ReadAsync(Quarantine, $"{tenant}/{outcome.StudyId}/skipped/more.zip/extra/readme.txt"));
        Assert.Equal(Encoding.UTF8.GetBytes("scanner notes"), await ReadAsync(Quarantine, $"{tenant}/{outcome.StudyId}/skipped/notes"));
    }

    private static byte[] ZipEntries(params (string Name, byte[] Content)[] entries)
    {
        using var buffer = new MemoryStream();
        using (var zip = new System.IO.Compression.ZipArchive(buffer, System.IO.Compression.ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, content) in entries)
            {
                using var stream = zip.CreateEntry(name, System.IO.Compression.CompressionLevel.Fastest).Open();
                stream.Write(content);
            }
        }

        return buffer.ToArray();
    }

    private async Task UploadAsync(string name, byte[] content) => await RawUploads.GetBlobClient(name).UploadAsync(new BinaryData(content));

    private static async Task<int> CountAsync(BlobContainerClient container, string prefix)
    {
        var count = 0;
        await foreach (var unused in container.GetBlobsAsync(new global::Azure.Storage.Blobs.Models.GetBlobsOptions { Prefix = prefix }))
        {
            count++;
        }

        return count;
    }

    private async Task<UploadUnit> PlanAsync(string tenant)
    {
        return Assert.Single(await PlanTenantAsync(azurite.Storage.UploadListing, tenant, Key));
    }

    private IngestHandler NewIngest(IStudyOrchestrationClient orchestrations) => IngestOnAzurite.NewHandler(azurite, Key, orchestrations);
}
