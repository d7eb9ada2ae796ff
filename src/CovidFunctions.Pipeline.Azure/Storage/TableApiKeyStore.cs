using Azure;
using Azure.Data.Tables;
using CovidFunctions.Pipeline.Api;

namespace CovidFunctions.Pipeline.Azure.Storage;

/// <summary>
/// <see cref="IApiKeyStore"/> on the <c>ApiKeys</c> table: PartitionKey <see cref="ApiKeyNames.Partition"/>, RowKey the
/// key's SHA-256 (lower-case hex); properties <c>Id</c> (the hash's first 12 hex digits), <c>Tenants</c>
/// (comma-separated, <c>*</c>: all), <c>CreatedAt</c> and, for a key minted with a lifetime, <c>ExpiresAt</c> (rows
/// without it, every key minted before expiry existed, never expire). The plaintext key is never written. The table is one of
/// <see cref="PipelineNames.Tables"/> (bicep creates it in Azure, <see cref="PipelineStorage.EnsureCreatedAsync"/>
/// locally); should it be missing all the same, lookups find nothing (401: the API fails closed) and a mint fails.
/// </summary>
public sealed class TableApiKeyStore : IApiKeyStore
{
    public TableApiKeyStore(TableServiceClient tables)
    {
        ArgumentNullException.ThrowIfNull(tables);
        Table = tables.GetTableClient(ApiKeyNames.Table);
    }

    public TableClient Table { get; }

    public async Task AddAsync(StoredApiKey key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        var entity = new TableEntity(ApiKeyNames.Partition, key.Hash)
        {
            ["Id"] = key.Id,
            ["Tenants"] = string.Join(',', key.Tenants),
            ["CreatedAt"] = key.CreatedAt.ToUniversalTime(),
        };
        if (key.ExpiresAt is { } expiresAt)
        {
            entity["ExpiresAt"] = expiresAt.ToUniversalTime();
        }

        try
        {
            await Table.AddEntityAsync(entity, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.Status == 409)
        {
            throw new InvalidOperationException($"api key {key.Id} exists", ex);
        }
    }

    public async Task<StoredApiKey?> FindByHashAsync(string hash, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(hash);
        try
        {
            var response = await Table.GetEntityIfExistsAsync<TableEntity>(ApiKeyNames.Partition, hash, cancellationToken: cancellationToken).ConfigureAwait(false);
            return response.HasValue && response.Value is { } entity ? FromEntity(entity) : null;
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return null; // no table: a deployment without it has no keys, so nobody is authorized
        }
    }

    public async Task<IReadOnlyList<StoredApiKey>> ListAsync(CancellationToken cancellationToken)
    {
        var list = new List<StoredApiKey>();
        try
        {
            await foreach (var entity in Table.QueryAsync<TableEntity>(TableClient.CreateQueryFilter($"PartitionKey eq {ApiKeyNames.Partition}"), cancellationToken: cancellationToken).ConfigureAwait(false))
            {
                list.Add(FromEntity(entity));
            }
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return [];
        }

        return list;
    }

    public async Task<bool> DeleteByIdAsync(string id, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        var deleted = false;
        try
        {
            var filter = TableClient.CreateQueryFilter($"PartitionKey eq {ApiKeyNames.Partition} and Id eq {id}");
            await foreach (var entity in Table.QueryAsync<TableEntity>(filter, select: ["PartitionKey", "RowKey"], cancellationToken: cancellationToken).ConfigureAwait(false))
            {
                var response = await Table.DeleteEntityAsync(entity.PartitionKey, entity.RowKey, ETag.All, cancellationToken).ConfigureAwait(false);
                deleted |= response.Status != 404;
            }
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return false;
        }

        return deleted;
    }

    private static StoredApiKey FromEntity(TableEntity entity) => new(
        entity.GetString("Id") ?? ApiKeyFormat.IdOf(entity.RowKey),
        entity.RowKey,
        (entity.GetString("Tenants") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
        entity.GetDateTimeOffset("CreatedAt") ?? default,
        entity.GetDateTimeOffset("ExpiresAt"));
}
