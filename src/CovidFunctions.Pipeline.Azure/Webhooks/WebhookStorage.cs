using Azure.Data.Tables;
using CovidFunctions.Pipeline.Notifications;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Azure.Webhooks;

/// <summary>
/// The webhook tables on one <see cref="TableServiceClient"/> (Azurite locally, the Storage account in Azure).
/// <paramref name="loggerFactory"/> (optional) logs the delivery log's due-index upkeep (backfill passes, stale rows).
/// </summary>
public sealed class WebhookStorage(TableServiceClient tables, ILoggerFactory? loggerFactory = null)
{
    public IWebhookSubscriptionStore Subscriptions { get; } = new TableWebhookSubscriptionStore(tables.GetTableClient(PipelineNames.WebhookSubscriptionsTable));

    public IWebhookDeliveryLog Deliveries { get; } = new TableWebhookDeliveryLog(tables.GetTableClient(PipelineNames.WebhookDeliveriesTable), loggerFactory?.CreateLogger<TableWebhookDeliveryLog>());

    /// <summary>Creates the two tables when missing (PipelineStorage.EnsureCreatedAsync creates them too).</summary>
    public async Task EnsureCreatedAsync(CancellationToken cancellationToken)
    {
        await tables.CreateTableIfNotExistsAsync(PipelineNames.WebhookSubscriptionsTable, cancellationToken).ConfigureAwait(false);
        await tables.CreateTableIfNotExistsAsync(PipelineNames.WebhookDeliveriesTable, cancellationToken).ConfigureAwait(false);
    }
}
