using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace CovidFunctions.Cli.Tests.Pipeline;

/// <summary>
/// <c>covidfn up</c>'s upload watcher and the study's ingest claim, on Azurite: an <c>up</c> killed mid-ingest leaves
/// its claim in the Studies row; the next <c>up</c>'s watcher leaves the study alone while that claim may still be
/// renewed, keeps looking, and takes it over once the claim has expired (nothing waits for the watchdog).
/// </summary>
[Collection(PipelineCollection.Name)]
public sealed class UploadWatcherClaimTests
{
    [Fact]
    public async Task A_folder_held_by_a_killed_up_is_left_until_its_claim_expires_and_then_ingested_by_the_watcher()
    {
        using var temp = TestData.CreateTempDirectory();
        await using var azurite = await PipelineFixture.StartAzuriteAsync(temp.Path);
        var storage = PipelineStorage.FromConnectionString(azurite.ConnectionString);
        await storage.EnsureCreatedAsync(CancellationToken.None);
        var key = DeidKey.Generate();
        var studyIdKey = StudyIdKey.From(key);
        const string Tenant = "lab-w";
        const string Folder = Tenant + "/series/";
        var uploads = storage.BlobContainers.Get(PipelineNames.UploadsContainer);
        foreach (var file in Directory.GetFiles(PipelineFixture.RealSubset(Path.Combine(temp.Path, "series"), 4)))
        {
            await using var content = File.OpenRead(file);
            await uploads.WriteAsync(Folder + Path.GetFileName(file), content, CancellationToken.None);
        }

        await uploads.WriteAsync(Folder + PipelineNames.CompleteMarker, new MemoryStream("4"u8.ToArray()), CancellationToken.None);
        var studyId = StudyIds.ForUpload(studyIdKey, Tenant, Folder);

        // The previous up counted its attempt and took the claim, then was killed (SIGKILL: nothing released it).
        var clock = new MovableClock();
        Assert.True(await storage.Studies.TryCreateAsync(new StudyRecord
        {
            Tenant = Tenant,
            StudyId = studyId,
            Status = StudyStatus.Processing,
            UploadPath = Folder,
            UploadKind = "folder",
            CreatedAt = clock.GetUtcNow(),
            IngestAttempts = 1,
            IngestClaim = "the-killed-up",
            IngestClaimExpiresAt = clock.GetUtcNow() + IngestHandler.IngestClaimLease,
        }, CancellationToken.None));

        var handler = new IngestHandler(
            storage.BlobContainers, storage.Studies, storage.Usage, new StartedOrchestrations(), new DeidentificationEngine(key),
            Options.Create(new PipelineOptions()), NullLogger<IngestHandler>.Instance, clock);
        var watcher = new UploadWatcher(storage.UploadListing, handler, new PipelineOptions(), studyIdKey, 2, NullLogger.Instance, clock);
        var outcomes = new List<IngestOutcome>();
        var reported = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        watcher.Ingested += outcome =>
        {
            lock (outcomes)
            {
                outcomes.Add(outcome);
            }

            reported.TrySetResult();
        };
        using var stop = new CancellationTokenSource();
        var running = watcher.RunAsync(TimeSpan.FromMilliseconds(100), stop.Token);

        // Several polls while the claim may still be renewed: the study is left to its holder, nothing counted.
        await Task.Delay(TimeSpan.FromSeconds(2));
        var held = (await storage.Studies.GetAsync(Tenant, studyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Processing, 1, null), (held.Status, held.IngestAttempts, held.IngestedAt));

        // The claim runs out: a later poll takes the study over. Before, the watcher marked the folder done after its
        // first look and never ingested it again in this run.
        // Stopped once the watcher has reported the outcome, not once the row says ingested: the row's fenced write comes
        // before the usage record and the orchestration start, and a stop between them rightly interrupts the ingest (it
        // is resumed on the next start, ResumeIngestedAsync) with nothing reported. Stopping on the row left no outcome
        // at all in about half the runs under CPU load.
        clock.Ahead = IngestHandler.IngestClaimLease + TimeSpan.FromSeconds(1);
        var first = await Task.WhenAny(reported.Task, Task.Delay(TimeSpan.FromMinutes(1)));
        Assert.True(first == reported.Task, "the watcher did not report ingesting the folder within a minute of the killed up's claim expiring");

        await stop.CancelAsync();
        await running;

        var row = (await storage.Studies.GetAsync(Tenant, studyId, CancellationToken.None))!;
        Assert.Equal((StudyStatus.Processing, 2, 4, null), (row.Status, row.IngestAttempts, row.SliceCount, row.IngestClaim));
        lock (outcomes)
        {
            Assert.Equal([IngestStatus.Ingested], outcomes.Select(o => o.Status));
        }
    }

    /// <summary>The system clock, moved ahead when the test says (the watcher's and ingest's "now").</summary>
    private sealed class MovableClock : TimeProvider
    {
        public TimeSpan Ahead { get; set; }

        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + Ahead;
    }

    /// <summary>Says every orchestration started: ingest only has to start it.</summary>
    private sealed class StartedOrchestrations : IStudyOrchestrationClient
    {
        public Task<bool> StartIfAbsentAsync(StudyOrchestrationInput input, CancellationToken cancellationToken) => Task.FromResult(true);

        public Task RaiseChunkResultAsync(ChunkResult result, CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
