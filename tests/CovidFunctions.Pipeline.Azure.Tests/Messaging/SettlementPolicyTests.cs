using CovidFunctions.Pipeline.Azure.Messaging;
using CovidFunctions.Pipeline.Messaging;

namespace CovidFunctions.Pipeline.Azure.Tests.Messaging;

public sealed class SettlementPolicyTests
{
    [Theory]
    [InlineData(SettlementAction.Complete, 1, SettlementAction.Complete)]
    [InlineData(SettlementAction.Complete, 5, SettlementAction.Complete)]
    [InlineData(SettlementAction.Retry, 4, SettlementAction.Retry)]
    [InlineData(SettlementAction.Retry, 5, SettlementAction.DeadLetter)]
    [InlineData(SettlementAction.DeadLetter, 1, SettlementAction.DeadLetter)]
    public void The_handler_answer_stands_except_a_retry_on_the_last_delivery(SettlementAction answer, int delivery, SettlementAction expected)
    {
        var settlement = SettlementPolicy.Decide(new Settlement(answer, "why"), null, delivery, maxDeliveryCount: 5);
        Assert.Equal(expected, settlement.Action);
        Assert.Contains("why", settlement.Reason ?? "why", StringComparison.Ordinal);
    }

    [Fact]
    public void An_exception_is_a_retry_then_a_dead_letter_with_its_message()
    {
        var error = new IOException("blob unreachable");
        var retry = SettlementPolicy.Decide(null, error, 1, 3);
        Assert.Equal(new Settlement(SettlementAction.Retry, "IOException: blob unreachable"), retry);

        var dead = SettlementPolicy.Decide(null, error, 3, 3);
        Assert.Equal(SettlementAction.DeadLetter, dead.Action);
        Assert.Equal("gave up after 3 deliveries (max 3): IOException: blob unreachable", dead.Reason);
    }

    [Fact]
    public void A_dead_letter_without_reason_gets_one_and_over_delivery_is_detected()
    {
        Assert.Equal("dead-lettered by the handler", SettlementPolicy.Decide(new Settlement(SettlementAction.DeadLetter), null, 1, 5).Reason);
        Assert.False(SettlementPolicy.IsOverDelivered(5, 5));
        Assert.True(SettlementPolicy.IsOverDelivered(6, 5));
    }

    [Fact]
    public void Only_a_dead_letter_the_consumer_decided_is_told_to_its_hook()
    {
        // An exception or a retry on the last delivery: the consumer's decision.
        Assert.True(SettlementPolicy.IsConsumerDeadLetter(null, SettlementPolicy.Decide(null, new IOException("x"), 5, 5)));
        var retry = new Settlement(SettlementAction.Retry, "again");
        Assert.True(SettlementPolicy.IsConsumerDeadLetter(retry, SettlementPolicy.Decide(retry, null, 5, 5)));

        // The handler's own dead-letter (a request it refused) is its answer; earlier retries and completions are no dead-letter.
        var refused = new Settlement(SettlementAction.DeadLetter, "invalid chunk request: studyId is missing");
        Assert.False(SettlementPolicy.IsConsumerDeadLetter(refused, SettlementPolicy.Decide(refused, null, 5, 5)));
        Assert.False(SettlementPolicy.IsConsumerDeadLetter(null, SettlementPolicy.Decide(null, new IOException("x"), 4, 5)));
        Assert.False(SettlementPolicy.IsConsumerDeadLetter(Settlement.Complete, SettlementPolicy.Decide(Settlement.Complete, null, 5, 5)));
    }

    [Fact]
    public void Retry_delays_double_and_are_capped()
    {
        var delays = Enumerable.Range(1, 7).Select(n => SettlementPolicy.RetryDelay(n, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30)).TotalSeconds);
        Assert.Equal([1, 2, 4, 8, 16, 30, 30], delays);
    }
}

public sealed class StorageQueueEnvelopeTests
{
    [Fact]
    public void An_envelope_round_trips_and_anything_else_is_refused()
    {
        var text = StorageQueueEnvelope.Serialize(new QueueMessage("s1-r0001-a1", "{\"chunkIndex\":1}"));
        Assert.Equal("{\"messageId\":\"s1-r0001-a1\",\"body\":\"{\\u0022chunkIndex\\u0022:1}\"}", text);
        Assert.Equal(new ReceivedMessage("s1-r0001-a1", "{\"chunkIndex\":1}", 2), StorageQueueEnvelope.ToReceivedMessage(text, 2));

        Assert.Null(StorageQueueEnvelope.TryParse("{\"chunkIndex\":1}"));
        Assert.Null(StorageQueueEnvelope.TryParse("not json"));
        Assert.Null(StorageQueueEnvelope.ToReceivedMessage("{\"messageId\":\"\",\"body\":\"{}\"}", 1));
    }
}
