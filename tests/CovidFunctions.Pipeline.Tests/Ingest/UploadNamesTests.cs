using System.Text;
using System.Text.Json;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Orchestration.Activities;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.DurableTask;

namespace CovidFunctions.Pipeline.Tests.Ingest;

/// <summary>
/// The PHI-flow audit's ingest fixes (docs/compliance/phi-flow.md): upload names (which research groups choose after
/// patients) are masked in log lines and in the Studies row's reason and skipped-instance notes, while the quarantine's
/// reason.json keeps them next to the originals.
/// </summary>
public sealed class UploadNamesTests
{
    private static readonly DateTimeOffset Now = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Mask_FolderUpload_MasksThePathTheFolderAndEveryFileButKeepsTheTenantAndDicomValues()
    {
        var unit = Assert.Single(UploadUnitPlanner.Plan(
            [Blob("lab-a/Smith_John_MRN4711/IM0001.dcm"), Blob("lab-a/Smith_John_MRN4711/sub/Doe.dcm"), Blob("lab-a/Smith_John_MRN4711/.complete")],
            Now,
            new PipelineOptions(),
            TestStudyIdKeys.Fixed));

        var masked = UploadNames.Mask(
            "upload lab-a/Smith_John_MRN4711: 2 files; IM0001.dcm: refused (Image Type ORIGINAL\\SECONDARY); sub/Doe.dcm: not DICOM; a subset; tenant lab-a",
            unit);

        Assert.DoesNotContain("Smith", masked, StringComparison.Ordinal);
        Assert.DoesNotContain("MRN4711", masked, StringComparison.Ordinal);
        Assert.DoesNotContain("IM0001", masked, StringComparison.Ordinal);
        Assert.DoesNotContain("Doe", masked, StringComparison.Ordinal);
        Assert.Equal("upload [name]: 2 files; [name]: refused (Image Type ORIGINAL\\SECONDARY); [name]: not DICOM; a subset; tenant lab-a", masked);
    }

    [Fact]
    public void Mask_ZipEntriesAndTemporaryPaths_TheUnitDoesNotList_AreMaskedAsPaths()
    {
        var unit = UploadUnitPlanner.ForSingleBlob(Blob("lab-a/Doe_Jane.zip"), TestStudyIdKeys.Fixed)!;

        var masked = UploadNames.Mask("Doe_Jane.zip/Jane Doe/CT1.dcm: not readable ('/tmp/covidfn-ingest-x/upload/Doe_Jane.zip'), MRN_88/a.dcm", unit);

        Assert.Equal("[name] [name]: not readable ('[name]'), [name]", masked);
        Assert.DoesNotContain("Doe_Jane", masked, StringComparison.Ordinal);
        Assert.DoesNotContain("MRN_88", masked, StringComparison.Ordinal);
    }

    [Fact]
    public void Mask_OurOwnWordsWithASlash_StayReadable_WhileUploadNamesAroundThemAreMasked()
    {
        // Before, the path rule masked every token holding a '/', so the not-hounsfield reason ended "... CT stored with
        // an offset but without [name] looks like this." in the Studies row and the API.
        var unit = Assert.Single(UploadUnitPlanner.Plan(
            [Blob("lab-a/Smith_John/lesions.nii.gz"), Blob("lab-a/Smith_John/.complete")],
            Now,
            new PipelineOptions(),
            TestStudyIdKeys.Fixed));

        Assert.Equal(
            "NIfTI volume [name] does not hold CT in Hounsfield units: ... or CT stored with an offset but without scl_slope/scl_inter looks like this.",
            UploadNames.Mask("NIfTI volume lesions.nii.gz does not hold CT in Hounsfield units: ... or CT stored with an offset but without scl_slope/scl_inter looks like this.", unit));
        Assert.Equal(
            "[name]: no image (no Rows/Columns); [name]: no Study/Series Instance UID; [name]: neither DICOM nor a PNG/JPEG/TIFF image",
            UploadNames.Mask("Smith_John/a.dcm: no image (no Rows/Columns); MRN_88/b.dcm: no Study/Series Instance UID; x/notes.txt: neither DICOM nor a PNG/JPEG/TIFF image", unit));
        Assert.Equal(
            "[name]: folder [name]: cannot be ordered: ImagePositionPatient/ImageOrientationPatient missing on 3 of 40 slices",
            UploadNames.Mask("upload/Smith_John: folder Doe/CT: cannot be ordered: ImagePositionPatient/ImageOrientationPatient missing on 3 of 40 slices", unit));
        Assert.Equal(
            "not supported (the HT decoder can abort the process on corrupt frames, uclouvain/openjpeg#1500; see docs/pixel-codecs.md).",
            UploadNames.Mask("not supported (the HT decoder can abort the process on corrupt frames, uclouvain/openjpeg#1500; see docs/pixel-codecs.md).", unit));

        // Only the exact words: a path that begins or ends with one is still a path, and an upload folder named like one
        // of the words is the unit's name first.
        Assert.Equal("[name] [name] [name]", UploadNames.Mask("scl_slope/scl_inter/Doe_Jane.dcm Roe/Rows/Columns scl_slope/MRN_88", unit));
        var rowsUnit = Assert.Single(UploadUnitPlanner.Plan(
            [Blob("lab-a/Rows/Columns"), Blob("lab-a/Rows/.complete")],
            Now,
            new PipelineOptions(),
            TestStudyIdKeys.Fixed));
        Assert.Equal("[name]: no image", UploadNames.Mask("Rows/Columns: no image", rowsUnit));
    }

    [Fact]
    public void InvalidTenant_IsMaskedAndLoggedAsTheInvalidTenantFolder()
    {
        var unit = UploadUnitPlanner.ForSingleBlob(Blob("Smith_John/scan.dcm"), TestStudyIdKeys.Fixed)!;
        Assert.NotNull(unit.Rejection);

        Assert.Equal(UploadUnitPlanner.InvalidTenantQuarantine, UploadNames.LoggableTenant(unit));
        Assert.Equal("tenant '[name]' is not valid", UploadNames.Mask("tenant 'Smith_John' is not valid", unit));
        Assert.Equal("lab-a", UploadNames.LoggableTenant(UploadUnitPlanner.ForSingleBlob(Blob("lab-a/x.dcm"), TestStudyIdKeys.Fixed)!));
    }

    [Fact]
    public async Task Reject_NamedAfterThePatient_RowAndLogAreMasked_ReasonJsonKeepsTheName_RowHasNoUploadPath()
    {
        using var temp = TestData.CreateTempDirectory();
        var containers = new FileSystemBlobContainers(Path.Combine(temp.Path, "storage"));
        var studies = new InMemoryStudyStore();
        var logger = new RecordingLogger<IngestHandler>();
        var handler = new IngestHandler(
            containers,
            studies,
            new InMemoryUsageStore(),
            new RecordingOrchestrationClient(),
            new DeidentificationEngine(DeidKey.Generate()),
            Microsoft.Extensions.Options.Options.Create(new PipelineOptions()),
            logger,
            TimeProvider.System);
        const string Name = "lab-a/Roe_Richard_MRN0815.dcm";
        using (var content = new MemoryStream(Encoding.UTF8.GetBytes("not a DICOM file")))
        {
            await containers.Get(PipelineNames.UploadsContainer).WriteAsync(Name, content, default);
        }

        var unit = UploadUnitPlanner.ForSingleBlob(Blob(Name), TestStudyIdKeys.Fixed)!;
        var outcome = await handler.IngestAsync(unit, default);

        Assert.Equal(IngestStatus.Rejected, outcome.Status);
        var row = (await studies.GetAsync("lab-a", unit.StudyId, default))!;
        Assert.Equal(StudyStatus.Rejected, row.Status);
        Assert.StartsWith("unreadable: [name]: not readable as DICOM", row.Reason, StringComparison.Ordinal);
        Assert.Null(row.UploadPath);
        var line = Assert.Single(logger.Messages.Select(m => m.Text), l => l.Contains("quarantine", StringComparison.Ordinal));
        Assert.Contains(unit.StudyId, line, StringComparison.Ordinal);
        foreach (var text in new[] { row.Reason!, line })
        {
            Assert.DoesNotContain("Roe_Richard", text, StringComparison.Ordinal);
            Assert.DoesNotContain("MRN0815", text, StringComparison.Ordinal);
        }

        // The quarantine (documented to hold PHI: the original is there) keeps the unmasked detail for the operator.
        await using var json = await containers.Get(PipelineNames.QuarantineContainer).OpenReadAsync($"lab-a/{unit.StudyId}/reason.json", default);
        var reason = (await JsonSerializer.DeserializeAsync<QuarantineReason>(json, PipelineJson.Options))!;
        Assert.Equal(Name, reason.UploadPath);
        Assert.Contains("Roe_Richard_MRN0815.dcm", reason.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RetentionSweep_DeletesTheUpload_AndClearsTheRowsUploadPath()
    {
        using var host = new IngestTestHost(new PipelineOptions { UploadRetention = TimeSpan.FromHours(1) });
        await host.UploadAsync("lab-a/Smith_John.zip", [1, 2, 3]);
        var completedAt = host.Time.GetUtcNow().AddHours(-2);
        await host.Studies.TryCreateAsync(new StudyRecord { Tenant = "lab-a", StudyId = "s1", Status = StudyStatus.Completed, CreatedAt = completedAt, CompletedAt = completedAt, UploadPath = "lab-a/Smith_John.zip" }, default);

        Assert.Equal(1, await host.Handler.SweepExpiredUploadsAsync(host.Time.GetUtcNow(), default));

        Assert.Empty(await IngestTestHost.ListAsync(host.Uploads, string.Empty));
        Assert.Null((await host.Studies.GetAsync("lab-a", "s1", default))!.UploadPath);
    }

    [Fact]
    public async Task FailStudy_QuarantinesTheUpload_AndClearsTheRowsUploadPath_ReasonJsonKeepsIt()
    {
        using var host = new IngestTestHost();
        await host.UploadAsync("lab-a/Doe_Jane/CT1.dcm", [1, 2, 3]);
        await host.Studies.TryCreateAsync(new StudyRecord { Tenant = "lab-a", StudyId = "s2", Status = StudyStatus.Processing, CreatedAt = Now, UploadPath = "lab-a/Doe_Jane/" }, default);

        Assert.True(await new FailStudyActivity(host.Studies, host.Containers).RunAsync(new ActivityContext(), new FailStudyInput("lab-a", "s2", "no result for chunk(s) 0")));

        var row = (await host.Studies.GetAsync("lab-a", "s2", default))!;
        Assert.Equal(StudyStatus.Failed, row.Status);
        Assert.Null(row.UploadPath);
        Assert.Empty(await IngestTestHost.ListAsync(host.Uploads, string.Empty));
        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await IngestTestHost.ReadAsync(host.Quarantine, "lab-a/s2/reason.json")));
        Assert.Equal("lab-a/Doe_Jane/", reason.UploadPath);
    }

    private static UploadBlob Blob(string path) => new(path, Now.AddHours(-1), 1);

    private sealed class ActivityContext : TaskActivityContext
    {
        public override TaskName Name { get; } = new(StudyOrchestration.FailStudy);

        public override string InstanceId { get; } = "study-lab-a-s2";
    }
}
