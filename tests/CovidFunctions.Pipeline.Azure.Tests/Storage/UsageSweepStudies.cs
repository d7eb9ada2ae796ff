using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// What the hourly usage sweep tests seed: a study as its ingest leaves it in both tables (its ingest usage record and
/// its Studies row), the row then in the state the test needs.
/// </summary>
internal static class UsageSweepStudies
{
    /// <summary>An upload name that must never reach a log (PHI).</summary>
    public const string UploadName = "Doe^Jane_chest.zip";

    /// <summary>
    /// Files the study's ingest record at <paramref name="at"/> and creates its Studies row with <paramref name="status"/>,
    /// carrying <paramref name="scoringOnRow"/> as <see cref="StudyRecord.ScoringUsageJson"/> when given (a study completed
    /// since the row keeps it). Returns the ingest record.
    /// </summary>
    public static async Task<UsageRecord> FileAsync(PipelineStorage storage, string tenant, string studyId, DateTimeOffset at, string status, UsageRecord? scoringOnRow = null)
    {
        var ingest = new UsageRecord(tenant, studyId, "ingest", at, 50, 2.5, 0, 500_000);
        Assert.True(await storage.Usage.TryRecordAsync(ingest, CancellationToken.None));
        Assert.True(await storage.Studies.TryCreateAsync(new StudyRecord
        {
            Tenant = tenant,
            StudyId = studyId,
            Status = status,
            CreatedAt = at,
            UploadPath = UploadName,
            ScoringUsageJson = scoringOnRow is null ? null : PipelineJson.Serialize(scoringOnRow),
        }, CancellationToken.None));
        return ingest;
    }
}
