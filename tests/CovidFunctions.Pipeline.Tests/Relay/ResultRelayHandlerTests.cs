using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Relay;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Tests.Relay;

public sealed class ResultRelayHandlerTests
{
    private readonly RecordingClient _client = new();

    [Fact]
    public async Task RaisesTheChunkResultAsTheOrchestrationEvent()
    {
        var result = new ChunkResult("lab-1", "s1", StudyIds.OrchestrationId("lab-1", "s1"), 2, 1, 32, "lab-1/s1/chunks/0002.json", 4.5, "CPU", null);
        var handler = new ResultRelayHandler(_client, NullLogger<ResultRelayHandler>.Instance);

        var settlement = await handler.HandleAsync(new ReceivedMessage(result.MessageId, PipelineJson.Serialize(result), 1), CancellationToken.None);

        Assert.Equal(SettlementAction.Complete, settlement.Action);
        Assert.Equal([result], _client.Raised);
    }

    [Fact]
    public async Task AnErrorResultIsRelayedToo()
    {
        var result = new ChunkResult("lab-1", "s1", StudyIds.OrchestrationId("lab-1", "s1"), 0, 1, 32, null, 0, "CPU", "tiles not found");
        var handler = new ResultRelayHandler(_client, NullLogger<ResultRelayHandler>.Instance);

        Assert.Equal(SettlementAction.Complete, (await handler.HandleAsync(new ReceivedMessage(result.MessageId, PipelineJson.Serialize(result), 1), CancellationToken.None)).Action);
        Assert.Equal([result], _client.Raised);
    }

    [Theory]
    [InlineData("not json at all")]
    [InlineData("null")]
    [InlineData("{\"tenant\":\"lab-1\",\"studyId\":\"s1\",\"orchestrationId\":\"study-lab-1-other\",\"chunkIndex\":0,\"attempt\":1,\"sliceCount\":1,\"resultPath\":\"p\",\"scoringSeconds\":1,\"device\":\"CPU\"}")]
    [InlineData("{\"tenant\":\"lab-1\",\"studyId\":\"s1\",\"orchestrationId\":\"study-lab-1-s1\",\"chunkIndex\":0,\"attempt\":1,\"sliceCount\":1,\"scoringSeconds\":1,\"device\":\"CPU\"}")]
    public async Task MalformedResultsAreDeadLetteredWithAReason(string body)
    {
        var handler = new ResultRelayHandler(_client, NullLogger<ResultRelayHandler>.Instance);

        var settlement = await handler.HandleAsync(new ReceivedMessage("m1", body, 1), CancellationToken.None);

        Assert.Equal(SettlementAction.DeadLetter, settlement.Action);
        Assert.False(string.IsNullOrEmpty(settlement.Reason));
        Assert.Empty(_client.Raised);
    }

    private sealed class RecordingClient : IStudyOrchestrationClient
    {
        public List<ChunkResult> Raised { get; } = [];

        public Task<bool> StartIfAbsentAsync(StudyOrchestrationInput input, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task RaiseChunkResultAsync(ChunkResult result, CancellationToken cancellationToken)
        {
            Raised.Add(result);
            return Task.CompletedTask;
        }
    }
}
