using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.AspNetCore.Http;

namespace CovidFunctions.Pipeline.Tests.Notifications;

/// <summary>
/// The per-tenant limit of <c>POST /api/webhooks/{id}/test</c>: a fixed window aligned to the clock, counted with
/// conditional writes, 429 with Retry-After over it. The clock is a <see cref="SkippableClock"/> moved by the test; the
/// test deliveries go to a real receiver on 127.0.0.1.
/// </summary>
public sealed class WebhookTestRateLimitTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task Limiter_AllowsTheLimitPerWindow_ThenRefusesWithTheTimeLeft_ThenAllowsAgainInTheNextWindow()
    {
        var clock = new FixedClock(new DateTimeOffset(2026, 11, 27, 12, 0, 10, TimeSpan.Zero));
        var limiter = new WebhookTestRateLimiter(new InMemoryRateWindowStore(), new WebhookOptions { TestRequestsPerWindow = 3 }, clock);

        for (var i = 0; i < 3; i++)
        {
            Assert.True((await limiter.TryAcquireAsync("alpha", None)).Allowed);
        }

        var refused = await limiter.TryAcquireAsync("alpha", None);
        Assert.False(refused.Allowed);
        Assert.Equal(TimeSpan.FromSeconds(50), refused.RetryAfter);

        // Another tenant has its own count.
        Assert.True((await limiter.TryAcquireAsync("beta", None)).Allowed);

        clock.Now = new DateTimeOffset(2026, 11, 27, 12, 0, 59, 500, TimeSpan.Zero);
        Assert.Equal(TimeSpan.FromSeconds(1), (await limiter.TryAcquireAsync("alpha", None)).RetryAfter);

        clock.Now = new DateTimeOffset(2026, 11, 27, 12, 1, 0, TimeSpan.Zero);
        Assert.True((await limiter.TryAcquireAsync("alpha", None)).Allowed);
    }

    [Fact]
    public async Task Limiter_ConcurrentCallsOnOneStore_NeverAllowMoreThanTheLimit()
    {
        // Two limiters (two app instances) on one store, 40 calls at once: the conditional writes let at most 5 through.
        var store = new InMemoryRateWindowStore();
        var clock = new FixedClock(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));
        var options = new WebhookOptions();
        var instances = new[] { new WebhookTestRateLimiter(store, options, clock), new WebhookTestRateLimiter(store, options, clock) };

        var decisions = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => Task.Run(() => instances[i % 2].TryAcquireAsync("alpha", None))));

        Assert.InRange(decisions.Count(d => d.Allowed), 1, options.TestRequestsPerWindow);
        Assert.Equal(options.TestRequestsPerWindow, (await store.GetAsync(WebhookTestRateLimiter.Scope, "alpha", None))!.Count);
    }

    [Theory]
    [InlineData(0, 60)]
    [InlineData(5, 0)]
    public void Limiter_RefusesSettingsThatWouldDisableIt(int perWindow, int windowSeconds)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new WebhookTestRateLimiter(
            new InMemoryRateWindowStore(),
            new WebhookOptions { TestRequestsPerWindow = perWindow, TestRateWindow = TimeSpan.FromSeconds(windowSeconds) },
            TimeProvider.System));
    }

    [Fact]
    public async Task TestEndpoint_OverTheLimit_Is429WithRetryAfter_AndSendsNothing()
    {
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(200));
        using var kit = new WebhookTestKit();
        using var temp = TestData.CreateTempDirectory();
        var created = await kit.SubscribeAsync(receiver.Url);
        var clock = new FixedClock(new DateTimeOffset(2026, 11, 27, 12, 0, 45, TimeSpan.Zero));
        var limiter = new WebhookTestRateLimiter(new InMemoryRateWindowStore(), new WebhookOptions { TestRequestsPerWindow = 2 }, clock);
        var api = new ResultsApi(kit.Studies, new FileSystemBlobContainers(temp.Path), new UsageQueries(new InMemoryUsageStore(), kit.Studies), kit.Manager, new ResultsApiOptions(), limiter);
        var caller = ApiCaller.ForTenants(WebhookTestKit.Tenant);

        Assert.Equal(200, (await api.TestWebhookAsync(caller, created.Subscription.Id, null, None)).Status);
        Assert.Equal(200, (await api.TestWebhookAsync(caller, created.Subscription.Id, null, None)).Status);
        var limited = await api.TestWebhookAsync(caller, created.Subscription.Id, null, None);

        Assert.Equal(429, limited.Status);
        Assert.Equal(TimeSpan.FromSeconds(15), limited.RetryAfter);
        Assert.Contains("at most 2 webhook tests per 60 s", limited.BodyText, StringComparison.Ordinal);
        Assert.Equal(2, receiver.Received.Count);

        // An unknown id is 404 and counts nothing; the next window allows tests again.
        Assert.Equal(404, (await api.TestWebhookAsync(caller, "wh00000000000000000000", null, None)).Status);
        clock.Now = new DateTimeOffset(2026, 11, 27, 12, 1, 0, TimeSpan.Zero);
        Assert.Equal(200, (await api.TestWebhookAsync(caller, created.Subscription.Id, null, None)).Status);
        Assert.Equal(3, receiver.Received.Count);
    }

    [Fact]
    public async Task TestEndpoint_WithoutAConfiguredLimiter_IsStillLimited()
    {
        // The local API (covidfn up) builds ResultsApi without a limiter: the per-process default applies (5 per minute).
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(200));
        using var kit = new WebhookTestKit();
        using var temp = TestData.CreateTempDirectory();
        var created = await kit.SubscribeAsync(receiver.Url);
        var api = new ResultsApi(kit.Studies, new FileSystemBlobContainers(temp.Path), new UsageQueries(new InMemoryUsageStore(), kit.Studies), kit.Manager, new ResultsApiOptions());

        var statuses = new List<int>();
        for (var i = 0; i < 8; i++)
        {
            statuses.Add((await api.TestWebhookAsync(ApiCaller.AllTenants, created.Subscription.Id, null, None)).Status);
        }

        // A window boundary may fall between the calls: then the count restarts once, never more than once in 8 calls.
        Assert.Contains(429, statuses);
        Assert.InRange(statuses.Count(s => s == 200), 5, 7);
        Assert.Equal(statuses.Count(s => s == 200), receiver.Received.Count);
    }

    [Fact]
    public async Task WriteAsync_SendsRetryAfterInWholeSeconds()
    {
        var context = new DefaultHttpContext();
        context.Response.Body = new MemoryStream();

        await ResultsApiEndpoints.WriteAsync(context.Response, ApiResponse.Error(429, "slow down") with { RetryAfter = TimeSpan.FromSeconds(14.2) });

        Assert.Equal(429, context.Response.StatusCode);
        Assert.Equal("15", context.Response.Headers.RetryAfter.ToString());
    }

    /// <summary>A clock that stands still where the test puts it.</summary>
    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }
}
