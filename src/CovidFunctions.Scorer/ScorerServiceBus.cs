using Azure.Core;
using CovidFunctions.Pipeline.Azure.Messaging;
using CovidFunctions.Pipeline.Messaging;

namespace CovidFunctions.Scorer;

/// <summary>
/// The Service Bus side of the scorer: chunk requests from <c>slice-chunks</c> through <see cref="ServiceBusTransport"/>
/// (a <c>ServiceBusProcessor</c> in peek-lock mode, no auto-complete, <see cref="ScorerOptions.MaxConcurrentCalls"/>
/// concurrent calls, lock renewal for up to <see cref="ScorerOptions.MessageLockDuration"/>; settlement: complete,
/// abandon, or dead-letter with the reason), and results there too when resultTransport=ServiceBus.
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
            new ServiceBusTransportOptions { MaxAutoLockRenewalDuration = options.MessageLockDuration }));
    }

    public static IMessageSender Sender(IServiceProvider services) => services.GetRequiredService<ServiceBusTransport>();

    public static IMessageConsumer Consumer(IServiceProvider services) => services.GetRequiredService<ServiceBusTransport>();
}
