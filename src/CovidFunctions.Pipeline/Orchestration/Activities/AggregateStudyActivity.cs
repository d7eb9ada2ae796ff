using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using CovidFunctions.Imaging.Rendering;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Inference;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Scoring;
using CovidFunctions.Pipeline.Storage;
using Microsoft.DurableTask;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CovidFunctions.Pipeline.Orchestration.Activities;

/// <summary>
/// The study's diagnosis from its chunk result documents (read by blob reference): the DTCN study rule
/// (<see cref="StudyAggregator"/>) over the per-slice summaries, the lesion burden Σ lesion pixels / Σ lung-estimate
/// pixels, the most affected slices (lesion share of the lung estimate) and their montage PNG
/// (<c>{tenant}/{studyId}/montage.png</c> in results, drawn from the tiles and the stored masks). Writes the Studies
/// row completed, then deletes the study's raw upload (unless <see cref="PipelineOptions.UploadRetention"/> keeps it).
/// Idempotent: a re-run recomputes the same values and overwrites the same blob and row.
/// </summary>
public sealed partial class AggregateStudyActivity(
    IBlobContainers containers,
    IStudyStore studies,
    UploadReadKey uploadReadKey,
    IOptions<PipelineOptions> options,
    ILogger<AggregateStudyActivity> logger,
    TimeProvider? timeProvider = null) : TaskActivity<AggregateStudyInput, StudyDiagnosis>
{
    private readonly TimeProvider _time = timeProvider ?? TimeProvider.System;

    public override async Task<StudyDiagnosis> RunAsync(TaskActivityContext context, AggregateStudyInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var stopwatch = Stopwatch.StartNew();
        var cancellationToken = CancellationToken.None;
        var results = containers.Get(PipelineNames.ResultsContainer);
        var documents = new List<ChunkResultDocument>(input.Chunks.Count);
        foreach (var chunk in input.Chunks.OrderBy(c => c.ChunkIndex))
        {
            var path = chunk.ResultPath ?? throw new InvalidOperationException($"chunk {chunk.ChunkIndex} has no result document");
            string json;
            await using (var stream = await results.OpenReadAsync(path, cancellationToken).ConfigureAwait(false))
            using (var reader = new StreamReader(stream))
            {
                json = await reader.ReadToEndAsync(cancellationToken).ConfigureAwait(false);
            }

            var document = PipelineJson.Deserialize<ChunkResultDocument>(json);
            if (document.StudyId != input.StudyId)
            {
                throw new InvalidOperationException($"result document {path} belongs to study {document.StudyId}, not {input.StudyId}");
            }

            documents.Add(document);
        }

        if (documents.Count == 0)
        {
            throw new InvalidOperationException("the study has no chunk results");
        }

        var classes = documents[0].Classes;
        var modelVersion = documents[0].ModelVersion;
        var slices = documents.SelectMany(d => d.Slices).GroupBy(s => s.SliceIndex).Select(g => g.First()).OrderBy(s => s.SliceIndex).ToList();
        var prediction = StudyAggregator.Aggregate(
            [.. slices.Select(s => new SliceSummary(s.SliceIndex, s.LesionMeanProbability, s.LesionFraction, s.ClassProbabilities))],
            classes);
        long lesionPixels = 0, lungPixels = 0;
        foreach (var s in slices)
        {
            lesionPixels += s.LesionPixels;
            lungPixels += s.LungPixels;
        }

        var burden = lungPixels == 0 ? 0 : Math.Clamp((double)lesionPixels / lungPixels, 0, 1);
        var percents = slices.Select(LesionPercent).ToList();
        var top = OverlayRenderer.MostAffected(percents, Math.Max(0, options.Value.MontageSlices))
            .OrderByDescending(i => percents[i]).ThenBy(i => slices[i].SliceIndex)
            .Select(i => new TopSlice(slices[i].SliceIndex, Math.Round(percents[i], 3), slices[i].OverlayPath))
            .ToList();
        var probabilities = prediction.ClassProbabilities.Select(p => (double)p).ToList();
        var montagePath = $"{input.Tenant}/{input.StudyId}/montage.png";
        var montage = await RenderMontageAsync(input, slices, top, prediction.Label, burden, cancellationToken).ConfigureAwait(false);
        await results.WriteAsync(montagePath, new MemoryStream(montage, writable: false), cancellationToken).ConfigureAwait(false);

        var diagnosis = new StudyDiagnosis(prediction.Label, classes, probabilities, burden, slices.Count, modelVersion, montagePath, top);
        var completedAt = _time.GetUtcNow();
        var aggregateSeconds = stopwatch.Elapsed.TotalSeconds;
        var stored = await studies.UpdateAsync(input.Tenant, input.StudyId, existing =>
        {
            var record = existing ?? new StudyRecord { Tenant = input.Tenant, StudyId = input.StudyId, CreatedAt = completedAt };
            if (record.Status is StudyStatus.Failed or StudyStatus.Rejected)
            {
                // Settled by another path while the chunks were scored (the watchdog): the first settled state stands.
                return record;
            }

            return record with
            {
                Status = StudyStatus.Completed,
                Reason = null,
                Label = prediction.Label,
                ProbabilityCovid = ProbabilityOf("covid"),
                ProbabilityCap = ProbabilityOf("cap"),
                ProbabilityNormal = ProbabilityOf("normal"),
                LesionBurden = burden,
                ModelVersion = modelVersion,
                SliceCount = slices.Count,
                TopSlicesJson = PipelineJson.Serialize(top),
                MontagePath = montagePath,
                TimingsJson = MergeTimings(record, input, aggregateSeconds, completedAt),
                ScoringFinishedAt = new DateTimeOffset(DateTime.SpecifyKind(input.ScoringFinishedAt, DateTimeKind.Utc)),
                CompletedAt = completedAt,

                // What the study is billed, on the row that says completed, so a usage write that fails for good is
                // recorded later by the hourly usage sweep (UsageAutoClose) rather than lost.
                ScoringUsageJson = input.Usage is null ? record.ScoringUsageJson : PipelineJson.Serialize(RecordUsageActivity.ToRecord(input.Usage)),
            };
        }, cancellationToken).ConfigureAwait(false);
        if (stored.Status != StudyStatus.Completed)
        {
            throw new StudyAlreadySettledException($"study {input.Tenant}/{input.StudyId} was {stored.Status} ({stored.Reason}) before its results could be stored; they were not");
        }

        // The results are stored: only now may the raw upload go (ingest keeps it; with a retention the sweep deletes it
        // later). A crash before this line re-runs the activity, which recomputes the same row and deletes it then.
        if (options.Value.UploadRetention <= TimeSpan.Zero && stored.UploadPath is { Length: > 0 } uploadPath)
        {
            await UploadArchive.SettleCompletedAsync(containers, studies, uploadReadKey, input.Tenant, input.StudyId, uploadPath, cancellationToken).ConfigureAwait(false);
        }

        Log.Aggregated(logger, input.Tenant, input.StudyId, prediction.Label, burden, slices.Count, top.Count);
        return diagnosis;

        double? ProbabilityOf(string name)
        {
            for (var c = 0; c < classes.Count; c++)
            {
                if (string.Equals(classes[c], name, StringComparison.OrdinalIgnoreCase))
                {
                    return probabilities[c];
                }
            }

            return null;
        }
    }

    /// <summary>The lesion share of a slice's lung estimate, in percent (the lung estimate includes the lesion).</summary>
    public static double LesionPercent(SliceScore slice)
    {
        ArgumentNullException.ThrowIfNull(slice);
        return slice.LungPixels <= 0 ? 0 : Math.Min(100, 100.0 * slice.LesionPixels / slice.LungPixels);
    }

    private async Task<byte[]> RenderMontageAsync(AggregateStudyInput input, IReadOnlyList<SliceScore> slices, IReadOnlyList<TopSlice> top, string label, double burden, CancellationToken cancellationToken)
    {
        var title = string.Create(CultureInfo.InvariantCulture, $"{label} · lesion burden {burden * 100:0.0} % · {slices.Count} slices");
        var bySlice = slices.ToDictionary(s => s.SliceIndex);
        var withMasks = top.Where(t => bySlice[t.SliceIndex].MaskPath is not null).ToList();
        if (withMasks.Count == 0)
        {
            return OverlayRenderer.RenderMontagePng([], title: title);
        }

        var reader = await TileSeriesReader.OpenAsync(containers.Get(PipelineNames.SlicesContainer), input.TilesPrefix, cancellationToken).ConfigureAwait(false);
        var images = (await TileSlices.ReadAsync(reader, withMasks.Select(t => t.SliceIndex), cancellationToken).ConfigureAwait(false))
            .ToDictionary(s => s.SliceIndex);
        var results = containers.Get(PipelineNames.ResultsContainer);
        var tiles = new List<MontageTile>(withMasks.Count);
        foreach (var t in withMasks)
        {
            var maskPath = bySlice[t.SliceIndex].MaskPath!;
            using var buffer = new MemoryStream();
            await using (var stream = await results.OpenReadAsync(maskPath, cancellationToken).ConfigureAwait(false))
            {
                await stream.CopyToAsync(buffer, cancellationToken).ConfigureAwait(false);
            }

            var (mask, width, height) = MaskPng.Decode(buffer.GetBuffer().AsSpan(0, (int)buffer.Length), maskPath);
            var image = images[t.SliceIndex].Image;
            if (width != image.Width || height != image.Height)
            {
                throw new InvalidOperationException($"mask {maskPath} is {width}×{height}, the slice is {image.Width}×{image.Height}");
            }

            tiles.Add(new MontageTile(image, mask, t.SliceIndex, t.LesionPercent));
        }

        return OverlayRenderer.RenderMontagePng(tiles, title: title);
    }

    /// <summary>
    /// Adds this stage's timings (seconds) to the row's TimingsJson, keeping what ingest wrote: <c>scoring</c>
    /// (dispatch to last chunk result), <c>scoringCompute</c> (Σ scorer seconds), <c>aggregate</c>, <c>orchestration</c>
    /// (orchestration start to completion) and <c>total</c> (row creation to completion).
    /// </summary>
    private static string MergeTimings(StudyRecord record, AggregateStudyInput input, double aggregateSeconds, DateTimeOffset completedAt)
    {
        JsonObject timings;
        try
        {
            timings = record.TimingsJson is { Length: > 0 } json && JsonNode.Parse(json) is JsonObject parsed ? parsed : [];
        }
        catch (System.Text.Json.JsonException)
        {
            timings = [];
        }

        var started = new DateTimeOffset(DateTime.SpecifyKind(input.OrchestrationStartedAt, DateTimeKind.Utc));
        var scored = new DateTimeOffset(DateTime.SpecifyKind(input.ScoringFinishedAt, DateTimeKind.Utc));
        timings["scoring"] = Round((scored - started).TotalSeconds);
        timings["scoringCompute"] = Round(input.Chunks.Sum(c => c.ScoringSeconds));
        timings["aggregate"] = Round(aggregateSeconds);
        timings["orchestration"] = Round((completedAt - started).TotalSeconds);
        if (record.CreatedAt != default)
        {
            timings["total"] = Round((completedAt - record.CreatedAt).TotalSeconds);
        }

        return timings.ToJsonString();

        static double Round(double seconds) => Math.Round(Math.Max(0, seconds), 3);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2101, Level = LogLevel.Information, Message = "Study {Tenant}/{StudyId} aggregated: {Label}, lesion burden {Burden:0.0000}, {Slices} slices, {TopSlices} in the montage")]
        public static partial void Aggregated(ILogger logger, string tenant, string studyId, string label, double burden, int slices, int topSlices);
    }
}
