using System.Text.Json;
using CovidFunctions.Pipeline.Messaging;

namespace CovidFunctions.Pipeline.Azure.Messaging;

/// <summary>
/// The text of a Storage-queue message: <c>{"messageId":"…","body":"…"}</c> (the body is the JSON message as a
/// string). Storage queues have no message-id property of their own that the sender controls, so the deterministic id
/// travels inside. A queue-triggered Azure Function receives this text and unwraps it with <see cref="TryParse"/>.
/// </summary>
public sealed record StorageQueueEnvelope(string MessageId, string Body)
{
    public static string Serialize(QueueMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        return PipelineJson.Serialize(new StorageQueueEnvelope(message.MessageId, message.Body));
    }

    /// <summary>
    /// The handler's view of a queue-triggered message (an Azure Functions <c>QueueTrigger</c> binds the text and the
    /// dequeue count); null when the text is not an envelope.
    /// </summary>
    public static ReceivedMessage? ToReceivedMessage(string text, long dequeueCount) =>
        TryParse(text) is { } envelope ? new ReceivedMessage(envelope.MessageId, envelope.Body, (int)Math.Clamp(dequeueCount, 1, int.MaxValue)) : null;

    /// <summary>Parses an envelope; null when the text is not one (such a message is dead-lettered as malformed).</summary>
    public static StorageQueueEnvelope? TryParse(string text)
    {
        try
        {
            var envelope = JsonSerializer.Deserialize<StorageQueueEnvelope>(text, PipelineJson.Options);
            return envelope is { MessageId.Length: > 0, Body: not null } ? envelope : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

/// <summary>What a dead-lettered Storage-queue message leaves in the <c>dead-letters</c> container.</summary>
public sealed record DeadLetterRecord(
    string Queue,
    string MessageId,
    int DeliveryCount,
    string Reason,
    string Body,
    DateTimeOffset DeadLetteredAt)
{
    /// <summary><c>{queue}/{messageId}-{deliveryCount}.json</c> (characters outside [A-Za-z0-9._-] in the id become '_').</summary>
    public static string PathOf(string queue, string messageId, int deliveryCount)
    {
        var safeId = string.Concat(messageId.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_'));
        return $"{queue}/{safeId}-{deliveryCount}.json";
    }
}
