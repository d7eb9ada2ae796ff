using System.Collections.Concurrent;
using System.Text.Json;
using CovidFunctions.Pipeline.Notifications;

namespace CovidFunctions.Pipeline.Tests.Notifications;

/// <summary>
/// Delivery against a real Kestrel receiver on 127.0.0.1: signatures, retries, Retry-After, dead letters, exactly once.
/// The notifier (the notify activity) makes only the first attempt; the retry handler makes the rest, with the kit's
/// clock skipped to each due time instead of waiting.
/// </summary>
public sealed class WebhookDeliveryTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task Notify_SignsThePayload_ReceiverVerifiesItWithTheSecret()
    {
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(200));
        using var kit = new WebhookTestKit();
        var created = await kit.SubscribeAsync(receiver.Url);

        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);

        var request = Assert.Single(receiver.Received);
        var signature = request.Headers[WebhookSignature.SignatureHeader];
        Assert.Matches("^t=[0-9]+,v1=[0-9a-f]{64}$", signature);
        Assert.True(WebhookSignature.Verify(created.Secret, signature, request.Body, DateTimeOffset.UtcNow, TimeSpan.FromMinutes(5)));
        Assert.False(WebhookSignature.Verify("whsec_some_other_secret_value", signature, request.Body, DateTimeOffset.UtcNow, TimeSpan.FromMinutes(5)));
        Assert.False(WebhookSignature.Verify(created.Secret, signature, request.Body.Replace("covid", "normal", StringComparison.Ordinal), DateTimeOffset.UtcNow, TimeSpan.FromMinutes(5)));

        var study = (await kit.Studies.GetAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, None))!;
        var expectedId = WebhookIds.DeliveryId(WebhookTestKit.Tenant, created.Subscription.Id, WebhookTestKit.StudyId, StudyEventTypes.Completed, study.CreatedAt);
        Assert.Equal(expectedId, request.Headers[WebhookSignature.DeliveryHeader]);
        using var payload = JsonDocument.Parse(request.Body);
        var root = payload.RootElement;
        Assert.Equal(expectedId, root.GetProperty("id").GetString());
        Assert.Equal("study.completed", root.GetProperty("type").GetString());
        Assert.Equal(WebhookTestKit.StudyId, root.GetProperty("study").GetString());
        Assert.Equal("covid", root.GetProperty("diagnosis").GetProperty("label").GetString());
        Assert.Equal(0.81, root.GetProperty("diagnosis").GetProperty("probabilities").GetProperty("covid").GetDouble(), 6);
        Assert.Equal(0.134, root.GetProperty("diagnosis").GetProperty("lesionBurden").GetDouble(), 6);
        Assert.Equal(64, root.GetProperty("diagnosis").GetProperty("slices").GetInt32());
        Assert.Equal("dfsn-dtcn-1.0", root.GetProperty("modelVersion").GetString());
        Assert.Equal($"http://127.0.0.1:7071/api/studies/{WebhookTestKit.StudyId}/files/overlays/0031.png", root.GetProperty("links").GetProperty("overlays")[0].GetString());

        // Never PHI (the upload path carries a patient name here), never pixels.
        Assert.DoesNotContain("Doe", request.Body, StringComparison.Ordinal);
        Assert.DoesNotContain("chest.zip", request.Body, StringComparison.Ordinal);
        Assert.DoesNotContain("base64", request.Body, StringComparison.Ordinal);
        Assert.True(request.Body.Length < 2048, $"payload is {request.Body.Length} bytes");

        var delivery = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None));
        Assert.Equal(WebhookDeliveryStatus.Delivered, delivery.Status);
        Assert.Equal(1, delivery.Attempts);
    }

    [Fact]
    public void Signature_MatchesAnIndependentHmac()
    {
        // Vector from Python: hmac.new(b'whsec_known_vector_secret', b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
        var header = WebhookSignature.Sign("whsec_known_vector_secret", DateTimeOffset.FromUnixTimeSeconds(1700000000), "{\"a\":1}");
        Assert.Equal("t=1700000000,v1=06fa92e03eabcf0804f94bbcefae08d6b6cc2b685f5b1ddf2ab4984e33f01d95", header);
        Assert.True(WebhookSignature.Verify("whsec_known_vector_secret", header, "{\"a\":1}", DateTimeOffset.FromUnixTimeSeconds(1700000100), TimeSpan.FromMinutes(5)));
        Assert.False(WebhookSignature.Verify("whsec_known_vector_secret", header, "{\"a\":1}", DateTimeOffset.FromUnixTimeSeconds(1700009999), TimeSpan.FromMinutes(5)));
    }

    [Theory]
    [InlineData("t=99999999999999,v1=00")]
    [InlineData("t=253402300800,v1=00")]
    [InlineData("t=-1,v1=00")]
    [InlineData("t=1700000000")]
    [InlineData("v1=06fa92e03eabcf0804f94bbcefae08d6b6cc2b685f5b1ddf2ab4984e33f01d95")]
    [InlineData("t=1700000000,v1=éé")]
    [InlineData(",,,")]
    public void Verify_MalformedHeader_IsFalseNotAnException(string header)
    {
        Assert.False(WebhookSignature.Verify("whsec_known_vector_secret", header, "{\"a\":1}", DateTimeOffset.FromUnixTimeSeconds(1700000100), TimeSpan.FromMinutes(5)));
    }

    [Fact]
    public void DefaultSchedule_SpansAboutADay()
    {
        // 45 s doubling, capped at 6 h, 12 retries: 45·(2^9 − 1) + 3·21600 = 87795 s ≈ 24.4 h before jitter.
        var options = new WebhookOptions();
        Assert.Equal(TimeSpan.FromSeconds(87795), options.ScheduleSpan);
        Assert.True(options.ClaimLease > options.ScheduleSpan + (options.AttemptTimeout * (options.MaxRetries + 1)));
    }

    [Fact]
    public async Task Deliver_RetriesOn500_UntilDelivered_LogsEveryAttempt()
    {
        await using var receiver = await WebhookReceiver.StartAsync(i => new ReceiverReply(i < 2 ? 500 : 200));
        using var kit = new WebhookTestKit();
        var created = await kit.SubscribeAsync(receiver.Url);

        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);
        Assert.Single(receiver.Received);
        Assert.Equal(2, await kit.RunRetriesUntilSettledAsync());

        Assert.Equal(3, receiver.Received.Count);
        Assert.Single(receiver.Received.Select(r => r.Headers[WebhookSignature.DeliveryHeader]).Distinct());
        Assert.Single(receiver.Received.Select(r => r.Body).Distinct());
        Assert.Equal(["1", "2", "3"], receiver.Received.Select(r => r.Headers["X-CovidFunctions-Attempt"]));
        var delivery = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, created.Subscription.Id, None));
        Assert.Equal(WebhookDeliveryStatus.Delivered, delivery.Status);
        var attempts = await kit.Deliveries.GetAttemptsAsync(WebhookTestKit.Tenant, delivery.DeliveryId, None);
        Assert.Equal([500, 500, 200], attempts.Select(a => a.StatusCode ?? 0));
        Assert.Equal([1, 2, 3], attempts.Select(a => a.Attempt));
    }

    [Fact]
    public async Task Deliver_RetriesAfterATimeout()
    {
        // The first answer stalls past the 1 s attempt timeout; the second is immediate.
        await using var receiver = await WebhookReceiver.StartAsync(i => i == 0 ? new ReceiverReply(200, Stall: TimeSpan.FromSeconds(10)) : new ReceiverReply(204));
        using var kit = new WebhookTestKit(WebhookTestKit.FastOptions(attemptTimeout: TimeSpan.FromSeconds(1)));
        await kit.SubscribeAsync(receiver.Url);

        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);
        Assert.Equal(WebhookDeliveryStatus.Pending, Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None)).Status);
        await kit.RunRetriesUntilSettledAsync();

        var delivery = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None));
        Assert.Equal(WebhookDeliveryStatus.Delivered, delivery.Status);
        var attempts = await kit.Deliveries.GetAttemptsAsync(WebhookTestKit.Tenant, delivery.DeliveryId, None);
        // On a loaded machine the immediate answer can itself miss the 1 s timeout once more: what matters is that the
        // stalled attempt timed out and a retry delivered.
        Assert.Equal("timeout", attempts[0].Outcome);
        Assert.Null(attempts[0].StatusCode);
        Assert.Equal("delivered", attempts[^1].Outcome);
        Assert.Equal(204, attempts[^1].StatusCode);
        Assert.All(attempts.Take(attempts.Count - 1), a => Assert.Equal("timeout", a.Outcome));
    }

    [Fact]
    public async Task Deliver_On429_WaitsTheRetryAfterTheReceiverAsked()
    {
        await using var receiver = await WebhookReceiver.StartAsync(i => i == 0 ? new ReceiverReply(429, RetryAfter: "120") : new ReceiverReply(200));
        using var kit = new WebhookTestKit(WebhookTestKit.FastOptions() with { MaxRetryDelay = TimeSpan.FromHours(1) });
        var scheduled = new ConcurrentQueue<TimeSpan>();
        kit.Dispatcher.RetryScheduled = (_, _, delay) => scheduled.Enqueue(delay);
        await kit.SubscribeAsync(receiver.Url);

        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);

        // The backoff alone would wait 20 ms; the retry is due after the 120 s the receiver asked for.
        Assert.Single(receiver.Received);
        Assert.Equal([TimeSpan.FromSeconds(120)], scheduled);
        var pending = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None));
        Assert.Equal(WebhookDeliveryStatus.Pending, pending.Status);
        Assert.Equal(1, pending.Attempts);
        Assert.Equal(429, pending.LastStatusCode);
        var dueAt = pending.NextAttemptAt!.Value;
        Assert.InRange(dueAt - kit.Clock.GetUtcNow(), TimeSpan.FromSeconds(100), TimeSpan.FromSeconds(120));

        // A run before the receiver's time makes nothing; one at it delivers.
        kit.Clock.AdvanceTo(dueAt - TimeSpan.FromSeconds(5));
        Assert.Equal(0, await kit.Retries.RunDueAsync(kit.Clock.GetUtcNow(), None));
        Assert.Single(receiver.Received);
        kit.Clock.AdvanceTo(dueAt);
        Assert.Equal(1, await kit.Retries.RunDueAsync(kit.Clock.GetUtcNow(), None));

        Assert.Equal(2, receiver.Received.Count);
        var delivery = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None));
        Assert.Equal(WebhookDeliveryStatus.Delivered, delivery.Status);
        Assert.Null(delivery.NextAttemptAt);
        var attempts = await kit.Deliveries.GetAttemptsAsync(WebhookTestKit.Tenant, delivery.DeliveryId, None);
        Assert.Equal([429, 200], attempts.Select(a => a.StatusCode ?? 0));
    }

    [Fact]
    public async Task RetryAfter_LongerThanTheCap_IsCappedAtMaxRetryDelay()
    {
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(503, RetryAfter: "86400"));
        using var kit = new WebhookTestKit();
        await kit.SubscribeAsync(receiver.Url);

        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);

        var pending = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None));
        Assert.InRange(pending.NextAttemptAt!.Value - kit.Clock.GetUtcNow(), TimeSpan.FromSeconds(1), kit.Options.MaxRetryDelay);
    }

    [Fact]
    public async Task Deliver_On400_DoesNotRetry_AndDeadLetters()
    {
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(400));
        using var kit = new WebhookTestKit();
        await kit.SubscribeAsync(receiver.Url);

        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);

        Assert.Single(receiver.Received);
        var delivery = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None));
        Assert.Equal(WebhookDeliveryStatus.DeadLettered, delivery.Status);
        Assert.Equal(1, delivery.Attempts);
        Assert.Equal(400, delivery.LastStatusCode);
        Assert.Contains("not retried", delivery.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(408)]
    [InlineData(503)]
    public async Task Deliver_RetriesOn408And5xx(int status)
    {
        await using var receiver = await WebhookReceiver.StartAsync(i => new ReceiverReply(i == 0 ? status : 200));
        using var kit = new WebhookTestKit();
        await kit.SubscribeAsync(receiver.Url);

        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);
        Assert.Single(receiver.Received);
        await kit.RunRetriesUntilSettledAsync();

        Assert.Equal(2, receiver.Received.Count);
        Assert.Equal(WebhookDeliveryStatus.Delivered, Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None)).Status);
    }

    [Fact]
    public async Task Deliver_503_FirstAttemptFromTheActivity_RetriesFromTheHandler_ThenADeadLetterRecord()
    {
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(503));
        using var kit = new WebhookTestKit(WebhookTestKit.FastOptions(maxRetries: 3));
        var created = await kit.SubscribeAsync(receiver.Url);
        var scheduled = new ConcurrentQueue<(int Attempt, TimeSpan Delay)>();
        kit.Dispatcher.RetryScheduled = (_, attempt, delay) => scheduled.Enqueue((attempt, delay));

        // The notify activity returns after one attempt, leaving the delivery pending with its next attempt due.
        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);
        Assert.Single(receiver.Received);
        var pending = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None));
        Assert.Equal(WebhookDeliveryStatus.Pending, pending.Status);
        Assert.Equal(1, pending.Attempts);
        Assert.Equal(503, pending.LastStatusCode);
        Assert.NotNull(pending.NextAttemptAt);
        Assert.Null(pending.FinishedAt);

        // Attempts 2..4 from the retry handler, one per due time (20, 40, 80 ms without jitter), none before it.
        for (var attempt = 2; attempt <= 4; attempt++)
        {
            var due = (await kit.Deliveries.GetAsync(WebhookTestKit.Tenant, pending.DeliveryId, None))!.NextAttemptAt!.Value;
            Assert.Equal(0, await kit.Retries.RunDueAsync(due - TimeSpan.FromMilliseconds(1), None));
            kit.Clock.AdvanceTo(due);
            Assert.Equal(1, await kit.Retries.RunDueAsync(kit.Clock.GetUtcNow(), None));
            Assert.Equal(attempt, receiver.Received.Count);
        }

        Assert.Equal([(1, TimeSpan.FromMilliseconds(20)), (2, TimeSpan.FromMilliseconds(40)), (3, TimeSpan.FromMilliseconds(80))], scheduled);
        var delivery = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None));
        Assert.Equal(WebhookDeliveryStatus.DeadLettered, delivery.Status);
        Assert.Equal(4, delivery.Attempts);
        Assert.Equal(503, delivery.LastStatusCode);
        Assert.Equal("HTTP 503", delivery.Error);
        Assert.NotNull(delivery.FinishedAt);
        Assert.Null(delivery.NextAttemptAt);
        Assert.Equal([1, 2, 3, 4], (await kit.Deliveries.GetAttemptsAsync(WebhookTestKit.Tenant, delivery.DeliveryId, None)).Select(a => a.Attempt));

        // Every attempt: the same delivery id and body, its attempt number, a signature valid at the time it was sent.
        Assert.Equal(["1", "2", "3", "4"], receiver.Received.Select(r => r.Headers["X-CovidFunctions-Attempt"]));
        Assert.Single(receiver.Received.Select(r => r.Headers[WebhookSignature.DeliveryHeader]).Distinct());
        Assert.Single(receiver.Received.Select(r => r.Body).Distinct());
        Assert.All(receiver.Received, r => Assert.True(WebhookSignature.Verify(created.Secret, r.Headers[WebhookSignature.SignatureHeader], r.Body, kit.Clock.GetUtcNow(), TimeSpan.FromMinutes(5))));

        // After the dead letter nothing is due any more.
        kit.Clock.Advance(TimeSpan.FromDays(2));
        Assert.Equal(0, await kit.Retries.RunDueAsync(kit.Clock.GetUtcNow(), None));
        Assert.Equal(4, receiver.Received.Count);
    }

    [Fact]
    public async Task Retry_ConcurrentRunsOfTheHandler_SendEachAttemptOnce()
    {
        await using var receiver = await WebhookReceiver.StartAsync(i => new ReceiverReply(i < 3 ? 503 : 200));
        using var kit = new WebhookTestKit(WebhookTestKit.FastOptions(maxRetries: 5));
        await kit.SubscribeAsync(receiver.Url);
        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);

        for (var run = 0; run < 5; run++)
        {
            kit.Clock.Advance(TimeSpan.FromSeconds(10));
            var now = kit.Clock.GetUtcNow();
            await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => kit.Retries.RunDueAsync(now, None)));
        }

        Assert.Equal(["1", "2", "3", "4"], receiver.Received.Select(r => r.Headers["X-CovidFunctions-Attempt"]));
        Assert.Equal(WebhookDeliveryStatus.Delivered, Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None)).Status);
    }

    [Fact]
    public async Task Retry_AttemptWhoseWorkerDied_IsMadeAgainAfterItsLease()
    {
        await using var receiver = await WebhookReceiver.StartAsync(i => new ReceiverReply(i == 0 ? 503 : 200));
        using var kit = new WebhookTestKit();
        await kit.SubscribeAsync(receiver.Url);
        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);
        var due = Assert.Single(await kit.Deliveries.ListDueAsync(kit.Clock.GetUtcNow() + TimeSpan.FromMinutes(1), 10, None));

        // A worker claims the attempt and dies before sending: nothing is due until the attempt's lease is over.
        var now = kit.Clock.GetUtcNow() + TimeSpan.FromMinutes(1);
        Assert.NotNull(await kit.Deliveries.TryReplaceAsync(due with { NextAttemptAt = now + kit.Options.AttemptLease }, None));
        Assert.Null(await kit.Retries.RetryAsync(due, now, None));
        Assert.Equal(0, await kit.Retries.RunDueAsync(now + TimeSpan.FromSeconds(30), None));
        Assert.Single(receiver.Received);

        Assert.Equal(1, await kit.Retries.RunDueAsync(now + kit.Options.AttemptLease, None));
        Assert.Equal(2, receiver.Received.Count);
        Assert.Equal(WebhookDeliveryStatus.Delivered, Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None)).Status);
    }

    [Fact]
    public async Task Retry_SubscriptionRemovedMeanwhile_DeadLettersWithoutSending()
    {
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(503));
        using var kit = new WebhookTestKit();
        var created = await kit.SubscribeAsync(receiver.Url);
        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);
        await kit.Manager.RemoveAsync(WebhookTestKit.Tenant, created.Subscription.Id, None);

        await kit.RunRetriesUntilSettledAsync();

        Assert.Single(receiver.Received);
        var delivery = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None));
        Assert.Equal(WebhookDeliveryStatus.DeadLettered, delivery.Status);
        Assert.Equal(1, delivery.Attempts);
        Assert.Contains("removed", delivery.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Retry_RecordWithoutNextAttemptAtOrBody_IsDueAtItsLeaseEnd_ItsBodyRebuiltFromTheStudiesRow(bool withStudies)
    {
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(200));
        using var kit = new WebhookTestKit();
        var created = await kit.SubscribeAsync(receiver.Url);

        // As the notifier wrote it before NextAttemptAt and Body existed (under the id of then); its claimer died after attempt 1.
        var now = kit.Clock.GetUtcNow();
        var deliveryId = WebhookIds.LegacyDeliveryId(WebhookTestKit.Tenant, created.Subscription.Id, WebhookTestKit.StudyId, StudyEventTypes.Completed);
        Assert.NotNull(await kit.Deliveries.TryClaimAsync(
            new WebhookDelivery
            {
                Tenant = WebhookTestKit.Tenant,
                DeliveryId = deliveryId,
                SubscriptionId = created.Subscription.Id,
                StudyId = WebhookTestKit.StudyId,
                EventType = StudyEventTypes.Completed,
                Attempts = 1,
                ClaimedAt = now - TimeSpan.FromHours(26),
                LeaseUntil = now + TimeSpan.FromMinutes(1),
            },
            now,
            None));
        Assert.Empty(await kit.Deliveries.ListDueAsync(now, 10, None));
        Assert.Single(await kit.Deliveries.ListDueAsync(now + TimeSpan.FromMinutes(1), 10, None));

        var retries = withStudies
            ? new WebhookRetryHandler(kit.Deliveries, kit.Subscriptions, kit.Secrets, kit.Dispatcher, kit.Options, kit.Clock, Microsoft.Extensions.Logging.Abstractions.NullLogger<WebhookRetryHandler>.Instance, kit.Studies)
            : kit.Retries;
        Assert.Equal(1, await retries.RunDueAsync(now + TimeSpan.FromMinutes(1), None));

        var delivery = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None));
        if (withStudies)
        {
            var request = Assert.Single(receiver.Received);
            Assert.Equal(WebhookDeliveryStatus.Delivered, delivery.Status);
            Assert.Equal(2, delivery.Attempts);
            Assert.Equal(request.Body, delivery.Body);
            using var body = JsonDocument.Parse(request.Body);
            Assert.Equal(deliveryId, body.RootElement.GetProperty("id").GetString());
            Assert.Equal(WebhookTestKit.StudyId, body.RootElement.GetProperty("study").GetString());
            Assert.DoesNotContain("Doe^Jane", request.Body, StringComparison.Ordinal);
        }
        else
        {
            Assert.Empty(receiver.Received);
            Assert.Equal(WebhookDeliveryStatus.DeadLettered, delivery.Status);
            Assert.Contains("no stored body", delivery.Error, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void RetryDelay_DefaultOptions_FollowTheNominalScheduleWithBoundedJitter()
    {
        var nominal = new WebhookOptions { UseJitter = false };
        using var exact = new WebhookDispatcher(new WebhookTargetGuard(nominal), new InMemoryWebhookDeliveryLog(), nominal, TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<WebhookDispatcher>.Instance);
        var delays = Enumerable.Range(1, nominal.MaxRetries).Select(a => exact.RetryDelay(a, null)).ToList();
        Assert.Equal(TimeSpan.FromSeconds(45), delays[0]);
        Assert.Equal(TimeSpan.FromSeconds(90), delays[1]);
        Assert.Equal(nominal.ScheduleSpan, delays.Aggregate(TimeSpan.Zero, (a, b) => a + b));
        Assert.Equal(TimeSpan.FromSeconds(30), exact.RetryDelay(3, TimeSpan.FromSeconds(30)));
        Assert.Equal(nominal.MaxRetryDelay, exact.RetryDelay(1, TimeSpan.FromDays(3)));

        var jittered = new WebhookOptions();
        using var dispatcher = new WebhookDispatcher(new WebhookTargetGuard(jittered), new InMemoryWebhookDeliveryLog(), jittered, TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<WebhookDispatcher>.Instance);
        for (var attempt = 1; attempt <= jittered.MaxRetries; attempt++)
        {
            var delay = dispatcher.RetryDelay(attempt, null);
            Assert.InRange(delay, delays[attempt - 1] * 0.8, delays[attempt - 1] * 1.2 < jittered.MaxRetryDelay ? delays[attempt - 1] * 1.2 : jittered.MaxRetryDelay);
        }
    }

    [Fact]
    public async Task Deliver_DoesNotFollowRedirects()
    {
        await using var other = await WebhookReceiver.StartAsync(_ => new ReceiverReply(200));
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(307, Location: other.Url.ToString()));
        using var kit = new WebhookTestKit();
        await kit.SubscribeAsync(receiver.Url);

        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);

        Assert.Single(receiver.Received);
        Assert.Empty(other.Received);
        var delivery = Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None));
        Assert.Equal(WebhookDeliveryStatus.DeadLettered, delivery.Status);
        Assert.Contains("redirects are not followed", delivery.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Notify_RunTwice_AndConcurrently_DeliversOnce()
    {
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(200));
        using var kit = new WebhookTestKit();
        await kit.SubscribeAsync(receiver.Url);

        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None)));
        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);

        Assert.Single(receiver.Received);
        Assert.Single(await kit.Deliveries.ListAsync(WebhookTestKit.Tenant, null, None));

        // A different event of the same study is a different delivery.
        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Failed, None);
        Assert.Equal(2, receiver.Received.Count);
    }

    [Fact]
    public async Task Notify_TakesOverAClaimWhoseOwnerDied()
    {
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(200));
        using var kit = new WebhookTestKit();
        var created = await kit.SubscribeAsync(receiver.Url);
        var study = (await kit.Studies.GetAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, None))!;
        var id = WebhookIds.DeliveryId(WebhookTestKit.Tenant, created.Subscription.Id, WebhookTestKit.StudyId, StudyEventTypes.Completed, study.CreatedAt);
        var past = DateTimeOffset.UtcNow.AddHours(-30);
        await kit.Deliveries.TryClaimAsync(
            new WebhookDelivery { Tenant = WebhookTestKit.Tenant, DeliveryId = id, SubscriptionId = created.Subscription.Id, StudyId = WebhookTestKit.StudyId, EventType = StudyEventTypes.Completed, ClaimedAt = past, LeaseUntil = past.AddHours(1) },
            past,
            None);

        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);

        Assert.Single(receiver.Received);
        Assert.Equal(WebhookDeliveryStatus.Delivered, (await kit.Deliveries.GetAsync(WebhookTestKit.Tenant, id, None))!.Status);
    }

    [Fact]
    public async Task Notify_SkipsSubscriptionsThatDoNotWantTheEvent()
    {
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(200));
        using var kit = new WebhookTestKit();
        await kit.Studies.TryCreateAsync(WebhookTestKit.CompletedStudy(), None);
        await kit.Manager.AddAsync(WebhookTestKit.Tenant, receiver.Url.ToString(), [StudyEventTypes.Failed], null, None);

        await kit.Notifier.NotifyAsync(WebhookTestKit.Tenant, WebhookTestKit.StudyId, StudyEventTypes.Completed, None);

        Assert.Empty(receiver.Received);
    }

    [Fact]
    public async Task TestDelivery_SendsOneSignedSample()
    {
        await using var receiver = await WebhookReceiver.StartAsync(_ => new ReceiverReply(500));
        using var kit = new WebhookTestKit();
        var created = await kit.SubscribeAsync(receiver.Url, secret: null);
        Assert.True(created.SecretGenerated);
        Assert.Matches("^whsec_[0-9a-f]{64}$", created.Secret);

        var delivery = await kit.Manager.TestAsync(created.Subscription, None);

        var request = Assert.Single(receiver.Received);
        Assert.Equal(WebhookManager.TestEventType, request.Headers[WebhookSignature.EventHeader]);
        Assert.True(WebhookSignature.Verify(created.Secret, request.Headers[WebhookSignature.SignatureHeader], request.Body, DateTimeOffset.UtcNow, TimeSpan.FromMinutes(5)));
        Assert.Equal(500, delivery.LastStatusCode);
        Assert.Equal(WebhookDeliveryStatus.DeadLettered, delivery.Status);
    }
}
