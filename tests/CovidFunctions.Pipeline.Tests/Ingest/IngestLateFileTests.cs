using System.Text;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Pipeline.Tests.Ingest;

/// <summary>
/// A file written to an ingested folder within the one-minute clock-skew margin: ingest records the blobs it read, so
/// the file is a late one whatever its time, kept in quarantine with its reason, never deleted with the study's upload.
/// </summary>
public sealed class IngestLateFileTests
{
    private const string Tenant = "lab";

    private static List<string> Slices => IngestTestFiles.MidChestSlices(4);

    [Fact]
    public async Task A_file_written_within_the_margin_is_quarantined_when_the_study_completes_not_deleted()
    {
        using var host = new IngestTestHost();
        var (first, late) = await IngestThenAddALateFileAsync(host);

        // The study completes (AggregateStudy settles its upload). Before, every blob under the folder was deleted,
        // the late file with them, never screened.
        await UploadArchive.SettleCompletedAsync(host.Containers, host.Studies, host.UploadReadKey, Tenant, first.StudyId, $"{Tenant}/series/", default);

        Assert.Empty(await IngestTestHost.ListAsync(host.Uploads, string.Empty));
        var kept = await IngestTestHost.ListAsync(host.Quarantine, $"{Tenant}/{first.StudyId}/");
        var reasonPath = Assert.Single(kept, p => p.EndsWith("/reason.json", StringComparison.Ordinal));
        Assert.Contains("/reupload-", reasonPath, StringComparison.Ordinal);
        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await IngestTestHost.ReadAsync(host.Quarantine, reasonPath)));
        Assert.Equal(("reupload-after-ingest", $"{Tenant}/series/"), (reason.Reason, reason.UploadPath));
        Assert.Equal(Path.GetFileName(late), Assert.Single(reason.Files!).Name);
        Assert.Equal(File.ReadAllBytes(late), await IngestTestHost.ReadAsync(host.Quarantine, reasonPath[..^"reason.json".Length] + "original/" + Path.GetFileName(late)));
        Assert.Equal(2, kept.Count);
    }

    [Fact]
    public async Task A_file_written_within_the_margin_is_late_at_the_next_look_at_the_folder()
    {
        using var host = new IngestTestHost();
        var (first, late) = await IngestThenAddALateFileAsync(host);

        // The next poll sees the folder with the new file. Before, its time fell inside the margin: "already ingested",
        // and the file would go with the folder.
        var second = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);

        Assert.Equal((IngestStatus.Rejected, "reupload-after-ingest"), (second.Status, second.Reason));
        var kept = await IngestTestHost.ListAsync(host.Quarantine, $"{Tenant}/{first.StudyId}/");
        Assert.Single(kept, p => p.EndsWith("/original/" + Path.GetFileName(late), StringComparison.Ordinal));
        Assert.Equal(4, (await IngestTestHost.ListAsync(host.Uploads, string.Empty)).Count); // the study's own files and marker stay
    }

    private static async Task<(IngestOutcome First, string Late)> IngestThenAddALateFileAsync(IngestTestHost host)
    {
        var slices = Slices;
        foreach (var slice in slices.Take(3))
        {
            await host.UploadFileAsync($"{Tenant}/series/{Path.GetFileName(slice)}", slice);
        }

        await host.UploadAsync($"{Tenant}/series/{PipelineNames.CompleteMarker}", []);
        var first = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);
        Assert.Equal((IngestStatus.Ingested, 3), (first.Status, first.SliceCount));

        // 30 s after ingest, inside the 1-minute clock-skew margin, a slow uploader adds one more file.
        host.Time.Now = host.Time.Now.AddSeconds(30);
        await host.UploadFileAsync($"{Tenant}/series/{Path.GetFileName(slices[3])}", slices[3]);
        return (first, slices[3]);
    }
}
