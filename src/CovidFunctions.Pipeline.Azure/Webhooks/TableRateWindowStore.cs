using Azure;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Notifications;

namespace CovidFunctions.Pipeline.Azure.Webhooks;

/// <summary>
/// <see cref="IRateWindowStore"/> on the <c>RateLimits</c> table (<see cref="PipelineNames.RateLimitsTable"/>):
/// PartitionKey the key (a tenant), RowKey the scope; properties <c>WindowStart</c> and <c>Count</c>. An insert that
/// meets an existing row (409) and a replace whose ETag is stale (412) answer false, so of instances counting at the
/// same time exactly one write wins and the others read again. One row per tenant and scope, overwritten each window:
/// the table does not grow with traffic. Bicep creates the table; <see cref="Storage.PipelineStorage.EnsureCreatedAsync"/>
/// locally.
/// </summary>
public sealed class TableRateWindowStore : IRateWindowStore
{
    public TableRateWindowStore(TableServiceClient tables)
    {
        ArgumentNullException.ThrowIfNull(tables);
        Table = tables.GetTableClient(PipelineNames.RateLimitsTable);
    }

    public TableClient Table { get; }

    public async Task<RateWindow?> GetAsync(string scope, string key, CancellationToken cancellationToken)
    {
        var response = await Table.GetEntityIfExistsAsync<TableEntity>(key, scope, cancellationToken: cancellationToken).ConfigureAwait(false);
        if (!response.HasValue || response.Value is not { } entity)
        {
            return null;
        }

        return new RateWindow(
            scope,
            key,
            entity.GetDateTimeOffset("WindowStart") ?? DateTimeOffset.MinValue,
            entity.GetInt32("Count") ?? 0,
            entity.ETag.ToString());
    }

    public async Task<bool> TryInsertAsync(RateWindow window, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(window);
        try
        {
            await Table.AddEntityAsync(ToEntity(window), cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (RequestFailedException ex) when (ex.Status == 409)
        {
            return false;
        }
    }

    public async Task<bool> TryReplaceAsync(RateWindow window, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(window);
        if (window.ETag is null)
        {
            throw new ArgumentException("a replace needs the ETag the row was read with", nameof(window));
        }

        try
        {
            await Table.UpdateEntityAsync(ToEntity(window), new ETag(window.ETag), TableUpdateMode.Replace, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (RequestFailedException ex) when (ex.Status is 412 or 404)
        {
            return false;
        }
    }

    private static TableEntity ToEntity(RateWindow window) => new(window.Key, window.Scope)
    {
        ["WindowStart"] = window.WindowStart.ToUniversalTime(),
        ["Count"] = window.Count,
    };
}
