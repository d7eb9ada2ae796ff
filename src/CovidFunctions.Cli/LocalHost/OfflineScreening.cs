using System.Diagnostics;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging.Series;
using CovidFunctions.Inference;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Orchestration.Activities;
using CovidFunctions.Pipeline.Scoring;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace CovidFunctions.Cli.LocalHost;

/// <summary>What an offline run produced: the final Studies row, the ingest outcome, where the files are, how long
/// each stage took, and the upload path the input was staged under in ct-uploads (<c>{tenant}/{stamp}-{name}</c>, a
/// folder's with a trailing '/'; ingest's messages name the files by it).</summary>
public sealed record OfflineScreeningResult(
    StudyRecord Study,
    IngestOutcome Ingest,
    FileSystemBlobContainers Containers,
    IReadOnlyDictionary<string, double> StageSeconds,
    string UploadPath);

/// <summary>
/// <c>covidfn screen</c>'s engine: the pipeline's own stages in one process without storage services. The study is
/// uploaded into a file-system <c>ct-uploads</c> (<see cref="StudySubmitter"/>), planned (<see cref="UploadUnitPlanner"/>)
/// and ingested by <see cref="IngestHandler"/> (de-identification, tiles); each chunk the orchestrator would dispatch
/// (<see cref="StudyOrchestrator.PlanChunks"/>) is scored by <see cref="ScoringHandler"/>; the diagnosis comes from
/// <see cref="AggregateStudyActivity"/> called as a class. Stores are in memory; blobs live under the work folder.
/// <paramref name="options"/>: chunk size, upload size limit and montage slices among them (<c>covidfn screen</c>: the
/// checked <c>Pipeline__*</c> settings it applies, <c>OfflinePipelineSettings</c>; null: the defaults).
/// <paramref name="assembly"/>: how ingest assembles the series and expands a zip (<c>covidfn screen</c>: the checked
/// <c>Imaging__*</c> settings, as <c>covidfn up</c> and the Function app use them; null: the defaults).
/// </summary>
public sealed class OfflineScreening(ScreeningModels models, DeidKey key, PipelineOptions? options = null, ILoggerFactory? loggerFactory = null, SeriesAssemblyOptions? assembly = null)
{
    // Its one ingest attempt is the last (nothing retries it offline): a fault or Pipeline:IngestTimeLimit gives up at
    // once, as a failed study whose reason names the error, instead of the handler throwing for a retry that never came
    // (screen then ended on an unhandled exception's stack trace).
    private readonly PipelineOptions _options = (options ?? new PipelineOptions()) with { MaxIngestAttempts = 1 };
    private readonly ILoggerFactory _loggers = loggerFactory ?? NullLoggerFactory.Instance;

    public async Task<OfflineScreeningResult> RunAsync(string input, string tenant, string workDirectory, CancellationToken cancellationToken)
    {
        var stages = new Dictionary<string, double>(StringComparer.Ordinal);
        var stopwatch = Stopwatch.StartNew();
        var containers = new FileSystemBlobContainers(workDirectory);
        var studies = new InMemoryStudyStore();
        var usage = new InMemoryUsageStore();
        var sliceResults = new InMemorySliceResultStore();
        var orchestrations = new CapturingOrchestrationClient();
        var pipelineOptions = Options.Create(_options);

        var studyIdKey = StudyIdKey.From(key);
        var submitted = await new StudySubmitter(containers, studies, studyIdKey).SubmitAsync(input, tenant, cancellationToken).ConfigureAwait(false);
        stages["upload"] = Lap(stopwatch);

        var blobs = new List<UploadBlob>();
        var uploads = containers.Get(PipelineNames.UploadsContainer);
        await foreach (var path in uploads.ListAsync(tenant + "/", cancellationToken).ConfigureAwait(false))
        {
            var length = new FileInfo(containers.LinkTo(PipelineNames.UploadsContainer, path)).Length;
            blobs.Add(new UploadBlob(path, DateTimeOffset.UtcNow, length));
        }

        var unit = UploadUnitPlanner.Plan(blobs, DateTimeOffset.UtcNow, _options, studyIdKey).SingleOrDefault(u => u.StudyId == submitted.StudyId)
            ?? throw new InvalidOperationException($"the upload {submitted.UploadPath} did not form an ingest unit");
        var ingest = new IngestHandler(containers, studies, usage, orchestrations, new DeidentificationEngine(key), pipelineOptions,
            _loggers.CreateLogger<IngestHandler>(), TimeProvider.System, assembly: assembly);
        var outcome = await ingest.IngestAsync(unit, cancellationToken).ConfigureAwait(false);
        stages["ingest"] = Lap(stopwatch);
        if (outcome.Status != IngestStatus.Ingested && outcome.Status != IngestStatus.AlreadyIngested)
        {
            return await ResultAsync(outcome, stages).ConfigureAwait(false);
        }

        var started = orchestrations.Started.Single(s => s.StudyId == submitted.StudyId);
        var orchestrationStartedAt = DateTime.UtcNow;
        var sender = new CapturingMessageSender();
        var scorer = new ScoringHandler(containers, sliceResults, sender, models, Options.Create(new ScoringOptions()), _loggers.CreateLogger<ScoringHandler>());
        var chunks = StudyOrchestrator.PlanChunks(started.SliceCount, started.ChunkSize);
        for (var c = 0; c < chunks.Count; c++)
        {
            var request = new ChunkRequest(tenant, started.StudyId, started.InstanceId, started.TilesPrefix, c, chunks[c].FirstSlice, chunks[c].SliceCount, 1);
            var settlement = await scorer.HandleAsync(new ReceivedMessage(request.MessageId, PipelineJson.Serialize(request), 1), cancellationToken).ConfigureAwait(false);
            if (settlement.Action != SettlementAction.Complete)
            {
                return await FailAsync($"chunk {c} could not be scored: {settlement.Reason}").ConfigureAwait(false);
            }
        }

        var results = sender.SentTo(PipelineNames.SliceResultsQueue).Select(m => PipelineJson.Deserialize<ChunkResult>(m.Body)).ToList();
        if (results.FirstOrDefault(r => r.Error is not null) is { } failed)
        {
            return await FailAsync($"chunk {failed.ChunkIndex} could not be scored: {failed.Error}").ConfigureAwait(false);
        }

        stages["scoring"] = Lap(stopwatch);
        var aggregate = new AggregateStudyActivity(containers, studies, UploadReadKey.From(key), pipelineOptions, _loggers.CreateLogger<AggregateStudyActivity>());

        // The activity ignores its Durable context: called as a class it is the same aggregation the orchestrator runs.
        await aggregate.RunAsync(null!, new AggregateStudyInput(tenant, started.StudyId, started.TilesPrefix, results, orchestrationStartedAt, DateTime.UtcNow)).ConfigureAwait(false);
        stages["aggregate"] = Lap(stopwatch);
        return await ResultAsync(outcome, stages).ConfigureAwait(false);

        async Task<OfflineScreeningResult> FailAsync(string reason)
        {
            await studies.UpdateAsync(tenant, submitted.StudyId, row => (row ?? new StudyRecord { Tenant = tenant, StudyId = submitted.StudyId }) with
            {
                Status = StudyStatus.Failed,
                Reason = reason,
            }, cancellationToken).ConfigureAwait(false);
            return await ResultAsync(outcome, stages).ConfigureAwait(false);
        }

        async Task<OfflineScreeningResult> ResultAsync(IngestOutcome ingestOutcome, Dictionary<string, double> stageSeconds)
        {
            var study = await studies.GetAsync(tenant, submitted.StudyId, cancellationToken).ConfigureAwait(false)
                ?? throw new InvalidOperationException($"study {submitted.StudyId} has no row");

            // The aggregation deleted the upload's files (a rejection moved them to quarantine), but the file-system
            // container keeps their folders, named after the input (often the patient's name): with --out-dir they
            // stayed beside the de-identified results.
            RemoveEmptyFolders(Path.Combine(workDirectory, PipelineNames.UploadsContainer));
            return new OfflineScreeningResult(study, ingestOutcome, containers, stageSeconds, submitted.UploadPath);
        }
    }

    /// <summary>Deletes the empty folders below <paramref name="root"/> (deepest first); a folder holding any file stays.</summary>
    private static void RemoveEmptyFolders(string root)
    {
        if (!Directory.Exists(root))
        {
            return;
        }

        foreach (var folder in Directory.GetDirectories(root, "*", SearchOption.AllDirectories).OrderByDescending(f => f.Length))
        {
            if (!Directory.EnumerateFileSystemEntries(folder).Any())
            {
                Directory.Delete(folder);
            }
        }
    }

    private static double Lap(Stopwatch stopwatch)
    {
        var seconds = stopwatch.Elapsed.TotalSeconds;
        stopwatch.Restart();
        return Math.Round(seconds, 3);
    }
}
