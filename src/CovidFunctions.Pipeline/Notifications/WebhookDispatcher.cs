using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Notifications;

/// <summary>
/// Makes ONE attempt of a claimed delivery (a signed POST with the per-attempt timeout) and stores the delivery's
/// next state, so the caller (the notify activity, or the <see cref="WebhookRetryHandler"/>) returns at once instead
/// of waiting out a backoff. 5xx, timeouts, connection failures, 408 and 429 are retryable: the delivery stays
/// pending with its attempt count and the time its next attempt is due (exponential backoff with jitter from
/// <see cref="WebhookOptions.BaseRetryDelay"/>, a receiver's Retry-After honoured, both capped at
/// <see cref="WebhookOptions.MaxRetryDelay"/>) until <see cref="WebhookOptions.MaxRetries"/> retries are spent (a host
/// that does not resolve at the attempt is retried too); then,
/// or at once for any other 4xx, a 3xx (redirects are not followed) and a target the SSRF guard refuses, the delivery
/// is dead-lettered. Every attempt is logged.
/// </summary>
public sealed partial class WebhookDispatcher : IDisposable
{
    public const string UserAgent = "CovidFunctions-Webhooks/1";

    private readonly HttpClient _http;
    private readonly WebhookTargetGuard _guard;
    private readonly IWebhookDeliveryLog _log;
    private readonly WebhookOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<WebhookDispatcher> _logger;

    public WebhookDispatcher(WebhookTargetGuard guard, IWebhookDeliveryLog log, WebhookOptions options, TimeProvider time, ILogger<WebhookDispatcher> logger)
    {
        _guard = guard ?? throw new ArgumentNullException(nameof(guard));
        _log = log ?? throw new ArgumentNullException(nameof(log));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _time = time ?? throw new ArgumentNullException(nameof(time));
        _logger = logger ?? throw new ArgumentNullException(nameof(logger));
        _http = new HttpClient(guard.CreateHandler(), disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd(UserAgent);
    }

    /// <summary>
    /// Makes the next attempt of <paramref name="claim"/> (already claimed by the caller, its ETag current) and stores
    /// the outcome: delivered, dead-lettered, or (retryable, retries left, <paramref name="retry"/> true) pending with
    /// <see cref="WebhookDelivery.NextAttemptAt"/> set. <paramref name="retry"/> false ends the delivery after this
    /// attempt whatever happened (the subscription test endpoint). Returns the stored record; a pending one whose
    /// conditional write lost (another worker took the delivery over) is returned as computed, not stored.
    /// </summary>
    public Task<WebhookDelivery> DeliverAsync(
        WebhookDelivery claim,
        Uri target,
        string secret,
        string body,
        bool retry,
        CancellationToken cancellationToken) =>
        DeliverAsync(claim, target, [secret], body, retry, cancellationToken);

    /// <summary>
    /// <see cref="DeliverAsync(WebhookDelivery, Uri, string, string, bool, CancellationToken)"/> signed with each of
    /// <paramref name="secrets"/> (current first; the previous one during a rotation's overlap): one <c>v1</c> each.
    /// </summary>
    public async Task<WebhookDelivery> DeliverAsync(
        WebhookDelivery claim,
        Uri target,
        IReadOnlyList<string> secrets,
        string body,
        bool retry,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(claim);
        ArgumentNullException.ThrowIfNull(secrets);
        ArgumentNullException.ThrowIfNull(target);
        var attempt = claim.Attempts + 1;
        AttemptResult last;
        try
        {
            // The form and the resolved addresses are checked before every attempt; the connect callback checks the
            // addresses again for the connection it actually opens.
            _guard.CheckForm(target);
            await _guard.ResolveAllowedAsync(target.IdnHost, cancellationToken).ConfigureAwait(false);
            last = await SendOnceAsync(claim, target, secrets, body, attempt, cancellationToken).ConfigureAwait(false);
            await _log.RecordAttemptAsync(
                new WebhookDeliveryAttempt(claim.Tenant, claim.DeliveryId, claim.SubscriptionId, attempt, _time.GetUtcNow(), last.StatusCode, last.Outcome, last.Error, last.DurationMs),
                CancellationToken.None).ConfigureAwait(false);
            Log.Attempt(_logger, claim.DeliveryId, attempt, last.Outcome, HttpAnswer(last.StatusCode));
        }
        catch (WebhookTargetRefusedException ex) when (ex.HostUnresolved)
        {
            // A resolver timeout, SERVFAIL or the receiver's zone briefly gone: an outage like a refused connection, so
            // retried on the schedule. Before, it was refused like a private address and dead-lettered at attempt 1.
            last = new AttemptResult(null, DnsErrorOutcome, ex.Message, 0, null) { Retryable = true };
            await _log.RecordAttemptAsync(
                new WebhookDeliveryAttempt(claim.Tenant, claim.DeliveryId, claim.SubscriptionId, attempt, _time.GetUtcNow(), null, last.Outcome, last.Error, 0),
                CancellationToken.None).ConfigureAwait(false);
            Log.Attempt(_logger, claim.DeliveryId, attempt, last.Outcome, HttpAnswer(null));
        }
        catch (WebhookTargetRefusedException ex)
        {
            last = new AttemptResult(null, "refused", ex.Message, 0, null);
            await _log.RecordAttemptAsync(
                new WebhookDeliveryAttempt(claim.Tenant, claim.DeliveryId, claim.SubscriptionId, attempt, _time.GetUtcNow(), null, last.Outcome, last.Error, 0),
                CancellationToken.None).ConfigureAwait(false);
            Log.Refused(_logger, claim.DeliveryId, ex.Message);
        }

        if (retry && last.Retryable && attempt <= _options.MaxRetries)
        {
            var delay = RetryDelay(attempt, last.RetryAfter);
            var pending = claim with
            {
                Status = WebhookDeliveryStatus.Pending,
                Attempts = attempt,
                LastStatusCode = last.StatusCode,
                Error = last.Error ?? last.Outcome,
                NextAttemptAt = _time.GetUtcNow() + delay,
                Body = body,
            };
            var stored = await _log.TryReplaceAsync(pending, CancellationToken.None).ConfigureAwait(false);
            if (stored is null)
            {
                Log.LostClaim(_logger, claim.DeliveryId, attempt);
                return pending;
            }

            Log.RetryScheduled(_logger, claim.DeliveryId, attempt, delay.TotalSeconds);
            RetryScheduled?.Invoke(claim.DeliveryId, attempt, delay);
            return stored;
        }

        var delivered = last.Outcome == "delivered";
        var final = claim with
        {
            Status = delivered ? WebhookDeliveryStatus.Delivered : WebhookDeliveryStatus.DeadLettered,
            Attempts = attempt,
            LastStatusCode = last.StatusCode,
            FinishedAt = _time.GetUtcNow(),
            Error = delivered ? null : last.Error ?? last.Outcome,
            NextAttemptAt = null,
            Body = body,
        };
        await _log.CompleteAsync(final, CancellationToken.None).ConfigureAwait(false);
        if (!delivered)
        {
            Log.DeadLettered(_logger, claim.DeliveryId, claim.Tenant, claim.StudyId, claim.SubscriptionId, attempt, final.Error ?? "");
        }

        return final;
    }

    /// <summary>
    /// The wait after failed attempt <paramref name="attempt"/> (1-based): the receiver's Retry-After when it sent one,
    /// else <see cref="WebhookOptions.BaseRetryDelay"/> doubled per retry (the nominal schedule of
    /// <see cref="WebhookOptions.ScheduleSpan"/>) with ±20 % jitter; capped at <see cref="WebhookOptions.MaxRetryDelay"/>.
    /// </summary>
    public TimeSpan RetryDelay(int attempt, TimeSpan? retryAfter)
    {
        var cap = _options.MaxRetryDelay;
        if (retryAfter is { } after)
        {
            return after < cap ? after : cap;
        }

        var nominal = _options.BaseRetryDelay;
        for (var retry = 1; retry < attempt && nominal < cap; retry++)
        {
            nominal *= 2;
        }

        if (nominal > cap)
        {
            nominal = cap;
        }

        // Jitter spreads receivers' retries that failed together (an outage) so they do not all come back at once.
#pragma warning disable CA5394 // not security-sensitive randomness
        var delay = _options.UseJitter ? nominal * (0.8 + (0.4 * Random.Shared.NextDouble())) : nominal;
#pragma warning restore CA5394
        return delay < cap ? delay : cap;
    }

    /// <summary>Called with (delivery id, attempt that failed, delay before the next one) each time a retry is scheduled.</summary>
    public Action<string, int, TimeSpan>? RetryScheduled { get; set; }

    public void Dispose() => _http.Dispose();

    /// <summary>The outcome of an attempt whose target host did not resolve (retried).</summary>
    public const string DnsErrorOutcome = "dns-error";

    /// <summary>Whether an HTTP status is worth another attempt: 5xx, 408 Request Timeout, 429 Too Many Requests.</summary>
    public static bool IsRetryable(int statusCode) => statusCode >= 500 || statusCode is 408 or 429;

    private async Task<AttemptResult> SendOnceAsync(WebhookDelivery claim, Uri target, IReadOnlyList<string> secrets, string body, int attempt, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, target)
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        };
        request.Headers.Add(WebhookSignature.SignatureHeader, WebhookSignature.Sign(secrets, _time.GetUtcNow(), body));
        request.Headers.Add(WebhookSignature.DeliveryHeader, claim.DeliveryId);
        request.Headers.Add(WebhookSignature.EventHeader, claim.EventType);
        request.Headers.Add("X-CovidFunctions-Attempt", attempt.ToString(System.Globalization.CultureInfo.InvariantCulture));

        using var attemptTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        attemptTimeout.CancelAfter(_options.AttemptTimeout);
        var stopwatch = Stopwatch.StartNew();
        try
        {
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, attemptTimeout.Token).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            var elapsed = stopwatch.Elapsed.TotalMilliseconds;
            if (status is >= 200 and < 300)
            {
                return new AttemptResult(status, "delivered", null, elapsed, null);
            }

            if (IsRetryable(status))
            {
                return new AttemptResult(status, "retryable-status", $"HTTP {status}", elapsed, RetryAfter(response.Headers.RetryAfter)) { Retryable = true };
            }

            var error = status is >= 300 and < 400 ? $"HTTP {status}: redirects are not followed" : $"HTTP {status}: not retried";
            return new AttemptResult(status, "rejected-status", error, elapsed, null);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new AttemptResult(null, "timeout", $"no response within {_options.AttemptTimeout.TotalSeconds:0.###} s", stopwatch.Elapsed.TotalMilliseconds, null) { Retryable = true };
        }
        catch (HttpRequestException ex) when (FindRefusal(ex) is { HostUnresolved: true } unresolved)
        {
            // The connect callback's own resolution failed: retried, as at the check before the attempt.
            return new AttemptResult(null, DnsErrorOutcome, unresolved.Message, stopwatch.Elapsed.TotalMilliseconds, null) { Retryable = true };
        }
        catch (HttpRequestException ex) when (FindRefusal(ex) is { } refusal)
        {
            // The connect callback refused the address it resolved now (e.g. a DNS answer that changed since the check).
            return new AttemptResult(null, "refused", refusal.Message, stopwatch.Elapsed.TotalMilliseconds, null);
        }
        catch (HttpRequestException ex)
        {
            return new AttemptResult(null, "connection-error", ex.Message, stopwatch.Elapsed.TotalMilliseconds, null) { Retryable = true };
        }
    }

    private TimeSpan? RetryAfter(RetryConditionHeaderValue? header)
    {
        if (header?.Delta is { } delta)
        {
            return delta < TimeSpan.Zero ? TimeSpan.Zero : delta;
        }

        if (header?.Date is { } date)
        {
            var wait = date - _time.GetUtcNow();
            return wait < TimeSpan.Zero ? TimeSpan.Zero : wait;
        }

        return null;
    }

    private static WebhookTargetRefusedException? FindRefusal(Exception? ex)
    {
        for (; ex is not null; ex = ex.InnerException)
        {
            if (ex is WebhookTargetRefusedException refusal)
            {
                return refusal;
            }
        }

        return null;
    }

    /// <summary>
    /// An attempt's answer for the log: "HTTP 500", or "no HTTP answer" for a connection error, a timeout or a host that
    /// did not resolve (the log said "HTTP (null)" then).
    /// </summary>
    private static string HttpAnswer(int? statusCode) => statusCode is { } status ? $"HTTP {status}" : "no HTTP answer";

    /// <summary>What one attempt produced (no response object: nothing else of it is needed).</summary>
    private sealed record AttemptResult(int? StatusCode, string Outcome, string? Error, double DurationMs, TimeSpan? RetryAfter)
    {
        public bool Retryable { get; init; }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 8101, Level = LogLevel.Information, Message = "Webhook delivery {DeliveryId} attempt {Attempt}: {Outcome} ({Answer})")]
        public static partial void Attempt(ILogger logger, string deliveryId, int attempt, string outcome, string answer);

        // A dead-lettered event is never sent again and its id is a hash: the line names whose event it was, so the
        // operator can tell the receiver's owner which study it missed (docs/operations.md). Study ids are keyed hashes.
        [LoggerMessage(EventId = 8102, Level = LogLevel.Warning, Message = "Webhook delivery {DeliveryId} of study {Tenant}/{StudyId} to subscription {SubscriptionId} dead-lettered after {Attempts} attempt(s): {Error}")]
        public static partial void DeadLettered(ILogger logger, string deliveryId, string tenant, string studyId, string subscriptionId, int attempts, string error);

        [LoggerMessage(EventId = 8104, Level = LogLevel.Information, Message = "Webhook delivery {DeliveryId}: attempt {Attempt} failed, next in {DelaySeconds:0.###} s")]
        public static partial void RetryScheduled(ILogger logger, string deliveryId, int attempt, double delaySeconds);

        [LoggerMessage(EventId = 8105, Level = LogLevel.Warning, Message = "Webhook delivery {DeliveryId}: attempt {Attempt} was made, but another worker changed the delivery first; its state was not overwritten")]
        public static partial void LostClaim(ILogger logger, string deliveryId, int attempt);

        [LoggerMessage(EventId = 8103, Level = LogLevel.Warning, Message = "Webhook delivery {DeliveryId} refused by the SSRF guard: {Reason}")]
        public static partial void Refused(ILogger logger, string deliveryId, string reason);
    }
}
