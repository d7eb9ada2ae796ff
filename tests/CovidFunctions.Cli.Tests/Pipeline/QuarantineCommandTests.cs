using System.Text.Json;
using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Imaging.Phantoms;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests.Pipeline;

/// <summary>
/// The incident drill's gaps G and E (docs/operations.md "Known gaps", session 22), through the built covidfn on a real
/// Azurite fed by the local pipeline: no command listed or read the quarantine (its blob URL needs the account key, so
/// a browser gets 403, and the runbook read it with a Python script holding the key from storage.connection), and
/// <c>covidfn status STUDY</c> showed neither the files not screened (the API document has them) nor an ingest claim a
/// study waits on. The set-up is PhiFlowEndToEndTests' (a folder with a non-DICOM file, skipped; a non-DICOM upload,
/// rejected), on a 5-slice phantom; the names carry markers to check where they are printed.
/// </summary>
[Collection(PipelineCollection.Name)]
public sealed class QuarantineCommandTests
{
    private const string Tenant = "lab-q";
    private const string FolderName = "Smith_John_ZQXQFOLDER";
    private const string SkippedName = "Smith_John_ZQXQNOTES.txt";
    private const string SkippedContent = "clinical notes ZQXQCONTENT of Smith John";
    private const string RejectName = "Roe_Richard_ZQXQREJECT.dcm";
    private const string RejectContent = "ZQXQREJECTCONTENT not a DICOM file";

    [Fact]
    public async Task Quarantine_lists_and_shows_rejects_and_skipped_files_and_status_shows_them_and_a_claim()
    {
        using var temp = TestData.CreateTempDirectory();
        await using var azurite = await PipelineFixture.StartAzuriteAsync(temp.Path);
        var dataDir = Path.Combine(temp.Path, "data");
        string folderStudy, rejectStudy;
        using (var loggers = PipelineFixture.Loggers(dataDir, out var log))
        using (log)
        {
            var options = PipelineFixture.Options(dataDir, azurite.ConnectionString, chunkSize: 5) with { ApiPort = 0 };
            await using var host = await LocalPipelineHost.StartAsync(options, loggers, CancellationToken.None);

            var folder = Path.Combine(temp.Path, "in", FolderName);
            new CtPhantom(new CtPhantomOptions { Matrix = 256, Slices = 5, SliceSpacing = 10, Seed = 3 }).WriteFolder(folder);
            await File.WriteAllTextAsync(Path.Combine(folder, SkippedName), SkippedContent);
            var reject = Path.Combine(temp.Path, "in", RejectName);
            await File.WriteAllTextAsync(reject, RejectContent);

            var submitter = new StudySubmitter(host.Storage.BlobContainers, host.Storage.Studies, host.StudyIdKey);
            folderStudy = (await submitter.SubmitAsync(folder, Tenant, CancellationToken.None)).StudyId;
            rejectStudy = (await submitter.SubmitAsync(reject, Tenant, CancellationToken.None)).StudyId;

            var rejected = await PipelineFixture.WaitForTerminalAsync(host.Storage.Studies, Tenant, rejectStudy, log.Path);
            Assert.Equal(StudyStatus.Rejected, rejected.Status);
            var completed = await PipelineFixture.WaitForTerminalAsync(host.Storage.Studies, Tenant, folderStudy, log.Path);
            Assert.True(completed.Status == StudyStatus.Completed, $"{completed.Status} {completed.Reason}");
            await PipelineFixture.WaitForOrchestrationEndAsync(host, Tenant, folderStudy);
        }

        // The list: both entries with reason code, time and reason, the skipped file's why; no upload name (a list is
        // what gets pasted into a ticket, so it masks names as status and the console do).
        var list = CovidfnProcess.Run("quarantine", "--data-dir", dataDir);
        Assert.True(list.ExitCode == 0, list.Stderr);
        var rejectLine = Assert.Single(list.Stdout.Split('\n'), l => l.Contains(rejectStudy, StringComparison.Ordinal));
        Assert.Contains("unreadable", rejectLine, StringComparison.Ordinal);
        Assert.Contains(DateTime.UtcNow.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture), rejectLine, StringComparison.Ordinal);
        var skippedLine = Assert.Single(list.Stdout.Split('\n'), l => l.Contains(folderStudy, StringComparison.Ordinal));
        Assert.Contains("not-screened", skippedLine, StringComparison.Ordinal);
        Assert.Contains("not readable as DICOM", skippedLine, StringComparison.Ordinal);
        AssertNoMarker(list.Stdout + list.Stderr, names: true);

        var json = CovidfnProcess.Run("quarantine", "--data-dir", dataDir, "--tenant", Tenant, "--json");
        Assert.True(json.ExitCode == 0, json.Stderr);
        using (var document = JsonDocument.Parse(json.Stdout))
        {
            var entries = document.RootElement.EnumerateArray().ToList();
            Assert.Equal(2, entries.Count);
            var r = Assert.Single(entries, e => e.GetProperty("study").GetString() == rejectStudy);
            Assert.Equal("original", r.GetProperty("folder").GetString());
            Assert.Equal("unreadable", r.GetProperty("reason").GetString());
            Assert.Equal(1, r.GetProperty("files").GetInt32());
            Assert.Equal($"quarantine/{Tenant}/{rejectStudy}/", r.GetProperty("path").GetString());
            var s = Assert.Single(entries, e => e.GetProperty("study").GetString() == folderStudy);
            Assert.Equal("skipped", s.GetProperty("folder").GetString());
            Assert.Equal("not-screened", s.GetProperty("reason").GetString());
            Assert.Equal(1, s.GetProperty("files").GetInt32());
            var why = Assert.Single(s.GetProperty("notScreened").EnumerateArray());
            Assert.Contains("not readable as DICOM", why.GetProperty("why").GetString(), StringComparison.Ordinal);
            Assert.Equal(1, why.GetProperty("count").GetInt32());
        }

        AssertNoMarker(json.Stdout, names: true);
        var otherTenant = CovidfnProcess.Run("quarantine", "--data-dir", dataDir, "--tenant", "lab-other");
        Assert.True(otherTenant.ExitCode == 0, otherTenant.Stderr);
        Assert.Contains("nothing in quarantine for tenant 'lab-other'", otherTenant.Stdout, StringComparison.Ordinal);

        // show: one study's entries for the operator's inspection, names as uploaded (reason.json keeps them for that:
        // docs/compliance/phi-flow.md), never a byte of the files themselves.
        var showReject = CovidfnProcess.Run("quarantine", "show", rejectStudy, "--data-dir", dataDir);
        Assert.True(showReject.ExitCode == 0, showReject.Stderr);
        Assert.Contains(RejectName, showReject.Stdout, StringComparison.Ordinal);
        Assert.Contains("unreadable", showReject.Stdout, StringComparison.Ordinal);
        // `covidfn submit` names the upload {stamp}-{file name}; the original is kept under that name in original/.
        Assert.Contains(showReject.Stdout.Split('\n'), l => l.Contains("kept", StringComparison.Ordinal) && l.Contains("original/", StringComparison.Ordinal) && l.Contains(RejectName, StringComparison.Ordinal));
        Assert.Contains("as uploaded", showReject.Stderr, StringComparison.Ordinal);
        var showFolder = CovidfnProcess.Run("quarantine", "show", folderStudy, "--data-dir", dataDir, "--json");
        Assert.True(showFolder.ExitCode == 0, showFolder.Stderr);
        using (var document = JsonDocument.Parse(showFolder.Stdout))
        {
            var entry = Assert.Single(document.RootElement.GetProperty("entries").EnumerateArray());
            Assert.Equal("not-screened", entry.GetProperty("reason").GetString());
            var file = Assert.Single(entry.GetProperty("files").EnumerateArray());
            Assert.Equal(SkippedName, file.GetProperty("name").GetString());
            Assert.Contains("not readable as DICOM", file.GetProperty("why").GetString(), StringComparison.Ordinal);
        }

        foreach (var shown in new[] { showReject.Stdout, showFolder.Stdout })
        {
            Assert.DoesNotContain("ZQXQCONTENT", shown, StringComparison.Ordinal);
            Assert.DoesNotContain("ZQXQREJECTCONTENT", shown, StringComparison.Ordinal);
        }

        var unknown = CovidfnProcess.Run("quarantine", "show", "s0000000000000000000nothere", "--data-dir", dataDir);
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("nothing in quarantine for study 's0000000000000000000nothere'", unknown.Stderr, StringComparison.Ordinal);

        // status STUDY: the files not screened, as the API document has them (count, masked reasons, where kept).
        var status = CovidfnProcess.Run("status", folderStudy, "--data-dir", dataDir);
        Assert.True(status.ExitCode == 0, status.Stderr);
        var cells = StatusRowsWithoutTimeTests.Cells(status.Stdout);
        var notScreened = Assert.Single(cells, c => c.Field == "not screened");
        Assert.StartsWith($"1 file(s), kept in quarantine/{Tenant}/{folderStudy}/skipped/", notScreened.Value, StringComparison.Ordinal);
        Assert.Contains($"covidfn quarantine show {folderStudy}", notScreened.Value, StringComparison.Ordinal);
        Assert.Contains(cells, c => c.Field == "skipped" && c.Value.Contains("not readable as DICOM", StringComparison.Ordinal));
        AssertNoMarker(status.Stdout, names: true);

        // status STUDY of a study waiting on another attempt's ingest claim (what a kill -9 mid-ingest leaves: the row
        // processing, not ingested, the claim until its expiry), and of one whose claim has run out.
        var storage = PipelineStorage.FromConnectionString(azurite.ConnectionString);
        var until = new DateTimeOffset(DateTime.UtcNow.AddDays(1).Date.AddHours(9).AddMinutes(35).AddSeconds(35), TimeSpan.Zero);
        foreach (var (id, expires) in new[] { ("s000000000000000000claim1", until), ("s000000000000000000claim2", StatusRowsWithoutTimeTests.Created) })
        {
            Assert.True(await storage.Studies.TryCreateAsync(
                new StudyRecord
                {
                    Tenant = Tenant,
                    StudyId = id,
                    Status = StudyStatus.Processing,
                    UploadPath = $"{Tenant}/scan.zip",
                    CreatedAt = StatusRowsWithoutTimeTests.Created,
                    IngestAttempts = 1,
                    IngestClaim = "attempt-token",
                    IngestClaimExpiresAt = expires,
                },
                CancellationToken.None));
        }

        var held = StatusRowsWithoutTimeTests.Cells(CovidfnProcess.Run("status", "s000000000000000000claim1", "--data-dir", dataDir).Stdout);
        var claim = Assert.Single(held, c => c.Field == "ingest claim");
        Assert.StartsWith($"held by an ingest attempt until {until.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC", claim.Value, StringComparison.Ordinal);
        Assert.Contains(held, c => c.Field == "ingest attempts" && c.Value == "1");
        var expired = StatusRowsWithoutTimeTests.Cells(CovidfnProcess.Run("status", "s000000000000000000claim2", "--data-dir", dataDir).Stdout);
        Assert.StartsWith("expired 2026-11-28 14:00:00 UTC", Assert.Single(expired, c => c.Field == "ingest claim").Value, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Quarantine_names_the_data_folder_of_a_stopped_up()
    {
        using var dir = new TempDirectory();
        var ports = new AzuritePorts(TestNetwork.FreePort(), TestNetwork.FreePort(), TestNetwork.FreePort());
        await File.WriteAllTextAsync(Path.Combine(dir.Path, LocalStorage.ConnectionFileName), AzuriteServer.ConnectionStringFor(ports));

        var run = CovidfnProcess.Run("quarantine", "--data-dir", dir.Path);

        Assert.Equal(1, run.ExitCode);
        Assert.Contains($"quarantine: the covidfn up of {dir.Path} is not running", run.Stderr, StringComparison.Ordinal);
        Assert.Equal(string.Empty, run.Stdout);
    }

    private static void AssertNoMarker(string text, bool names)
    {
        Assert.DoesNotContain("ZQXQCONTENT", text, StringComparison.Ordinal);
        Assert.DoesNotContain("ZQXQREJECTCONTENT", text, StringComparison.Ordinal);
        if (names)
        {
            Assert.DoesNotContain("ZQXQFOLDER", text, StringComparison.Ordinal);
            Assert.DoesNotContain("ZQXQNOTES", text, StringComparison.Ordinal);
            Assert.DoesNotContain("ZQXQREJECT", text, StringComparison.Ordinal);
        }
    }
}
