using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Azure.Messaging;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.FunctionApp;

/// <summary>
/// Stores a queue-triggered message its handler refused, with the reason, in the same place and shape as the
/// Storage-queue transport does (<see cref="DeadLetterRecord"/> at <c>dead-letters/{queue}/{messageId}-{n}.json</c>).
/// </summary>
public sealed partial class DeadLetterWriter(IBlobContainers containers, ILogger<DeadLetterWriter> logger, TimeProvider? timeProvider = null)
{
    private readonly TimeProvider _time = timeProvider ?? TimeProvider.System;

    public async Task<string> WriteAsync(string queue, ReceivedMessage message, string reason, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        var record = new DeadLetterRecord(queue, message.MessageId, message.DeliveryCount, reason, message.Body, _time.GetUtcNow());
        var path = DeadLetterRecord.PathOf(queue, message.MessageId, message.DeliveryCount);
        await containers.Get(PipelineNames.DeadLetterContainer).WriteAsync(path, new MemoryStream(System.Text.Encoding.UTF8.GetBytes(PipelineJson.Serialize(record)), writable: false), cancellationToken).ConfigureAwait(false);
        Log.DeadLettered(logger, queue, message.MessageId, reason, path);
        return path;
    }

    private static partial class Log
    {
        // 4301, not 40xx: the Function app loads CovidFunctions.Imaging, whose events are 4001-4006; within one process
        // an id must name one event, or a query on it matches both.
        [LoggerMessage(EventId = 4301, Level = LogLevel.Warning, Message = "Dead-lettered message {MessageId} from {Queue}: {Reason} ({Path})")]
        public static partial void DeadLettered(ILogger logger, string queue, string messageId, string reason, string path);
    }
}
