using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Azure.Messaging;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.DependencyInjection;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// The Function app's composition root with the repository's local.settings.sample.json (storage pointed at the
/// test's Azurite): every function class and every activity class resolves, and chunk requests sent under the
/// pipeline's logical queue name land on the configured physical queue (bicep names it <c>slice-chunks</c>).
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class FunctionAppServicesTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task SampleSettings_ResolveEveryFunctionAndActivity_AndRouteChunkRequestsToTheConfiguredQueue()
    {
        using var keys = TestData.CreateTempDirectory();
        var sliceQueue = "fa-chunks-" + Guid.NewGuid().ToString("N")[..8];
        await using var services = SampleApp.Build(azurite, keys.Path, ("Pipeline:SliceQueueName", sliceQueue));

        Assert.NotNull(ActivatorUtilities.CreateInstance<IngestFunctions>(services));
        Assert.NotNull(ActivatorUtilities.CreateInstance<RelayFunctions>(services));
        Assert.NotNull(ActivatorUtilities.CreateInstance<ApiFunctions>(services));
        Assert.NotNull(ActivatorUtilities.CreateInstance<WebhookFunctions>(services));
        Assert.NotNull(ActivatorUtilities.CreateInstance<MeteringFunctions>(services));
        foreach (var (name, type) in StudyOrchestration.Activities)
        {
            Assert.True(ActivatorUtilities.CreateInstance(services, type) is not null, name);
        }

        var request = new ChunkRequest("fa-tests", "s0123", StudyIds.OrchestrationId("fa-tests", "s0123"), "fa-tests/s0123/tiles", 0, 0, 32, 1);
        await services.GetRequiredService<IMessageSender>().SendAsync(PipelineNames.SliceRequestsQueue, new QueueMessage(request.MessageId, PipelineJson.Serialize(request)), CancellationToken.None);

        var peeked = (await azurite.Storage.Queues.GetQueueClient(sliceQueue).PeekMessagesAsync(10)).Value;
        Assert.Equal(request.MessageId, StorageQueueEnvelope.TryParse(Assert.Single(peeked).MessageText)?.MessageId);
    }
}
