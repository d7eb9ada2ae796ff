using System.Text;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Storage;

using static CovidFunctions.Pipeline.Tests.Ingest.IngestTestFiles;

namespace CovidFunctions.Pipeline.Tests.Ingest;

/// <summary>
/// A settled study's path written again, and late events for a path whose upload is gone: each upload's originals and
/// reason stay in quarantine as they were, and no quarantine record is written for an upload that does not exist.
/// </summary>
public sealed class IngestReuploadTests
{
    private const string Tenant = "lab";

    [Fact]
    public async Task A_late_event_for_an_ingested_upload_already_deleted_writes_no_quarantine_record()
    {
        using var host = new IngestTestHost();
        var file = Directory.EnumerateFiles(SharpSeries, "*.dcm").Order(StringComparer.Ordinal).Skip(10).First();
        await host.UploadFileAsync($"{Tenant}/done.dcm", file);
        var first = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);
        Assert.Equal(IngestStatus.Ingested, first.Status);

        // The study completes and its upload is deleted (retention 0), as the AggregateStudy activity does.
        await host.Studies.UpdateAsync(Tenant, first.StudyId, row => row! with { Status = StudyStatus.Completed, CompletedAt = host.Time.GetUtcNow() }, default);
        await host.Uploads.DeleteAsync($"{Tenant}/done.dcm", default);

        // An hour later Event Grid delivers the blob-created event again. The Function cannot read the deleted blob's
        // properties, so the unit carries the delivery time (IngestFunctions.IngestUpload). Before, that time counted as
        // a re-upload: a reason.json saying "written again" was put in quarantine for an upload that does not exist.
        host.Time.Now = host.Time.Now.AddHours(1);
        var unit = UploadUnitPlanner.ForSingleBlob(new UploadBlob($"{Tenant}/done.dcm", host.Time.GetUtcNow(), 0), host.StudyIdKey)!;
        var late = await host.Handler.IngestAsync(unit, default);

        Assert.Equal((IngestStatus.AlreadyIngested, false), (late.Status, late.OrchestrationStarted));
        Assert.Empty(await IngestTestHost.ListAsync(host.Quarantine, string.Empty));
        Assert.Equal(StudyStatus.Completed, (await host.Studies.GetAsync(Tenant, first.StudyId, default))!.Status);
    }

    [Fact]
    public async Task A_path_written_again_after_its_study_was_rejected_is_kept_apart_and_the_first_rejects_originals_stay()
    {
        using var host = new IngestTestHost();
        var firstContent = Encoding.UTF8.GetBytes("first upload, not dicom");
        await host.UploadAsync($"{Tenant}/x.dcm", firstContent);
        var first = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);
        Assert.Equal((IngestStatus.Rejected, "unreadable"), (first.Status, first.Reason));
        var firstReason = await IngestTestHost.ReadAsync(host.Quarantine, $"{Tenant}/{first.StudyId}/reason.json");
        var rejectedRow = await host.Studies.GetAsync(Tenant, first.StudyId, default);

        // Ten minutes later the same name is written again. Before, it was ingested in the rejected study's place: its
        // copy overwrote quarantine/.../original/x.dcm and reason.json, so the first upload's bytes were lost.
        host.Time.Now = host.Time.Now.AddMinutes(10);
        var secondContent = Encoding.UTF8.GetBytes("second upload, not dicom either");
        await host.UploadAsync($"{Tenant}/x.dcm", secondContent);
        var second = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);

        Assert.Equal((IngestStatus.Rejected, "reupload-after-reject"), (second.Status, second.Reason));
        Assert.Contains($"{Tenant}/x.dcm", second.Detail, StringComparison.Ordinal);
        Assert.Equal(firstContent, await IngestTestHost.ReadAsync(host.Quarantine, $"{Tenant}/{first.StudyId}/original/x.dcm"));
        Assert.Equal(firstReason, await IngestTestHost.ReadAsync(host.Quarantine, $"{Tenant}/{first.StudyId}/reason.json"));
        var prefix = $"{Tenant}/{first.StudyId}/reupload-{host.Time.Now.UtcDateTime:yyyyMMddTHHmmssZ}";
        Assert.Equal(secondContent, await IngestTestHost.ReadAsync(host.Quarantine, $"{prefix}/original/x.dcm"));
        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await IngestTestHost.ReadAsync(host.Quarantine, $"{prefix}/reason.json")));
        Assert.Equal(("reupload-after-reject", $"{Tenant}/x.dcm"), (reason.Reason, reason.UploadPath));
        Assert.Empty(await IngestTestHost.ListAsync(host.Uploads, string.Empty));

        // The rejected study is left as it was (one rejection, one event); a re-delivery of the first reject still works.
        Assert.Equal(rejectedRow, await host.Studies.GetAsync(Tenant, first.StudyId, default));
        Assert.Single(host.Notifier.Events);
    }

    [Fact]
    public async Task A_file_added_to_an_ingested_folder_is_kept_apart_and_the_studys_originals_stay_until_its_results()
    {
        using var host = new IngestTestHost();
        var slices = Directory.EnumerateFiles(SharpSeries, "*.dcm").Order(StringComparer.Ordinal).Skip(10).Take(4).ToList();
        foreach (var file in slices.Take(3))
        {
            await host.UploadFileAsync($"{Tenant}/series/{Path.GetFileName(file)}", file);
        }

        await host.UploadAsync($"{Tenant}/series/{PipelineNames.CompleteMarker}", []);
        var ingestedAt = host.Time.GetUtcNow();
        var first = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);
        Assert.Equal((IngestStatus.Ingested, 3), (first.Status, first.SliceCount));

        // Ten minutes later, while the study is being scored, a slow uploader adds one more file to the folder.
        host.Time.Now = host.Time.Now.AddMinutes(10);
        var late = $"{Tenant}/series/{Path.GetFileName(slices[3])}";
        await host.UploadFileAsync(late, slices[3]);
        var listed = (await IngestTestHost.ListAsync(host.Uploads, string.Empty))
            .Select(p => new UploadBlob(p, p == late ? host.Time.GetUtcNow() : ingestedAt, 0));
        var unit = Assert.Single(UploadUnitPlanner.Plan(listed, host.Time.GetUtcNow(), host.Options, host.StudyIdKey));
        var second = await host.Handler.IngestAsync(unit, default);

        // Before, every blob of the folder and its marker were moved to the re-upload's quarantine folder: the study's
        // originals left ct-uploads before its results were stored, and a failure after that had nothing to quarantine.
        Assert.Equal((IngestStatus.Rejected, "reupload-after-ingest"), (second.Status, second.Reason));
        Assert.Contains($"({Path.GetFileName(slices[3])})", second.Detail, StringComparison.Ordinal);
        var prefix = $"{Tenant}/{first.StudyId}/reupload-{host.Time.Now.UtcDateTime:yyyyMMddTHHmmssZ}";
        Assert.Equal([$"{prefix}/original/{Path.GetFileName(slices[3])}", $"{prefix}/reason.json"], (await IngestTestHost.ListAsync(host.Quarantine, string.Empty)).Order(StringComparer.Ordinal));
        Assert.Equal(
            [.. slices.Take(3).Select(f => $"{Tenant}/series/{Path.GetFileName(f)}"), $"{Tenant}/series/{PipelineNames.CompleteMarker}"],
            (await IngestTestHost.ListAsync(host.Uploads, string.Empty)).Order(StringComparer.Ordinal).OrderBy(p => p.EndsWith(PipelineNames.CompleteMarker, StringComparison.Ordinal)));

        // The next look at the folder finds the study's own upload: nothing is redone.
        var again = await host.Handler.IngestAsync(Assert.Single(UploadUnitPlanner.Plan(listed.Where(b => b.Path != late), host.Time.GetUtcNow(), host.Options, host.StudyIdKey)), default);
        Assert.Equal(IngestStatus.AlreadyIngested, again.Status);
        Assert.Single(host.Orchestrations.Started);
    }
}
