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
        await using var arranged = await WebhookHost.StartAsync("lab-w");
        var (receiver, host, webhooks, created) = (arranged.Receiver, arranged.Host, arranged.Webhooks, arranged.Created);
        Assert.True(created.SecretGenerated);

        var series = PipelineFixture.RealSubset(Path.Combine(arranged.TempPath, "series"), 3);
        var submitted = await new StudySubmitter(host.Storage.BlobContainers, host.Storage.Studies, host.StudyIdKey).SubmitAsync(series, "lab-w", CancellationToken.None);
        var row = await PipelineFixture.WaitForTerminalAsync(host.Storage.Studies, submitted.Tenant, submitted.StudyId, arranged.LogPath);
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
        await using var arranged = await WebhookHost.StartAsync("lab-r");
        var (receiver, webhooks, created) = (arranged.Receiver, arranged.Webhooks, arranged.Created);

        // A delivery whose first attempt (the notify activity's) failed and whose retry is due now, as the activity left it.
        var now = DateTimeOffset.UtcNow;
        var deliveryId = WebhookIds.DeliveryId("lab-r", created.Subscription.Id, "s-retry", StudyEventTypes.Completed, now);
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

    /// <summary>
    /// The arrangement both tests share: a real Azurite in a temporary folder, the local host with the API port and
    /// loopback webhooks (as <c>covidfn up --allow-loopback-webhooks</c> runs it), a <see cref="RecordingWebhookReceiver"/>,
    /// and a subscription of the tenant to <c>study.completed</c> registered the way <c>covidfn webhooks add</c> does
    /// (same data folder: file secret store, Azurite tables). Everything is disposed in the reverse order of creation,
    /// also when a later step of the arrangement fails.
    /// </summary>
    private sealed class WebhookHost : IAsyncDisposable
    {
        private readonly Stack<Func<ValueTask>> _cleanup = new();

        private WebhookHost()
        {
        }

        public string TempPath { get; private set; } = "";

        public string LogPath { get; private set; } = "";

        public RecordingWebhookReceiver Receiver { get; private set; } = null!;

        public LocalPipelineHost Host { get; private set; } = null!;

        public LocalWebhooks Webhooks { get; private set; } = null!;

        public CreatedWebhook Created { get; private set; } = null!;

        public static async Task<WebhookHost> StartAsync(string tenant)
        {
            var arranged = new WebhookHost();
            try
            {
                var temp = arranged.Disposes(TestData.CreateTempDirectory());
                arranged.TempPath = temp.Path;
                var azurite = arranged.DisposesAsync(await PipelineFixture.StartAzuriteAsync(temp.Path));
                var dataDir = Path.Combine(temp.Path, "data");
                var loggers = arranged.Disposes(PipelineFixture.Loggers(dataDir, out var log));
                arranged.Disposes(log);
                arranged.LogPath = log.Path;
                arranged.Receiver = arranged.Disposes(new RecordingWebhookReceiver());
                var options = PipelineFixture.Options(dataDir, azurite.ConnectionString, chunkSize: 3) with
                {
                    ApiPort = TestNetwork.FreePort(),
                    AllowLoopbackWebhooks = true,
                };
                arranged.Host = arranged.DisposesAsync(await LocalPipelineHost.StartAsync(options, loggers, CancellationToken.None));
                arranged.Webhooks = arranged.Disposes(new LocalWebhooks(dataDir, arranged.Host.Storage.Tables, arranged.Host.Storage.Studies, allowLoopback: true, publicBaseUrl: null));
                arranged.Created = await arranged.Webhooks.Manager.AddAsync(tenant, arranged.Receiver.Url, [StudyEventTypes.Completed], secret: null, CancellationToken.None);
                return arranged;
            }
            catch
            {
                await arranged.DisposeAsync();
                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            while (_cleanup.TryPop(out var dispose))
            {
                await dispose();
            }
        }

        private T Disposes<T>(T resource)
            where T : IDisposable
        {
            _cleanup.Push(() =>
            {
                resource.Dispose();
                return ValueTask.CompletedTask;
            });
            return resource;
        }

        private T DisposesAsync<T>(T resource)
            where T : IAsyncDisposable
        {
            _cleanup.Push(resource.DisposeAsync);
            return resource;
        }
    }
}
