using Azure;
using Azure.Storage.Blobs;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Orchestration;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CovidFunctions.FunctionApp.Functions;

/// <summary>
/// Ingest (flow step 1) in Azure. A blob created in <c>ct-uploads</c> arrives through Event Grid (the only blob
/// trigger Flex Consumption supports): a single upload (<c>{tenant}/{name}</c>) is ingested at once; a folder upload
/// is ingested when its <c>.complete</c> marker arrives, or by the minute timer once no blob arrived in it for
/// <see cref="PipelineOptions.FolderStableAge"/>. An hourly timer deletes raw uploads whose retention is over.
/// Each function plans with <see cref="UploadUnitPlanner"/> and hands the unit to <see cref="IngestHandler"/>, which
/// is idempotent per unit (re-deliveries start no second orchestration). The trigger and the sweep meet the same
/// uploads (the sweep plans every closed folder still in <c>ct-uploads</c>, the marker's trigger ingests it too): the
/// study's ingest claim lets one attempt run at a time across deliveries and instances, and the other answers
/// <see cref="IngestStatus.InProgress"/> without counting an attempt (docs/design/failure-semantics.md).
/// </summary>
public sealed partial class IngestFunctions(
    IServiceProvider services,
    IUploadListing uploads,
    IOptions<PipelineOptions> options,
    StudyIdKey studyIdKey,
    TimeProvider time,
    ILogger<IngestFunctions> logger)
{
    public const string IngestUploadName = "IngestUpload";
    public const string SweepFolderUploadsName = "SweepFolderUploads";
    public const string SweepUploadRetentionName = "SweepUploadRetention";

    /// <summary>
    /// How long one invocation may run: host.json's <c>functionTimeout</c> (SweepBudgetTests keeps the two equal).
    /// The minute sweep starts a unit only while the time it has spent plus one attempt's limit
    /// (<see cref="PipelineOptions.IngestTimeLimit"/>) stays within it.
    /// </summary>
    public static readonly TimeSpan InvocationBudget = TimeSpan.FromMinutes(60);

    [Function(IngestUploadName)]
    public async Task IngestUpload(
        [BlobTrigger(PipelineNames.UploadsContainer + "/{name}", Source = BlobTriggerSource.EventGrid, Connection = FunctionAppSettings.StorageConnection)] BlobClient blob,
        string name,
        [DurableClient] DurableTaskClient durableClient,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(blob);
        ArgumentNullException.ThrowIfNull(name);
        var handler = CreateHandler(durableClient);
        UploadBlob uploaded;
        try
        {
            var properties = (await blob.GetPropertiesAsync(cancellationToken: cancellationToken).ConfigureAwait(false)).Value;
            // The version (ETag) lets ingest tell a re-delivered event from the blob written again under its name.
            uploaded = new UploadBlob(name, properties.LastModified, properties.ContentLength, AzureBlobStore.VersionOf(properties.ETag));
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            // A re-delivered event for an upload already ingested and deleted (retention zero): the handler knows the
            // study from its deterministic id and only re-checks the orchestration.
            uploaded = new UploadBlob(name, time.GetUtcNow(), 0);
        }
        catch (RequestFailedException ex)
        {
            // Its message can quote the request, whose URL holds the blob path (see IngestFailedException).
            throw new IngestFailedException($"ingest could not read an upload's properties: {ex.GetType().FullName}: status {ex.Status} {ex.ErrorCode}");
        }

        var unit = UploadUnitPlanner.ForSingleBlob(uploaded, studyIdKey);
        if (unit is null)
        {
            // A blob inside a folder: only the marker closes the folder here; other blobs wait for it or for the timer.
            if (!name.EndsWith("/" + PipelineNames.CompleteMarker, StringComparison.Ordinal))
            {
                Log.FolderBlobWaiting(logger);
                return;
            }

            var folder = name[..^PipelineNames.CompleteMarker.Length];
            var blobs = new List<UploadBlob>();
            await foreach (var upload in uploads.ListAsync(cancellationToken).ConfigureAwait(false))
            {
                if (upload.Path.StartsWith(folder, StringComparison.Ordinal))
                {
                    blobs.Add(upload);
                }
            }

            unit = UploadUnitPlanner.Plan(blobs, time.GetUtcNow(), options.Value, studyIdKey).SingleOrDefault(u => u.UploadPath == folder);
            if (unit is null)
            {
                return;
            }
        }

        var outcome = await IngestAsync(handler, unit, cancellationToken).ConfigureAwait(false);
        Log.Ingested(logger, UploadNames.LoggableTenant(unit), outcome.StudyId, outcome.Status, outcome.Reason ?? "-");
    }

    /// <summary>
    /// Closes folder uploads without a marker once they are stable (the rule the local watcher applies too), and ingests
    /// the single-blob uploads the Event Grid trigger has not: a blob directly under <c>{tenant}/</c> written at least
    /// <see cref="PipelineOptions.SingleUploadSweepAge"/> ago whose study ingest never recorded
    /// (<see cref="IngestHandler.SweepMustIngestAsync"/>: one Studies point read per such blob). Before, the sweep planned
    /// folders only: a single blob whose event Event Grid gave up on (24 h, then <c>eventgrid-deadletter</c>) was never
    /// ingested, and the lifecycle rule deleted it after <c>uploadRetentionDays</c> with no row, reject or webhook.
    /// </summary>
    [Function(SweepFolderUploadsName)]
    public async Task SweepFolderUploads(
        [TimerTrigger("0 * * * * *")] TimerInfo timer,
        [DurableClient] DurableTaskClient durableClient,
        CancellationToken cancellationToken)
    {
        var blobs = new List<UploadBlob>();
        await foreach (var upload in uploads.ListAsync(cancellationToken).ConfigureAwait(false))
        {
            blobs.Add(upload);
        }

        var handler = CreateHandler(durableClient);
        var ingested = 0;
        var singlesIngested = 0;
        var failures = new List<IngestFailedException>();
        var now = time.GetUtcNow();
        var units = UploadUnitPlanner.PlanSweep(blobs, now, options.Value, studyIdKey);
        // The units are ingested one after another inside this one invocation: two large folders closed in the same minute
        // could add up past functionTimeout, and the host's cut is a cancellation, which ingest does not count (the cut
        // attempt repeated every minute until the watchdog). So a unit is started only while one more attempt at its
        // limit still ends inside the budget; the rest wait for the next minute's sweep (the first unit always starts).
        // Without a limit (0) an attempt may take the whole budget: one unit per invocation.
        var perAttempt = options.Value.IngestTimeLimit > TimeSpan.Zero ? options.Value.IngestTimeLimit : InvocationBudget;
        var left = 0;
        for (var i = 0; i < units.Count; i++)
        {
            var unit = units[i];
            if (i > 0 && time.GetUtcNow() - now + perAttempt > InvocationBudget)
            {
                left = units.Count - i;
                Log.SweepBudgetSpent(logger, left, time.GetUtcNow() - now, perAttempt, InvocationBudget);
                break;
            }

            // One upload failing (storage, a decoder bug) must not hold back the uploads after it until it is fixed:
            // each is tried, and the failures are thrown together at the end, so the invocation still fails.
            try
            {
                if (unit.Kind == UploadUnitKind.SingleBlob && !await MustIngestAsync(handler, unit, cancellationToken).ConfigureAwait(false))
                {
                    continue;
                }

                // A study another attempt holds (the marker's trigger, a retry, another instance's sweep) is left to it:
                // the handler took no attempt and counted none.
                var outcome = await IngestAsync(handler, unit, cancellationToken).ConfigureAwait(false);
                if (outcome.Status is not (IngestStatus.AlreadyIngested or IngestStatus.InProgress))
                {
                    ingested++;
                    if (unit.Kind == UploadUnitKind.SingleBlob)
                    {
                        // Each is an upload its trigger missed: worth a warning, the dead-lettered event names the blob.
                        singlesIngested++;
                        Log.SingleUploadSwept(logger, UploadNames.LoggableTenant(unit), outcome.StudyId, outcome.Status, outcome.Reason ?? "-");
                    }
                }
            }
            catch (IngestFailedException ex)
            {
                Log.FolderFailed(logger, UploadNames.LoggableTenant(unit), unit.StudyId, ex.Message);
                failures.Add(ex);
            }
        }

        Log.FoldersSwept(logger, ingested - singlesIngested, singlesIngested);
        if (failures.Count > 0)
        {
            // The inner exceptions name each study and mask the upload's names (IngestFailedException).
            throw new AggregateException($"upload sweep: {failures.Count} of {units.Count} upload(s) failed ingest; the others were swept" + (left > 0 ? $" ({left} left for the next sweep)" : string.Empty), failures);
        }
    }

    /// <summary>Deletes raw uploads whose de-identified outputs are stored and whose retention is over.</summary>
    [Function(SweepUploadRetentionName)]
    public async Task SweepUploadRetention(
        [TimerTrigger("0 0 * * * *")] TimerInfo timer,
        [DurableClient] DurableTaskClient durableClient,
        CancellationToken cancellationToken)
    {
        var deleted = await CreateHandler(durableClient).SweepExpiredUploadsAsync(time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
        Log.RetentionSwept(logger, deleted);
    }

    /// <summary>Ingests the unit; a failure is rethrown as <see cref="IngestFailedException"/> (the host logs it whole).</summary>
    private static async Task<IngestOutcome> IngestAsync(IngestHandler handler, UploadUnit unit, CancellationToken cancellationToken)
    {
        try
        {
            return await handler.IngestAsync(unit, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            throw IngestFailedException.For(unit, ex);
        }
    }

    /// <summary>The sweep's Studies check of a single blob; a failure is rethrown as <see cref="IngestFailedException"/> like ingest's.</summary>
    private static async Task<bool> MustIngestAsync(IngestHandler handler, UploadUnit unit, CancellationToken cancellationToken)
    {
        try
        {
            return await handler.SweepMustIngestAsync(unit, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            throw IngestFailedException.For(unit, ex);
        }
    }

    private IngestHandler CreateHandler(DurableTaskClient durableClient) =>
        ActivatorUtilities.CreateInstance<IngestHandler>(services, (IStudyOrchestrationClient)new DurableStudyOrchestrationClient(durableClient));

    private static partial class Log
    {
        // Upload paths are chosen by the uploader and may carry patient names; logs leave the tenant (Application
        // Insights), so they name the study by its pseudonymous id (a hash of tenant and path) instead.
        [LoggerMessage(EventId = 4101, Level = LogLevel.Debug, Message = "A blob of a folder upload arrived: it is ingested with its folder")]
        public static partial void FolderBlobWaiting(ILogger logger);

        // covidfn's UploadWatcher logs the same outcome under the same id on purpose; its other events take 4111-4114.
        [LoggerMessage(EventId = 4102, Level = LogLevel.Information, Message = "Upload of study {Tenant}/{StudyId}: {Status} ({Reason})")]
        public static partial void Ingested(ILogger logger, string tenant, string studyId, IngestStatus status, string reason);

        [LoggerMessage(EventId = 4103, Level = LogLevel.Information, Message = "Upload sweep ingested {Count} folder upload(s) and {SingleCount} single-blob upload(s) their trigger had not")]
        public static partial void FoldersSwept(ILogger logger, int count, int singleCount);

        [LoggerMessage(EventId = 4104, Level = LogLevel.Information, Message = "Retention sweep deleted the uploads of {Count} study(ies)")]
        public static partial void RetentionSwept(ILogger logger, int count);

        [LoggerMessage(EventId = 4105, Level = LogLevel.Error, Message = "Upload sweep: the upload of study {Tenant}/{StudyId} failed ingest, the sweep goes on with the others: {Error}")]
        public static partial void FolderFailed(ILogger logger, string tenant, string studyId, string error);

        [LoggerMessage(EventId = 4106, Level = LogLevel.Warning, Message = "Upload sweep: the single-blob upload of study {Tenant}/{StudyId} had not been ingested by its Event Grid trigger (event lost or dead-lettered); ingested now: {Status} ({Reason})")]
        public static partial void SingleUploadSwept(ILogger logger, string tenant, string studyId, IngestStatus status, string reason);

        [LoggerMessage(EventId = 4107, Level = LogLevel.Information, Message = "Upload sweep: {Left} upload(s) left for the next sweep: {Spent} spent, and one more attempt may take {PerAttempt} (Pipeline:IngestTimeLimit), past the invocation's {Budget}")]
        public static partial void SweepBudgetSpent(ILogger logger, int left, TimeSpan spent, TimeSpan perAttempt, TimeSpan budget);
    }
}
