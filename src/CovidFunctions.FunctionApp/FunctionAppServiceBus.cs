using Azure.Core;
using CovidFunctions.Pipeline.Azure.Messaging;
using CovidFunctions.Pipeline.Messaging;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.FunctionApp;

/// <summary>
/// Chunk requests over Service Bus (the Azure deployment's <c>slice-chunks</c> queue): identity-based client on
/// <c>ServiceBus__fullyQualifiedNamespace</c>, the deterministic <c>MessageId</c> for duplicate detection.
/// </summary>
internal static class FunctionAppServiceBus
{
    public static IMessageSender CreateSender(IServiceProvider services, string fullyQualifiedNamespace, TokenCredential credential) =>
        new ServiceBusTransport(ServiceBusTransport.CreateClient(fullyQualifiedNamespace, credential), services.GetRequiredService<ILogger<ServiceBusTransport>>());
}
