namespace CovidFunctions.Pipeline.Messaging;

/// <summary>Where messages for one logical queue go: the physical queue name and the transport that sends them.</summary>
public sealed record QueueRoute(string Queue, IMessageSender Sender);

/// <summary>
/// Sends each logical queue (<see cref="PipelineNames.SliceRequestsQueue"/>, <see cref="PipelineNames.SliceResultsQueue"/>)
/// to its configured physical queue and transport, so handlers keep using the logical names while a deployment
/// chooses, for example, the Service Bus queue <c>slice-chunks</c> for requests and a Storage queue for results.
/// Queues without a route go to <c>fallback</c> under their own name.
/// </summary>
public sealed class RoutedMessageSender(IReadOnlyDictionary<string, QueueRoute> routes, IMessageSender fallback) : IMessageSender
{
    public Task SendAsync(string queue, QueueMessage message, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(queue);
        return routes.TryGetValue(queue, out var route)
            ? route.Sender.SendAsync(route.Queue, message, cancellationToken)
            : fallback.SendAsync(queue, message, cancellationToken);
    }
}
