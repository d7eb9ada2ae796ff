using System.Text;
using System.Text.Json;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Pipeline.Tests.Ingest;

/// <summary>
/// Every file of an ingested upload that was not screened (another study, another series, an unreadable file) is kept
/// in <c>quarantine/{tenant}/{study}/skipped/</c> next to a <c>reason.json</c> naming each file and why, before the
/// row says ingested: the upload itself is deleted once the study's results are stored.
/// </summary>
public sealed class IngestNotScreenedTests
{
    private const string Tenant = "lab";

    /// <summary>One SBU patient: two time points (two StudyInstanceUIDs), each with an axial, a coronal and a sagittal slice.</summary>
    private static string SbuPatient => TestData.Shared("dicom", "chest-ct", "covid19-ny-sbu", "A002304");

    [Fact]
    public async Task A_folder_holding_two_studies_keeps_every_file_not_screened_in_quarantine_with_why_before_the_upload_is_deleted()
    {
        using var host = new IngestTestHost();
        var files = Directory.EnumerateFiles(SbuPatient, "*.dcm", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(SbuPatient, f).Replace(Path.DirectorySeparatorChar, '/'))
            .Order(StringComparer.Ordinal)
            .ToList();
        Assert.Equal(6, files.Count);
        foreach (var name in files)
        {
            await host.UploadFileAsync($"{Tenant}/patient/{name}", Path.Combine(SbuPatient, name));
        }

        await host.UploadAsync($"{Tenant}/patient/{PipelineNames.CompleteMarker}", []);
        var unit = Assert.Single(await host.PlanAsync());
        var outcome = await host.Handler.IngestAsync(unit, default);
        Assert.Equal(IngestStatus.Ingested, outcome.Status);

        // The status document says which series was screened, lists the others and points at the folder that keeps them.
        var study = (await host.Studies.GetAsync(Tenant, outcome.StudyId, default))!;
        using var series = JsonDocument.Parse(study.SeriesJson!);
        var selected = series.RootElement.GetProperty("selected");
        var screenedStudy = selected.GetProperty("studyInstanceUid").GetString();
        var others = series.RootElement.GetProperty("otherSeries").EnumerateArray().ToList();
        Assert.Contains(others, o => o.GetProperty("studyInstanceUid").GetString() != screenedStudy);
        Assert.Equal($"quarantine/{Tenant}/{outcome.StudyId}/skipped/", series.RootElement.GetProperty("skippedKeptIn").GetString());
        Assert.Equal(6 - outcome.SliceCount, series.RootElement.GetProperty("notScreenedFiles").GetInt32());

        // Each file not screened is in quarantine byte for byte; reason.json names each one and why.
        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await IngestTestHost.ReadAsync(host.Quarantine, $"{Tenant}/{outcome.StudyId}/skipped/reason.json")));
        Assert.Equal((IngestHandler.NotScreenedReason, $"{Tenant}/patient/", outcome.StudyId), (reason.Reason, reason.UploadPath, reason.StudyId));
        var kept = reason.Files!.ToDictionary(f => f.Name, f => f.Why, StringComparer.Ordinal);
        Assert.Equal(6 - outcome.SliceCount, kept.Count);
        foreach (var (name, _) in kept)
        {
            Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(SbuPatient, name)), await IngestTestHost.ReadAsync(host.Quarantine, $"{Tenant}/{outcome.StudyId}/skipped/{name}"));
        }

        // The other time point's axial slice is named as another study (the reason the uploader has to act on); the
        // reformats (DERIVED, both time points) by the de-identification policy that refused them.
        var otherStudy = Assert.Single(kept, k => k.Key.StartsWith("axial/", StringComparison.Ordinal));
        Assert.StartsWith("another study in the same upload (StudyInstanceUID ", otherStudy.Value, StringComparison.Ordinal);
        Assert.Contains(others, o => otherStudy.Value.Contains(o.GetProperty("studyInstanceUid").GetString()!, StringComparison.Ordinal));
        Assert.Contains("upload each study on its own", otherStudy.Value, StringComparison.Ordinal);
        Assert.All(kept.Where(k => !k.Key.StartsWith("axial/", StringComparison.Ordinal)), k => Assert.StartsWith("refused by the de-identification policy: Image Type is not ORIGINAL", k.Value, StringComparison.Ordinal));

        // Its results stored, the study's upload is deleted (AggregateStudy): every original is screened or in quarantine.
        await UploadArchive.DeleteAsync(host.Containers, unit.UploadPath, default);
        Assert.Empty(await IngestTestHost.ListAsync(host.Uploads, string.Empty));
        Assert.Equal(6, outcome.SliceCount + kept.Count);
    }

    [Fact]
    public async Task Skipped_instances_get_a_reason_json_naming_each_file_and_why()
    {
        using var host = new IngestTestHost();
        var slices = IngestTestFiles.MidChestSlices(3);
        foreach (var slice in slices)
        {
            await host.UploadFileAsync($"{Tenant}/series/{Path.GetFileName(slice)}", slice);
        }

        await host.UploadAsync($"{Tenant}/series/notes.txt", Encoding.UTF8.GetBytes("scanner notes, not an image"));
        await host.UploadAsync($"{Tenant}/series/{PipelineNames.CompleteMarker}", []);
        var outcome = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);
        Assert.Equal((IngestStatus.Ingested, 3), (outcome.Status, outcome.SliceCount));

        // Before, skipped/ held notes.txt and nothing said why: the reason was only in the Studies row, masked.
        Assert.Equal(
            [$"{Tenant}/{outcome.StudyId}/skipped/notes.txt", $"{Tenant}/{outcome.StudyId}/skipped/reason.json"],
            (await IngestTestHost.ListAsync(host.Quarantine, string.Empty)).Order(StringComparer.Ordinal));
        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await IngestTestHost.ReadAsync(host.Quarantine, $"{Tenant}/{outcome.StudyId}/skipped/reason.json")));
        Assert.Equal((Tenant, IngestHandler.NotScreenedReason), (reason.Tenant, reason.Reason));
        Assert.Contains($"{Tenant}/series/", reason.Detail, StringComparison.Ordinal);
        var file = Assert.Single(reason.Files!);
        Assert.Equal("notes.txt", file.Name);
        Assert.StartsWith("not readable as DICOM", file.Why, StringComparison.Ordinal);
    }
}
