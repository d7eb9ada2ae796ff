using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using CovidFunctions.Imaging;
using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.Imaging.Rendering;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Inference;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CovidFunctions.Pipeline.Scoring;

/// <summary>
/// Scores one chunk request from <see cref="PipelineNames.SliceRequestsQueue"/>: reads the chunk's slices from the
/// tiles, runs DFSN + DTCN in batches, writes per-slice masks and overlays and the chunk's
/// <see cref="ChunkResultDocument"/> to the results container, upserts the SliceResults rows and posts a
/// <see cref="ChunkResult"/> to <see cref="PipelineNames.SliceResultsQueue"/>.
/// </summary>
/// <remarks>
/// Settlement: malformed messages are dead-lettered with the reason; a chunk that can never be scored (tiles or
/// manifest missing or corrupt, slices outside the series, another preprocessing) is answered with a
/// <see cref="ChunkResult.Error"/> so the study fails fast, and completed; any other exception propagates, so the
/// consumer retries it, except on the last delivery (<see cref="ScoringOptions.MaxDeliveryCount"/>): there the poison
/// chunk is answered with an error result naming the exception and dead-lettered, so its study fails with the cause
/// rather than after every re-dispatch timed out. Given the Studies store, a chunk of a study already settled (failed,
/// completed or rejected) is completed without scoring (<see cref="SettledStatusAsync(ChunkRequest, CancellationToken)"/>), and a chunk whose study
/// settles while it is being scored stops at its next model batch, or at the latest before it stores anything
/// (<see cref="StudyRecheck"/>). Idempotent: a re-delivered or re-dispatched chunk overwrites the same blobs and rows
/// (all named by study, chunk and slice index) with the same values.
/// </remarks>
public sealed partial class ScoringHandler(
    IBlobContainers containers,
    ISliceResultStore sliceResults,
    IMessageSender sender,
    ScreeningModels models,
    IOptions<ScoringOptions> options,
    ILogger<ScoringHandler> logger,
    IStudyStore? studies = null,
    TimeSpan? studyRecheckInterval = null)
{
    /// <summary>
    /// How long a chunk runs between two reads of its study's row while it is being scored (<see cref="StudyRecheck"/>).
    /// A model batch takes a fraction of a second on a GPU and a few seconds on CPU, so the check costs one Studies
    /// point read per chunk on a GPU (besides the reads before scoring and before storing), and on CPU one per 5 s of
    /// scoring; a study that fails meanwhile wastes at most this long plus one batch of the chunk.
    /// </summary>
    public static readonly TimeSpan StudyRecheckInterval = TimeSpan.FromSeconds(5);

    private readonly int _batchSize = Math.Max(1, options.Value.BatchSize);
    private readonly int _maxDeliveryCount = Math.Max(1, options.Value.MaxDeliveryCount);
    private readonly IStudyStore? _studies = studies;
    private readonly TimeSpan _studyRecheckInterval = studyRecheckInterval ?? StudyRecheckInterval;

    /// <summary>The result document of a chunk in the results container.</summary>
    public static string ChunkDocumentPath(string tenant, string studyId, int chunkIndex) =>
        string.Create(CultureInfo.InvariantCulture, $"{tenant}/{studyId}/chunks/{chunkIndex:D4}.json");

    public static string OverlayPath(string tenant, string studyId, int sliceIndex) =>
        string.Create(CultureInfo.InvariantCulture, $"{tenant}/{studyId}/overlays/{sliceIndex:D4}.png");

    public static string MaskPath(string tenant, string studyId, int sliceIndex) =>
        string.Create(CultureInfo.InvariantCulture, $"{tenant}/{studyId}/masks/{sliceIndex:D4}.png");

    /// <summary>The model version recorded with results: each graph in use as <c>name@sha256[..12]</c>.</summary>
    public static string ModelVersionOf(ModelManifest manifest)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        var names = manifest.DefaultModels is { Count: > 0 } defaults
            ? defaults.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)
            : manifest.Models.Keys.Order(StringComparer.Ordinal);
        return string.Join("+", names.Select(n =>
            manifest.Models.TryGetValue(n, out var entry) && entry.Sha256 is { Length: >= 12 } sha ? $"{n}@{sha[..12]}" : n));
    }

    public async Task<Settlement> HandleAsync(ReceivedMessage message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        ChunkRequest request;
        try
        {
            request = PipelineJson.Deserialize<ChunkRequest>(message.Body);
        }
        catch (JsonException ex)
        {
            Log.Malformed(logger, message.MessageId, ex.Message);
            return new Settlement(SettlementAction.DeadLetter, $"not a chunk request: {ex.Message}");
        }

        if (Problem(request) is { } problem)
        {
            Log.Malformed(logger, message.MessageId, problem);
            return new Settlement(SettlementAction.DeadLetter, $"invalid chunk request: {problem}");
        }

        if (await SettledStatusAsync(request, cancellationToken).ConfigureAwait(false) is { } settled)
        {
            Log.SkippedSettled(logger, request.Tenant, request.StudyId, request.ChunkIndex, request.Attempt, settled);
            return Settlement.Complete;
        }

        var stopwatch = Stopwatch.StartNew();
        var recheck = new StudyRecheck(this, request, _studyRecheckInterval);

        // One try, so the last-delivery rule (GiveUpAsync) is stated once for scoring and storing. The flag keeps the
        // "unscorable" answer to scoring: a FileNotFoundException or ImagingException while storing the results is a
        // storage fault to retry (and to give up on at the last delivery), not missing tiles. A failure to send the
        // unscorable answer is not taken for a poison chunk either: an exception thrown inside a catch clause is not
        // caught by its sibling clauses, so it propagates to the consumer, as it did with two separate trys.
        var scoring = true;
        try
        {
            var scored = await ScoreAsync(request, recheck, cancellationToken).ConfigureAwait(false);
            scoring = false;

            // The last look before anything of the chunk is stored: a study that failed or completed while the chunk
            // was scored gets no masks, overlays, chunk document, SliceResults rows or answer from it. Only a study
            // that settles between this read and the writes below still gets them (read by nobody: its orchestration
            // has ended and drops the answer).
            await recheck.ThrowIfSettledAsync(force: true, cancellationToken).ConfigureAwait(false);
            foreach (var file in scored.Files)
            {
                await WriteAsync(file.Path, file.Content, cancellationToken).ConfigureAwait(false);
            }

            var scores = scored.Scores;
            var documentPath = ChunkDocumentPath(request.Tenant, request.StudyId, request.ChunkIndex);
            var document = new ChunkResultDocument(request.StudyId, request.ChunkIndex, ModelVersionOf(models.Manifest), models.Classes, scores);
            await WriteAsync(documentPath, JsonSerializer.SerializeToUtf8Bytes(document, PipelineJson.Options), cancellationToken).ConfigureAwait(false);
            await sliceResults.UpsertAsync(
                [.. scores.Select(s => new SliceResultRecord(request.Tenant, request.StudyId, s.SliceIndex, request.ChunkIndex, s.LesionMeanProbability, s.LesionFraction, s.LesionPixels, s.LungPixels, s.ClassProbabilities, s.OverlayPath))],
                cancellationToken).ConfigureAwait(false);
            var seconds = stopwatch.Elapsed.TotalSeconds;
            await SendResultAsync(request, documentPath, seconds, null, cancellationToken).ConfigureAwait(false);
            Log.Scored(logger, request.Tenant, request.StudyId, request.ChunkIndex, request.Attempt, scores.Count, seconds, models.Provider);
            return Settlement.Complete;
        }
        catch (StudySettledException ended)
        {
            // Not an answer the orchestration waits for (it has ended), and not a fault to retry: the message is done.
            Log.StoppedSettled(logger, request.Tenant, request.StudyId, request.ChunkIndex, request.Attempt, ended.Status, ended.BatchesRun, ended.Batches, stopwatch.Elapsed.TotalSeconds);
            return Settlement.Complete;
        }
        catch (Exception ex) when (scoring && ex is FileNotFoundException or DirectoryNotFoundException or ImagingException or UnscorableChunkException)
        {
            var error = ex is FileNotFoundException or DirectoryNotFoundException
                ? $"tiles not found under {PipelineNames.SlicesContainer}/{request.TilesPrefix}"
                : ex.Message;
            Log.Unscorable(logger, request.Tenant, request.StudyId, request.ChunkIndex, error);
            await SendResultAsync(request, null, stopwatch.Elapsed.TotalSeconds, error, cancellationToken).ConfigureAwait(false);
            return Settlement.Complete;
        }
        catch (Exception ex) when (!IsHostCancellation(ex, cancellationToken) && message.DeliveryCount >= _maxDeliveryCount)
        {
            return await GiveUpAsync(request, message, ex, stopwatch.Elapsed.TotalSeconds, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The study's status when its row says it is settled (failed, completed, rejected), else null. Its orchestration
    /// has ended, so a result would be read by nobody: a chunk that waited in the queue past its study's failure (the
    /// chunk timeout ran out while the scorer was busy) or a re-dispatched copy of a chunk whose study completed was
    /// scored anyway, writing masks, overlays and SliceResults rows for a finished study. Without a Studies store (a
    /// scorer configured without tables, offline screening, which has no rows) or when the read fails, the chunk is
    /// scored: this check saves work, it never decides a study.
    /// </summary>
    private Task<string?> SettledStatusAsync(ChunkRequest request, CancellationToken cancellationToken) =>
        SettledStatusAsync(_studies, request, logger, cancellationToken);

    /// <summary>The read behind <see cref="SettledStatusAsync(ChunkRequest, CancellationToken)"/>, shared with
    /// <see cref="ChunkDeadLetterHook"/>, which answers a dead-lettered chunk only while its study is open.</summary>
    internal static async Task<string?> SettledStatusAsync(IStudyStore? studies, ChunkRequest request, ILogger logger, CancellationToken cancellationToken)
    {
        if (studies is null)
        {
            return null;
        }

        try
        {
            var row = await studies.GetAsync(request.Tenant, request.StudyId, cancellationToken).ConfigureAwait(false);
            return row is not null && StudyStatus.IsTerminal(row.Status) ? row.Status : null;
        }
        catch (Exception ex) when (!IsHostCancellation(ex, cancellationToken))
        {
            Log.StatusUnread(logger, request.Tenant, request.StudyId, ex.GetType().Name);
            return null;
        }
    }

    /// <summary>
    /// The last delivery of a chunk failed: tell the orchestration why (an error result, so the study fails now with the
    /// cause) and dead-letter the message with the same reason. If even the error result cannot be sent, the exception
    /// propagates and the consumer dead-letters the message; the orchestration then fails the study on its timeout.
    /// </summary>
    private async Task<Settlement> GiveUpAsync(ChunkRequest request, ReceivedMessage message, Exception ex, double seconds, CancellationToken cancellationToken)
    {
        var error = string.Create(CultureInfo.InvariantCulture, $"scoring failed on each of {message.DeliveryCount} deliveries; the last: {ex.GetType().Name}: {ex.Message}");
        Log.GaveUp(logger, request.Tenant, request.StudyId, request.ChunkIndex, message.DeliveryCount, ex.GetType().Name, ex.Message);
        await SendResultAsync(request, null, seconds, error, cancellationToken).ConfigureAwait(false);
        return new Settlement(SettlementAction.DeadLetter, error.Length > MaxErrorLength ? error[..(MaxErrorLength - 1)] + "…" : error);
    }

    /// <summary>
    /// The host stopping (the token the consumer passed is cancelled): the message goes back unsettled, no answer. An
    /// OperationCanceledException the caller did not ask for (an Azure SDK network timeout surfaces as a
    /// TaskCanceledException) is a failed delivery like any other, so the last one still answers with the cause.
    /// </summary>
    private static bool IsHostCancellation(Exception ex, CancellationToken cancellationToken) =>
        ex is OperationCanceledException && cancellationToken.IsCancellationRequested;

    /// <summary>
    /// What makes a request one the orchestrator never sends, or null. Beyond the fields being there: the study id is
    /// one path segment, the orchestration id is the study's (the relay refuses a result naming another, so scoring
    /// it was wasted), and the tiles lie under the study's own folder (<c>{tenant}/{study}/</c>, where ingest writes
    /// them): a request pointing at another study's or tenant's tiles would score them and store the scores, masks and
    /// overlays as this study's, served to whoever may read this study. The slice range must not overflow.
    /// </summary>
    internal static string? Problem(ChunkRequest r) =>
        !StudyIds.IsValidTenant(r.Tenant) ? $"tenant '{r.Tenant}' is not valid"
        : string.IsNullOrWhiteSpace(r.StudyId) ? "studyId is missing"
        : r.StudyId is "." or ".." || r.StudyId.Any(c => c is '/' or '\\' || char.IsControl(c)) ? $"studyId '{r.StudyId}' is not one path segment"
        : string.IsNullOrWhiteSpace(r.OrchestrationId) ? "orchestrationId is missing"
        : r.OrchestrationId != StudyIds.OrchestrationId(r.Tenant, r.StudyId) ? $"orchestrationId '{r.OrchestrationId}' is not the study's"
        : string.IsNullOrWhiteSpace(r.TilesPrefix) ? "tilesPrefix is missing"
        : !r.TilesPrefix.StartsWith($"{r.Tenant}/{r.StudyId}/", StringComparison.Ordinal) || r.TilesPrefix.Split('/').Any(s => s is "" or "." or "..")
            ? $"tilesPrefix '{r.TilesPrefix}' is not under the study's folder '{r.Tenant}/{r.StudyId}/'"
        : r.ChunkIndex < 0 ? $"chunkIndex {r.ChunkIndex} is negative"
        : r.FirstSlice < 0 ? $"firstSlice {r.FirstSlice} is negative"
        : r.SliceCount < 1 ? $"sliceCount {r.SliceCount} is not positive"
        : (long)r.FirstSlice + r.SliceCount > int.MaxValue ? $"slices {r.FirstSlice} + {r.SliceCount} overflow a slice index"
        : null;

    private async Task<ScoredChunk> ScoreAsync(ChunkRequest request, StudyRecheck recheck, CancellationToken cancellationToken)
    {
        var reader = await TileSeriesReader.OpenAsync(containers.Get(PipelineNames.SlicesContainer), request.TilesPrefix, cancellationToken).ConfigureAwait(false);
        var manifest = reader.Manifest;
        if (manifest.PreprocessingId != models.Manifest.Preprocessing)
        {
            throw new UnscorableChunkException($"the tiles need preprocessing '{manifest.PreprocessingId}', the models take '{models.Manifest.Preprocessing}'");
        }

        if (request.FirstSlice + request.SliceCount > manifest.SliceCount)
        {
            throw new UnscorableChunkException(string.Create(CultureInfo.InvariantCulture,
                $"slices {request.FirstSlice}-{request.FirstSlice + request.SliceCount - 1} are outside the series of {manifest.SliceCount} slices"));
        }

        // All of the chunk's slices at once, so each tile file is read (and hash-checked) once; a 32-slice chunk of
        // 512×512 slices holds about 50 MB here. The model sees them in batches of BatchSize.
        var slices = await TileSlices.ReadAsync(reader, Enumerable.Range(request.FirstSlice, request.SliceCount), cancellationToken).ConfigureAwait(false);
        var spacing = LungRestriction.SpacingOrAssumed(
            manifest.PixelSpacing is [var rowSpacing, _] ? rowSpacing : null,
            manifest.PixelSpacing is [_, var columnSpacing] ? columnSpacing : null,
            manifest.Columns,
            manifest.Rows);
        var scores = new List<SliceScore>(request.SliceCount);
        var files = new List<ResultFile>();
        var batches = (slices.Count + _batchSize - 1) / _batchSize;
        recheck.Batches = batches;
        for (var first = 0; first < slices.Count; first += _batchSize)
        {
            // A model run is synchronous and cannot stop half-way, so the host's stop is honoured between batches. A
            // slice without lesions awaits nothing that looks at the token, and without this check a chunk cancelled at
            // the scorer's drain timeout ran all its batches (4 runs for 32 slices at batch 8, tens of seconds on CPU)
            // past the host's shutdown slack, only to throw when storing its results.
            cancellationToken.ThrowIfCancellationRequested();

            // So is the study's end (failed on another chunk or its timeout, or completed by a copy of this chunk):
            // without this a chunk whose study failed while it ran still spent every batch on the GPU.
            recheck.BatchesRun = first / _batchSize;
            await recheck.ThrowIfSettledAsync(force: false, cancellationToken).ConfigureAwait(false);
            var batchSlices = slices.Skip(first).Take(_batchSize).ToList();
            var batch = LungPreprocessor.ToTensor([.. batchSlices.Select(s => s.Image)]);
            var predictions = models.Predict(batch.Tensor, batch.Count);
            for (var n = 0; n < batchSlices.Count; n++)
            {
                scores.Add(ScoreSlice(request, batchSlices[n], predictions[n], batch.Boxes[n], spacing, files));
            }
        }

        recheck.BatchesRun = batches;
        return new ScoredChunk(scores, files);
    }

    /// <summary>
    /// One slice's score; its mask and overlay PNGs (slices with lesions) are added to <paramref name="files"/>, to be
    /// written once the chunk is scored and its study still running (at most about 13 MB for 32 lesion slices of 512²).
    /// </summary>
    private SliceScore ScoreSlice(ChunkRequest request, TileSlice slice, SlicePrediction prediction, LetterboxBox box, (double Row, double Column) spacing, List<ResultFile> files)
    {
        var image = slice.Image;

        // Slices with HU: lesion output kept inside the (dilated) lungs, the same step as `covidfn segment` on a
        // series, so masks, overlays, the lesion fraction, the burden numerator and the ranking key agree. The
        // undilated lung estimate (plus the lesion) is the burden's denominator. Kind "unit" (2-D research images, no
        // HU): the denominator is the model's letterbox box, which maps to the whole source image.
        var (lung, region) = slice.Hu is { } hu
            ? LungRestriction.LungAndRegion(hu, image.Width, image.Height, spacing.Row, spacing.Column, models.RestrictLesionsToLungs)
            : ([], null);
        var output = LungRestriction.Apply(slice.SliceIndex, prediction, box, image.Height, image.Width, models.LesionThreshold, region);
        var summary = output.Summary;
        var mask = output.Mask;
        var (lesionPixels, lungPixels) = LungRestriction.LesionAndLungArea(mask, lung);

        string? overlayPath = null, maskPath = null;
        if (lesionPixels > 0)
        {
            overlayPath = OverlayPath(request.Tenant, request.StudyId, slice.SliceIndex);
            maskPath = MaskPath(request.Tenant, request.StudyId, slice.SliceIndex);
            files.Add(new ResultFile(overlayPath, OverlayRenderer.RenderOverlayPng(image, mask)));
            files.Add(new ResultFile(maskPath, MaskPng.Encode(mask, image.Width, image.Height)));
        }

        return new SliceScore(slice.SliceIndex, summary.LesionMeanProbability, summary.LesionFraction, lesionPixels, lungPixels, [.. prediction.ClassProbabilities], overlayPath, maskPath);
    }

    private Task WriteAsync(string path, byte[] content, CancellationToken cancellationToken) =>
        containers.Get(PipelineNames.ResultsContainer).WriteAsync(path, new MemoryStream(content, writable: false), cancellationToken);

    /// <summary>
    /// The longest error a chunk result carries. An exception message has no bound of its own, and a Storage-queue
    /// message holds 64 KiB after Base64 (48 KiB of text): a longer answer could not be sent, so the chunk was
    /// dead-lettered without one and its study waited out every re-dispatch instead of failing with the cause.
    /// </summary>
    public const int MaxErrorLength = 4000;

    private Task SendResultAsync(ChunkRequest request, string? resultPath, double seconds, string? error, CancellationToken cancellationToken)
    {
        error = error is { Length: > MaxErrorLength } ? error[..(MaxErrorLength - 1)] + "…" : error;
        var result = new ChunkResult(request.Tenant, request.StudyId, request.OrchestrationId, request.ChunkIndex, request.Attempt, request.SliceCount, resultPath, seconds, models.Provider, error);
        return sender.SendAsync(PipelineNames.SliceResultsQueue, new QueueMessage(result.MessageId, PipelineJson.Serialize(result)), cancellationToken);
    }

    /// <summary>A chunk that no retry can score (its tiles do not fit the request or the models).</summary>
    private sealed class UnscorableChunkException(string message) : Exception(message);

    /// <summary>The chunk's study settled while the chunk was being scored: stop, store nothing, answer nothing.</summary>
    private sealed class StudySettledException(string status, int batchesRun, int batches)
        : Exception($"the study is already {status}")
    {
        public string Status { get; } = status;

        public int BatchesRun { get; } = batchesRun;

        public int Batches { get; } = batches;
    }

    /// <summary>A result PNG of a slice, written after the chunk's last check of its study.</summary>
    private sealed record ResultFile(string Path, byte[] Content);

    private sealed record ScoredChunk(IReadOnlyList<SliceScore> Scores, IReadOnlyList<ResultFile> Files);

    /// <summary>
    /// Re-reads the study's row while its chunk is scored: before a model batch once
    /// <see cref="StudyRecheckInterval"/> has passed since the last read, and always before the chunk's results are
    /// stored. Never per slice. Without a Studies store, or when a read fails, the chunk goes on (as before scoring).
    /// </summary>
    private sealed class StudyRecheck(ScoringHandler handler, ChunkRequest request, TimeSpan interval)
    {
        // The read before scoring (SettledStatusAsync) has just been made.
        private readonly Stopwatch _sinceRead = Stopwatch.StartNew();

        /// <summary>The chunk's model batches, and how many have run (for the log line when it stops).</summary>
        public int Batches { get; set; }

        public int BatchesRun { get; set; }

        public async Task ThrowIfSettledAsync(bool force, CancellationToken cancellationToken)
        {
            if (handler._studies is null || (!force && _sinceRead.Elapsed < interval))
            {
                return;
            }

            var status = await handler.SettledStatusAsync(request, cancellationToken).ConfigureAwait(false);
            _sinceRead.Restart();
            if (status is not null)
            {
                throw new StudySettledException(status, BatchesRun, Batches);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2201, Level = LogLevel.Warning, Message = "Chunk request {MessageId} is malformed: {Reason}")]
        public static partial void Malformed(ILogger logger, string messageId, string reason);

        [LoggerMessage(EventId = 2202, Level = LogLevel.Warning, Message = "Study {Tenant}/{StudyId} chunk {Chunk} cannot be scored: {Error}")]
        public static partial void Unscorable(ILogger logger, string tenant, string studyId, int chunk, string error);

        [LoggerMessage(EventId = 2204, Level = LogLevel.Error, Message = "Study {Tenant}/{StudyId} chunk {Chunk} failed on its last delivery ({Deliveries}): {Type}: {Error}; answered with an error result and dead-lettered")]
        public static partial void GaveUp(ILogger logger, string tenant, string studyId, int chunk, int deliveries, string type, string error);

        [LoggerMessage(EventId = 2205, Level = LogLevel.Information, Message = "Study {Tenant}/{StudyId} chunk {Chunk} (attempt {Attempt}) not scored: the study is already {Status}")]
        public static partial void SkippedSettled(ILogger logger, string tenant, string studyId, int chunk, int attempt, string status);

        [LoggerMessage(EventId = 2207, Level = LogLevel.Information, Message = "Study {Tenant}/{StudyId} chunk {Chunk} (attempt {Attempt}) stopped after {BatchesRun} of {Batches} model batch(es) ({Seconds:0.00} s): the study is already {Status}; nothing stored or sent")]
        public static partial void StoppedSettled(ILogger logger, string tenant, string studyId, int chunk, int attempt, string status, int batchesRun, int batches, double seconds);

        // The exception type only: a storage message could name the account's URLs; the chunk is scored anyway.
        [LoggerMessage(EventId = 2206, Level = LogLevel.Debug, Message = "Study {Tenant}/{StudyId}: its row could not be read ({Type}); taken as not settled (the chunk is scored, or its dead-letter answered)")]
        public static partial void StatusUnread(ILogger logger, string tenant, string studyId, string type);

        [LoggerMessage(EventId = 2203, Level = LogLevel.Information, Message = "Study {Tenant}/{StudyId} chunk {Chunk} (attempt {Attempt}): {Slices} slices scored in {Seconds:0.00} s on {Device}")]
        public static partial void Scored(ILogger logger, string tenant, string studyId, int chunk, int attempt, int slices, double seconds, string device);
    }
}
