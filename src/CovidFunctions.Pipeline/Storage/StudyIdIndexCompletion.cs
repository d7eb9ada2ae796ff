using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Storage;

/// <summary>
/// Completes the study id index (<see cref="IStudyIdIndex.CompleteTenantIndexAsync"/>: a scan of the whole Studies
/// table that writes the index entries of studies created before the index existed), then the time-ordered list index
/// (<see cref="IStudyListIndex.CompleteListIndexAsync"/>: a second scan; until it has finished, study lists read
/// every matching study), then its status index (<see cref="IStudyListIndex.CompleteStatusIndexAsync"/>: a third scan;
/// until it has finished, lists filtered by status read every study with that status) in the background, so that no
/// request waits for it: the Function app starts it at start-up (a hosted service) and <c>covidfn up</c> when it starts.
/// Until it has finished, a lookup without an index entry reads the id in each tenant (bounded by the number of
/// tenants, <c>TableStudyStore.FindInAnyTenantAsync</c>); afterwards it is point reads only. A store without an index,
/// or one already complete (one point read), needs nothing. A failed run (storage away, a read-only credential) is
/// retried every <see cref="RetryInterval"/> until it succeeds or the host stops; each run is idempotent.
/// </summary>
public sealed partial class StudyIdIndexCompletion(IStudyStore studies, TimeProvider time, ILogger<StudyIdIndexCompletion> logger)
{
    /// <summary>Wait between failed runs.</summary>
    public static readonly TimeSpan RetryInterval = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Waits <paramref name="startDelay"/>, then completes the indexes, retrying failures; returns how many index entries
    /// it wrote (0 when they were complete or the store has none, or when <paramref name="cancellationToken"/>
    /// stopped it first: it never throws for that).
    /// </summary>
    public async Task<int> RunAsync(TimeSpan startDelay, CancellationToken cancellationToken)
    {
        var index = studies as IStudyIdIndex;
        var listIndex = studies as IStudyListIndex;
        if (index is null && listIndex is null)
        {
            return 0;
        }

        try
        {
            if (startDelay > TimeSpan.Zero)
            {
                await Task.Delay(startDelay, time, cancellationToken).ConfigureAwait(false);
            }

            while (true)
            {
                try
                {
                    var written = 0;
                    if (index is not null && !await index.IsTenantIndexCompleteAsync(cancellationToken).ConfigureAwait(false))
                    {
                        var started = time.GetTimestamp();
                        var rows = await index.CompleteTenantIndexAsync(cancellationToken).ConfigureAwait(false);
                        Log.Completed(logger, rows, time.GetElapsedTime(started).TotalSeconds);
                        written += rows;
                    }

                    if (listIndex is not null && !await listIndex.IsListIndexCompleteAsync(cancellationToken).ConfigureAwait(false))
                    {
                        var started = time.GetTimestamp();
                        var rows = await listIndex.CompleteListIndexAsync(cancellationToken).ConfigureAwait(false);
                        Log.ListCompleted(logger, rows, time.GetElapsedTime(started).TotalSeconds);
                        written += rows;
                    }

                    if (listIndex is not null && !await listIndex.IsStatusIndexCompleteAsync(cancellationToken).ConfigureAwait(false))
                    {
                        var started = time.GetTimestamp();
                        var rows = await listIndex.CompleteStatusIndexAsync(cancellationToken).ConfigureAwait(false);
                        Log.StatusCompleted(logger, rows, time.GetElapsedTime(started).TotalSeconds);
                        written += rows;
                    }

                    return written;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Log.Failed(logger, ex.GetType().Name, ex.Message, RetryInterval.TotalMinutes);
                }

                await Task.Delay(RetryInterval, time, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The host stops: the next start runs it again (it is idempotent).
            return 0;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 7101, Level = LogLevel.Information, Message = "Study id index complete: {Written} index rows written for studies created before the index, in {Seconds:0.0} s; lookups by id alone are point reads from now on")]
        public static partial void Completed(ILogger logger, int written, double seconds);

        [LoggerMessage(EventId = 7103, Level = LogLevel.Information, Message = "Studies list index complete: {Written} list index rows written, in {Seconds:0.0} s; study lists read about a page of rows from now on")]
        public static partial void ListCompleted(ILogger logger, int written, double seconds);

        [LoggerMessage(EventId = 7104, Level = LogLevel.Information, Message = "Studies status index complete: {Written} status index rows written, in {Seconds:0.0} s; study lists filtered by status read about a page of rows from now on")]
        public static partial void StatusCompleted(ILogger logger, int written, double seconds);

        [LoggerMessage(EventId = 7102, Level = LogLevel.Warning, Message = "Study id or list index not completed ({Error}: {Message}); lookups by id alone read each tenant and lists read every matching study meanwhile; retried in {Minutes} min")]
        public static partial void Failed(ILogger logger, string error, string message, double minutes);
    }
}
