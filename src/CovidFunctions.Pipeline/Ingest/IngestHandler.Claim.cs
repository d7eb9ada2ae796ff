using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Ingest;

/// <summary>
/// The ingest claim: which attempt may ingest a study not yet ingested (<see cref="StudyRecord.IngestClaim"/>). The blob
/// trigger, its retries, the minute sweep (which plans every closed folder still in <c>ct-uploads</c>) and the local
/// watcher can all hand ingest the same upload at once, on several instances. The write that counts an attempt takes
/// the claim, compare-and-swap on the row's ETag, only when no live claim is there; a delivery that finds one leaves
/// the study to its holder (<see cref="IngestStatus.InProgress"/>). The holder renews it while it runs and releases it
/// when it ends (ingested, rejected, failed, or a failed attempt whose delivery is retried). A holder that dies stops
/// renewing: its claim expires after <see cref="IngestClaimLease"/>, and the next delivery takes the study over and
/// counts its own attempt, so nothing waits on a dead process for longer than that.
/// </summary>
public sealed partial class IngestHandler
{
    /// <summary>How long a claim lives without renewal: the longest a study waits after its ingesting process died.</summary>
    public static readonly TimeSpan IngestClaimLease = TimeSpan.FromMinutes(2);

    /// <summary>How often a running attempt renews its claim (a quarter of the lease: three renewals may fail in a row).</summary>
    public static readonly TimeSpan IngestClaimRenewal = TimeSpan.FromSeconds(30);

    /// <summary>The reason code of an <see cref="IngestStatus.InProgress"/> outcome.</summary>
    public const string InProgressReason = "ingest-in-progress";

    /// <summary>
    /// The reason code of an <see cref="IngestStatus.InProgress"/> outcome of a handler without a notifier that left a new
    /// upload in place because its study still owes an event (<see cref="StudyRecord.EventOwed"/>): nothing was done or
    /// counted; a host that sends webhooks sends the event and then ingests the upload.
    /// </summary>
    public const string EventOwedReason = "event-owed";

    /// <summary>
    /// The expiry of the live claim another attempt holds on <paramref name="row"/> at <paramref name="now"/>, or null.
    /// A claim only counts on a study still being ingested (<c>processing</c>, not ingested); a settled or ingested row's
    /// leftover claim holds nothing.
    /// </summary>
    internal static DateTimeOffset? LiveClaim(StudyRecord? row, DateTimeOffset now) =>
        row is { Status: StudyStatus.Processing, IngestedAt: null, IngestClaim: not null, IngestClaimExpiresAt: { } until } && until > now ? until : null;

    /// <summary>The row with the claim released when <paramref name="token"/> holds it (another holder's is left).</summary>
    private static StudyRecord Released(StudyRecord row, string token) =>
        row.IngestClaim == token ? row with { IngestClaim = null, IngestClaimExpiresAt = null } : row;

    private IngestOutcome ClaimedElsewhere(UploadUnit unit, DateTimeOffset until)
    {
        Log.ClaimedElsewhere(_logger, unit.Tenant, unit.StudyId, until);
        return new IngestOutcome(unit.Tenant, unit.StudyId, IngestStatus.InProgress, 0, false, InProgressReason,
            $"upload {unit.UploadPath}: another ingest attempt holds study {unit.StudyId} (its claim runs to {until:O} unless renewed); it was left to that attempt");
    }

    /// <summary>
    /// Renews an attempt's claim every <see cref="IngestClaimRenewal"/> until stopped. When the row shows another holder
    /// (this process stalled past the lease, and another delivery took the study over), <see cref="Token"/> is cancelled
    /// and <see cref="Lost"/> set: the attempt stops and records nothing, the study being the new holder's. A renewal
    /// storage refuses is tried again at the next interval (the attempt's own writes meet the same storage).
    /// </summary>
    private sealed class ClaimRenewal : IAsyncDisposable
    {
        private readonly IngestHandler _handler;
        private readonly UploadUnit _unit;
        private readonly string _claim;
        private readonly CancellationTokenSource _attempt;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;
        private volatile bool _lost;

        public ClaimRenewal(IngestHandler handler, UploadUnit unit, string claim, CancellationToken cancellationToken)
        {
            _handler = handler;
            _unit = unit;
            _claim = claim;
            _attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            _loop = Task.Run(RenewAsync, CancellationToken.None);
        }

        /// <summary>The attempt's token: the caller's, and cancelled when the claim is lost.</summary>
        public CancellationToken Token => _attempt.Token;

        /// <summary>True once another attempt took the study over.</summary>
        public bool Lost => _lost;

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync().ConfigureAwait(false);
            await _loop.ConfigureAwait(false);
            _stop.Dispose();
            _attempt.Dispose();
        }

        private async Task RenewAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(IngestClaimRenewal, _handler._time, _stop.Token).ConfigureAwait(false);
                    await _handler._studies.UpdateAsync(_unit.Tenant, _unit.StudyId, row => row?.IngestClaim switch
                    {
                        { } holder when holder != _claim => throw new ClaimLostException(),
                        { } when row is { Status: StudyStatus.Processing, IngestedAt: null } => row with { IngestClaimExpiresAt = _handler._time.GetUtcNow() + IngestClaimLease },
                        _ => throw new ClaimEndedException(),
                    }, _stop.Token).ConfigureAwait(false);
                }
                catch (ClaimEndedException)
                {
                    // Released by the attempt's own last write (ingested, rejected, failed): nothing left to renew.
                    return;
                }
                catch (ClaimLostException)
                {
                    _lost = true;
                    Log.ClaimLost(_handler._logger, _unit.Tenant, _unit.StudyId);
                    await _attempt.CancelAsync().ConfigureAwait(false);
                    return;
                }
                catch (Exception) when (_stop.IsCancellationRequested)
                {
                    // Stopped (the attempt ended), whatever the interrupted call threw.
                    return;
                }
                catch (Exception ex) when (!_stop.IsCancellationRequested)
                {
                    // Storage refused or timed out (an SDK timeout is a cancellation too): tried again next interval; the
                    // loop never ends on a fault, so stopping it never throws into the attempt's own outcome.
                    Log.ClaimNotRenewed(_handler._logger, _unit.Tenant, _unit.StudyId, ex.GetType().Name);
                }
            }
        }
    }

    /// <summary>Thrown out of the attempt's counting write when another attempt holds a live claim on the study.</summary>
    private sealed class ClaimHeldException(DateTimeOffset until) : Exception("another ingest attempt holds the study")
    {
        public DateTimeOffset Until { get; } = until;
    }

    /// <summary>Thrown out of the attempt's counting write when another attempt ingested the study since it was read.</summary>
    private sealed class IngestedMeanwhileException() : Exception("the study was ingested by another attempt");

    /// <summary>Thrown out of a renewal when another attempt holds the claim now.</summary>
    private sealed class ClaimLostException() : Exception("another ingest attempt took the study over");

    /// <summary>Thrown out of a renewal when the claim was released (the attempt's outcome is written).</summary>
    private sealed class ClaimEndedException() : Exception("the ingest claim was released");
}
