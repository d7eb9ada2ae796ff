using System.Security.Cryptography;
using System.Text;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Pipeline.Tests.Ingest;

/// <summary>
/// The read list ingest writes (<c>slices/{tenant}/{study}/upload-read.json</c>): upload names keyed, never in the clear
/// nor as their plain SHA-256 (reversible by trying names); each blob with the version read, so completion deletes
/// only what was read unchanged and keeps a blob written again under its name; lists of the first format still read.
/// </summary>
public sealed class UploadReadListTests
{
    private const string Tenant = "lab";

    /// <summary>An upload named the way uploaders name them: patient name and MRN in the folder.</summary>
    private const string PhiFolder = "Smith_John_MRN123456";

    private static List<string> Slices => IngestTestFiles.MidChestSlices(4);

    [Fact]
    public async Task The_read_list_keeps_no_upload_name_nor_its_plain_sha256()
    {
        using var host = new IngestTestHost();
        var (outcome, paths) = await IngestFolderAsync(host, PhiFolder);

        var json = Encoding.UTF8.GetString(await IngestTestHost.ReadAsync(host.Slices, UploadArchive.ReadListPath(Tenant, outcome.StudyId)));

        // Before: {"uploadPath": sha256("lab/Smith_John_MRN123456/"), "blobs": [sha256(each blob path)]}.
        Assert.DoesNotContain("Smith", json, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("MRN123456", json, StringComparison.Ordinal);
        foreach (var name in paths.Append($"{Tenant}/{PhiFolder}/").SelectMany(p => new[] { p, p.Split('/')[^1] }).Where(n => n.Length > 0))
        {
            Assert.DoesNotContain(Sha256(name), json, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain(name, json, StringComparison.Ordinal);
        }

        Assert.Contains("\"format\":2", json, StringComparison.Ordinal);

        // Keyed: another deployment's key reads it as an error (never as "no list", which would delete late files).
        var otherKey = UploadReadKey.From(CovidFunctions.Dicom.Deidentification.DeidKey.Generate());
        await Assert.ThrowsAsync<InvalidOperationException>(() => UploadArchive.ReadListAsync(host.Containers, otherKey, Tenant, outcome.StudyId, $"{Tenant}/{PhiFolder}/", default));
        var read = await UploadArchive.ReadListAsync(host.Containers, host.UploadReadKey, Tenant, outcome.StudyId, $"{Tenant}/{PhiFolder}/", default);
        Assert.NotNull(read);
        Assert.All(paths, p => Assert.True(read.Contains(p) && read.VersionOf(p) is not null, p));
    }

    [Fact]
    public async Task A_list_of_the_first_format_still_settles_its_study_deleting_the_read_blobs_and_keeping_a_late_one()
    {
        using var host = new IngestTestHost();
        var (outcome, paths) = await IngestFolderAsync(host, "series");

        // The study was ingested before the keyed list: its list is the first format (plain SHA-256 names, no versions).
        var uploadPath = $"{Tenant}/series/";
        var firstFormat = $"{{\"uploadPath\":\"{Sha256(uploadPath)}\",\"blobs\":[{string.Join(',', paths.Select(p => $"\"{Sha256(p)}\""))}]}}";
        using (var stream = new MemoryStream(Encoding.UTF8.GetBytes(firstFormat)))
        {
            await host.Slices.WriteAsync(UploadArchive.ReadListPath(Tenant, outcome.StudyId), stream, default);
        }

        var late = Slices[3];
        await host.UploadFileAsync($"{Tenant}/series/{Path.GetFileName(late)}", late);

        // The next look still tells the late file by the old list.
        var second = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);
        Assert.Equal((IngestStatus.Rejected, IngestHandler.ReuploadAfterIngestReason), (second.Status, second.Reason));

        // A second late file after that look, then completion: the read blobs and the marker deleted, the late one kept.
        await host.UploadAsync($"{Tenant}/series/late-2.dcm", File.ReadAllBytes(late));
        await UploadArchive.SettleCompletedAsync(host.Containers, host.Studies, host.UploadReadKey, Tenant, outcome.StudyId, uploadPath, default);

        Assert.Empty(await IngestTestHost.ListAsync(host.Uploads, string.Empty));
        var kept = await IngestTestHost.ListAsync(host.Quarantine, $"{Tenant}/{outcome.StudyId}/");
        Assert.Single(kept, p => p.EndsWith("/original/late-2.dcm", StringComparison.Ordinal));
        Assert.DoesNotContain(kept, p => paths.Any(read => p.EndsWith("/" + Path.GetFileName(read), StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_blob_written_again_under_its_name_after_ingest_is_kept_with_its_reason_when_the_study_completes()
    {
        using var host = new IngestTestHost();
        var (outcome, paths) = await IngestFolderAsync(host, "series");

        // The uploader writes another file under the name of one ingest read. Before: completion deleted it by name,
        // a file never screened.
        var overwritten = paths[1];
        var newContent = File.ReadAllBytes(Slices[3]);
        await host.UploadAsync(overwritten, newContent);

        await UploadArchive.SettleCompletedAsync(host.Containers, host.Studies, host.UploadReadKey, Tenant, outcome.StudyId, $"{Tenant}/series/", default);

        Assert.Empty(await IngestTestHost.ListAsync(host.Uploads, string.Empty));
        var kept = await IngestTestHost.ListAsync(host.Quarantine, $"{Tenant}/{outcome.StudyId}/");
        var reasonPath = Assert.Single(kept, p => p.EndsWith("/reason.json", StringComparison.Ordinal));
        Assert.StartsWith($"{Tenant}/{outcome.StudyId}/changed-", reasonPath, StringComparison.Ordinal);
        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await IngestTestHost.ReadAsync(host.Quarantine, reasonPath)));
        Assert.Equal((IngestHandler.ChangedAfterIngestReason, $"{Tenant}/series/"), (reason.Reason, reason.UploadPath));
        Assert.Equal(Path.GetFileName(overwritten), Assert.Single(reason.Files!).Name);
        Assert.Equal(newContent, await IngestTestHost.ReadAsync(host.Quarantine, reasonPath[..^"reason.json".Length] + "original/" + Path.GetFileName(overwritten)));
        Assert.Equal(2, kept.Count); // the unchanged blobs were deleted, not kept
    }

    [Fact]
    public async Task A_single_blob_written_again_after_ingest_is_kept_when_the_study_completes()
    {
        using var host = new IngestTestHost();
        var zipped = Zip(Slices.Take(3));
        await host.UploadAsync($"{Tenant}/scan.zip", zipped);
        var outcome = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);
        Assert.Equal(IngestStatus.Ingested, outcome.Status);

        // Written again within the clock-skew margin (no later look sees it as new by its time).
        var newContent = Zip(Slices.Skip(1));
        await host.UploadAsync($"{Tenant}/scan.zip", newContent);
        await UploadArchive.SettleCompletedAsync(host.Containers, host.Studies, host.UploadReadKey, Tenant, outcome.StudyId, $"{Tenant}/scan.zip", default);

        Assert.Empty(await IngestTestHost.ListAsync(host.Uploads, string.Empty));
        var original = Assert.Single(await IngestTestHost.ListAsync(host.Quarantine, $"{Tenant}/{outcome.StudyId}/"), p => p.Contains("/original/", StringComparison.Ordinal));
        Assert.EndsWith("/original/scan.zip", original, StringComparison.Ordinal);
        Assert.Equal(newContent, await IngestTestHost.ReadAsync(host.Quarantine, original));
    }

    private static async Task<(IngestOutcome Outcome, List<string> Paths)> IngestFolderAsync(IngestTestHost host, string folder)
    {
        var paths = new List<string>();
        foreach (var slice in Slices.Take(3))
        {
            var path = $"{Tenant}/{folder}/{Path.GetFileName(slice)}";
            await host.UploadFileAsync(path, slice);
            paths.Add(path);
        }

        await host.UploadAsync($"{Tenant}/{folder}/{PipelineNames.CompleteMarker}", []);
        var outcome = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);
        Assert.Equal((IngestStatus.Ingested, 3), (outcome.Status, outcome.SliceCount));
        return (outcome, paths);
    }

    private static byte[] Zip(IEnumerable<string> files)
    {
        using var buffer = new MemoryStream();
        using (var zip = new System.IO.Compression.ZipArchive(buffer, System.IO.Compression.ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var file in files)
            {
                using var entry = zip.CreateEntry(Path.GetFileName(file)).Open();
                entry.Write(File.ReadAllBytes(file));
            }
        }

        return buffer.ToArray();
    }

    private static string Sha256(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
}
