using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Tests.Ingest;

/// <summary>
/// The Function app's minute sweep over single-blob uploads (pure parts): which blobs it plans
/// (<see cref="UploadUnitPlanner.PlanSweep"/>, by <see cref="PipelineOptions.SingleUploadSweepAge"/>) and which of those
/// it hands to ingest, from the study's row alone (<see cref="IngestHandler.SweepMustIngest"/>). Before, the sweep
/// planned folders only, and a single blob whose Event Grid event was lost was never ingested.
/// </summary>
public sealed class UploadSweepRuleTests
{
    private static readonly DateTimeOffset Now = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly PipelineOptions Options = new() { FolderStableAge = TimeSpan.FromSeconds(60), SingleUploadSweepAge = TimeSpan.FromMinutes(15) };
    private static readonly StudyIdKey Key = TestStudyIdKeys.Fixed;

    [Fact]
    public void PlanSweep_PlansSingleBlobsOnceTheirTriggerHadTheQuietAge_AndFoldersAsPlanDoes()
    {
        var units = UploadUnitPlanner.PlanSweep(
            [Blob("lab/old.zip", 15), Blob("lab/fresh.zip", 14), Blob("lab/study/1.dcm", 2), Blob("lab/open/1.dcm", 0), Blob("bad tenant.dcm", 20)], Now, Options, Key);

        Assert.Equal(["bad tenant.dcm", "lab/old.zip", "lab/study/"], units.Select(u => u.UploadPath));
        Assert.Equal([UploadUnitKind.SingleBlob, UploadUnitKind.SingleBlob, UploadUnitKind.Folder], units.Select(u => u.Kind));
        Assert.NotNull(units[0].Rejection);
    }

    [Fact]
    public void PlanSweep_ZeroAge_PlansEverySingleBlob()
    {
        var units = UploadUnitPlanner.PlanSweep([Blob("lab/now.zip", 0)], Now, Options with { SingleUploadSweepAge = TimeSpan.Zero }, Key);

        Assert.Equal("lab/now.zip", Assert.Single(units).UploadPath);
    }

    [Fact]
    public void SweepMustIngest_NoRow_Ingests()
    {
        Assert.True(IngestHandler.SweepMustIngest(null, Unit("lab/a.zip", 20), Options, Now));
    }

    [Theory]
    [InlineData(StudyStatus.Processing, 0, false)] // in flight: the orchestration bounds itself, the watchdog catches the rest
    [InlineData(StudyStatus.Completed, 1, false)] // kept for retention: the retention sweep settles it
    [InlineData(StudyStatus.Completed, 0, true)] // no retention: the aggregate deletes it, so one still here is settled now
    [InlineData(StudyStatus.Failed, 0, true)] // belongs in quarantine
    public void SweepMustIngest_IngestedStudy_ByItsState(string status, int retentionDays, bool expected)
    {
        var unit = Unit("lab/a.zip", 20);
        var row = Row(unit, status) with { IngestedAt = Now.AddMinutes(-19) };

        Assert.Equal(expected, IngestHandler.SweepMustIngest(row, unit, Options with { UploadRetention = TimeSpan.FromDays(retentionDays) }, Now));
    }

    [Fact]
    public void SweepMustIngest_BlobWrittenAgainAfterTheIngest_Ingests_SoTheNewUploadIsKeptApart()
    {
        var unit = Unit("lab/a.zip", 20);
        var withinMargin = Row(unit, StudyStatus.Completed) with { IngestedAt = Now.AddMinutes(-20.5) };
        var after = Row(unit, StudyStatus.Completed) with { IngestedAt = Now.AddMinutes(-22) };
        var retained = Options with { UploadRetention = TimeSpan.FromDays(7) };

        Assert.False(IngestHandler.SweepMustIngest(withinMargin, unit, retained, Now));
        Assert.True(IngestHandler.SweepMustIngest(after, unit, retained, Now));
        Assert.True(IngestHandler.SweepMustIngest(after with { Status = StudyStatus.Processing }, unit, retained, Now));
    }

    [Fact]
    public void SweepMustIngest_AttemptInFlight_IsLeftToTheTrigger_UntilItsAttemptsAreSpent()
    {
        var unit = Unit("lab/a.zip", 20);
        var inFlight = Row(unit, StudyStatus.Processing) with { IngestAttempts = 2 };

        // No claim: the last attempt failed and released it, and its delivery is retried by the trigger (or it ran before
        // claims existed). Left to the trigger until the attempts are spent.
        Assert.False(IngestHandler.SweepMustIngest(inFlight, unit, Options, Now));
        Assert.True(IngestHandler.SweepMustIngest(inFlight with { IngestAttempts = 3 }, unit, Options, Now));
        Assert.False(IngestHandler.SweepMustIngest(inFlight with { IngestAttempts = 9 }, unit, Options with { MaxIngestAttempts = 0 }, Now));
    }

    [Fact]
    public void SweepMustIngest_AttemptHoldingItsClaim_IsLeftToIt_AndOneWhoseClaimExpired_IsTakenOver()
    {
        var unit = Unit("lab/a.zip", 20);
        var running = Row(unit, StudyStatus.Processing) with { IngestAttempts = 3, IngestClaim = "attempt-3", IngestClaimExpiresAt = Now.AddSeconds(90) };

        // Live: the attempt runs (the last allowed one gives up by itself if it fails), whatever the count.
        Assert.False(IngestHandler.SweepMustIngest(running, unit, Options, Now));

        // Expired: its process died holding the claim; the sweep takes the study over (here: gives it up at once).
        Assert.True(IngestHandler.SweepMustIngest(running, unit, Options, Now.AddSeconds(91)));
        Assert.True(IngestHandler.SweepMustIngest(running with { IngestAttempts = 1 }, unit, Options, Now.AddMinutes(5)));
    }

    [Theory]
    [InlineData(StudyStatus.Rejected)]
    [InlineData(StudyStatus.Failed)]
    public void SweepMustIngest_SettledWithoutIngest_Ingests_ABlobStillThereIsNewOrAMoveCutShort(string status)
    {
        var unit = Unit("lab/a.zip", 20);

        Assert.True(IngestHandler.SweepMustIngest(Row(unit, status), unit, Options, Now));
    }

    [Fact]
    public void SweepMustIngest_RowOfAFolderOfTheSameName_Ingests_SoTheBlobIsKeptApart()
    {
        var unit = Unit("lab/scan", 20);
        var folderRow = Row(unit, StudyStatus.Processing) with { UploadPath = "lab/scan/", UploadKind = "folder", IngestedAt = Now.AddMinutes(-30) };

        Assert.True(IngestHandler.SweepMustIngest(folderRow, unit, Options, Now));
    }

    private static UploadBlob Blob(string path, double minutesOld) => new(path, Now.AddMinutes(-minutesOld), 100);

    private static UploadUnit Unit(string path, double minutesOld) =>
        UploadUnitPlanner.ForSingleBlob(Blob(path, minutesOld), Key) ?? throw new InvalidOperationException("not a single blob");

    private static StudyRecord Row(UploadUnit unit, string status) => new()
    {
        Tenant = unit.Tenant,
        StudyId = unit.StudyId,
        Status = status,
        UploadPath = unit.UploadPath,
        UploadKind = "blob",
        CreatedAt = Now.AddMinutes(-19),
        IngestAttempts = 1,
    };
}
