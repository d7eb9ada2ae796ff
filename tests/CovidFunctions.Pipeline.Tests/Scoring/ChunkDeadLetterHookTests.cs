using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Scoring;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Tests.Scoring;

/// <summary>
/// What the scorer consumer's dead-letter hook answers: an error result for a valid chunk request of a study still
/// running, nothing for a message that names no study it can trust, or a study already settled.
/// </summary>
public sealed class ChunkDeadLetterHookTests
{
    private const string Tenant = "lab-1";
    private const string StudyId = "s-dead";
    private static readonly ChunkRequest Request = new(Tenant, StudyId, StudyIds.OrchestrationId(Tenant, StudyId), $"{Tenant}/{StudyId}/tiles", 3, 96, 32, 2);

    [Fact]
    public async Task An_over_delivered_chunk_request_is_answered_with_an_error_result_for_its_chunk_and_attempt()
    {
        var sender = new RecordingSender();
        var hook = new ChunkDeadLetterHook(sender, NullLogger<ChunkDeadLetterHook>.Instance, device: "CUDAExecutionProvider");

        await hook.OnDeadLetteredAsync(DeadLettered(PipelineJson.Serialize(Request), DeadLetterCause.OverDelivered, 6, "delivered 6 times (max 5) without being settled"), CancellationToken.None);

        var sent = Assert.Single(sender.Sent);
        Assert.Equal(PipelineNames.SliceResultsQueue, Assert.Single(sender.Queues));
        var result = PipelineJson.Deserialize<ChunkResult>(sent.Body);
        Assert.Equal(result.MessageId, sent.MessageId);
        Assert.Equal("s-dead-r0003-a2", sent.MessageId); // the chunk's and attempt's: a second answer is a duplicate
        Assert.Equal((Tenant, StudyId, Request.OrchestrationId, 3, 2, 32, (string?)null, "CUDAExecutionProvider"),
            (result.Tenant, result.StudyId, result.OrchestrationId, result.ChunkIndex, result.Attempt, result.SliceCount, result.ResultPath, result.Device));
        Assert.Equal(
            "delivered 5 times without the scorer finishing it (at most 5): the scorer crashed or was killed while scoring it (for example a native "
            + "ONNX Runtime crash or an out-of-memory kill); the request is dead-lettered at dead-letters/slice-requests/s-dead-c0003-a2-6.json",
            result.Error);
    }

    [Fact]
    public async Task A_chunk_dead_lettered_on_its_last_delivery_is_answered_with_the_consumer_s_reason()
    {
        var sender = new RecordingSender();
        var hook = new ChunkDeadLetterHook(sender, NullLogger<ChunkDeadLetterHook>.Instance);

        await hook.OnDeadLetteredAsync(DeadLettered(PipelineJson.Serialize(Request), DeadLetterCause.FailedOnLastDelivery, 5, "gave up after 5 deliveries (max 5): IOException: the results queue is unreachable"), CancellationToken.None);

        var result = PipelineJson.Deserialize<ChunkResult>(Assert.Single(sender.Sent).Body);
        Assert.Equal("gave up after 5 deliveries (max 5): IOException: the results queue is unreachable; the request is dead-lettered at dead-letters/slice-requests/s-dead-c0003-a2-5.json", result.Error);

        // An answer always fits a Storage-queue message, however long the reason.
        sender.Sent.Clear();
        await hook.OnDeadLetteredAsync(DeadLettered(PipelineJson.Serialize(Request), DeadLetterCause.FailedOnLastDelivery, 5, new string('x', 60_000)), CancellationToken.None);
        Assert.Equal(ScoringHandler.MaxErrorLength, PipelineJson.Deserialize<ChunkResult>(Assert.Single(sender.Sent).Body).Error!.Length);
    }

    [Theory]
    [InlineData("{not json")]
    [InlineData("null")]
    public async Task A_message_that_is_not_a_chunk_request_is_not_answered(string body)
    {
        var sender = new RecordingSender();
        await new ChunkDeadLetterHook(sender, NullLogger<ChunkDeadLetterHook>.Instance).OnDeadLetteredAsync(DeadLettered(body, DeadLetterCause.OverDelivered, 6, "over"), CancellationToken.None);
        Assert.Empty(sender.Attempts);
    }

    [Fact]
    public async Task A_request_the_orchestrator_never_sends_is_not_trusted_to_name_the_study_to_fail()
    {
        // Its orchestration id is another study's, or its tiles lie in another study's folder: answering would fail a
        // study on the word of a request the scorer refuses to score.
        var sender = new RecordingSender();
        var hook = new ChunkDeadLetterHook(sender, NullLogger<ChunkDeadLetterHook>.Instance);
        foreach (var invalid in new[]
        {
            Request with { OrchestrationId = StudyIds.OrchestrationId(Tenant, "s-other") },
            Request with { TilesPrefix = $"{Tenant}/s-other/tiles" },
            Request with { StudyId = "" },
        })
        {
            await hook.OnDeadLetteredAsync(DeadLettered(PipelineJson.Serialize(invalid), DeadLetterCause.OverDelivered, 6, "over"), CancellationToken.None);
        }

        Assert.Empty(sender.Attempts);
    }

    [Fact]
    public async Task A_study_already_settled_is_not_answered_and_one_whose_row_cannot_be_read_is()
    {
        var sender = new RecordingSender();
        var studies = new InMemoryStudyStore();
        await studies.TryCreateAsync(new StudyRecord { Tenant = Tenant, StudyId = StudyId, Status = StudyStatus.Processing, CreatedAt = DateTimeOffset.UtcNow }, CancellationToken.None);
        var hook = new ChunkDeadLetterHook(sender, NullLogger<ChunkDeadLetterHook>.Instance, studies);
        var message = DeadLettered(PipelineJson.Serialize(Request), DeadLetterCause.OverDelivered, 6, "over");

        foreach (var settled in new[] { StudyStatus.Failed, StudyStatus.Completed, StudyStatus.Rejected })
        {
            await studies.UpdateAsync(Tenant, StudyId, row => row! with { Status = settled }, CancellationToken.None);
            await hook.OnDeadLetteredAsync(message, CancellationToken.None);
        }

        Assert.Empty(sender.Attempts);

        await studies.UpdateAsync(Tenant, StudyId, row => row! with { Status = StudyStatus.Processing }, CancellationToken.None);
        await hook.OnDeadLetteredAsync(message, CancellationToken.None);
        Assert.Single(sender.Sent);

        await new ChunkDeadLetterHook(sender, NullLogger<ChunkDeadLetterHook>.Instance, new UnreadableStudies()).OnDeadLetteredAsync(message, CancellationToken.None);
        Assert.Equal(2, sender.Sent.Count);
    }

    [Fact]
    public async Task A_failed_send_propagates_to_the_consumer()
    {
        var hook = new ChunkDeadLetterHook(new RecordingSender { Fail = true }, NullLogger<ChunkDeadLetterHook>.Instance);
        await Assert.ThrowsAsync<InvalidOperationException>(() => hook.OnDeadLetteredAsync(DeadLettered(PipelineJson.Serialize(Request), DeadLetterCause.OverDelivered, 6, "over"), CancellationToken.None));
    }

    private static DeadLetteredMessage DeadLettered(string body, DeadLetterCause cause, int deliveryCount, string reason) =>
        new(PipelineNames.SliceRequestsQueue,
            new ReceivedMessage(Request.MessageId, body, deliveryCount),
            cause,
            reason,
            $"dead-letters/slice-requests/{Request.MessageId}-{deliveryCount}.json",
            MaxDeliveryCount: 5);

    /// <summary>A Studies store whose reads fail (storage away).</summary>
    private sealed class UnreadableStudies : IStudyStore
    {
        private readonly InMemoryStudyStore _inner = new();

        public Task<StudyRecord?> GetAsync(string tenant, string studyId, CancellationToken cancellationToken) =>
            throw new IOException("table storage away");

        public Task<bool> TryCreateAsync(StudyRecord record, CancellationToken cancellationToken) => _inner.TryCreateAsync(record, cancellationToken);

        public Task<StudyRecord> UpdateAsync(string tenant, string studyId, Func<StudyRecord?, StudyRecord> update, CancellationToken cancellationToken) =>
            _inner.UpdateAsync(tenant, studyId, update, cancellationToken);

        public IAsyncEnumerable<StudyRecord> QueryAsync(string? tenant, string? status, DateTimeOffset? from, DateTimeOffset? to, CancellationToken cancellationToken) =>
            _inner.QueryAsync(tenant, status, from, to, cancellationToken);
    }
}
