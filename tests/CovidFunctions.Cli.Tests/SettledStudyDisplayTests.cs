using CovidFunctions.Cli.Commands;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// How <c>covidfn status STUDY</c> and <c>covidfn up</c>'s progress lines show a study that did not complete. Found by
/// running the local pipeline: a study that failed on its chunk timeout was shown by <c>status</c> as "status: failed"
/// and, two rows below, "completed: 19:07:55 UTC" (the row's CompletedAt is the time it settled, whatever the outcome),
/// and neither <c>status</c> nor <c>up</c>'s "failed" line said that its upload had been moved to quarantine with a
/// reason.json (the "rejected" line did), though that is where the failed study's only copy of its original is.
/// </summary>
public sealed class SettledStudyDisplayTests
{
    private static readonly DateTimeOffset Created = new(2026, 11, 27, 19, 7, 42, TimeSpan.Zero);

    [Theory]
    [InlineData(StudyStatus.Failed, "no result for chunk(s) 0 (slices 0-29) after 1 attempt(s) of 5 s each")]
    [InlineData(StudyStatus.Rejected, "unreadable: [name]: not readable as DICOM")]
    public void A_failed_or_rejected_study_is_not_shown_as_completed_and_points_at_its_quarantine(string status, string reason)
    {
        using var temp = TestData.CreateTempDirectory();
        var containers = new FileSystemBlobContainers(temp.Path);
        var study = new StudyRecord
        {
            Tenant = "lab-a",
            StudyId = "s0000000000000000000000f1",
            Status = status,
            Reason = reason,
            CreatedAt = Created,
            CompletedAt = Created.AddSeconds(13),
        };
        var quarantine = containers.LinkTo(PipelineNames.QuarantineContainer, "lab-a/s0000000000000000000000f1/");

        using var output = new StringWriter();
        StatusCommand.WriteStudy(study, containers, output);
        var rows = output.ToString().Split('\n').Select(line => line.Trim('│', ' ', '\r')).ToList();

        Assert.DoesNotContain(rows, row => row.StartsWith("completed ", StringComparison.Ordinal));
        Assert.Contains(rows, row => row.StartsWith(status + " ", StringComparison.Ordinal) && row.Contains("2026-11-27 19:07:55 UTC", StringComparison.Ordinal));
        Assert.Contains(quarantine, output.ToString(), StringComparison.Ordinal);

        var line = UpCommand.Describe(study, containers);
        Assert.Contains(status, line, StringComparison.Ordinal);
        Assert.Contains("original and reason.json in quarantine/", line, StringComparison.Ordinal);
    }

    [Fact]
    public void A_study_failed_because_its_upload_was_deleted_before_ingest_names_no_quarantine()
    {
        using var temp = TestData.CreateTempDirectory();
        var containers = new FileSystemBlobContainers(temp.Path);
        var study = new StudyRecord
        {
            Tenant = "lab-a",
            StudyId = "s0000000000000000000000f2",
            Status = StudyStatus.Failed,
            Reason = "upload-missing: upload [name]: a blob was deleted before ingest could read it",
            CreatedAt = Created,
            CompletedAt = Created.AddSeconds(3),
        };

        using var output = new StringWriter();
        StatusCommand.WriteStudy(study, containers, output);

        Assert.DoesNotContain(PipelineNames.QuarantineContainer, output.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("quarantine", UpCommand.Describe(study, containers), StringComparison.Ordinal);
    }

    [Fact]
    public void A_completed_study_keeps_its_completed_row_and_has_no_quarantine_row()
    {
        using var temp = TestData.CreateTempDirectory();
        var containers = new FileSystemBlobContainers(temp.Path);
        var study = new StudyRecord
        {
            Tenant = "lab-a",
            StudyId = "s0000000000000000000000c1",
            Status = StudyStatus.Completed,
            CreatedAt = Created,
            CompletedAt = Created.AddSeconds(55),
            Label = "normal",
        };

        using var output = new StringWriter();
        StatusCommand.WriteStudy(study, containers, output);
        var rows = output.ToString().Split('\n').Select(line => line.Trim('│', ' ', '\r')).ToList();

        Assert.Contains(rows, row => row.StartsWith("completed ", StringComparison.Ordinal) && row.Contains("2026-11-27 19:08:37 UTC", StringComparison.Ordinal));
        Assert.DoesNotContain(rows, row => row.StartsWith("quarantine ", StringComparison.Ordinal));
    }
}

/// <summary>
/// <c>covidfn up</c>'s console for an upload dropped outside a valid tenant folder (<c>ct-uploads/Lab_B/scan.zip</c>,
/// or a blob at the container's top level). Ingest quarantines it under <c>quarantine/_invalid-tenant/{study}/</c> with
/// no Studies row (there is no tenant to file it under), and the console, which shows Studies rows, printed nothing:
/// found by dropping such blobs into the running local pipeline, where they vanished from <c>ct-uploads</c> without a
/// word on the console (only a Warning in the log file).
/// </summary>
public sealed class UntrackedUploadDisplayTests
{
    [Fact]
    public void An_upload_outside_a_tenant_folder_gets_a_console_line_naming_its_quarantine_but_not_the_folder()
    {
        var outcome = new IngestOutcome("Jane Doe", "s0000000000000000000000e1", IngestStatus.Rejected, 0, false,
            UploadUnitPlanner.InvalidTenantReason, "upload Jane Doe/scan.zip: tenant 'Jane Doe' is not valid");

        var line = UpCommand.DescribeUntracked(outcome, new DateTimeOffset(2026, 11, 27, 19, 45, 48, TimeSpan.Zero));

        Assert.NotNull(line);
        Assert.Contains("19:45:48 _invalid-tenant/s0000000000000000000000e1", line, StringComparison.Ordinal);
        Assert.Contains("invalid-tenant", line, StringComparison.Ordinal);
        Assert.Contains("quarantine/_invalid-tenant/s0000000000000000000000e1/", line, StringComparison.Ordinal);
        Assert.DoesNotContain("Jane", line, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(IngestStatus.Rejected, "zip-refused")]
    [InlineData(IngestStatus.Ingested, null)]
    [InlineData(IngestStatus.Failed, "upload-missing")]
    public void Uploads_with_a_studies_row_are_left_to_the_row_view(IngestStatus status, string? reason)
    {
        var outcome = new IngestOutcome("lab-a", "s0000000000000000000000e2", status, 0, false, reason);

        Assert.Null(UpCommand.DescribeUntracked(outcome, DateTimeOffset.UtcNow));
    }
}
