using System.Collections.Concurrent;

namespace CovidFunctions.Pipeline.Notifications;

/// <summary>One fixed-window counter as stored: how many requests <see cref="Key"/> made in the window that starts at <see cref="WindowStart"/>.</summary>
/// <param name="Scope">What is counted (<see cref="WebhookTestRateLimiter.Scope"/>).</param>
/// <param name="Key">Whose requests are counted (a tenant).</param>
/// <param name="WindowStart">The start of the window the count is for.</param>
/// <param name="Count">The requests counted in that window.</param>
/// <param name="ETag">The store's version of the row; a replace succeeds only while it is current.</param>
public sealed record RateWindow(string Scope, string Key, DateTimeOffset WindowStart, int Count, string? ETag = null);

/// <summary>
/// Where fixed-window counters live: the <c>RateLimits</c> table in Azure (shared by every instance of the scaled-out
/// Function app), process memory for <c>covidfn up</c> and tests. Writes are optimistic: an insert fails when the row
/// exists, a replace when its <see cref="RateWindow.ETag"/> is no longer current, so two instances counting at the
/// same time never both win with the same count.
/// </summary>
public interface IRateWindowStore
{
    /// <summary>The counter of (<paramref name="scope"/>, <paramref name="key"/>), or null when there is none yet.</summary>
    Task<RateWindow?> GetAsync(string scope, string key, CancellationToken cancellationToken);

    /// <summary>Inserts the counter; false when another writer created it first.</summary>
    Task<bool> TryInsertAsync(RateWindow window, CancellationToken cancellationToken);

    /// <summary>Replaces the counter if its stored ETag is still <see cref="RateWindow.ETag"/>; false when another writer changed it.</summary>
    Task<bool> TryReplaceAsync(RateWindow window, CancellationToken cancellationToken);
}

/// <summary>The answer of <see cref="WebhookTestRateLimiter.TryAcquireAsync(string, CancellationToken)"/>: allowed, or refused until <see cref="RetryAfter"/> has passed.</summary>
public sealed record RateLimitDecision(bool Allowed, TimeSpan RetryAfter)
{
    public static RateLimitDecision Allow { get; } = new(true, TimeSpan.Zero);
}

/// <summary>
/// Limits <c>POST /api/webhooks/{id}/test</c> per tenant: each call makes an outbound request to a URL the tenant chose,
/// so without a limit a tenant key could make the service send requests at will. A fixed window aligned to the clock
/// (<see cref="WebhookOptions.TestRateWindow"/>, one minute by default) allows <see cref="WebhookOptions.TestRequestsPerWindow"/>
/// calls (5); the next is refused with the time left in the window. The count lives in an <see cref="IRateWindowStore"/>
/// and is changed only by ETag-conditional writes, so in Azure it holds across all instances of the Function app (a
/// per-process count would allow 5 per instance). A writer that keeps losing the race (many concurrent calls of one
/// tenant) is refused rather than let through: the limit fails closed.
/// </summary>
public sealed class WebhookTestRateLimiter
{
    /// <summary>The counter's scope (the table row's RowKey).</summary>
    public const string Scope = "webhook-test";

    /// <summary>The counter of <c>POST /api/webhooks</c> (subscriptions created), beside the test endpoint's.</summary>
    public const string CreateScope = "webhook-create";

    /// <summary>The counter of <c>POST /api/webhooks/{id}/rotate-secret</c> (each writes a secret to Key Vault).</summary>
    public const string RotateScope = "webhook-rotate";

    /// <summary>How many times one call re-reads the counter after losing a conditional write before it refuses.</summary>
    public const int MaxWriteAttempts = 8;

    private readonly IRateWindowStore _store;
    private readonly TimeProvider _time;

    public WebhookTestRateLimiter(IRateWindowStore store, WebhookOptions options, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _time = time ?? throw new ArgumentNullException(nameof(time));
        PermitLimit = options.TestRequestsPerWindow >= 1
            ? options.TestRequestsPerWindow
            : throw new ArgumentOutOfRangeException(nameof(options), options.TestRequestsPerWindow, "Webhooks:TestRequestsPerWindow must be at least 1");
        Window = options.TestRateWindow >= TimeSpan.FromSeconds(1)
            ? options.TestRateWindow
            : throw new ArgumentOutOfRangeException(nameof(options), options.TestRateWindow, "Webhooks:TestRateWindow must be at least 1 s");
    }

    public int PermitLimit { get; }

    public TimeSpan Window { get; }

    /// <summary>A limiter on process memory (<c>covidfn up</c> is one process; tests).</summary>
    public static WebhookTestRateLimiter InMemory(WebhookOptions options, TimeProvider? time = null) =>
        new(new InMemoryRateWindowStore(), options, time ?? TimeProvider.System);

    /// <summary>Counts one test call of <paramref name="tenant"/>; refused (with the time until the window ends) over the limit.</summary>
    public Task<RateLimitDecision> TryAcquireAsync(string tenant, CancellationToken cancellationToken) =>
        TryAcquireAsync(tenant, Scope, PermitLimit, cancellationToken);

    /// <summary>
    /// Counts one call of another operation (<paramref name="scope"/>, its own counter row) of <paramref name="tenant"/>
    /// in the same window, allowing <paramref name="permitLimit"/> per window: <c>POST /api/webhooks</c> counts its
    /// creates so (<see cref="CreateScope"/>).
    /// </summary>
    public async Task<RateLimitDecision> TryAcquireAsync(string tenant, string scope, int permitLimit, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(tenant);
        ArgumentException.ThrowIfNullOrEmpty(scope);
        ArgumentOutOfRangeException.ThrowIfLessThan(permitLimit, 1);
        for (var attempt = 0; attempt < MaxWriteAttempts; attempt++)
        {
            var now = _time.GetUtcNow();
            var windowStart = WindowStartOf(now);
            var current = await _store.GetAsync(scope, tenant, cancellationToken).ConfigureAwait(false);
            bool written;
            if (current is null)
            {
                written = await _store.TryInsertAsync(new RateWindow(scope, tenant, windowStart, 1), cancellationToken).ConfigureAwait(false);
            }
            else if (current.WindowStart != windowStart)
            {
                // An earlier window (or, with clocks that disagree, a later one): this call starts the current one.
                written = await _store.TryReplaceAsync(current with { WindowStart = windowStart, Count = 1 }, cancellationToken).ConfigureAwait(false);
            }
            else if (current.Count >= permitLimit)
            {
                return new RateLimitDecision(false, RetryAfterAt(now, windowStart));
            }
            else
            {
                written = await _store.TryReplaceAsync(current with { Count = current.Count + 1 }, cancellationToken).ConfigureAwait(false);
            }

            if (written)
            {
                return RateLimitDecision.Allow;
            }
        }

        return new RateLimitDecision(false, TimeSpan.FromSeconds(1));
    }

    /// <summary>The start of the window <paramref name="now"/> falls in (windows are aligned to multiples of <see cref="Window"/> since 0001-01-01 UTC).</summary>
    public DateTimeOffset WindowStartOf(DateTimeOffset now)
    {
        var ticks = now.UtcTicks;
        return new DateTimeOffset(ticks - (ticks % Window.Ticks), TimeSpan.Zero);
    }

    /// <summary>Whole seconds until the window ends, at least 1 (Retry-After is in seconds).</summary>
    private TimeSpan RetryAfterAt(DateTimeOffset now, DateTimeOffset windowStart)
    {
        var left = windowStart + Window - now;
        return TimeSpan.FromSeconds(Math.Max(1, Math.Ceiling(left.TotalSeconds)));
    }
}

/// <summary>An <see cref="IRateWindowStore"/> in process memory, with a version number as ETag.</summary>
public sealed class InMemoryRateWindowStore : IRateWindowStore
{
    private readonly ConcurrentDictionary<(string Scope, string Key), RateWindow> _rows = new();
    private long _version;

    public Task<RateWindow?> GetAsync(string scope, string key, CancellationToken cancellationToken) =>
        Task.FromResult(_rows.TryGetValue((scope, key), out var row) ? row : null);

    public Task<bool> TryInsertAsync(RateWindow window, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(window);
        return Task.FromResult(_rows.TryAdd((window.Scope, window.Key), window with { ETag = NextETag() }));
    }

    public Task<bool> TryReplaceAsync(RateWindow window, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(window);
        var key = (window.Scope, window.Key);
        return Task.FromResult(_rows.TryGetValue(key, out var stored)
            && stored.ETag == window.ETag
            && _rows.TryUpdate(key, window with { ETag = NextETag() }, stored));
    }

    private string NextETag() => Interlocked.Increment(ref _version).ToString(System.Globalization.CultureInfo.InvariantCulture);
}
