using System.Collections.Concurrent;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Ingest;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Cli.LocalHost;

/// <summary>
/// The local stand-in for the blob trigger (Azurite raises no Event Grid events): polls <c>ct-uploads</c>, plans ready
/// units (<see cref="UploadUnitPlanner"/>: single blobs, folders closed by <c>.complete</c> or the stable age) and runs
/// <see cref="IngestHandler"/> for each with bounded concurrency. A unit in flight is not started twice; a unit that
/// failed is retried on a later poll (ingest is idempotent, so a unit seen again after a restart is safe). Across
/// processes (a restarted <c>up</c> finding the claim of one killed mid-ingest) the study's ingest claim decides: a unit
/// another attempt holds is looked at again on later polls, and taken over once that claim has expired.
/// </summary>
public sealed partial class UploadWatcher(IUploadListing listing, IngestHandler ingest, PipelineOptions options, StudyIdKey studyIdKey, int concurrency, ILogger logger, TimeProvider? timeProvider = null)
{
    private readonly ConcurrentDictionary<string, Task> _inFlight = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _done = new(StringComparer.Ordinal);
    private readonly TimeProvider _time = timeProvider ?? TimeProvider.System;

    /// <summary>Raised after each ingest (from a pool thread).</summary>
    public event Action<IngestOutcome>? Ingested;

    public async Task RunAsync(TimeSpan interval, CancellationToken cancellationToken)
    {
        using var gate = new SemaphoreSlim(Math.Max(1, concurrency));
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await PollAsync(gate, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                // Storage briefly away (an Azurite restart): try again on the next poll.
                Log.PollFailed(logger, ex.GetType().Name, ex.Message);
            }

            try
            {
                await Task.Delay(interval, _time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        try
        {
            await Task.WhenAll(_inFlight.Values).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Stopping: an interrupted ingest is repeated on the next start (its upload is still there).
        }
    }

    private async Task PollAsync(SemaphoreSlim gate, CancellationToken cancellationToken)
    {
        var blobs = new List<UploadBlob>();
        await foreach (var blob in listing.ListAsync(cancellationToken).ConfigureAwait(false))
        {
            blobs.Add(blob);
        }

        foreach (var unit in UploadUnitPlanner.Plan(blobs, _time.GetUtcNow(), options, studyIdKey))
        {
            var newest = unit.Blobs.Count == 0 ? DateTimeOffset.MinValue : unit.Blobs.Max(b => b.LastModified);
            if (_inFlight.ContainsKey(unit.UploadPath) || (_done.TryGetValue(unit.UploadPath, out var seen) && seen >= newest))
            {
                continue;
            }

            // Recorded before it starts: IngestOneAsync removes its entry when it ends, and one that ended before a
            // store made after Task.Run (a unit held elsewhere answers after one table read) would leave a finished
            // task in the map for good, and the unit would never be looked at again in this run.
            var run = new Task<Task>(() => IngestOneAsync(unit, newest, gate, cancellationToken), CancellationToken.None);
            _inFlight[unit.UploadPath] = run.Unwrap();
            run.Start(TaskScheduler.Default);
        }
    }

    private async Task IngestOneAsync(UploadUnit unit, DateTimeOffset newest, SemaphoreSlim gate, CancellationToken cancellationToken)
    {
        try
        {
            await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                var outcome = await ingest.IngestAsync(unit, cancellationToken).ConfigureAwait(false);

                // Held by another attempt: a covidfn up killed mid-ingest (its claim runs out within
                // IngestHandler.IngestClaimLease) or another process on the same storage. Not done: the next poll looks
                // again and takes the study over once the claim has expired.
                if (outcome.Status == IngestStatus.InProgress)
                {
                    Log.UnitHeldElsewhere(logger, UploadNames.LoggableTenant(unit), outcome.StudyId);
                    return;
                }

                _done[unit.UploadPath] = newest;
                Log.UnitIngested(logger, UploadNames.LoggableTenant(unit), outcome.StudyId, outcome.Status.ToString(), outcome.Reason ?? "-");
                Ingested?.Invoke(outcome);
            }
            finally
            {
                gate.Release();
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopping.
        }
        catch (Exception ex)
        {
            // Exception messages can name the upload's blobs or their temporary copies: masked like every ingest log line.
            Log.IngestFailed(logger, UploadNames.LoggableTenant(unit), unit.StudyId, ex.GetType().Name, UploadNames.Mask(ex.Message, unit));
        }
        finally
        {
            _inFlight.TryRemove(unit.UploadPath, out _);
        }
    }

    // The Function app's ingest events are 4101-4107 (IngestFunctions). 4102 is the same event in both hosts on purpose:
    // one upload's ingest outcome, so one query finds it wherever the upload was ingested. The watcher's other events
    // mean something else there, so they take 4111-4114.
    private static partial class Log
    {
        [LoggerMessage(EventId = 4111, Level = LogLevel.Warning, Message = "Listing ct-uploads failed ({Type}: {Message}); retrying")]
        public static partial void PollFailed(ILogger logger, string type, string message);

        // Upload paths are chosen by the uploader and may carry patient names; logs leave the tenant (Application
        // Insights), so they name the study by its pseudonymous id (a hash of tenant and path) instead.
        [LoggerMessage(EventId = 4102, Level = LogLevel.Information, Message = "Upload of study {Tenant}/{StudyId}: {Status} ({Reason})")]
        public static partial void UnitIngested(ILogger logger, string tenant, string studyId, string status, string reason);

        [LoggerMessage(EventId = 4113, Level = LogLevel.Warning, Message = "Ingest of study {Tenant}/{StudyId} failed ({Type}: {Message}); it is retried on a later poll")]
        public static partial void IngestFailed(ILogger logger, string tenant, string studyId, string type, string message);

        [LoggerMessage(EventId = 4114, Level = LogLevel.Information, Message = "Upload of study {Tenant}/{StudyId}: another ingest attempt holds it (an earlier covidfn up that stopped mid-ingest, or another process); looked at again on a later poll")]
        public static partial void UnitHeldElsewhere(ILogger logger, string tenant, string studyId);
    }
}
