using CovidFunctions.Pipeline.Messaging;

namespace CovidFunctions.Pipeline.Tests.Scoring;

/// <summary>A results sender that records what the scoring handler sends; <see cref="Fail"/> makes every send throw.</summary>
internal sealed class RecordingSender : IMessageSender
{
    public bool Fail { get; init; }

    public List<QueueMessage> Attempts { get; } = [];

    public List<QueueMessage> Sent { get; } = [];

    /// <summary>The queue of each message in <see cref="Sent"/>, in the same order.</summary>
    public List<string> Queues { get; } = [];

    public Task SendAsync(string queue, QueueMessage message, CancellationToken cancellationToken)
    {
        lock (Attempts)
        {
            Attempts.Add(message);
            if (Fail)
            {
                throw new InvalidOperationException("results queue away");
            }

            Sent.Add(message);
            Queues.Add(queue);
        }

        return Task.CompletedTask;
    }
}
