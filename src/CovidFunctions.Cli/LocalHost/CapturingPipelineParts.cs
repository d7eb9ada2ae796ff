using System.Collections.Concurrent;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Orchestration;

namespace CovidFunctions.Cli.LocalHost;

/// <summary>
/// The orchestration client of the offline run (<c>covidfn screen</c>): ingest "starts" the study here, and the offline
/// pipeline then drives the same stages itself in order. Chunk results raised on it are kept.
/// </summary>
internal sealed class CapturingOrchestrationClient : IStudyOrchestrationClient
{
    private readonly ConcurrentDictionary<string, StudyOrchestrationInput> _started = new(StringComparer.Ordinal);

    public IReadOnlyCollection<StudyOrchestrationInput> Started => [.. _started.Values];

    public Task<bool> StartIfAbsentAsync(StudyOrchestrationInput input, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        return Task.FromResult(_started.TryAdd(input.InstanceId, input));
    }

    public Task RaiseChunkResultAsync(ChunkResult result, CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>A message sender that keeps what was sent, per queue, in order (the offline run's queues).</summary>
internal sealed class CapturingMessageSender : IMessageSender
{
    private readonly ConcurrentQueue<(string Queue, QueueMessage Message)> _sent = new();

    public IReadOnlyList<QueueMessage> SentTo(string queue) => [.. _sent.Where(m => m.Queue == queue).Select(m => m.Message)];

    public Task SendAsync(string queue, QueueMessage message, CancellationToken cancellationToken)
    {
        _sent.Enqueue((queue, message));
        return Task.CompletedTask;
    }
}
