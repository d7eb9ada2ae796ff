using System.Net;
using Azure.Storage.Queues;
using CovidFunctions.Imaging.Series;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Azure.Messaging;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.TestHelpers;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace CovidFunctions.Scorer.Tests;

/// <summary>
/// The scorer's entry point (<see cref="ScorerApp.Build"/>, what the container runs) on CPU with the Storage-queue
/// transport against a real Azurite: real CT tiles in, a chunk result message and result blobs out, health endpoints,
/// dead-lettering of a malformed request, and a drain on stop that finishes the chunk in flight and leaves the rest queued.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class ScorerHostTests(AzuriteFixture azurite)
{
    private const string Tenant = "scorer-tests";

    /// <summary>Four consecutive slices of a real chest CT (TCIA Lung-PET-CT-Dx, B40f reconstruction).</summary>
    private static readonly string[] SliceFiles = ["1-14.dcm", "1-15.dcm", "1-16.dcm", "1-17.dcm"];

    [Fact]
    public async Task Scorer_ScoresRealTiles_PostsTheChunkResultWritesResultsAndDeadLettersAMalformedRequest()
    {
        var queues = UniqueQueues("a");
        var studyId = StudyIds.ForUpload(StudyIdKey.From(CovidFunctions.Dicom.Deidentification.DeidKey.Generate()), Tenant, "host-test-a.zip");
        var tilesPrefix = await WriteTilesAsync(studyId);
        var transport = azurite.Storage.CreateQueueTransport();
        await transport.SendAsync(queues.Requests, new QueueMessage("malformed-1", "{ this is not json"), CancellationToken.None);
        var request = new ChunkRequest(Tenant, studyId, StudyIds.OrchestrationId(Tenant, studyId), tilesPrefix, 0, 0, SliceFiles.Length, 1);
        await transport.SendAsync(queues.Requests, new QueueMessage(request.MessageId, PipelineJson.Serialize(request)), CancellationToken.None);

        var port = TestNetwork.FreePort();
        var app = ScorerApp.Build([], c => c.AddInMemoryCollection(Settings(queues, port, maxConcurrentCalls: 2)));
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri("/healthz", UriKind.Relative))).StatusCode);
            await TestWaits.UntilAsync(async () => (await http.GetAsync(new Uri("/readyz", UriKind.Relative))).StatusCode == HttpStatusCode.OK, "the scorer to become ready");
            var ready = await http.GetStringAsync(new Uri("/readyz", UriKind.Relative));
            Assert.Contains("\"status\":\"ready\"", ready, StringComparison.Ordinal);
            Assert.Contains("CPU", ready, StringComparison.OrdinalIgnoreCase);

            var results = await ReceiveResultsAsync(queues.Results, 1);
            var result = Assert.Single(results);
            Assert.Equal(request.OrchestrationId, result.OrchestrationId);
            Assert.Equal(0, result.ChunkIndex);
            Assert.Equal(SliceFiles.Length, result.SliceCount);
            Assert.Null(result.Error);
            Assert.Contains("CPU", result.Device, StringComparison.OrdinalIgnoreCase);

            // The chunk document, one score per slice, and every overlay/mask it names exist in results.
            var resultsStore = azurite.Storage.BlobContainers.Get(PipelineNames.ResultsContainer);
            Assert.NotNull(result.ResultPath);
            ChunkResultDocument document;
            await using (var stream = await resultsStore.OpenReadAsync(result.ResultPath!, CancellationToken.None))
            using (var reader = new StreamReader(stream))
            {
                document = PipelineJson.Deserialize<ChunkResultDocument>(await reader.ReadToEndAsync());
            }

            Assert.Equal([0, 1, 2, 3], document.Slices.Select(s => s.SliceIndex));
            foreach (var slice in document.Slices)
            {
                Assert.Equal(1.0, slice.ClassProbabilities.Sum(), 3);
                Assert.True(slice.LungPixels > 0, $"slice {slice.SliceIndex} has no lung estimate");
                Assert.Equal(slice.LesionPixels > 0, slice.OverlayPath is not null);
                if (slice.OverlayPath is not null)
                {
                    Assert.True(await resultsStore.ExistsAsync(slice.OverlayPath, CancellationToken.None), slice.OverlayPath);
                    Assert.True(await resultsStore.ExistsAsync(slice.MaskPath!, CancellationToken.None), slice.MaskPath);
                }
            }

            var rows = await azurite.Storage.SliceResults.GetAsync(Tenant, studyId, CancellationToken.None);
            Assert.Equal(SliceFiles.Length, rows.Count);

            // The malformed request is not retried: it is dead-lettered once, with the handler's reason.
            var deadLetterPath = DeadLetterRecord.PathOf(queues.Requests, "malformed-1", 1);
            await TestWaits.UntilAsync(() => azurite.Storage.BlobContainers.Get(PipelineNames.DeadLetterContainer).ExistsAsync(deadLetterPath, CancellationToken.None), "the dead-letter record");
            string deadLetter;
            await using (var stream = await azurite.Storage.BlobContainers.Get(PipelineNames.DeadLetterContainer).OpenReadAsync(deadLetterPath, CancellationToken.None))
            using (var reader = new StreamReader(stream))
            {
                deadLetter = await reader.ReadToEndAsync();
            }

            Assert.Contains("not a chunk request", deadLetter, StringComparison.Ordinal);
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }

        Assert.Equal(0, (await RequestQueue(queues.Requests).GetPropertiesAsync()).Value.ApproximateMessagesCount);
    }

    [Fact]
    public async Task Scorer_OnStop_StopsReceivingAndFinishesTheChunkInFlight()
    {
        var queues = UniqueQueues("b");
        var studyId = StudyIds.ForUpload(StudyIdKey.From(CovidFunctions.Dicom.Deidentification.DeidKey.Generate()), Tenant, "host-test-b.zip");
        var tilesPrefix = await WriteTilesAsync(studyId);
        var port = TestNetwork.FreePort();
        var app = ScorerApp.Build([], c => c.AddInMemoryCollection(Settings(queues, port, maxConcurrentCalls: 1)));
        await app.StartAsync();
        var readiness = app.Services.GetRequiredService<ScorerReadiness>();
        var orchestrationId = StudyIds.OrchestrationId(Tenant, studyId);
        var first = new ChunkRequest(Tenant, studyId, orchestrationId, tilesPrefix, 0, 0, SliceFiles.Length, 1);
        var second = new ChunkRequest(Tenant, studyId, orchestrationId, tilesPrefix, 1, 0, SliceFiles.Length, 1);
        try
        {
            await TestWaits.UntilAsync(() => Task.FromResult(readiness.IsReady), "the scorer to become ready");
            var transport = azurite.Storage.CreateQueueTransport();
            await transport.SendAsync(queues.Requests, new QueueMessage(first.MessageId, PipelineJson.Serialize(first)), CancellationToken.None);
            await TestWaits.UntilAsync(() => Task.FromResult(readiness.InFlight > 0), "the first chunk to be in flight");
            await transport.SendAsync(queues.Requests, new QueueMessage(second.MessageId, PipelineJson.Serialize(second)), CancellationToken.None);

            // SIGTERM path: the host's StopAsync. One call slot is busy, so the second request is never received.
            await app.StopAsync();
            Assert.Equal(0, readiness.InFlight);
            Assert.False(readiness.IsReady);
        }
        finally
        {
            await app.DisposeAsync();
        }

        // The chunk in flight at stop finished and posted its result; nothing was lost: every request has a result
        // or is still queued (normally the second one, which the busy call slot kept the scorer from receiving).
        var results = await ReceiveResultsAsync(queues.Results, 1);
        Assert.Contains(results, r => r.ChunkIndex == 0 && r.Error is null);
        var left = (await RequestQueue(queues.Requests).PeekMessagesAsync(10)).Value
            .Select(m => StorageQueueEnvelope.TryParse(m.MessageText)?.MessageId)
            .ToList();
        Assert.Equal(2, results.Count + left.Count);
        Assert.DoesNotContain(first.MessageId, left);
    }

    [Fact]
    public async Task ScoringHandler_CountsDeliveriesLikeTheConsumer_FromScorerMaxDeliveryCount()
    {
        // The handler answers a failing chunk with an error result on the consumer's last delivery; a Scoring value
        // that disagreed with Scorer:MaxDeliveryCount would fail a chunk early or lose that shortcut, so only one counts
        // (a Scoring:MaxDeliveryCount is refused at start: ScorerOptionsTests).
        var settings = Settings(UniqueQueues("o"), TestNetwork.FreePort(), maxConcurrentCalls: 1);
        settings["Scorer:MaxDeliveryCount"] = "3";
        settings["Scoring:BatchSize"] = "4";
        await using var app = ScorerApp.Build([], c => c.AddInMemoryCollection(settings));

        var scoring = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<CovidFunctions.Pipeline.Scoring.ScoringOptions>>().Value;
        Assert.Equal(3, scoring.MaxDeliveryCount);
        Assert.Equal(4, scoring.BatchSize);
    }

    [Fact]
    public async Task ServiceBusTransport_RenewsLikeTheStorageQueue_AndItsClientIsClosedAfterTheDrain()
    {
        // Results on Service Bus (chunks from the Storage queue, so no broker is needed): the transport and its client
        // are made, never connected. The client used to stay open at shutdown, and the lock renewal was capped at
        // Scorer:MessageLockDuration (5 min) while the Storage queue renews for 30 min.
        var settings = Settings(UniqueQueues("sb"), TestNetwork.FreePort(), maxConcurrentCalls: 1);
        settings["Scorer:ResultTransport"] = "ServiceBus";
        settings["ServiceBus:fullyQualifiedNamespace"] = "covidfn-test.servicebus.windows.net";
        var app = ScorerApp.Build([], c => c.AddInMemoryCollection(settings));
        var transport = app.Services.GetRequiredService<ServiceBusTransport>();
        Assert.Equal(SettlementPolicy.MaxLockRenewal, transport.Options.MaxAutoLockRenewalDuration);
        Assert.Equal(new StorageQueueTransportOptions().MaxVisibilityRenewal, transport.Options.MaxAutoLockRenewalDuration);

        await app.StartAsync();
        try
        {
            var readiness = app.Services.GetRequiredService<ScorerReadiness>();
            await TestWaits.UntilAsync(() => Task.FromResult(readiness.IsReady), "the scorer to become ready");

            // The drain: the client stays open through it (a result may still be sent while a chunk finishes).
            await app.StopAsync();
            Assert.False(transport.Client.IsClosed);
        }
        finally
        {
            await app.DisposeAsync();
        }

        Assert.True(transport.Client.IsClosed);
    }

    private static (string Requests, string Results) UniqueQueues(string test)
    {
        var suffix = Guid.NewGuid().ToString("N")[..8];
        return ($"req-{test}-{suffix}", $"res-{test}-{suffix}");
    }

    private Dictionary<string, string?> Settings((string Requests, string Results) queues, int port, int maxConcurrentCalls) => new()
    {
        ["Scorer:StorageConnectionString"] = azurite.Server.ConnectionString,
        ["Scorer:SliceTransport"] = "StorageQueue",
        ["Scorer:SliceQueueName"] = queues.Requests,
        ["Scorer:ResultQueueName"] = queues.Results,
        ["Scorer:ExecutionProvider"] = "Cpu",
        ["Scorer:HealthPort"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Scorer:MaxConcurrentCalls"] = maxConcurrentCalls.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Scorer:PollInterval"] = "00:00:00.200",
        ["Scorer:IntraOpThreads"] = "1",
        ["Scorer:DrainTimeout"] = "00:03:00",
    };

    private async Task<string> WriteTilesAsync(string studyId)
    {
        using var folder = TestData.CreateTempDirectory();
        foreach (var file in SliceFiles)
        {
            File.Copy(TestData.Shared("dicom", "chest-ct", "lung-pet-ct-dx", "A0002-s3-b40f", file), Path.Combine(folder.Path, file));
        }

        var series = SeriesAssembler.Assemble(folder.Path);
        Assert.Equal(SliceFiles.Length, series.SliceCount);
        var prefix = $"{Tenant}/{studyId}/tiles";
        await SeriesTiles.WriteAsync(series, azurite.Storage.BlobContainers.Get(PipelineNames.SlicesContainer), prefix, mapUid: null, parallelism: 1, CancellationToken.None);
        return prefix;
    }

    private QueueClient RequestQueue(string name) => azurite.Storage.Queues.GetQueueClient(name);

    private async Task<IReadOnlyList<ChunkResult>> ReceiveResultsAsync(string queue, int expected)
    {
        var client = azurite.Storage.Queues.GetQueueClient(queue);
        var results = new List<ChunkResult>();
        await TestWaits.UntilAsync(async () =>
        {
            if (!(await client.ExistsAsync()).Value)
            {
                return false;
            }

            foreach (var message in (await client.ReceiveMessagesAsync(32)).Value)
            {
                var envelope = StorageQueueEnvelope.TryParse(message.MessageText) ?? throw new InvalidOperationException("not an envelope: " + message.MessageText);
                results.Add(PipelineJson.Deserialize<ChunkResult>(envelope.Body));
                await client.DeleteMessageAsync(message.MessageId, message.PopReceipt);
            }

            return results.Count >= expected;
        }, $"{expected} chunk result(s) on {queue}");
        return results;
    }
}
