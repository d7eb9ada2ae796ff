using CovidFunctions.Cli.Commands;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// <c>covidfn status STUDY</c> on a study that settled without reaching a stage: a rejected study showed
/// "rejected │ -" and "upload │ -" rows (no time or upload kept), which read as a missing value rather than "never
/// happened" (walkthrough audit). A settled study now leaves out the rows it has nothing for; a running one keeps its
/// "ingested -" / "scoring -" / "completed -" rows, where the dash means "not yet".
/// </summary>
public sealed class StatusRowsWithoutTimeTests
{
    internal static readonly DateTimeOffset Created = new(2026, 11, 28, 14, 0, 0, TimeSpan.Zero);

    private static List<(string Field, string Value)> Rows(StudyRecord study)
    {
        using var temp = TestData.CreateTempDirectory();
        using var output = new StringWriter();
        StatusCommand.WriteStudy(study, new FileSystemBlobContainers(temp.Path), output);
        return Cells(output.ToString());
    }

    /// <summary>The (field, value) rows of <c>covidfn status STUDY</c>'s table.</summary>
    internal static List<(string Field, string Value)> Cells(string table)
    {
        return table.Split('\n')
            .Select(line => line.Trim('│', ' ', '\r').Split('│'))
            .Where(cells => cells.Length == 2)
            .Select(cells => (cells[0].Trim(), cells[1].Trim()))
            .ToList();
    }

    /// <summary>A rejected study's row as ingest writes it (no upload kept), with or without the rejection's time.</summary>
    internal static StudyRecord Rejected(string studyId, DateTimeOffset? completedAt = null) => new()
    {
        Tenant = "lab-a",
        StudyId = studyId,
        Status = StudyStatus.Rejected,
        Reason = "unreadable: [name]: not readable as DICOM",
        CreatedAt = Created,
        CompletedAt = completedAt,
    };

    [Fact]
    public void A_rejected_study_with_no_settle_time_and_no_upload_shows_no_empty_rows()
    {
        var rows = Rows(Rejected("s0000000000000000000000r1"));

        Assert.DoesNotContain(rows, r => r.Value == "-");
        Assert.DoesNotContain(rows, r => r.Field is "upload" or "rejected" or "ingested" or "scoring");
        Assert.Contains(rows, r => r.Field == "status" && r.Value.StartsWith("rejected — unreadable", StringComparison.Ordinal));
        Assert.Contains(rows, r => r.Field == "quarantine");
    }

    [Fact]
    public void A_rejected_study_shows_when_it_was_rejected()
    {
        // Ingest keeps the rejection's time as CompletedAt since fce3ddb; rows written before it have none (above, and
        // StatusOldRejectedRowTests: the time then comes from the quarantine's reason.json).
        var rows = Rows(Rejected("s0000000000000000000000r3", Created.AddSeconds(4)));

        Assert.Contains(rows, r => r.Field == "rejected" && r.Value.Contains("2026-11-28", StringComparison.Ordinal));
        Assert.DoesNotContain(rows, r => r.Value == "-");
    }

    [Fact]
    public void A_running_study_keeps_its_not_yet_rows()
    {
        var rows = Rows(new StudyRecord
        {
            Tenant = "lab-a",
            StudyId = "s0000000000000000000000r2",
            Status = StudyStatus.Processing,
            UploadPath = "lab-a/scan.zip",
            CreatedAt = Created,
        });

        Assert.Contains(rows, r => r.Field == "upload" && r.Value == "ct-uploads/lab-a/scan.zip");
        Assert.Contains(rows, r => r.Field == "ingested" && r.Value == "-");
        Assert.Contains(rows, r => r.Field == "scoring" && r.Value == "-");
        Assert.Contains(rows, r => r.Field == "completed" && r.Value == "-");
    }
}
