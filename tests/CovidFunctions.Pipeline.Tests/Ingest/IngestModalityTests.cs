using System.Text;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Pipeline.Tests.Ingest;

/// <summary>An upload of real DICOM instances that are not CT (MR) is refused as such, naming the files, with every original in quarantine.</summary>
public sealed class IngestModalityTests
{
    private const string Tenant = "lab";

    [Fact]
    public async Task A_folder_of_MR_instances_is_rejected_as_not_ct_naming_the_files_with_the_originals_in_quarantine()
    {
        using var host = new IngestTestHost();
        var files = Directory.EnumerateFiles(TestData.Shared("dicom", "conformance", "dcmqa-deident-mr", "In"), "*.dcm").Order(StringComparer.Ordinal).ToList();
        Assert.NotEmpty(files);
        foreach (var file in files)
        {
            await host.UploadFileAsync($"{Tenant}/head mr/{Path.GetFileName(file)}", file);
        }

        await host.UploadAsync($"{Tenant}/head mr/{PipelineNames.CompleteMarker}", []);

        var outcome = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);

        Assert.Equal((IngestStatus.Rejected, "not-ct"), (outcome.Status, outcome.Reason));
        Assert.Contains(Path.GetFileName(files[0]), outcome.Detail, StringComparison.Ordinal);
        Assert.Contains("de-identification policy", outcome.Detail, StringComparison.Ordinal);
        foreach (var file in files)
        {
            Assert.Equal(File.ReadAllBytes(file), await IngestTestHost.ReadAsync(host.Quarantine, $"{Tenant}/{outcome.StudyId}/original/{Path.GetFileName(file)}"));
        }

        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await IngestTestHost.ReadAsync(host.Quarantine, $"{Tenant}/{outcome.StudyId}/reason.json")));
        Assert.Equal(("not-ct", $"{Tenant}/head mr/"), (reason.Reason, reason.UploadPath));
        Assert.Empty(await IngestTestHost.ListAsync(host.Uploads, string.Empty));
        Assert.Empty(await IngestTestHost.ListAsync(host.Slices, string.Empty));
        Assert.Equal(StudyStatus.Rejected, (await host.Studies.GetAsync(Tenant, outcome.StudyId, default))!.Status);
        Assert.Equal([(Tenant, outcome.StudyId, StudyEventTypes.Rejected)], host.Notifier.Events);
    }
}
