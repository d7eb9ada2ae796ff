using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Queues;
using CovidFunctions.Cli.Commands;
using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Dicom;
using CovidFunctions.Imaging.Nifti;
using CovidFunctions.Imaging.Phantoms;
using CovidFunctions.Imaging.Series;
using CovidFunctions.Imaging.Volumes;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests.Pipeline;

/// <summary>
/// The PHI-flow audit as a test (docs/compliance/phi-flow.md): studies whose every identifying field carries a unique
/// marker (DICOM header values, a private tag, the original UIDs and dates, NIfTI <c>descrip</c>, and the upload's own
/// file, folder and zip entry names) go through the local pipeline on a real Azurite with the API and a webhook. Then
/// everything persisted is dumped (every blob name, metadata and content, every table row including the Durable task
/// hub's, every queue message, the log file), with the API responses, the webhook bodies and <c>covidfn status</c>
/// output, and searched for every marker. Only the quarantine container may hold them (originals of a reject, skipped
/// instances), ct-uploads must be empty once results are stored, and no Studies row keeps the upload path.
/// </summary>
[Collection(PipelineCollection.Name)]
public sealed class PhiFlowEndToEndTests
{
    private const string Tenant = "lab-phi";

    // Name markers: in upload file, folder and zip entry names, as research groups name files after patients.
    private const string FolderName = "Smith_John_ZQXFOLDERNAME";
    private const string FileMarker = "ZQXFILENAME";
    private const string SkippedNoteName = "ZQXSKIPPEDNAME_notes.txt";
    private const string ZipName = "Doe_Jane_ZQXZIPNAME.zip";
    private const string ZipEntryFolder = "ZQXZIPENTRYNAME";
    private const string NiftiName = "Brown_Bob_ZQXNIFTINAME.nii.gz";
    private const string RejectName = "Roe_Richard_ZQXREJECTNAME.dcm";

    // Header markers.
    private const string PatientNameOne = "ZQXPATIENTONE^JOHN";
    private const string PatientNameTwo = "ZQXPATIENTTWO^JANE";
    private const string PrivateValue = "ZQXPRIVATETAGVALUE";
    private const string PrivateCreator = "ZQXPRIVATECREATOR";
    private const string NiftiDescription = "ZQXNIFTIDESCRIP MRN 55501";
    private const string AcquisitionDate = "19930817";

    [Fact]
    public async Task Planted_markers_reach_no_sink_but_quarantine_and_uploads_are_gone_after_results()
    {
        using var temp = TestData.CreateTempDirectory();
        await using var azurite = await PipelineFixture.StartAzuriteAsync(temp.Path);
        var dataDir = Path.Combine(temp.Path, "data");
        using var loggers = PipelineFixture.Loggers(dataDir, out var log);
        using var _ = log;
        using var receiver = new RecordingWebhookReceiver();
        var options = PipelineFixture.Options(dataDir, azurite.ConnectionString, chunkSize: 3) with { ApiPort = TestNetwork.FreePort(), AllowLoopbackWebhooks = true };
        await using var host = await LocalPipelineHost.StartAsync(options, loggers, CancellationToken.None);
        Assert.True(host.Api is not null, host.ApiProblem);
        await host.Api.Webhooks.Manager.AddAsync(Tenant, receiver.Url, StudyEventTypes.All, secret: null, CancellationToken.None);

        var markers = new List<string>
        {
            FolderName, FileMarker, "ZQXSKIPPEDNAME", "ZQXZIPNAME", ZipEntryFolder, "ZQXNIFTINAME", "ZQXREJECTNAME",
            PatientNameOne, "ZQXPATIENTONE", PatientNameTwo, "ZQXPATIENTTWO", PrivateValue, PrivateCreator, "ZQXNIFTIDESCRIP", AcquisitionDate, "20200315",
        };
        markers.AddRange(PlantedPhi.All.Where(m => m != PlantedPhi.PatientName));

        // 1. A folder upload: phantom instances renamed after the patient, a private tag, one non-DICOM file (skipped).
        var folder = Path.Combine(temp.Path, "in", FolderName);
        var one = new CtPhantom(new CtPhantomOptions { Matrix = 256, Slices = 5, SliceSpacing = 10, PatientName = PatientNameOne, Seed = 3 });
        markers.AddRange(PlantPhantom(one, folder, FileMarker));
        await File.WriteAllTextAsync(Path.Combine(folder, SkippedNoteName), "clinical notes of Smith John");

        // 2. A zip whose name and entry folder carry markers.
        var zipSource = Path.Combine(temp.Path, "zipsrc", ZipEntryFolder);
        var two = new CtPhantom(new CtPhantomOptions { Matrix = 256, Slices = 5, SliceSpacing = 10, PatientName = PatientNameTwo, Seed = 4, UidSeed = "zip-study" });
        markers.AddRange(PlantPhantom(two, zipSource, null));
        var zip = Path.Combine(temp.Path, "in", ZipName);
        ZipFile.CreateFromDirectory(Path.GetDirectoryName(zipSource)!, zip);

        // 3. A NIfTI volume with an identifying file name and descrip.
        var nifti = Path.Combine(temp.Path, "in", NiftiName);
        var niftiSource = Path.Combine(temp.Path, "niftisrc");
        new CtPhantom(new CtPhantomOptions { Matrix = 256, Slices = 5, SliceSpacing = 10, Seed = 5, UidSeed = "nifti-study" }).WriteFolder(niftiSource);
        using (var series = SeriesAssembler.Assemble(niftiSource))
        {
            var voxels = new float[series.Rows * series.Columns * series.SliceCount];
            for (var k = 0; k < series.SliceCount; k++)
            {
                series.ReadHu(k).CopyTo(voxels, k * series.Rows * series.Columns);
            }

            var image = NiftiOrientation.FromAxialVolume(new AxialVolume(series.Geometry, voxels), NiftiDataType.Int16);
            image.Header.Description = NiftiDescription;
            NiftiFile.Write(nifti, image);
        }

        // 4. A reject: not DICOM at all, named after a patient.
        var reject = Path.Combine(temp.Path, "in", RejectName);
        await File.WriteAllTextAsync(reject, "not a DICOM file, but named after one");

        var submitter = new StudySubmitter(host.Storage.BlobContainers, host.Storage.Studies, host.StudyIdKey);
        var folderStudy = await submitter.SubmitAsync(folder, Tenant, CancellationToken.None);
        var zipStudy = await submitter.SubmitAsync(zip, Tenant, CancellationToken.None);
        var niftiStudy = await submitter.SubmitAsync(nifti, Tenant, CancellationToken.None);
        var rejectStudy = await submitter.SubmitAsync(reject, Tenant, CancellationToken.None);
        var studies = new[] { folderStudy, zipStudy, niftiStudy, rejectStudy };

        foreach (var study in new[] { folderStudy, zipStudy, niftiStudy })
        {
            var row = await PipelineFixture.WaitForTerminalAsync(host.Storage.Studies, Tenant, study.StudyId, log.Path);
            Assert.True(row.Status == StudyStatus.Completed, $"{study.StudyId}: {row.Status} {row.Reason}");
            await PipelineFixture.WaitForOrchestrationEndAsync(host, Tenant, study.StudyId);
        }

        var rejected = await PipelineFixture.WaitForTerminalAsync(host.Storage.Studies, Tenant, rejectStudy.StudyId, log.Path);
        Assert.Equal(StudyStatus.Rejected, rejected.Status);
        await PipelineFixture.WaitUntilAsync(() => Task.FromResult(receiver.Requests.Count >= 4), "four webhook deliveries (3 completed, 1 rejected)");

        // Everything the outside sees: API (list, detail, report, FHIR), webhook bodies, covidfn status (text and JSON).
        var seen = new List<(string Sink, string Text)>();
        using (var http = new HttpClient { BaseAddress = host.Api.BaseUrl })
        {
            http.DefaultRequestHeaders.Add("X-Api-Key", host.Api.OperatorKey);
            seen.Add(("api list", await http.GetStringAsync($"api/studies?tenant={Tenant}")));
            foreach (var study in studies)
            {
                foreach (var resource in new[] { "", "/report", "/fhir" })
                {
                    seen.Add(($"api {study.StudyId}{resource}", await http.GetStringAsync($"api/studies/{study.StudyId}{resource}?tenant={Tenant}")));
                }
            }
        }

        seen.AddRange(receiver.Requests.Select(request => ("webhook body", request.Body)));
        foreach (var study in studies)
        {
            foreach (var json in new[] { false, true })
            {
                var output = new StringWriter();
                var rc = await StatusCommand.RunAsync(study.StudyId, Tenant, json, azurite.ConnectionString, dataDir, output, new StringWriter(), CancellationToken.None);
                Assert.Equal(ExitCodes.Success, rc);
                seen.Add(($"covidfn status{(json ? " --json" : "")} {study.StudyId}", output.ToString()));
            }
        }

        // Everything persisted: blobs (name, metadata, content) of every container, tables, queues; the log.
        var persisted = await DumpStorageAsync(azurite.ConnectionString);

        // Once a study's upload is deleted (or quarantined), its row no longer holds the upload path.
        foreach (var study in studies)
        {
            Assert.Null((await host.Storage.Studies.GetAsync(Tenant, study.StudyId, CancellationToken.None))!.UploadPath);
        }

        await host.StopAsync(CancellationToken.None);
        log.Dispose();
        persisted.AddRange(Directory.EnumerateFiles(Path.Combine(dataDir, "logs")).Select(f => ($"log {Path.GetFileName(f)}", File.ReadAllText(f))));

        // ct-uploads is empty: every original is deleted once its results (or its quarantine copy) are stored.
        Assert.DoesNotContain(persisted, p => p.Sink.StartsWith("blob " + PipelineNames.UploadsContainer + "/", StringComparison.Ordinal));

        // The quarantine holds the reject's original and reason, and the folder's skipped file: documented to hold PHI.
        var quarantine = persisted.Where(p => p.Sink.StartsWith("blob " + PipelineNames.QuarantineContainer + "/", StringComparison.Ordinal)).ToList();
        Assert.Contains(quarantine, p => p.Sink.Contains($"{Tenant}/{rejectStudy.StudyId}/original/", StringComparison.Ordinal));
        Assert.Contains(quarantine, p => p.Sink.Contains($"{Tenant}/{folderStudy.StudyId}/skipped/", StringComparison.Ordinal));

        var leaks = new List<string>();
        foreach (var (sink, text) in seen.Concat(persisted).Where(p => !p.Sink.StartsWith("blob " + PipelineNames.QuarantineContainer + "/", StringComparison.Ordinal)))
        {
            foreach (var marker in markers.Distinct(StringComparer.Ordinal))
            {
                var at = text.IndexOf(marker, StringComparison.OrdinalIgnoreCase);
                if (at >= 0)
                {
                    leaks.Add($"{sink}: '{marker}' in ...{Excerpt(text, at)}...");
                }
            }
        }

        Assert.True(leaks.Count == 0, $"{leaks.Count} marker(s) outside quarantine:\n" + string.Join('\n', leaks.Distinct().Take(60)));

        // The searches looked at real content: the task hub's tables and the results were there.
        Assert.Contains(persisted, p => p.Sink.StartsWith("table " + PipelineNames.TaskHubName, StringComparison.OrdinalIgnoreCase));
        Assert.Contains(persisted, p => p.Sink.StartsWith("blob " + PipelineNames.ResultsContainer + "/", StringComparison.Ordinal));
        Assert.Contains(persisted, p => p.Sink.StartsWith("table " + PipelineNames.StudiesTable, StringComparison.Ordinal));
    }

    /// <summary>
    /// Writes the phantom to <paramref name="folder"/> with its instances renamed (when <paramref name="fileMarker"/> is
    /// given), an acquisition date and a private block planted; returns the values to search for: the original UIDs.
    /// </summary>
    private static List<string> PlantPhantom(CtPhantom phantom, string folder, string? fileMarker)
    {
        var uids = new List<string> { phantom.StudyInstanceUid, phantom.SeriesInstanceUid, phantom.FrameOfReferenceUid };
        var files = phantom.WriteFolder(folder);
        var index = 0;
        foreach (var path in files.Select(f => Path.IsPathRooted(f) ? f : Path.Combine(folder, f)).ToList())
        {
            var file = DicomFile.Open(path);
            uids.Add(file.Dataset.GetString(DicomTags.SOPInstanceUID)!.Trim());
            file.Dataset.SetString(DicomTags.AcquisitionDate, DicomVR.DA, AcquisitionDate);
            file.Dataset.SetString(new DicomTag(0x0009, 0x0010), DicomVR.LO, PrivateCreator);
            file.Dataset.SetString(new DicomTag(0x0009, 0x1001), DicomVR.LO, PrivateValue);
            var target = fileMarker is null ? path : Path.Combine(folder, $"{fileMarker}_{index++:D3}.dcm");
            file.Save(target + ".tmp");
            File.Delete(path);
            File.Move(target + ".tmp", target);
        }

        return uids;
    }

    private static async Task<List<(string Sink, string Text)>> DumpStorageAsync(string connectionString)
    {
        var dump = new List<(string, string)>();
        var blobs = new BlobServiceClient(connectionString);
        await foreach (var container in blobs.GetBlobContainersAsync())
        {
            var client = blobs.GetBlobContainerClient(container.Name);
            await foreach (var blob in client.GetBlobsAsync(new GetBlobsOptions { Traits = BlobTraits.Metadata }))
            {
                var content = (await client.GetBlobClient(blob.Name).DownloadContentAsync()).Value.Content.ToArray();
                var metadata = string.Join(';', blob.Metadata?.Select(m => $"{m.Key}={m.Value}") ?? []);
                dump.Add(($"blob {container.Name}/{blob.Name}", $"{container.Name}/{blob.Name}\n{metadata}\n{Readable(content)}"));
            }
        }

        var tables = new TableServiceClient(connectionString);
        await foreach (var table in tables.QueryAsync())
        {
            await foreach (var entity in tables.GetTableClient(table.Name).QueryAsync<TableEntity>())
            {
                var text = string.Join('\n', entity.Select(p => $"{p.Key}={(p.Value is byte[] bytes ? Readable(bytes) : p.Value)}"));
                dump.Add(($"table {table.Name} {entity.PartitionKey}/{entity.RowKey}", text));
            }
        }

        var queues = new QueueServiceClient(connectionString);
        await foreach (var queue in queues.GetQueuesAsync())
        {
            var messages = await queues.GetQueueClient(queue.Name).PeekMessagesAsync(32);
            foreach (var message in messages.Value)
            {
                dump.Add(($"queue {queue.Name} {message.MessageId}", Readable(message.Body.ToArray())));
            }
        }

        return dump;
    }

    /// <summary>The bytes as Latin-1 text, gunzipped first when they are gzip (Durable's compressed large messages).</summary>
    private static string Readable(byte[] bytes)
    {
        if (bytes.Length > 2 && bytes[0] == 0x1F && bytes[1] == 0x8B)
        {
            try
            {
                using var gzip = new GZipStream(new MemoryStream(bytes), CompressionMode.Decompress);
                using var inflated = new MemoryStream();
                gzip.CopyTo(inflated);
                return Encoding.Latin1.GetString(bytes) + "\n" + Encoding.Latin1.GetString(inflated.ToArray());
            }
            catch (InvalidDataException)
            {
                // Not gzip after all.
            }
        }

        return Encoding.Latin1.GetString(bytes);
    }

    private static string Excerpt(string text, int at)
    {
        var start = Math.Max(0, at - 60);
        return text.Substring(start, Math.Min(text.Length - start, 140)).ReplaceLineEndings(" ");
    }
}
