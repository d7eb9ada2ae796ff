using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;

namespace CovidFunctions.Pipeline.Notifications;

/// <summary>
/// Sends one claimed delivery: a signed POST per attempt, retried with exponential backoff and jitter (Polly) on 5xx,
/// timeouts, connection failures, 408 and 429 (a Retry-After is honoured, capped at
/// <see cref="WebhookOptions.MaxRetryDelay"/>); any other 4xx, a 3xx (redirects are not followed) and a target the
/// SSRF guard refuses end the delivery at once. Every attempt is logged; the delivery ends delivered or dead-lettered.
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
    /// Runs the attempts of <paramref name="claim"/> (already claimed by the caller) and stores its final state.
    /// <paramref name="retry"/> false makes one attempt only (the subscription test endpoint).
    /// </summary>
    public async Task<WebhookDelivery> DeliverAsync(
        WebhookDelivery claim,
        Uri target,
        string secret,
        string body,
        bool retry,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(claim);
        ArgumentNullException.ThrowIfNull(target);
        var attempt = claim.Attempts;
        AttemptResult last;
        try
        {
            // The form and the resolved addresses are checked before every delivery; the connect callback checks the
            // addresses again for the connection it actually opens.
            _guard.CheckForm(target);
            await _guard.ResolveAllowedAsync(target.IdnHost, cancellationToken).ConfigureAwait(false);
            var pipeline = BuildPipeline(claim.DeliveryId, retry ? _options.MaxRetries : 0);
            last = await pipeline.ExecuteAsync(
                async token =>
                {
                    attempt++;
                    var result = await SendOnceAsync(claim, target, secret, body, attempt, token).ConfigureAwait(false);
                    await _log.RecordAttemptAsync(
                        new WebhookDeliveryAttempt(claim.Tenant, claim.DeliveryId, claim.SubscriptionId, attempt, _time.GetUtcNow(), result.StatusCode, result.Outcome, result.Error, result.DurationMs),
                        CancellationToken.None).ConfigureAwait(false);
                    Log.Attempt(_logger, claim.DeliveryId, attempt, result.Outcome, result.StatusCode);
                    return result;
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch (WebhookTargetRefusedException ex)
        {
            attempt++;
            last = new AttemptResult(null, "refused", ex.Message, 0, null);
            await _log.RecordAttemptAsync(
                new WebhookDeliveryAttempt(claim.Tenant, claim.DeliveryId, claim.SubscriptionId, attempt, _time.GetUtcNow(), null, last.Outcome, last.Error, 0),
                CancellationToken.None).ConfigureAwait(false);
            Log.Refused(_logger, claim.DeliveryId, ex.Message);
        }

        var delivered = last.Outcome == "delivered";
        var final = claim with
        {
            Status = delivered ? WebhookDeliveryStatus.Delivered : WebhookDeliveryStatus.DeadLettered,
            Attempts = attempt,
            LastStatusCode = last.StatusCode,
            FinishedAt = _time.GetUtcNow(),
            Error = delivered ? null : last.Error ?? last.Outcome,
        };
        await _log.CompleteAsync(final, CancellationToken.None).ConfigureAwait(false);
        if (!delivered)
        {
            Log.DeadLettered(_logger, claim.DeliveryId, attempt, final.Error ?? "");
        }

        return final;
    }

    /// <summary>Called with (delivery id, attempt that failed, delay before the next one) each time a retry is scheduled.</summary>
    public Action<string, int, TimeSpan>? RetryScheduled { get; set; }

    public void Dispose() => _http.Dispose();

    /// <summary>Whether an HTTP status is worth another attempt: 5xx, 408 Request Timeout, 429 Too Many Requests.</summary>
    public static bool IsRetryable(int statusCode) => statusCode >= 500 || statusCode is 408 or 429;

    private ResiliencePipeline<AttemptResult> BuildPipeline(string deliveryId, int maxRetries)
    {
        var builder = new ResiliencePipelineBuilder<AttemptResult> { TimeProvider = _time };
        if (maxRetries > 0)
        {
            builder.AddRetry(new RetryStrategyOptions<AttemptResult>
            {
                MaxRetryAttempts = maxRetries,
                Delay = _options.BaseRetryDelay,
                MaxDelay = _options.MaxRetryDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = _options.UseJitter,
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Result is { Retryable: true }),
                DelayGenerator = args =>
                {
                    // A receiver's Retry-After (429/503) replaces the backoff delay for that retry.
                    var retryAfter = args.Outcome.Result?.RetryAfter;
                    return ValueTask.FromResult(retryAfter is { } after
                        ? (TimeSpan?)(after < _options.MaxRetryDelay ? after : _options.MaxRetryDelay)
                        : null);
                },
                OnRetry = args =>
                {
                    Log.RetryScheduled(_logger, deliveryId, args.AttemptNumber + 1, args.RetryDelay.TotalSeconds);
                    RetryScheduled?.Invoke(deliveryId, args.AttemptNumber + 1, args.RetryDelay);
                    return ValueTask.CompletedTask;
                },
            });
        }

        return builder.Build();
    }

    private async Task<AttemptResult> SendOnceAsync(WebhookDelivery claim, Uri target, string secret, string body, int attempt, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, target)
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        };
        request.Headers.Add(WebhookSignature.SignatureHeader, WebhookSignature.Sign(secret, _time.GetUtcNow(), body));
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

    /// <summary>What one attempt produced (no response object: Polly disposes discarded results, and nothing else is needed).</summary>
    private sealed record AttemptResult(int? StatusCode, string Outcome, string? Error, double DurationMs, TimeSpan? RetryAfter)
    {
        public bool Retryable { get; init; }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 8101, Level = LogLevel.Information, Message = "Webhook delivery {DeliveryId} attempt {Attempt}: {Outcome} (HTTP {StatusCode})")]
        public static partial void Attempt(ILogger logger, string deliveryId, int attempt, string outcome, int? statusCode);

        [LoggerMessage(EventId = 8102, Level = LogLevel.Warning, Message = "Webhook delivery {DeliveryId} dead-lettered after {Attempts} attempt(s): {Error}")]
        public static partial void DeadLettered(ILogger logger, string deliveryId, int attempts, string error);

        [LoggerMessage(EventId = 8104, Level = LogLevel.Information, Message = "Webhook delivery {DeliveryId}: attempt {Attempt} failed, next in {DelaySeconds:0.###} s")]
        public static partial void RetryScheduled(ILogger logger, string deliveryId, int attempt, double delaySeconds);

        [LoggerMessage(EventId = 8103, Level = LogLevel.Warning, Message = "Webhook delivery {DeliveryId} refused by the SSRF guard: {Reason}")]
        public static partial void Refused(ILogger logger, string deliveryId, string reason);
    }
}
