using System.Collections.Concurrent;
using System.Text.Json;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Azure.Tests.Storage;
using CovidFunctions.Pipeline.Azure.Webhooks;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging.Abstractions;

using static CovidFunctions.Pipeline.Azure.Tests.Storage.UploadTestFiles;

namespace CovidFunctions.Pipeline.Azure.Tests.Webhooks;

/// <summary>
/// Webhooks of a study id ingested again, on Azurite: real ingest, the Table webhook stores and a Kestrel receiver.
/// Once a rejected (or given-up) study's quarantine is gone, a new upload at its path is a new attempt from a fresh
/// Studies row (cd7bb5f); its outcome is a new event and is delivered, under a new id, while every notification of
/// one attempt's outcome is still delivered once. Delivery records written under the ids of before (no attempt in
/// them) still count for the attempt they were claimed for. The lifecycle rule is played by deleting the study's
/// quarantine folder, a month on.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class WebhookReingestTests(AzuriteFixture azurite)
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly TimeSpan PastRetention = TimeSpan.FromDays(31);

    private readonly DeidKey _key = DeidKey.Generate();

    private IBlobStore Uploads => azurite.Storage.BlobContainers.Get(PipelineNames.UploadsContainer);

    private IBlobStore Quarantine => azurite.Storage.BlobContainers.Get(PipelineNames.QuarantineContainer);

    [Fact]
    public async Task A_study_rejected_again_after_its_quarantine_expired_sends_a_second_study_rejected_once()
    {
        await using var hooks = await Hooks.StartAsync(azurite, [StudyEventTypes.Rejected]);
        var path = $"{hooks.Tenant}/scan.zip";
        await Uploads.WriteAsync(path, new MemoryStream("not a zip, not DICOM"u8.ToArray()), None);
        var first = await Handler(hooks).IngestAsync(Unit(path, hooks.Clock), None);
        Assert.Equal(IngestStatus.Rejected, first.Status);
        var firstId = Assert.Single(hooks.DeliveryIds());

        // The notification run again (a redelivered event, a retried activity): nothing more is sent.
        await hooks.Notifier.NotifyAsync(hooks.Tenant, first.StudyId, StudyEventTypes.Rejected, None);
        Assert.Single(hooks.Received);

        // A month on the quarantine is gone, and the user uploads something that is rejected again.
        hooks.Clock.Ahead = PastRetention;
        await DeleteQuarantineAsync(hooks.Tenant, first.StudyId);
        await Uploads.WriteAsync(path, new MemoryStream("still not a zip"u8.ToArray()), None);
        var second = await Handler(hooks).IngestAsync(Unit(path, hooks.Clock), None);
        Assert.Equal((IngestStatus.Rejected, first.StudyId), (second.Status, second.StudyId));

        // Before, the second rejection's delivery had the first one's id (subscription, study, event): it counted as
        // done and the subscriber never heard of the second upload's rejection.
        Assert.Equal(2, hooks.Received.Count);
        var ids = hooks.DeliveryIds();
        Assert.Equal(firstId, ids[0]);
        Assert.NotEqual(firstId, ids[1]);
        await hooks.Notifier.NotifyAsync(hooks.Tenant, first.StudyId, StudyEventTypes.Rejected, None);
        Assert.Equal(2, hooks.Received.Count);
        hooks.AssertEachVerifies();
        var deliveries = await hooks.Storage.Deliveries.ListAsync(hooks.Tenant, null, None);
        Assert.Equal(2, deliveries.Count);
        Assert.All(deliveries, d => Assert.Equal((WebhookDeliveryStatus.Delivered, 1), (d.Status, d.Attempts)));
    }

    [Fact]
    public async Task A_study_given_up_again_after_its_quarantine_expired_sends_a_second_study_failed_once()
    {
        await using var hooks = await Hooks.StartAsync(azurite, [StudyEventTypes.Failed, StudyEventTypes.Completed]);
        var path = $"{hooks.Tenant}/scan.zip";
        var zip = Zip(MidChestSlices(3));
        var failing = new TilesWritesFail(azurite.Storage.BlobContainers, () => new IOException("No space left on device"));
        var studyId = await GiveUpAsync(hooks, path, zip, failing);
        var firstId = Assert.Single(hooks.DeliveryIds());

        hooks.Clock.Ahead = PastRetention;
        await DeleteQuarantineAsync(hooks.Tenant, studyId);
        Assert.Equal(studyId, await GiveUpAsync(hooks, path, zip, failing));

        // Before, the second give-up's study.failed was skipped as already delivered.
        Assert.Equal(2, hooks.Received.Count);
        Assert.NotEqual(firstId, hooks.DeliveryIds()[1]);
        await hooks.Notifier.NotifyAsync(hooks.Tenant, studyId, StudyEventTypes.Failed, None);
        Assert.Equal(2, hooks.Received.Count);
        hooks.AssertEachVerifies();
        Assert.All(hooks.Received, r => Assert.Equal(StudyEventTypes.Failed, r.Event));
    }

    [Fact]
    public async Task A_delivery_claimed_under_the_id_of_before_counts_for_its_attempt_and_not_for_a_later_one()
    {
        await using var hooks = await Hooks.StartAsync(azurite, [StudyEventTypes.Completed, StudyEventTypes.Rejected]);
        var now = hooks.Clock.GetUtcNow();

        // An outcome delivered before this version (its record keyed by the id without the attempt), its notification
        // run again after the upgrade (a retried activity): not sent a second time.
        var completed = await StudyAsync(hooks.Tenant, StudyStatus.Completed, createdAt: now.AddMinutes(-10));
        await LegacyRecordAsync(hooks, completed, StudyEventTypes.Completed, claimedAt: now.AddMinutes(-2), WebhookDeliveryStatus.Delivered);

        // A rejection claimed just before the upgrade and still being retried (its claim alive): left to the retries.
        var pending = await StudyAsync(hooks.Tenant, StudyStatus.Rejected, createdAt: now.AddSeconds(-5));
        await LegacyRecordAsync(hooks, pending, StudyEventTypes.Rejected, claimedAt: now.AddSeconds(-5), WebhookDeliveryStatus.Pending);

        // A study rejected a month ago (delivered then) and rejected again now, from a fresh row: a new event.
        var again = await StudyAsync(hooks.Tenant, StudyStatus.Rejected, createdAt: now.AddSeconds(-3));
        await LegacyRecordAsync(hooks, again, StudyEventTypes.Rejected, claimedAt: now - PastRetention, WebhookDeliveryStatus.Delivered);

        await hooks.Notifier.NotifyAsync(hooks.Tenant, completed.StudyId, StudyEventTypes.Completed, None);
        await hooks.Notifier.NotifyAsync(hooks.Tenant, pending.StudyId, StudyEventTypes.Rejected, None);
        await hooks.Notifier.NotifyAsync(hooks.Tenant, again.StudyId, StudyEventTypes.Rejected, None);

        var (_, body, eventType) = Assert.Single(hooks.Received);
        Assert.Equal(StudyEventTypes.Rejected, eventType);
        using var payload = JsonDocument.Parse(body);
        Assert.Equal(again.StudyId, payload.RootElement.GetProperty("study").GetString());
        Assert.Equal(
            WebhookIds.DeliveryId(hooks.Tenant, hooks.Subscription.Id, again.StudyId, StudyEventTypes.Rejected, again.CreatedAt),
            payload.RootElement.GetProperty("id").GetString());
        Assert.Equal(4, (await hooks.Storage.Deliveries.ListAsync(hooks.Tenant, null, None)).Count);
    }

    /// <summary>Uploads <paramref name="zip"/> at <paramref name="path"/> and lets ingest fail on it until it gives up (ingest-failed, study.failed).</summary>
    private async Task<string> GiveUpAsync(Hooks hooks, string path, byte[] zip, IBlobContainers failing)
    {
        await Uploads.WriteAsync(path, new MemoryStream(zip), None);
        for (var attempt = 1; attempt < new PipelineOptions().MaxIngestAttempts; attempt++)
        {
            await Assert.ThrowsAsync<IOException>(() => Handler(hooks, failing).IngestAsync(Unit(path, hooks.Clock), None));
        }

        var gaveUp = await Handler(hooks, failing).IngestAsync(Unit(path, hooks.Clock), None);
        Assert.Equal((IngestStatus.Failed, IngestHandler.IngestFailedReason), (gaveUp.Status, gaveUp.Reason));
        return gaveUp.StudyId;
    }

    private async Task<StudyRecord> StudyAsync(string tenant, string status, DateTimeOffset createdAt)
    {
        var studyId = "s" + Guid.NewGuid().ToString("N")[..24];
        Assert.True(await azurite.Storage.Studies.TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = studyId, Status = status, CreatedAt = createdAt, CompletedAt = status == StudyStatus.Completed ? createdAt.AddMinutes(5) : null }, None));
        return (await azurite.Storage.Studies.GetAsync(tenant, studyId, None))!;
    }

    /// <summary>A delivery record as the notifier of before wrote it: keyed by <see cref="WebhookIds.LegacyDeliveryId"/>.</summary>
    private static async Task LegacyRecordAsync(Hooks hooks, StudyRecord study, string eventType, DateTimeOffset claimedAt, string status)
    {
        var record = new WebhookDelivery
        {
            Tenant = hooks.Tenant,
            DeliveryId = WebhookIds.LegacyDeliveryId(hooks.Tenant, hooks.Subscription.Id, study.StudyId, eventType),
            SubscriptionId = hooks.Subscription.Id,
            StudyId = study.StudyId,
            EventType = eventType,
            ClaimedAt = claimedAt,
            LeaseUntil = claimedAt + TimeSpan.FromHours(26),
            NextAttemptAt = status == WebhookDeliveryStatus.Pending ? claimedAt + TimeSpan.FromMinutes(1) : null,
            Attempts = 1,
        };
        Assert.NotNull(await hooks.Storage.Deliveries.TryClaimAsync(record, claimedAt, None));
        if (status != WebhookDeliveryStatus.Pending)
        {
            await hooks.Storage.Deliveries.CompleteAsync(record with { Status = status, FinishedAt = claimedAt }, None);
        }
    }

    private IngestHandler Handler(Hooks hooks, IBlobContainers? containers = null) =>
        IngestOnAzurite.NewHandler(azurite, _key, new RecordingOrchestrations(), containers, hooks.Notifier, time: hooks.Clock);

    private UploadUnit Unit(string path, TimeProvider clock) =>
        UploadUnitPlanner.ForSingleBlob(new UploadBlob(path, clock.GetUtcNow(), 100), StudyIdKey.From(_key))!;

    /// <summary>What the lifecycle rule does to a study's quarantine after <c>quarantineRetentionDays</c>.</summary>
    private async Task DeleteQuarantineAsync(string tenant, string studyId)
    {
        var paths = await Quarantine.ListAsync($"{tenant}/{studyId}/", None).ToListAsync();
        Assert.NotEmpty(paths);
        foreach (var blob in paths)
        {
            await Quarantine.DeleteAsync(blob, None);
        }
    }

    /// <summary>The system clock, moved ahead when the test says (ingest's and the notifier's "now").</summary>
    private sealed class MovableClock : TimeProvider
    {
        public TimeSpan Ahead { get; set; }

        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + Ahead;
    }

    /// <summary>
    /// A fresh tenant subscribed to <c>events</c> at a Kestrel receiver, through the Table stores on Azurite, and the
    /// notifier ingest calls (on the test's movable clock; attempts are signed on the system clock).
    /// </summary>
    private sealed class Hooks : IAsyncDisposable
    {
        private TableWebhookStoreTests.Receiver _receiver = null!;
        private WebhookDispatcher _dispatcher = null!;

        public required string Tenant { get; init; }

        public required WebhookStorage Storage { get; init; }

        public MovableClock Clock { get; } = new();

        public ConcurrentQueue<(string Signature, string Body, string Event)> Received { get; } = new();

        public WebhookSubscription Subscription { get; private set; } = null!;

        public string Secret { get; private set; } = null!;

        public WebhookNotifier Notifier { get; private set; } = null!;

        public static async Task<Hooks> StartAsync(AzuriteFixture azurite, IReadOnlyList<string> events)
        {
            var storage = new WebhookStorage(azurite.Storage.Tables);
            await storage.EnsureCreatedAsync(None);
            var hooks = new Hooks { Tenant = AzuriteFixture.NewTenant(), Storage = storage };
            hooks._receiver = await TableWebhookStoreTests.StartReceiverAsync(hooks.Received);
            var options = new WebhookOptions { AllowLoopbackWebhooks = true, UseJitter = false };
            var guard = new WebhookTargetGuard(options);
            var secrets = new InMemoryWebhookSecretStore();
            hooks._dispatcher = new WebhookDispatcher(guard, storage.Deliveries, options, TimeProvider.System, NullLogger<WebhookDispatcher>.Instance);
            var created = await new WebhookManager(storage.Subscriptions, secrets, storage.Deliveries, guard, hooks._dispatcher, options, TimeProvider.System)
                .AddAsync(hooks.Tenant, hooks._receiver.Url, events, null, None);
            (hooks.Subscription, hooks.Secret) = (created.Subscription, created.Secret);
            hooks.Notifier = new WebhookNotifier(azurite.Storage.Studies, storage.Subscriptions, secrets, storage.Deliveries, hooks._dispatcher, options, hooks.Clock, NullLogger<WebhookNotifier>.Instance);
            return hooks;
        }

        /// <summary>The payload ids of the deliveries received, in order.</summary>
        public List<string> DeliveryIds() =>
            [.. Received.Select(r =>
            {
                using var payload = JsonDocument.Parse(r.Body);
                return payload.RootElement.GetProperty("id").GetString()!;
            })];

        public void AssertEachVerifies() =>
            Assert.All(Received, r => Assert.True(WebhookSignature.Verify(Secret, r.Signature, r.Body, DateTimeOffset.UtcNow, TimeSpan.FromMinutes(5))));

        public async ValueTask DisposeAsync()
        {
            _dispatcher.Dispose();
            await _receiver.DisposeAsync();
        }
    }
}
