using System.IO.Compression;
using System.Text;
using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Imaging.Phantoms;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.DurableTask.Client;

namespace CovidFunctions.Cli.Tests.Pipeline;

/// <summary>
/// The local pipeline end to end (<see cref="LocalPipelineHost"/>, the host of <c>covidfn up</c>) against a real Azurite
/// started per test on its own ports and folder: real chest CT slices dropped as a zip and as loose files end as completed
/// Studies rows with overlays; nothing written after ingest carries the phantom's planted PHI; a non-DICOM upload lands in
/// quarantine with its reason. Series are small subsets so the suite stays within minutes on 2 cores.
/// </summary>
[Collection(PipelineCollection.Name)]
public sealed class LocalPipelineEndToEndTests
{
    [Fact]
    public async Task Zip_loose_files_phantom_and_a_reject_end_as_rows_with_overlays_no_phi_and_a_quarantine_reason()
    {
        using var temp = TestData.CreateTempDirectory();
        await using var azurite = await PipelineFixture.StartAzuriteAsync(temp.Path);
        var dataDir = Path.Combine(temp.Path, "data");
        using var loggers = PipelineFixture.Loggers(dataDir, out var log);
        using var _ = log;
        await using var host = await LocalPipelineHost.StartAsync(PipelineFixture.Options(dataDir, azurite.ConnectionString, chunkSize: 3), loggers, CancellationToken.None);
        var submitter = new StudySubmitter(host.Storage.BlobContainers, host.Storage.Studies, host.StudyIdKey);

        var loose = PipelineFixture.RealSubset(Path.Combine(temp.Path, "loose"), 4);
        var zip = Path.Combine(temp.Path, "series.zip");
        ZipFile.CreateFromDirectory(PipelineFixture.RealSubset(Path.Combine(temp.Path, "forzip"), 4), zip);
        var phantomDir = Path.Combine(temp.Path, "phantom");
        new CtPhantom(new CtPhantomOptions { Matrix = 256, Slices = 5, SliceSpacing = 10 }).WriteFolder(phantomDir);
        var junk = Path.Combine(temp.Path, "notes.dcm");
        await File.WriteAllTextAsync(junk, "not a DICOM file at all");

        var zipStudy = await submitter.SubmitAsync(zip, "lab-a", CancellationToken.None);
        var looseStudy = await submitter.SubmitAsync(loose, "lab-a", CancellationToken.None);
        var phantomStudy = await submitter.SubmitAsync(phantomDir, "lab-b", CancellationToken.None);
        var junkStudy = await submitter.SubmitAsync(junk, "lab-b", CancellationToken.None);

        foreach (var (submitted, slices) in new[] { (zipStudy, 4), (looseStudy, 4), (phantomStudy, 5) })
        {
            var row = await PipelineFixture.WaitForTerminalAsync(host.Storage.Studies, submitted.Tenant, submitted.StudyId, log.Path);
            Assert.True(row.Status == StudyStatus.Completed, $"{submitted.UploadPath}: {row.Status} {row.Reason}");
            Assert.Equal(slices, row.SliceCount);
            Assert.Contains(row.Label, new[] { "covid", "cap", "normal" });
            Assert.InRange(row.ProbabilityCovid!.Value + row.ProbabilityCap!.Value + row.ProbabilityNormal!.Value, 0.99, 1.01);
            Assert.InRange(row.LesionBurden!.Value, 0, 1);
            Assert.NotNull(row.StudyPseudonym);

            // Overlays and the montage are in results; every top slice's overlay exists.
            var results = await PipelineFixture.ListAsync(host.Storage.BlobContainers, PipelineNames.ResultsContainer, $"{submitted.Tenant}/{submitted.StudyId}/");
            // Overlays are drawn for the slices with a lesion: exactly those the SliceResults rows point to.
            var overlays = results.Where(p => p.Contains("/overlays/", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
            var sliceRows = await host.Storage.SliceResults.GetAsync(submitted.Tenant, submitted.StudyId, CancellationToken.None);
            Assert.Equal(slices, sliceRows.Count);
            Assert.Equal(sliceRows.Select(r => r.OverlayPath).OfType<string>().Order(StringComparer.Ordinal), overlays);
            Assert.Contains($"{submitted.Tenant}/{submitted.StudyId}/montage.png", results);
            foreach (var top in CovidFunctions.Cli.Commands.StatusCommand.TopSlices(row.TopSlicesJson))
            {
                Assert.Contains(top.OverlayPath, results);
            }

            // The status document has the contract's shape.
            var json = StudyStatusJson.Serialize(row);
            Assert.StartsWith($"{{\"study\":\"{submitted.StudyId}\",\"tenant\":\"{submitted.Tenant}\",\"status\":\"completed\",\"reason\":null,\"diagnosis\":{{\"label\":\"", json, StringComparison.Ordinal);

            // The raw upload is gone once its results are stored: the aggregate deletes it just after writing the
            // completed row, so wait for the orchestration to end rather than racing that delete.
            await PipelineFixture.WaitForOrchestrationEndAsync(host, submitted.Tenant, submitted.StudyId);
            Assert.Empty(await PipelineFixture.ListAsync(host.Storage.BlobContainers, PipelineNames.UploadsContainer, submitted.UploadPath));
        }

        // No planted PHI anywhere in what ingest and scoring wrote for the phantom (tiles, manifest, results).
        var written = (await PipelineFixture.ListAsync(host.Storage.BlobContainers, PipelineNames.SlicesContainer, $"lab-b/{phantomStudy.StudyId}/"))
            .Select(p => (PipelineNames.SlicesContainer, p))
            .Concat((await PipelineFixture.ListAsync(host.Storage.BlobContainers, PipelineNames.ResultsContainer, $"lab-b/{phantomStudy.StudyId}/")).Select(p => (PipelineNames.ResultsContainer, p)))
            .ToList();
        Assert.NotEmpty(written);
        foreach (var (container, path) in written)
        {
            var text = Encoding.Latin1.GetString(await PipelineFixture.ReadAsync(host.Storage.BlobContainers, container, path));
            foreach (var phi in PlantedPhi.All)
            {
                Assert.False(text.Contains(phi, StringComparison.OrdinalIgnoreCase), $"{container}/{path} contains planted PHI '{phi}'");
            }
        }

        var phantomRow = await host.Storage.Studies.GetAsync("lab-b", phantomStudy.StudyId, CancellationToken.None);
        Assert.DoesNotContain("PHANTOM", phantomRow!.SeriesJson ?? string.Empty, StringComparison.OrdinalIgnoreCase);

        // The reject: row rejected with a reason, the original and reason.json in quarantine.
        var rejected = await PipelineFixture.WaitForTerminalAsync(host.Storage.Studies, "lab-b", junkStudy.StudyId, log.Path);
        Assert.Equal(StudyStatus.Rejected, rejected.Status);
        Assert.False(string.IsNullOrWhiteSpace(rejected.Reason));
        var quarantined = await PipelineFixture.ListAsync(host.Storage.BlobContainers, PipelineNames.QuarantineContainer, $"lab-b/{junkStudy.StudyId}/");
        var reasonPath = Assert.Single(quarantined, p => p.EndsWith("reason.json", StringComparison.Ordinal));
        var reason = Encoding.UTF8.GetString(await PipelineFixture.ReadAsync(host.Storage.BlobContainers, PipelineNames.QuarantineContainer, reasonPath));
        Assert.Contains(junkStudy.StudyId, reason, StringComparison.Ordinal);
        Assert.Contains(quarantined, p => p.EndsWith("notes.dcm", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Every_message_twice_and_a_scorer_killed_mid_study_complete_once_with_usage_counted_once()
    {
        using var temp = TestData.CreateTempDirectory();
        await using var azurite = await PipelineFixture.StartAzuriteAsync(temp.Path);
        var dataDir = Path.Combine(temp.Path, "data");
        using var loggers = PipelineFixture.Loggers(dataDir, out var log);
        using var _ = log;
        var options = PipelineFixture.Options(dataDir, azurite.ConnectionString, chunkSize: 2) with { SenderDecorator = inner => new TwiceSender(inner) };
        await using var host = await LocalPipelineHost.StartAsync(options, loggers, CancellationToken.None);

        var study = await new StudySubmitter(host.Storage.BlobContainers, host.Storage.Studies, host.StudyIdKey)
            .SubmitAsync(PipelineFixture.RealSubset(Path.Combine(temp.Path, "series"), 6), "lab-c", CancellationToken.None);

        // Kill the scorer once the first chunk is scored (two more chunks to go), then restart it.
        var firstChunk = $"lab-c/{study.StudyId}/chunks/0000.json";
        await PipelineFixture.WaitUntilAsync(() => host.Storage.BlobContainers.Get(PipelineNames.ResultsContainer).ExistsAsync(firstChunk, CancellationToken.None), "the first chunk is scored");
        await host.StopScorerAsync();
        Assert.False(host.IsScorerRunning);
        await Task.Delay(TimeSpan.FromSeconds(3));
        host.StartScorer();

        var row = await PipelineFixture.WaitForTerminalAsync(host.Storage.Studies, "lab-c", study.StudyId, log.Path);
        Assert.True(row.Status == StudyStatus.Completed, $"{row.Status} {row.Reason}");
        Assert.Equal(6, row.SliceCount);

        await PipelineFixture.WaitForOrchestrationEndAsync(host, "lab-c", study.StudyId);

        // Usage: one row per stage, whatever the duplicates and the re-delivery.
        var month = DateTimeOffset.UtcNow.ToString("yyyy-MM", System.Globalization.CultureInfo.InvariantCulture);
        var usage = (await host.Storage.Usage.GetMonthAsync("lab-c", month, CancellationToken.None)).Where(u => u.StudyId == study.StudyId).ToList();
        Assert.Single(usage, u => u.Stage == "ingest");
        var scoring = Assert.Single(usage, u => u.Stage == StudyOrchestration.UsageStage);
        Assert.Equal(6, scoring.Slices);

        // Slice results: one row per slice; one completed orchestration for the study.
        var slices = await host.Storage.SliceResults.GetAsync("lab-c", study.StudyId, CancellationToken.None);
        Assert.Equal(Enumerable.Range(0, 6), slices.Select(s => s.SliceIndex).Order());
        var instance = await host.Durable.GetInstanceAsync(StudyIds.OrchestrationId("lab-c", study.StudyId), getInputsAndOutputs: false, CancellationToken.None);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, instance!.RuntimeStatus);
        var all = new List<OrchestrationMetadata>();
        await foreach (var i in host.Durable.GetAllInstancesAsync(new OrchestrationQuery { InstanceIdPrefix = "study-lab-c-" }))
        {
            all.Add(i);
        }

        Assert.Single(all);
    }

    [Fact]
    public async Task Stopping_the_host_mid_orchestration_and_an_azurite_restart_still_complete_the_study()
    {
        using var temp = TestData.CreateTempDirectory();
        await using var azurite = await PipelineFixture.StartAzuriteAsync(temp.Path);
        var dataDir = Path.Combine(temp.Path, "data");
        using var loggers = PipelineFixture.Loggers(dataDir, out var log);
        using var _ = log;
        var options = PipelineFixture.Options(dataDir, azurite.ConnectionString, chunkSize: 2);
        var tenant = "lab-d";
        SubmittedStudy study;
        await using (var first = await LocalPipelineHost.StartAsync(options, loggers, CancellationToken.None))
        {
            study = await new StudySubmitter(first.Storage.BlobContainers, first.Storage.Studies, first.StudyIdKey)
                .SubmitAsync(PipelineFixture.RealSubset(Path.Combine(temp.Path, "series"), 6), tenant, CancellationToken.None);

            // Stop everything once the orchestration has dispatched and the first chunk result exists.
            var firstChunk = $"{tenant}/{study.StudyId}/chunks/0000.json";
            await PipelineFixture.WaitUntilAsync(() => first.Storage.BlobContainers.Get(PipelineNames.ResultsContainer).ExistsAsync(firstChunk, CancellationToken.None), "the first chunk is scored");
            await first.StopAsync(CancellationToken.None);
            var midway = await first.Storage.Studies.GetAsync(tenant, study.StudyId, CancellationToken.None);
            Assert.Equal(StudyStatus.Processing, midway!.Status);
        }

        // Start again on the same storage; restart Azurite while the study is still running.
        await using var second = await LocalPipelineHost.StartAsync(options, loggers, CancellationToken.None);
        await azurite.RestartAsync(CancellationToken.None);
        var row = await PipelineFixture.WaitForTerminalAsync(second.Storage.Studies, tenant, study.StudyId, log.Path);
        Assert.True(row.Status == StudyStatus.Completed, $"{row.Status} {row.Reason}");
        Assert.Equal(6, row.SliceCount);
        await PipelineFixture.WaitForOrchestrationEndAsync(second, tenant, study.StudyId);
        var month = DateTimeOffset.UtcNow.ToString("yyyy-MM", System.Globalization.CultureInfo.InvariantCulture);
        var usage = (await second.Storage.Usage.GetMonthAsync(tenant, month, CancellationToken.None)).Where(u => u.StudyId == study.StudyId).ToList();
        Assert.Single(usage, u => u.Stage == StudyOrchestration.UsageStage);
    }

    /// <summary>Sends every message twice (at-least-once delivery at its worst).</summary>
    private sealed class TwiceSender(IMessageSender inner) : IMessageSender
    {
        public async Task SendAsync(string queue, QueueMessage message, CancellationToken cancellationToken)
        {
            await inner.SendAsync(queue, message, cancellationToken);
            await inner.SendAsync(queue, message, cancellationToken);
        }
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PipelineCollection
{
    public const string Name = "local pipeline (Azurite)";
}
