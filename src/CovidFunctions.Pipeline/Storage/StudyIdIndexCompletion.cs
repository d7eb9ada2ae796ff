using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Storage;

/// <summary>
/// Completes the study id index (<see cref="IStudyIdIndex.CompleteTenantIndexAsync"/>: a scan of the whole Studies
/// table that writes the index entries of studies created before the index existed) in the background, so that no
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
    /// Waits <paramref name="startDelay"/>, then completes the index, retrying failures; returns how many index entries
    /// it wrote (0 when the index was complete or the store has none, or when <paramref name="cancellationToken"/>
    /// stopped it first: it never throws for that).
    /// </summary>
    public async Task<int> RunAsync(TimeSpan startDelay, CancellationToken cancellationToken)
    {
        if (studies is not IStudyIdIndex index)
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
                    if (await index.IsTenantIndexCompleteAsync(cancellationToken).ConfigureAwait(false))
                    {
                        return 0;
                    }

                    var started = time.GetTimestamp();
                    var written = await index.CompleteTenantIndexAsync(cancellationToken).ConfigureAwait(false);
                    Log.Completed(logger, written, time.GetElapsedTime(started).TotalSeconds);
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

        [LoggerMessage(EventId = 7102, Level = LogLevel.Warning, Message = "Study id index not completed ({Error}: {Message}); lookups by id alone read each tenant meanwhile; retried in {Minutes} min")]
        public static partial void Failed(ILogger logger, string error, string message, double minutes);
    }
}
