using System.Net;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Tests.Notifications;

/// <summary>A resolver that maps names from a table (and counts calls), for SSRF tests without touching DNS.</summary>
public sealed class MapResolver(Func<string, int, IPAddress[]> map) : IHostAddressResolver
{
    private int _calls;

    public int Calls => _calls;

    public Task<IPAddress[]> ResolveAsync(string host, CancellationToken cancellationToken) =>
        Task.FromResult(map(host, Interlocked.Increment(ref _calls)));
}

/// <summary>
/// A clock that runs with the real one plus an offset the test moves forward: a retry due in hours is made at once,
/// without waiting, and timestamps (claims, signatures) still advance between calls.
/// </summary>
public sealed class SkippableClock : TimeProvider
{
    private long _offsetTicks;

    public TimeSpan Offset => TimeSpan.FromTicks(Interlocked.Read(ref _offsetTicks));

    public override DateTimeOffset GetUtcNow() => DateTimeOffset.UtcNow + Offset;

    public void Advance(TimeSpan by) => Interlocked.Add(ref _offsetTicks, by.Ticks);

    /// <summary>Moves the clock to <paramref name="at"/> when that is later than now.</summary>
    public void AdvanceTo(DateTimeOffset at)
    {
        var now = GetUtcNow();
        if (at > now)
        {
            Advance(at - now);
        }
    }
}

/// <summary>
/// The webhook stack wired on in-memory stores, with a millisecond retry schedule and a <see cref="SkippableClock"/>:
/// the notifier makes the first attempt, <see cref="Retries"/> the rest when the test moves the clock to their due time.
/// </summary>
public sealed class WebhookTestKit : IDisposable
{
    public const string Tenant = "alpha";
    public const string StudyId = "s0123456789abcdef01234567";

    public WebhookTestKit(WebhookOptions? options = null, IHostAddressResolver? resolver = null)
    {
        Options = options ?? FastOptions();
        Secrets = new InMemoryWebhookSecretStore(Clock);
        Guard = new WebhookTargetGuard(Options, resolver);
        Dispatcher = new WebhookDispatcher(Guard, Deliveries, Options, Clock, NullLogger<WebhookDispatcher>.Instance);
        Manager = new WebhookManager(Subscriptions, Secrets, Deliveries, Guard, Dispatcher, Options, Clock);
        Notifier = new WebhookNotifier(Studies, Subscriptions, Secrets, Deliveries, Dispatcher, Options, Clock, NullLogger<WebhookNotifier>.Instance);
        Retries = new WebhookRetryHandler(Deliveries, Subscriptions, Secrets, Dispatcher, Options, Clock, NullLogger<WebhookRetryHandler>.Instance);
    }

    public SkippableClock Clock { get; } = new();

    public WebhookRetryHandler Retries { get; }

    public WebhookOptions Options { get; }

    public WebhookTargetGuard Guard { get; }

    public InMemoryStudyStore Studies { get; } = new();

    public InMemoryWebhookSubscriptionStore Subscriptions { get; } = new();

    /// <summary>Dated by <see cref="Clock"/> (the sweep judges a secret's age by it).</summary>
    public InMemoryWebhookSecretStore Secrets { get; }

    public InMemoryWebhookDeliveryLog Deliveries { get; } = new();

    public WebhookDispatcher Dispatcher { get; }

    public WebhookManager Manager { get; }

    public WebhookNotifier Notifier { get; }

    /// <summary>
    /// Loopback allowed (the receiver is on 127.0.0.1), 3 retries 20 ms apart (doubling), no jitter, and a 10 s attempt
    /// timeout: a 1 s timeout made a first request on a loaded 2-core CI machine time out and be retried, which the
    /// tests counting requests then saw as an extra delivery. The timeout test sets its own short timeout.
    /// </summary>
    public static WebhookOptions FastOptions(int maxRetries = 3, TimeSpan? attemptTimeout = null) => new()
    {
        AllowLoopbackWebhooks = true,
        MaxRetries = maxRetries,
        BaseRetryDelay = TimeSpan.FromMilliseconds(20),
        MaxRetryDelay = TimeSpan.FromSeconds(5),
        AttemptTimeout = attemptTimeout ?? TimeSpan.FromSeconds(10),
        UseJitter = false,
        PublicBaseUrl = new Uri("http://127.0.0.1:7071"),
    };

    public static StudyRecord CompletedStudy(string tenant = Tenant, string studyId = StudyId) => new()
    {
        Tenant = tenant,
        StudyId = studyId,
        Status = StudyStatus.Completed,
        UploadPath = "Doe^Jane/chest.zip",
        StudyPseudonym = "2.25.123456789",
        SliceCount = 64,
        Label = "covid",
        ProbabilityCovid = 0.81,
        ProbabilityCap = 0.12,
        ProbabilityNormal = 0.07,
        LesionBurden = 0.134,
        ModelVersion = "dfsn-dtcn-1.0",
        TopSlicesJson = $$"""[{"sliceIndex":31,"lesionPercent":22.5,"overlayPath":"{{tenant}}/{{studyId}}/overlays/0031.png"}]""",
        MontagePath = $"{tenant}/{studyId}/montage.png",
        CreatedAt = DateTimeOffset.UtcNow.AddMinutes(-3),
        CompletedAt = DateTimeOffset.UtcNow,
    };

    public async Task<CreatedWebhook> SubscribeAsync(Uri url, string? secret = "whsec_test_secret_0123456789")
    {
        await Studies.TryCreateAsync(CompletedStudy(), CancellationToken.None);
        return await Manager.AddAsync(Tenant, url.ToString(), null, secret, CancellationToken.None);
    }

    /// <summary>
    /// Runs the retry handler as its timer would, skipping the clock to each next due time instead of waiting, until no
    /// delivery of the kit is pending; returns the attempts the handler made.
    /// </summary>
    public async Task<int> RunRetriesUntilSettledAsync(int maxRuns = 50)
    {
        var made = 0;
        for (var run = 0; run < maxRuns; run++)
        {
            var next = (await Deliveries.ListAsync(Tenant, null, CancellationToken.None))
                .Where(d => d.Status == WebhookDeliveryStatus.Pending && d.NextAttemptAt is not null)
                .Select(d => d.NextAttemptAt!.Value)
                .DefaultIfEmpty()
                .Min();
            if (next == default)
            {
                return made;
            }

            Clock.AdvanceTo(next);
            made += await Retries.RunDueAsync(Clock.GetUtcNow(), CancellationToken.None);
        }

        throw new InvalidOperationException($"deliveries still pending after {maxRuns} retry runs");
    }

    public void Dispose() => Dispatcher.Dispose();
}
