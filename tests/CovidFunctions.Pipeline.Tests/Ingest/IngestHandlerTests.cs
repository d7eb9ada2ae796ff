using System.Text;
using System.Text.Json;
using CovidFunctions.Dicom;
using CovidFunctions.Imaging.Phantoms;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

using static CovidFunctions.Pipeline.Tests.Ingest.IngestTestFiles;

namespace CovidFunctions.Pipeline.Tests.Ingest;

public sealed class IngestHandlerTests
{
    private const string Tenant = "lab";

    private static List<string> FirstSlices(string folder, int count) =>
        [.. Directory.EnumerateFiles(folder, "*.dcm").Order(StringComparer.Ordinal).Take(count)];

    /// <summary>Slices from the middle of the chest (1-11 on): the first ones are lung apices, too little lung to screen alone.</summary>
    private static List<string> MidChestSlices(string folder, int count) =>
        [.. Directory.EnumerateFiles(folder, "*.dcm").Order(StringComparer.Ordinal).Skip(10).Take(count)];

    [Fact]
    public async Task Zip_RealChestCtStudy_WritesTilesAndManifest_StartsOneOrchestration_KeepsUploadUntilResults()
    {
        using var host = new IngestTestHost();
        var sharp = FirstSlices(SharpSeries, 6);
        var soft = FirstSlices(SoftSeries, 6);
        await host.UploadAsync($"{Tenant}/chest.zip", Zip([.. sharp.Select(f => ($"b70f/{Path.GetFileName(f)}", File.ReadAllBytes(f))), .. soft.Select(f => ($"b40f/{Path.GetFileName(f)}", File.ReadAllBytes(f)))]));

        var unit = Assert.Single(await host.PlanAsync());
        var outcome = await host.Handler.IngestAsync(unit, default);

        Assert.Equal(IngestStatus.Ingested, outcome.Status);
        Assert.Equal(6, outcome.SliceCount);
        Assert.True(outcome.OrchestrationStarted);
        var studyId = StudyIds.ForUpload(host.StudyIdKey, Tenant, $"{Tenant}/chest.zip");
        Assert.Equal(studyId, outcome.StudyId);

        var prefix = $"{Tenant}/{studyId}/tiles";
        var reader = await TileSeriesReader.OpenAsync(host.Slices, prefix, default);
        Assert.Equal(6, reader.Manifest.SliceCount);
        Assert.Equal(512, reader.Manifest.Rows);
        Assert.Equal(512, reader.Manifest.Columns);

        var started = Assert.Single(host.Orchestrations.Started);
        Assert.Equal(new StudyOrchestrationInputView(Tenant, studyId, prefix, 6, host.Options.ChunkSize), StudyOrchestrationInputView.Of(started));

        var study = await host.Studies.GetAsync(Tenant, studyId, default);
        Assert.NotNull(study);
        Assert.Equal(StudyStatus.Processing, study.Status);
        Assert.Equal(prefix, study.TilesPrefix);
        Assert.Equal(6, study.SliceCount);
        Assert.Equal($"{Tenant}/chest.zip", study.UploadPath);
        Assert.Equal(started.InstanceId, study.OrchestrationId);
        Assert.NotNull(study.IngestedAt);
        Assert.StartsWith("2.25.", study.StudyPseudonym, StringComparison.Ordinal);
        using (var series = JsonDocument.Parse(study.SeriesJson!))
        {
            // The sharp (lung kernel) series is screened; the soft one is listed as seen.
            Assert.Equal("dicom", series.RootElement.GetProperty("source").GetString());
            Assert.Equal(12, series.RootElement.GetProperty("deidentifiedInstances").GetInt32());
            Assert.Equal(1, series.RootElement.GetProperty("otherSeries").GetArrayLength());
            Assert.Contains("B70", series.RootElement.GetProperty("selected").GetProperty("convolutionKernel").GetString(), StringComparison.OrdinalIgnoreCase);
        }

        using (var timings = JsonDocument.Parse(study.TimingsJson!))
        {
            Assert.True(timings.RootElement.GetProperty("ingest").GetDouble() > 0);
        }

        var usage = Assert.Single(host.Usage.Snapshot());
        Assert.Equal((Tenant, studyId, IngestHandler.UsageStage, 6), (usage.Tenant, usage.StudyId, usage.Stage, usage.Slices));
        Assert.True(usage.BytesStored > 6L * 512 * 512 * 2, $"bytes stored {usage.BytesStored}");
        Assert.True(usage.CpuSeconds > 0);

        Assert.Equal([$"{Tenant}/chest.zip"], await IngestTestHost.ListAsync(host.Uploads, string.Empty)); // kept until the results are stored
        await AssertNoPhiAsync(host, [.. sharp, .. soft]);
    }

    [Fact]
    public async Task Dicom_WhosePixelDataDoesNotDecode_InASeriesNotScreened_IsRefusedAtDeidentification_NotWritten_TheRestIsScreened()
    {
        // Before abf9b92: ingest ignored the engine's side flag for undecodable fragments, so the instance was saved
        // de-identified with its fragments as read (counted in deidentifiedInstances). Now the engine itself refuses it
        // (DeidRejectReason.PixelDataUnreadable, as covidfn deid reports it), it is never written, and its original is
        // kept in quarantine as not screened.
        using var temp = TestData.CreateTempDirectory();
        using var host = new IngestTestHost();
        var sharp = MidChestSlices(SharpSeries, 8);
        var undecodable = WithUndecodablePixelData(FirstSlices(SoftSeries, 1)[0], temp.Path);
        await host.UploadAsync($"{Tenant}/chest.zip", Zip([.. sharp.Select(f => ($"b70f/{Path.GetFileName(f)}", File.ReadAllBytes(f))), ("b40f/undecodable.dcm", undecodable)]));

        var outcome = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);

        Assert.True(outcome.Status == IngestStatus.Ingested, $"{outcome.Status}: {outcome.Reason} {outcome.Detail}");
        Assert.Equal(8, outcome.SliceCount);
        var study = (await host.Studies.GetAsync(Tenant, outcome.StudyId, default))!;
        using var series = JsonDocument.Parse(study.SeriesJson!);
        Assert.Equal(8, series.RootElement.GetProperty("deidentifiedInstances").GetInt32());
        var note = Assert.Single(series.RootElement.GetProperty("skippedInstances").EnumerateArray(), n => n.GetString()!.Contains("pixel data cannot be decoded", StringComparison.Ordinal)).GetString()!;
        Assert.StartsWith("[name]: pixel data cannot be decoded: Encapsulated Pixel Data (1.2.840.10008.1.2.5) could not be decoded", note, StringComparison.Ordinal);
        Assert.Equal(undecodable, await IngestTestHost.ReadAsync(host.Quarantine, $"{Tenant}/{outcome.StudyId}/skipped/chest.zip/b40f/undecodable.dcm"));
    }

    [Fact]
    public async Task Dicom_ASliceOfTheScreenedSeriesWhosePixelDataDoesNotDecode_RejectsTheStudyAsUnreadable_NotScreenedWithAHole()
    {
        // The engine refuses the slice (PixelDataUnreadable; never written); the series is still rejected as unreadable,
        // as it was when the slice failed to decode, rather than screened without it: ingest matches the refused slice to
        // the selected series by the Study/Series UIDs its de-identified copy would have had.
        using var temp = TestData.CreateTempDirectory();
        using var host = new IngestTestHost();
        var sharp = MidChestSlices(SharpSeries, 8);
        var entries = sharp.Select(f => ($"b70f/{Path.GetFileName(f)}", File.ReadAllBytes(f))).ToList();
        entries[3] = (entries[3].Item1, WithUndecodablePixelData(sharp[3], temp.Path));
        await host.UploadAsync($"{Tenant}/chest.zip", Zip(entries));

        var outcome = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);

        Assert.Equal(IngestStatus.Rejected, outcome.Status);
        Assert.Equal("unreadable", outcome.Reason);
        Assert.Contains($"1 instance(s) of the selected series cannot be decoded: chest.zip/b70f/{Path.GetFileName(sharp[3])}: pixel data cannot be decoded", outcome.Detail, StringComparison.Ordinal);
        Assert.Empty(await IngestTestHost.ListAsync(host.Slices, string.Empty));
        await AssertStudyRejectedAsync(host, outcome.StudyId, "unreadable");
    }

    /// <summary>The instance at <paramref name="path"/> with its Pixel Data replaced by an RLE fragment that does not decode.</summary>
    private static byte[] WithUndecodablePixelData(string path, string folder)
    {
        var dataset = DicomFile.Open(path).Dataset;
        dataset.AddOrUpdate(new DicomFragmentSequence(new DicomTag(0x7FE0, 0x0010), DicomVR.OB, ReadOnlyMemory<byte>.Empty, [new DicomFragment(Encoding.ASCII.GetBytes("not an RLE frame, left as read"))]));
        var output = Path.Combine(folder, Guid.NewGuid().ToString("N") + ".dcm");
        new DicomFile(dataset, TransferSyntax.Lookup("1.2.840.10008.1.2.5")).Save(output);
        return File.ReadAllBytes(output);
    }

    [Fact]
    public async Task TwoStudiesIngestedAtOnce_EachIsMeteredForItsOwnCpu_TogetherNoMoreThanTheProcessUsed()
    {
        // A process-wide CPU delta would give each study the other's work as well (their sum then exceeds what the
        // process used); per-thread accounting cannot.
        using var host = new IngestTestHost();
        var sharp = FirstSlices(SharpSeries, 12);
        var soft = FirstSlices(SoftSeries, 12);
        await host.UploadAsync($"{Tenant}/sharp.zip", Zip(sharp.Select(f => (Path.GetFileName(f), File.ReadAllBytes(f)))));
        await host.UploadAsync($"{Tenant}/soft.zip", Zip(soft.Select(f => (Path.GetFileName(f), File.ReadAllBytes(f)))));
        var units = await host.PlanAsync();
        Assert.Equal(2, units.Count);

        var processBefore = Environment.CpuUsage.TotalTime;
        var outcomes = await Task.WhenAll(units.Select(u => Task.Run(() => host.Handler.IngestAsync(u, default))));
        var processSeconds = (Environment.CpuUsage.TotalTime - processBefore).TotalSeconds;

        Assert.All(outcomes, o => Assert.Equal(IngestStatus.Ingested, o.Status));
        var usage = host.Usage.Snapshot();
        Assert.Equal(2, usage.Count);
        Assert.All(usage, u => Assert.True(u.CpuSeconds > 0, $"{u.StudyId}: {u.CpuSeconds} s"));
        Assert.True(usage.Sum(u => u.CpuSeconds) <= processSeconds, $"studies {string.Join(" + ", usage.Select(u => u.CpuSeconds))} s, process {processSeconds} s");
    }

    [Fact]
    public async Task Folder_LooseFilesWithMarker_Ingests_AndReDeliveryNeitherRetilesNorStartsAgain()
    {
        using var host = new IngestTestHost();
        var files = FirstSlices(SharpSeries, 5);
        foreach (var file in files)
        {
            await host.UploadFileAsync($"{Tenant}/study-7/{Path.GetFileName(file)}", file);
        }

        await host.UploadAsync($"{Tenant}/study-7/notes.txt", Encoding.UTF8.GetBytes("scanner notes, not an image"));
        await host.UploadAsync($"{Tenant}/study-7/{PipelineNames.CompleteMarker}", []);

        var unit = Assert.Single(await host.PlanAsync());
        Assert.Equal($"{Tenant}/study-7/", unit.UploadPath);
        var first = await host.Handler.IngestAsync(unit, default);

        Assert.Equal(IngestStatus.Ingested, first.Status);
        Assert.Equal(5, first.SliceCount);
        Assert.Equal(7, (await IngestTestHost.ListAsync(host.Uploads, string.Empty)).Count); // kept (marker included) until the results are stored
        var study = (await host.Studies.GetAsync(Tenant, unit.StudyId, default))!;
        // The skipped file is noted with its name masked (names can carry PHI); it is kept in quarantine under its name.
        Assert.DoesNotContain("notes.txt", study.SeriesJson, StringComparison.Ordinal);
        Assert.Contains(UploadNames.Masked + ": not readable as DICOM", study.SeriesJson, StringComparison.Ordinal);
        Assert.Equal("scanner notes, not an image", Encoding.UTF8.GetString(await IngestTestHost.ReadAsync(host.Quarantine, $"{Tenant}/{unit.StudyId}/skipped/notes.txt")));

        var manifestFile = host.Containers.LinkTo(PipelineNames.SlicesContainer, $"{study.TilesPrefix}/manifest.json");
        var writtenAt = File.GetLastWriteTimeUtc(manifestFile);
        var tiles = await IngestTestHost.ListAsync(host.Slices, string.Empty);

        // The same unit delivered again (a duplicate event, or a crash before cleanup).
        var second = await host.Handler.IngestAsync(unit, default);

        Assert.Equal(IngestStatus.AlreadyIngested, second.Status);
        Assert.False(second.OrchestrationStarted);
        Assert.Single(host.Orchestrations.Started);
        Assert.Equal(2, host.Orchestrations.StartCalls.Count);
        Assert.Equal(writtenAt, File.GetLastWriteTimeUtc(manifestFile));
        Assert.Equal(tiles, await IngestTestHost.ListAsync(host.Slices, string.Empty));
        Assert.Single(host.Usage.Snapshot());
        await AssertNoPhiAsync(host, files);
    }

    [Fact]
    public async Task SameUnitDeliveredTwiceAtOnce_OneOrchestration_OneUsageRecord_UploadKept()
    {
        using var host = new IngestTestHost();
        var files = FirstSlices(SharpSeries, 4);
        await host.UploadAsync($"{Tenant}/twice.zip", Zip(files.Select(f => (Path.GetFileName(f), File.ReadAllBytes(f)))));
        var unit = Assert.Single(await host.PlanAsync());

        var outcomes = await Task.WhenAll(
            Task.Run(() => host.Handler.IngestAsync(unit, default)),
            Task.Run(() => host.Handler.IngestAsync(unit, default)));

        // One takes the study's ingest claim and ingests; the other finds the claim held and leaves the study to it, or
        // comes after it finished. Before the claim, both ingested and both counted an attempt.
        Assert.Contains(outcomes, o => o.Status == IngestStatus.Ingested);
        Assert.All(outcomes, o => Assert.Contains(o.Status, new[] { IngestStatus.Ingested, IngestStatus.AlreadyIngested, IngestStatus.InProgress }));
        Assert.Single(host.Orchestrations.Started);
        Assert.Single(host.Usage.Snapshot());
        Assert.Equal([$"{Tenant}/twice.zip"], await IngestTestHost.ListAsync(host.Uploads, string.Empty));
        var study = (await host.Studies.GetAsync(Tenant, unit.StudyId, default))!;
        Assert.Equal((4, 1, null), (study.SliceCount, study.IngestAttempts, study.IngestClaim));
        Assert.Equal(4, (await TileSeriesReader.OpenAsync(host.Slices, study.TilesPrefix!, default)).Manifest.SliceCount);
    }

    [Fact]
    public async Task Phantom_PlantedPhi_NeverReachesTilesManifestOrStudyRow()
    {
        using var host = new IngestTestHost();
        var phantom = new CtPhantom(new CtPhantomOptions { Matrix = 128, Slices = 6 });
        using (var zip = new MemoryStream())
        {
            phantom.WriteZip(zip);
            await host.UploadAsync($"{Tenant}/phantom.zip", zip.ToArray());
        }

        var outcome = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);

        Assert.Equal(IngestStatus.Ingested, outcome.Status);
        Assert.Equal(6, outcome.SliceCount);
        var uids = new[] { phantom.StudyInstanceUid, phantom.SeriesInstanceUid, phantom.FrameOfReferenceUid }
            .Concat(Enumerable.Range(0, 6).Select(phantom.SopInstanceUid));
        await AssertAbsentAsync(host, [.. PlantedPhi.All, .. uids]);
    }

    [Fact]
    public async Task Nifti_Volume_IsTiledWithoutItsFileName()
    {
        using var host = new IngestTestHost();
        using var temp = TestData.CreateTempDirectory();
        await host.UploadFileAsync($"{Tenant}/patient-volume.nii.gz", NiftiTestVolumes.ChestOnMaskGeometry(TestData.Shared("seg", "mosmed-masks", "masks", "study_0266_mask.nii.gz"), temp.Path));

        var outcome = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);

        Assert.Equal(IngestStatus.Ingested, outcome.Status);
        Assert.Equal(34, outcome.SliceCount);
        var study = (await host.Studies.GetAsync(Tenant, outcome.StudyId, default))!;
        Assert.Null(study.StudyPseudonym);
        var manifest = Encoding.UTF8.GetString(await IngestTestHost.ReadAsync(host.Slices, $"{study.TilesPrefix}/manifest.json"));
        Assert.DoesNotContain("patient-volume", manifest, StringComparison.Ordinal);
        Assert.Single(host.Orchestrations.Started);
    }

    [Fact]
    public async Task Reject_TextFileNamedDcm_QuarantinedWithReason_UploadDeleted_StudyRejected()
    {
        using var host = new IngestTestHost();
        var content = Encoding.UTF8.GetBytes("this is a text file, not DICOM\n");
        await host.UploadAsync($"{Tenant}/x.dcm", content);

        var outcome = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);

        Assert.Equal(IngestStatus.Rejected, outcome.Status);
        Assert.Equal("unreadable", outcome.Reason);
        var reason = await AssertQuarantinedAsync(host, Tenant, outcome.StudyId, $"{Tenant}/x.dcm", "unreadable", "x.dcm", ("x.dcm", content));
        Assert.Contains("not readable as DICOM", reason.Detail, StringComparison.Ordinal);
        await AssertStudyRejectedAsync(host, outcome.StudyId, "unreadable");
    }

    [Fact]
    public async Task Reject_NiftiLabelMask_QuarantinedAsNotHounsfield()
    {
        using var host = new IngestTestHost();
        var content = File.ReadAllBytes(TestData.Shared("seg", "mosmed-masks", "masks", "study_0266_mask.nii.gz"));
        await host.UploadAsync($"{Tenant}/lesions.nii.gz", content);

        var outcome = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);

        Assert.Equal(IngestStatus.Rejected, outcome.Status);
        Assert.Equal("not-hounsfield", outcome.Reason);
        var reason = await AssertQuarantinedAsync(host, Tenant, outcome.StudyId, $"{Tenant}/lesions.nii.gz", "not-hounsfield", "lesions.nii.gz does not hold CT in Hounsfield units", ("lesions.nii.gz", content));
        Assert.DoesNotContain(Path.GetTempPath(), reason.Detail, StringComparison.Ordinal);
        await AssertStudyRejectedAsync(host, outcome.StudyId, "not-hounsfield");

        // The row (API, report, status) masks the upload name but keeps the reason's own words: before, the name masking
        // took scl_slope/scl_inter for a path and the row read "... without [name] looks like this".
        var row = (await host.Studies.GetAsync(Tenant, outcome.StudyId, default))!;
        Assert.Contains("NIfTI volume [name] does not hold CT in Hounsfield units", row.Reason, StringComparison.Ordinal);
        Assert.Contains("without scl_slope/scl_inter looks like this", row.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Reject_NiftiWithNaNVoxels_QuarantinedAsNonFinite()
    {
        // Before, tiling cast NaN to int16 (0 HU, water) and the study was screened on made-up values.
        using var host = new IngestTestHost();
        using var temp = TestData.CreateTempDirectory();
        var chest = NiftiTestVolumes.ChestOnMaskGeometry(TestData.Shared("seg", "mosmed-masks", "masks", "study_0266_mask.nii.gz"), temp.Path);
        var floatPath = Path.Combine(temp.Path, "float.nii.gz");
        NiftiTestVolumes.WriteAsFloat32WithOneNaNPerSlice(chest, floatPath);
        var content = File.ReadAllBytes(floatPath);
        await host.UploadAsync($"{Tenant}/volume-nan.nii.gz", content);

        var outcome = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);

        Assert.Equal(IngestStatus.Rejected, outcome.Status);
        Assert.Equal("non-finite", outcome.Reason);
        var reason = await AssertQuarantinedAsync(host, Tenant, outcome.StudyId, $"{Tenant}/volume-nan.nii.gz", "non-finite", "volume-nan.nii.gz holds ", ("volume-nan.nii.gz", content));
        Assert.Contains("non-finite voxel(s) (NaN or ±Inf)", reason.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(Path.GetTempPath(), reason.Detail, StringComparison.Ordinal);
        await AssertStudyRejectedAsync(host, outcome.StudyId, "non-finite");
        Assert.Empty(await IngestTestHost.ListAsync(host.Slices, string.Empty));
    }

    [Fact]
    public async Task Reject_HeadCt_QuarantinedAsNoLungs()
    {
        using var host = new IngestTestHost();
        var originals = new List<(string Name, byte[] Content)>();
        foreach (var file in Directory.GetFiles(TestData.Shared("dicom", "edge", "ge-head-tilt"), "*.dcm").Order(StringComparer.Ordinal))
        {
            var content = File.ReadAllBytes(file);
            originals.Add((Path.GetFileName(file), content));
            await host.UploadAsync($"{Tenant}/head/{Path.GetFileName(file)}", content);
        }

        await host.UploadAsync($"{Tenant}/head/{PipelineNames.CompleteMarker}", []);

        var outcome = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);

        Assert.Equal(IngestStatus.Rejected, outcome.Status);
        Assert.Equal("no-lungs", outcome.Reason);
        var reason = await AssertQuarantinedAsync(host, Tenant, outcome.StudyId, $"{Tenant}/head/", "no-lungs", "no lungs on any of the 10 slice(s)", [.. originals]);
        Assert.Contains("not a chest CT", reason.Detail, StringComparison.Ordinal);
        await AssertStudyRejectedAsync(host, outcome.StudyId, "no-lungs");
        Assert.Empty(await IngestTestHost.ListAsync(host.Slices, string.Empty));
    }

    [Fact]
    public async Task Reject_CorruptNifti_NamesTheUploadedFile()
    {
        using var host = new IngestTestHost();
        var content = Encoding.UTF8.GetBytes("not a volume");
        await host.UploadAsync($"{Tenant}/vol.nii", content);

        var outcome = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);

        Assert.Equal("unreadable", outcome.Reason);
        var reason = await AssertQuarantinedAsync(host, Tenant, outcome.StudyId, $"{Tenant}/vol.nii", "unreadable", "vol.nii: not a NIfTI file", ("vol.nii", content));
        Assert.DoesNotContain("volume.nii", reason.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(Path.GetTempPath(), reason.Detail, StringComparison.Ordinal);
        await AssertStudyRejectedAsync(host, outcome.StudyId, "unreadable");
    }

    [Fact]
    public async Task Reject_TwoDimensionalImages_AreNotAccepted()
    {
        using var host = new IngestTestHost();
        var png = File.ReadAllBytes(TestData.Shared("cls", "ucsd-covid-ct", "COVID", "2020.02.26.20027938-p6-80_2_0.png"));
        await host.UploadAsync($"{Tenant}/slices/1.png", png);
        await host.UploadAsync($"{Tenant}/slices/2.png", png);
        await host.UploadAsync($"{Tenant}/slices/{PipelineNames.CompleteMarker}", []);

        var outcome = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);

        Assert.Equal("images-not-accepted", outcome.Reason);
        await AssertQuarantinedAsync(host, Tenant, outcome.StudyId, $"{Tenant}/slices/", "images-not-accepted", "1.png", ("1.png", png), ("2.png", png));
        await AssertStudyRejectedAsync(host, outcome.StudyId, "images-not-accepted");
    }

    [Fact]
    public async Task Reject_ZipWithTraversalEntry_QuarantinedWithReason()
    {
        using var host = new IngestTestHost();
        var zip = Zip([("ok.txt", Encoding.UTF8.GetBytes("fine")), ("../evil", Encoding.UTF8.GetBytes("escape"))]);
        await host.UploadAsync($"{Tenant}/bad.zip", zip);

        var outcome = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);

        Assert.Equal(IngestStatus.Rejected, outcome.Status);
        var reason = await AssertQuarantinedAsync(host, Tenant, outcome.StudyId, $"{Tenant}/bad.zip", "zip-refused", "bad.zip", ("bad.zip", zip));
        Assert.Contains("'../evil'", reason.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("bad.zip: bad.zip", reason.Detail, StringComparison.Ordinal);
        await AssertStudyRejectedAsync(host, outcome.StudyId, "zip-refused");
        Assert.Empty(await IngestTestHost.ListAsync(host.Slices, string.Empty));
    }

    [Fact]
    public async Task Reject_FolderWithNoImages_QuarantinesEveryOriginal_AndDeletesTheMarker()
    {
        using var host = new IngestTestHost();
        var readme = Encoding.UTF8.GetBytes("read me");
        var data = new byte[] { 1, 2, 3, 4, 5 };
        await host.UploadAsync($"{Tenant}/notes/readme.txt", readme);
        await host.UploadAsync($"{Tenant}/notes/sub/data.bin", data);
        await host.UploadAsync($"{Tenant}/notes/{PipelineNames.CompleteMarker}", []);

        var outcome = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);

        Assert.Equal(IngestStatus.Rejected, outcome.Status);
        var reason = await AssertQuarantinedAsync(host, Tenant, outcome.StudyId, $"{Tenant}/notes/", "no-images", "readme.txt", ("readme.txt", readme), ("sub/data.bin", data));
        Assert.Contains("sub/data.bin", reason.Detail, StringComparison.Ordinal);
        await AssertStudyRejectedAsync(host, outcome.StudyId, "no-images");
    }

    [Fact]
    public async Task Reject_InvalidTenant_QuarantinedUnderTheInvalidTenantFolder_NoStudyRow()
    {
        using var host = new IngestTestHost();
        var content = File.ReadAllBytes(MidChestSlices(SharpSeries, 1)[0]);
        await host.UploadAsync("Bad_Tenant/scan.dcm", content);

        var unit = Assert.Single(await host.PlanAsync());
        var outcome = await host.Handler.IngestAsync(unit, default);

        Assert.Equal(IngestStatus.Rejected, outcome.Status);
        await AssertQuarantinedAsync(host, UploadUnitPlanner.InvalidTenantQuarantine, unit.StudyId, "Bad_Tenant/scan.dcm", "invalid-tenant", "Bad_Tenant", ("scan.dcm", content));
        Assert.Empty(host.Studies.Snapshot());
        Assert.Empty(host.Notifier.Events);
        Assert.Empty(host.Orchestrations.StartCalls);
    }

    [Fact]
    public async Task Reject_RedeliveredAfterTheUploadWasMoved_NotifiesAgainWithoutLosingTheQuarantine()
    {
        using var host = new IngestTestHost();
        var content = Encoding.UTF8.GetBytes("not dicom");
        await host.UploadAsync($"{Tenant}/y.dcm", content);
        var unit = Assert.Single(await host.PlanAsync());
        await host.Handler.IngestAsync(unit, default);
        var rejected = await host.Studies.GetAsync(Tenant, unit.StudyId, default);

        var again = await host.Handler.IngestAsync(unit, default);

        // The re-delivery leaves the rejected row as it is (before, it was run as a second attempt, counted on the row) and
        // asks the notifier for study.rejected again (delivered once per study attempt and event).
        Assert.Equal((IngestStatus.Rejected, StudyStatus.Rejected), (again.Status, again.Reason));
        Assert.Equal(rejected, await host.Studies.GetAsync(Tenant, unit.StudyId, default));
        Assert.Equal(content, await IngestTestHost.ReadAsync(host.Quarantine, $"{Tenant}/{unit.StudyId}/original/y.dcm"));
        Assert.Equal(2, host.Notifier.Events.Count);
    }

    [Fact]
    public async Task ReuploadToAnIngestedPath_IsQuarantined_NotSilentlyDeleted_AndTheStudyIsLeftAlone()
    {
        using var host = new IngestTestHost();
        var file = MidChestSlices(SharpSeries, 1)[0];
        await host.UploadFileAsync($"{Tenant}/again.dcm", file);
        var first = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);
        Assert.Equal(IngestStatus.Ingested, first.Status);
        var before = await host.Studies.GetAsync(Tenant, first.StudyId, default);

        // Ten minutes later the user uploads a file under the same name.
        host.Time.Now = host.Time.Now.AddMinutes(10);
        var content = File.ReadAllBytes(MidChestSlices(SharpSeries, 2)[1]);
        await host.UploadAsync($"{Tenant}/again.dcm", content);
        var second = await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default);

        Assert.Equal(IngestStatus.Rejected, second.Status);
        Assert.Equal("reupload-after-ingest", second.Reason);
        var prefix = $"{Tenant}/{first.StudyId}/reupload-{host.Time.Now.UtcDateTime:yyyyMMddTHHmmssZ}";
        Assert.Equal(content, await IngestTestHost.ReadAsync(host.Quarantine, $"{prefix}/original/again.dcm"));
        Assert.True(await host.Quarantine.ExistsAsync($"{prefix}/reason.json", default));
        Assert.Empty(await IngestTestHost.ListAsync(host.Uploads, string.Empty));
        Assert.Equal(before, await host.Studies.GetAsync(Tenant, first.StudyId, default));
        Assert.Single(host.Orchestrations.Started);
        Assert.Empty(host.Notifier.Events);
    }

    [Fact]
    public async Task Retention_KeepsTheUploadUntilItExpires_ThenTheSweepDeletesIt_ButNeverANotIngestedOne()
    {
        using var host = new IngestTestHost(new PipelineOptions { UploadRetention = TimeSpan.FromHours(1) });
        var file = MidChestSlices(SharpSeries, 1)[0];
        await host.UploadFileAsync($"{Tenant}/one.dcm", file);
        var unit = Assert.Single(await host.PlanAsync());
        Assert.Equal(IngestStatus.Ingested, (await host.Handler.IngestAsync(unit, default)).Status);
        Assert.Equal([$"{Tenant}/one.dcm"], await IngestTestHost.ListAsync(host.Uploads, string.Empty));

        // The watcher sees the kept upload again: nothing is redone.
        Assert.Equal(IngestStatus.AlreadyIngested, (await host.Handler.IngestAsync(Assert.Single(await host.PlanAsync()), default)).Status);
        Assert.Single(host.Orchestrations.Started);

        // Retention counts from the stored results (what the AggregateStudy activity writes).
        await host.Studies.UpdateAsync(Tenant, unit.StudyId, row => row! with { Status = StudyStatus.Completed, CompletedAt = host.Time.Now }, default);

        // An upload whose study exists but is not ingested yet (ingest still running) must survive any retention sweep
        // (created an hour ago: within Pipeline:StuckStudyAge, after which the sweep's watchdog would fail the study).
        await host.UploadFileAsync($"{Tenant}/pending/1.dcm", file);
        var pendingId = StudyIds.ForUpload(host.StudyIdKey, Tenant, $"{Tenant}/pending/");
        await host.Studies.TryCreateAsync(new StudyRecord { Tenant = Tenant, StudyId = pendingId, Status = StudyStatus.Processing, CreatedAt = host.Time.Now.AddHours(-1), UploadPath = $"{Tenant}/pending/" }, default);

        Assert.Equal(0, await host.Handler.SweepExpiredUploadsAsync(host.Time.Now.AddMinutes(30), default));
        Assert.Contains($"{Tenant}/one.dcm", await IngestTestHost.ListAsync(host.Uploads, string.Empty));

        Assert.Equal(1, await host.Handler.SweepExpiredUploadsAsync(host.Time.Now.AddMinutes(61), default));
        Assert.Equal([$"{Tenant}/pending/1.dcm"], await IngestTestHost.ListAsync(host.Uploads, string.Empty));
    }

    private static async Task<QuarantineReason> AssertQuarantinedAsync(IngestTestHost host, string quarantineTenant, string studyId, string uploadPath, string code, string detailNames, params (string Name, byte[] Content)[] originals)
    {
        var prefix = $"{quarantineTenant}/{studyId}";
        foreach (var (name, content) in originals)
        {
            Assert.Equal(content, await IngestTestHost.ReadAsync(host.Quarantine, $"{prefix}/original/{name}"));
        }

        var reason = PipelineJson.Deserialize<QuarantineReason>(Encoding.UTF8.GetString(await IngestTestHost.ReadAsync(host.Quarantine, $"{prefix}/reason.json")));
        Assert.Equal(code, reason.Reason);
        Assert.Equal(studyId, reason.StudyId);
        Assert.Equal(uploadPath, reason.UploadPath);
        Assert.Equal(host.Time.Now, reason.At);
        Assert.Contains(detailNames, reason.Detail, StringComparison.Ordinal);
        Assert.Empty(await IngestTestHost.ListAsync(host.Uploads, string.Empty));
        return reason;
    }

    private static async Task AssertStudyRejectedAsync(IngestTestHost host, string studyId, string code)
    {
        var study = await host.Studies.GetAsync(Tenant, studyId, default);
        Assert.NotNull(study);
        Assert.Equal(StudyStatus.Rejected, study.Status);
        Assert.StartsWith(code + ": ", study.Reason, StringComparison.Ordinal);
        Assert.Null(study.IngestedAt);
        Assert.NotNull(study.CompletedAt);
        Assert.InRange(study.CompletedAt.Value, study.CreatedAt, DateTimeOffset.UtcNow);
        Assert.Equal([(Tenant, studyId, StudyEventTypes.Rejected)], host.Notifier.Events);
        Assert.Empty(host.Orchestrations.StartCalls);
    }

    /// <summary>Every byte of the tiles, the manifest and the Studies row is free of the sources' identifying strings.</summary>
    private static async Task AssertNoPhiAsync(IngestTestHost host, IReadOnlyList<string> sources)
    {
        var identifying = new HashSet<string>(StringComparer.Ordinal);
        foreach (var source in sources)
        {
            var dataset = DicomFile.Open(source).Dataset;
            foreach (var tag in new[] { DicomTags.PatientName, DicomTags.PatientID, DicomTags.StudyInstanceUID, DicomTags.SeriesInstanceUID, DicomTags.SOPInstanceUID, DicomTags.InstitutionName })
            {
                if (dataset.GetString(tag)?.Trim('\0', ' ') is { Length: >= 4 } value)
                {
                    identifying.Add(value);
                }
            }
        }

        Assert.Contains(DicomFile.Open(sources[0]).Dataset.GetString(DicomTags.PatientName)!.Trim(), identifying);
        await AssertAbsentAsync(host, identifying);
    }

    private static async Task AssertAbsentAsync(IngestTestHost host, IReadOnlyCollection<string> identifying)
    {
        var blobs = await IngestTestHost.ListAsync(host.Slices, string.Empty);
        Assert.Contains(blobs, b => b.EndsWith("/manifest.json", StringComparison.Ordinal));
        Assert.True(blobs.Count >= 2, "tiles and manifest");
        var texts = new List<(string Where, string Text)>();
        foreach (var blob in blobs)
        {
            texts.Add((blob, Encoding.Latin1.GetString(await IngestTestHost.ReadAsync(host.Slices, blob))));
        }

        texts.AddRange(host.Studies.Snapshot().Select(s => ($"Studies/{s.StudyId}", JsonSerializer.Serialize(s))));
        foreach (var (where, text) in texts)
        {
            foreach (var value in identifying)
            {
                Assert.False(text.Contains(value, StringComparison.Ordinal), $"{where} contains the source value '{value}'");
            }
        }
    }

    private sealed record StudyOrchestrationInputView(string Tenant, string StudyId, string TilesPrefix, int SliceCount, int ChunkSize)
    {
        public static StudyOrchestrationInputView Of(CovidFunctions.Pipeline.Orchestration.StudyOrchestrationInput input) =>
            new(input.Tenant, input.StudyId, input.TilesPrefix, input.SliceCount, input.ChunkSize);
    }
}
