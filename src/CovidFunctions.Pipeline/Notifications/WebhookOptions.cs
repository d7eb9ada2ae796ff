namespace CovidFunctions.Pipeline.Notifications;

/// <summary>Webhook delivery settings (configuration section <c>Webhooks</c>).</summary>
public sealed record WebhookOptions
{
    public const string SectionName = "Webhooks";

    /// <summary>
    /// Allows http:// targets on 127.0.0.1, localhost and [::1] (loopback only). Set by
    /// <c>covidfn up --allow-loopback-webhooks</c> for local testing; never in Azure.
    /// </summary>
    public bool AllowLoopbackWebhooks { get; init; }

    /// <summary>The port an https target uses when <see cref="AllowedPorts"/> is not set: the https default.</summary>
    public const int DefaultHttpsPort = 443;

    /// <summary>
    /// The ports a webhook target may use, comma-separated (e.g. <c>443,8443</c>); default <c>443</c> only. A tenant's
    /// URL otherwise picks any port on a public host, which turns the deliveries and the test endpoint into a port
    /// probe (SSH, SMTP, databases on public addresses). Checked at registration and before every attempt, including
    /// the connection itself. Loopback targets under <see cref="AllowLoopbackWebhooks"/> may use any port (local
    /// receivers listen on a free one).
    /// </summary>
    public string AllowedPorts { get; init; } = "443";

    /// <summary>
    /// How many <c>POST /api/webhooks/{id}/test</c> calls one tenant may make per <see cref="TestRateWindow"/> (each makes an
    /// outbound request to a URL the tenant chose); over it the endpoint answers 429 with Retry-After.
    /// </summary>
    public int TestRequestsPerWindow { get; init; } = 5;

    /// <summary>
    /// How long the previous secret keeps signing after a rotation that names no overlap (<c>POST
    /// /api/webhooks/{id}/rotate-secret</c>, <c>covidfn webhooks rotate-secret</c>): deliveries carry a signature with
    /// each secret meanwhile, so the receiver can switch without refusing any. Default 24 h; at most
    /// <see cref="MaxSecretRotationOverlap"/>.
    /// </summary>
    public TimeSpan SecretRotationOverlap { get; init; } = TimeSpan.FromHours(24);

    /// <summary>
    /// The longest overlap a rotation may ask for (7 days): a secret that was replaced, perhaps because it leaked, must
    /// stop signing within a bounded time whatever the caller asks.
    /// </summary>
    public static readonly TimeSpan MaxSecretRotationOverlap = TimeSpan.FromDays(7);

    /// <summary>
    /// How old a secret no subscription row names must be before <see cref="WebhookSecretSweep"/> deletes it (1 h), and
    /// how long a replaced secret is kept after its overlap ended. A create or rotation stores its secret before it
    /// writes the row naming it; it writes that row only within <see cref="SecretToRowLimit"/> (15 min) of starting to
    /// store the secret, so a secret older than the grace that no row names was left by a writer that died, lost its
    /// compare-and-swap, or failed to delete it, never by one still about to name it: the 45 min between the two bound
    /// the row write itself (one Table request with the SDK's retries) and the clocks' skew (Key Vault dates the secret).
    /// A constant, not a setting: the writer (the Function app, <c>covidfn up</c>, <c>covidfn webhooks</c>) and the
    /// sweeper are different processes, and a grace configured in one would not bound the other.
    /// </summary>
    public static readonly TimeSpan OrphanedSecretGrace = TimeSpan.FromHours(1);

    /// <summary>
    /// The longest a create or rotation may take from starting to store its secret to writing its row (a quarter of
    /// <see cref="OrphanedSecretGrace"/>): past it, it deletes its secret and writes nothing (409, try again), since the
    /// sweep may already count that secret as orphaned.
    /// </summary>
    public static readonly TimeSpan SecretToRowLimit = OrphanedSecretGrace / 4;

    /// <summary>How often the sweep of orphaned secrets runs in <c>covidfn up</c> (the Function app's timer: hourly).</summary>
    public static readonly TimeSpan SecretSweepInterval = TimeSpan.FromHours(1);

    /// <summary>The fixed window <see cref="TestRequestsPerWindow"/> counts in (aligned to the clock: 12:00:00-12:01:00, ...).</summary>
    public TimeSpan TestRateWindow { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// <see cref="AllowedPorts"/> parsed; throws <see cref="FormatException"/> for anything that is not a list of ports
    /// 1-65535 (a typo must fail at start-up, not allow or refuse every target).
    /// </summary>
    public IReadOnlySet<int> ParseAllowedPorts()
    {
        var ports = new HashSet<int>();
        foreach (var part in (AllowedPorts ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!int.TryParse(part, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            {
                throw new FormatException($"Webhooks:AllowedPorts must be a comma-separated list of ports 1-65535, not '{AllowedPorts}'");
            }

            ports.Add(port);
        }

        if (ports.Count == 0)
        {
            throw new FormatException("Webhooks:AllowedPorts lists no port (the default is 443)");
        }

        return ports;
    }

    /// <summary>
    /// Throws <see cref="InvalidOperationException"/> naming the setting (<c>Webhooks:Name</c>) when a value is out of
    /// range (<see cref="FormatException"/> for an <see cref="AllowedPorts"/> that is no port list), so a bad app
    /// setting stops the host at start-up instead of failing the first registration or delivery.
    /// </summary>
    public void Validate()
    {
        static void Require(bool valid, string name, object? value, string rule)
        {
            if (!valid)
            {
                throw new InvalidOperationException($"{SectionName}:{name} {rule} (got '{value}').");
            }
        }

        // A FormatException naming Webhooks:AllowedPorts, as the guard has always thrown for it.
        _ = ParseAllowedPorts();

        Require(MaxRetries >= 0, nameof(MaxRetries), MaxRetries, "must not be negative");
        Require(AttemptTimeout > TimeSpan.Zero, nameof(AttemptTimeout), AttemptTimeout, "must be positive");
        Require(BaseRetryDelay >= TimeSpan.Zero, nameof(BaseRetryDelay), BaseRetryDelay, "must not be negative");
        Require(MaxRetryDelay >= BaseRetryDelay, nameof(MaxRetryDelay), MaxRetryDelay, $"must not be below {SectionName}:{nameof(BaseRetryDelay)} ({BaseRetryDelay})");
        Require(RetryPollInterval > TimeSpan.Zero, nameof(RetryPollInterval), RetryPollInterval, "must be positive");
        Require(TestRequestsPerWindow >= 1, nameof(TestRequestsPerWindow), TestRequestsPerWindow, "must be at least 1");
        Require(TestRateWindow > TimeSpan.Zero, nameof(TestRateWindow), TestRateWindow, "must be positive");
        Require(
            SecretRotationOverlap >= TimeSpan.Zero && SecretRotationOverlap <= MaxSecretRotationOverlap,
            nameof(SecretRotationOverlap),
            SecretRotationOverlap,
            $"must be between 00:00:00 and {MaxSecretRotationOverlap} (7 days)");
        Require(
            PublicBaseUrl is null || (PublicBaseUrl.IsAbsoluteUri && (PublicBaseUrl.Scheme == Uri.UriSchemeHttps || PublicBaseUrl.Scheme == Uri.UriSchemeHttp)),
            nameof(PublicBaseUrl),
            PublicBaseUrl,
            "must be an absolute http(s) URL");
    }

    /// <summary>Retries after the first attempt. With the defaults below the schedule spans about 24 h.</summary>
    public int MaxRetries { get; init; } = 12;

    /// <summary>The first retry delay; each next one doubles (with jitter) up to <see cref="MaxRetryDelay"/>.</summary>
    public TimeSpan BaseRetryDelay { get; init; } = TimeSpan.FromSeconds(45);

    /// <summary>The longest wait between two attempts (also caps a receiver's Retry-After).</summary>
    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromHours(6);

    /// <summary>How long one attempt may take (connect, send, response headers) before it counts as a timeout.</summary>
    public TimeSpan AttemptTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Adds jitter to the backoff (tests turn it off to keep schedules short and exact).</summary>
    public bool UseJitter { get; init; } = true;

    /// <summary>
    /// How often the local host's loop runs the <see cref="WebhookRetryHandler"/> (the Function app's timer has its own
    /// schedule). Due retries wait at most this long beyond their due time.
    /// </summary>
    public TimeSpan RetryPollInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long one attempt holds its delivery (a claimed attempt whose worker died is made again after it): the
    /// attempt timeout plus room for the address check and the log writes.
    /// </summary>
    public TimeSpan AttemptLease => AttemptTimeout + TimeSpan.FromMinutes(2);

    /// <summary>The base URL of the results API the payload links point to (e.g. <c>http://127.0.0.1:7071</c>).</summary>
    public Uri? PublicBaseUrl { get; init; }

    /// <summary>
    /// How long a notify run's claim lasts before another notify run may take the delivery over. The retries of a
    /// pending delivery are the <see cref="WebhookRetryHandler"/>'s, so the lease outlasts the whole retry schedule
    /// (an attempt plus the backoff) and a notify activity that runs again never competes with them.
    /// </summary>
    public TimeSpan ClaimLease => (AttemptTimeout * (MaxRetries + 1)) + (ScheduleSpan * 2) + TimeSpan.FromMinutes(5);

    /// <summary>The sum of the nominal backoff delays (before jitter): about 24.4 h with the defaults.</summary>
    public TimeSpan ScheduleSpan
    {
        get
        {
            var total = TimeSpan.Zero;
            var delay = BaseRetryDelay;
            for (var retry = 0; retry < MaxRetries; retry++)
            {
                total += delay < MaxRetryDelay ? delay : MaxRetryDelay;
                delay = delay < MaxRetryDelay ? delay * 2 : MaxRetryDelay;
            }

            return total;
        }
    }
}
