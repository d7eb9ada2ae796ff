using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Dicom;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests.Pipeline;

/// <summary>
/// Issue 8's end-to-end proof on the local host (<see cref="LocalPipelineHost"/> with the API port and
/// loopback webhooks, as <c>covidfn up --allow-loopback-webhooks</c> runs it) over a real Azurite: a real CT study
/// dropped with a registered webhook produces exactly one signed <c>study.completed</c> delivery, also when the
/// notify step runs twice more afterwards; the body carries the stored diagnosis and no PHI of the source files.
/// The running host also makes due webhook retries from its own loop.
/// </summary>
[Collection(PipelineCollection.Name)]
public sealed class WebhookEndToEndTests
{
    [Fact]
    public async Task Dropped_study_with_a_webhook_gives_one_signed_completed_delivery_even_when_notify_runs_again()
    {
        using var temp = TestData.CreateTempDirectory();
        await using var azurite = await PipelineFixture.StartAzuriteAsync(temp.Path);
        var dataDir = Path.Combine(temp.Path, "data");
        using var loggers = PipelineFixture.Loggers(dataDir, out var log);
        using var _ = log;
        using var receiver = new RecordingReceiver();
        var options = PipelineFixture.Options(dataDir, azurite.ConnectionString, chunkSize: 3) with
        {
            ApiPort = FreePort(),
            AllowLoopbackWebhooks = true,
        };
        await using var host = await LocalPipelineHost.StartAsync(options, loggers, CancellationToken.None);

        // Registered the way `covidfn webhooks add` does (same data folder: file secret store, Azurite tables).
        using var webhooks = new LocalWebhooks(dataDir, host.Storage.Tables, host.Storage.Studies, allowLoopback: true, publicBaseUrl: null);
        var created = await webhooks.Manager.AddAsync("lab-w", receiver.Url, [StudyEventTypes.Completed], secret: null, CancellationToken.None);
        Assert.True(created.SecretGenerated);

        var series = PipelineFixture.RealSubset(Path.Combine(temp.Path, "series"), 3);
        var submitted = await new StudySubmitter(host.Storage.BlobContainers, host.Storage.Studies).SubmitAsync(series, "lab-w", CancellationToken.None);
        var row = await PipelineFixture.WaitForTerminalAsync(host.Storage.Studies, submitted.Tenant, submitted.StudyId, log.Path);
        Assert.True(row.Status == StudyStatus.Completed, $"{row.Status} {row.Reason}");
        await PipelineFixture.WaitUntilAsync(() => Task.FromResult(!receiver.Requests.IsEmpty), "the study.completed delivery");

        // The notify step again, twice (as a re-run activity would): no second delivery.
        await webhooks.Notifier.NotifyAsync(submitted.Tenant, submitted.StudyId, StudyEventTypes.Completed, CancellationToken.None);
        await webhooks.Notifier.NotifyAsync(submitted.Tenant, submitted.StudyId, StudyEventTypes.Completed, CancellationToken.None);
        await Task.Delay(TimeSpan.FromSeconds(2));

        var delivery = Assert.Single(receiver.Requests);
        Assert.False(string.IsNullOrEmpty(delivery.DeliveryId));

        // The signature, checked independently of WebhookSignature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>.
        var parts = delivery.Signature!.Split(',').Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
        var expected = Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(created.Secret), Encoding.UTF8.GetBytes($"{parts["t"]}.{delivery.Body}")));
        Assert.Equal(expected, parts["v1"]);

        using var body = JsonDocument.Parse(delivery.Body);
        Assert.Equal(StudyEventTypes.Completed, body.RootElement.GetProperty("type").GetString());
        Assert.Contains(submitted.StudyId, delivery.Body, StringComparison.Ordinal);
        Assert.Contains($"\"{row.Label}\"", delivery.Body, StringComparison.Ordinal);

        // No PHI of the source files in the payload.
        foreach (var file in Directory.GetFiles(series))
        {
            var dataset = DicomFile.Open(file).Dataset;
            foreach (var tag in new[] { DicomTags.PatientName, DicomTags.PatientID, DicomTags.StudyInstanceUID, DicomTags.SOPInstanceUID })
            {
                var value = dataset.GetString(tag);
                if (!string.IsNullOrWhiteSpace(value))
                {
                    Assert.DoesNotContain(value.Trim(), delivery.Body, StringComparison.Ordinal);
                }
            }
        }
    }

    [Fact]
    public async Task Running_host_makes_a_due_webhook_retry_from_its_retry_loop()
    {
        using var temp = TestData.CreateTempDirectory();
        await using var azurite = await PipelineFixture.StartAzuriteAsync(temp.Path);
        var dataDir = Path.Combine(temp.Path, "data");
        using var loggers = PipelineFixture.Loggers(dataDir, out var log);
        using var _ = log;
        using var receiver = new RecordingReceiver();
        var options = PipelineFixture.Options(dataDir, azurite.ConnectionString, chunkSize: 3) with
        {
            ApiPort = FreePort(),
            AllowLoopbackWebhooks = true,
        };
        await using var host = await LocalPipelineHost.StartAsync(options, loggers, CancellationToken.None);
        using var webhooks = new LocalWebhooks(dataDir, host.Storage.Tables, host.Storage.Studies, allowLoopback: true, publicBaseUrl: null);
        var created = await webhooks.Manager.AddAsync("lab-r", receiver.Url, [StudyEventTypes.Completed], secret: null, CancellationToken.None);

        // A delivery whose first attempt (the notify activity's) failed and whose retry is due now, as the activity left it.
        var now = DateTimeOffset.UtcNow;
        var deliveryId = WebhookIds.DeliveryId("lab-r", created.Subscription.Id, "s-retry", StudyEventTypes.Completed);
        var pending = await webhooks.Storage.Deliveries.TryClaimAsync(
            new WebhookDelivery
            {
                Tenant = "lab-r",
                DeliveryId = deliveryId,
                SubscriptionId = created.Subscription.Id,
                StudyId = "s-retry",
                EventType = StudyEventTypes.Completed,
                ClaimedAt = now,
                LeaseUntil = now + webhooks.Options.ClaimLease,
                Attempts = 1,
                LastStatusCode = 503,
                NextAttemptAt = now,
                Body = $$"""{"id":"{{deliveryId}}","type":"study.completed"}""",
            },
            now,
            CancellationToken.None);
        Assert.NotNull(pending);

        // Nobody calls the handler here: the host's loop (every RetryPollInterval) makes attempt 2.
        await PipelineFixture.WaitUntilAsync(
            async () => (await webhooks.Storage.Deliveries.GetAsync("lab-r", deliveryId, CancellationToken.None))?.Status == WebhookDeliveryStatus.Delivered,
            "the retried delivery");
        var request = Assert.Single(receiver.Requests);
        Assert.Equal(deliveryId, request.DeliveryId);
        Assert.Equal(pending.Body, request.Body);
        Assert.Equal(2, (await webhooks.Storage.Deliveries.GetAsync("lab-r", deliveryId, CancellationToken.None))!.Attempts);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private sealed record Received(string Body, string? Signature, string? DeliveryId);

    /// <summary>An HTTP receiver on 127.0.0.1 that records every request and answers 204.</summary>
    private sealed class RecordingReceiver : IDisposable
    {
        private readonly HttpListener _listener = new();
        private readonly Task _loop;

        public RecordingReceiver()
        {
            var port = FreePort();
            Url = $"http://127.0.0.1:{port}/hook/";
            _listener.Prefixes.Add(Url);
            _listener.Start();
            _loop = Task.Run(LoopAsync);
        }

        public string Url { get; }

        public ConcurrentQueue<Received> Requests { get; } = new();

        public void Dispose()
        {
            _listener.Close();
            try
            {
                _loop.Wait(TimeSpan.FromSeconds(5));
            }
            catch (AggregateException)
            {
                // The listener was closed under a pending accept.
            }
        }

        private async Task LoopAsync()
        {
            while (_listener.IsListening)
            {
                HttpListenerContext context;
                try
                {
                    context = await _listener.GetContextAsync();
                }
                catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
                {
                    return;
                }

                using var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8);
                var body = await reader.ReadToEndAsync();
                Requests.Enqueue(new Received(body, context.Request.Headers["X-CovidFunctions-Signature"], context.Request.Headers["X-CovidFunctions-Delivery"]));
                context.Response.StatusCode = 204;
                context.Response.Close();
            }
        }
    }
}
