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

/// <summary>The webhook stack wired on in-memory stores, with a millisecond retry schedule.</summary>
public sealed class WebhookTestKit : IDisposable
{
    public const string Tenant = "alpha";
    public const string StudyId = "s0123456789abcdef01234567";

    public WebhookTestKit(WebhookOptions? options = null, IHostAddressResolver? resolver = null)
    {
        Options = options ?? FastOptions();
        Guard = new WebhookTargetGuard(Options, resolver);
        Dispatcher = new WebhookDispatcher(Guard, Deliveries, Options, TimeProvider.System, NullLogger<WebhookDispatcher>.Instance);
        Manager = new WebhookManager(Subscriptions, Secrets, Deliveries, Guard, Dispatcher, Options, TimeProvider.System);
        Notifier = new WebhookNotifier(Studies, Subscriptions, Secrets, Deliveries, Dispatcher, Options, TimeProvider.System, NullLogger<WebhookNotifier>.Instance);
    }

    public WebhookOptions Options { get; }

    public WebhookTargetGuard Guard { get; }

    public InMemoryStudyStore Studies { get; } = new();

    public InMemoryWebhookSubscriptionStore Subscriptions { get; } = new();

    public InMemoryWebhookSecretStore Secrets { get; } = new();

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

    public void Dispose() => Dispatcher.Dispose();
}
