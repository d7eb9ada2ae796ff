using CovidFunctions.Pipeline;

namespace CovidFunctions.FunctionApp;

/// <summary>How a queue's messages travel (the same words as bicep's <c>resultTransport</c>).</summary>
public enum MessageTransport
{
    StorageQueue,
    ServiceBus,
}

/// <summary>
/// The Function app's host settings beyond <see cref="PipelineOptions"/> (both bind the <c>Pipeline</c> section;
/// bicep/modules/functionapp.bicep sets them as <c>Pipeline__*</c> app settings). What a trigger attribute or host.json
/// fixes is not a setting here: the uploads container (<see cref="PipelineNames.UploadsContainer"/>, the blob trigger
/// path), the result queue (<see cref="PipelineNames.SliceResultsQueue"/>, the relay's queue trigger), the Durable task
/// hub (host.json <c>durableTask.hubName</c>) and the relay's poison limit (host.json <c>queues.maxDequeueCount</c>).
/// </summary>
public sealed record FunctionAppSettings
{
    /// <summary>The connection every storage trigger and the Durable hub use (AzureWebJobsStorage, identity-based in Azure).</summary>
    public const string StorageConnection = "AzureWebJobsStorage";

    /// <summary>The Service Bus connection section (<c>ServiceBus__fullyQualifiedNamespace</c>, <c>__credential</c>, <c>__clientId</c>).</summary>
    public const string ServiceBusSection = "ServiceBus";

    /// <summary>The physical queue chunk requests go to (<c>slice-chunks</c> on Service Bus in Azure).</summary>
    public string SliceQueueName { get; init; } = PipelineNames.SliceRequestsQueue;

    /// <summary>How chunk requests are sent; null: Service Bus when <c>ServiceBus:fullyQualifiedNamespace</c> is set, else a Storage queue.</summary>
    public MessageTransport? Transport { get; init; }

    /// <summary>How chunk results come back (only StorageQueue has a trigger in this app: the Service Bus worker extension is not available).</summary>
    public MessageTransport ResultTransport { get; init; } = MessageTransport.StorageQueue;
}
