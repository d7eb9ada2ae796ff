using Azure.Core;
using CovidFunctions.Pipeline.Azure.Messaging;
using CovidFunctions.Pipeline.Messaging;

namespace CovidFunctions.Scorer;

/// <summary>
/// The Service Bus side of the scorer: chunk requests from <c>slice-chunks</c> through <see cref="ServiceBusTransport"/>
/// (a <c>ServiceBusProcessor</c> in peek-lock mode, no auto-complete, <see cref="ScorerOptions.MaxConcurrentCalls"/>
/// concurrent calls; settlement: complete, abandon, or dead-letter with the reason), and results there too when
/// resultTransport=ServiceBus.
/// <para>
/// The lock itself lasts the queue's <c>lockDuration</c> (bicep's sliceLockDuration, 2 min); the processor renews it
/// while a chunk runs for up to <see cref="SettlementPolicy.MaxLockRenewal"/> (30 min), the bound to which the
/// Storage-queue transport renews a message's visibility, so a long chunk is treated alike on both transports.
/// <see cref="ScorerOptions.MessageLockDuration"/> is the Storage queue's visibility timeout per renewal and does
/// not bound the Service Bus renewal (it used to: 5 min, so a chunk scoring longer lost its lock and was scored again).
/// </para>
/// <para>
/// The transport owns its client: the host disposes the singleton after the worker's drain, and the transport closes
/// the processor (already stopped by then), the senders and last the connection.
/// </para>
/// </summary>
internal static class ScorerServiceBus
{
    public static void Add(IServiceCollection services, string? fullyQualifiedNamespace, TokenCredential credential, ScorerOptions options, MessageTransport sliceTransport)
    {
        if (sliceTransport != MessageTransport.ServiceBus && options.ResultTransport != MessageTransport.ServiceBus)
        {
            return;
        }

        if (string.IsNullOrEmpty(fullyQualifiedNamespace))
        {
            throw new InvalidOperationException("A Service Bus transport is configured but ServiceBus:fullyQualifiedNamespace is not set.");
        }

        services.AddSingleton(sp => new ServiceBusTransport(
            ServiceBusTransport.CreateClient(fullyQualifiedNamespace, credential),
            sp.GetRequiredService<ILogger<ServiceBusTransport>>(),
            new ServiceBusTransportOptions(),
            ownsClient: true));
    }

    public static IMessageSender Sender(IServiceProvider services) => services.GetRequiredService<ServiceBusTransport>();

    public static IMessageConsumer Consumer(IServiceProvider services) => services.GetRequiredService<ServiceBusTransport>();
}
