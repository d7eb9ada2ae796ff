using Azure;
using Azure.Security.KeyVault.Secrets;
using CovidFunctions.Pipeline.Notifications;

namespace CovidFunctions.Pipeline.Azure.Webhooks;

/// <summary>
/// <see cref="IWebhookSecretStore"/> on Azure Key Vault (the Function app's managed identity needs the
/// "Key Vault Secrets Officer" role to add and remove, "Secrets User" to read; in Azure it holds Officer on a vault of
/// its own, bicep's webhook-secrets vault, never on the de-identification vault). Secret names are
/// <c>webhook-{tenant}-{id}</c> (letters, digits and '-', as Key Vault requires). Deleting starts a soft delete.
/// </summary>
public sealed class KeyVaultWebhookSecretStore(SecretClient client) : IWebhookSecretStore
{
    /// <summary>The vault the secrets go to (the webhook-secrets vault in Azure).</summary>
    public Uri VaultUri => client.VaultUri;

    public async Task SetAsync(string name, string value, CancellationToken cancellationToken)
    {
        var secret = new KeyVaultSecret(name, value);
        secret.Properties.ContentType = "webhook-signing-secret";
        await client.SetSecretAsync(secret, cancellationToken).ConfigureAwait(false);
    }

    public async Task<string?> GetAsync(string name, CancellationToken cancellationToken)
    {
        try
        {
            var response = await client.GetSecretAsync(name, cancellationToken: cancellationToken).ConfigureAwait(false);
            return response.Value.Value;
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return null;
        }
    }

    public async Task DeleteAsync(string name, CancellationToken cancellationToken)
    {
        try
        {
            await client.StartDeleteSecretAsync(name, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            // Already gone.
        }
    }

    /// <summary>
    /// One pass over the vault's secret list (names and properties, never values; soft-deleted secrets are not in it),
    /// filtered by <paramref name="prefix"/>: Key Vault has no prefix query. The webhook-secrets vault holds only these
    /// secrets, and only a removal (and the hourly orphan sweep) lists them, so one list request per 25 secrets in the
    /// vault is the cost of one removal.
    /// </summary>
    public async Task<IReadOnlyList<string>> ListNamesAsync(string prefix, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        var names = new List<string>();
        await foreach (var properties in client.GetPropertiesOfSecretsAsync(cancellationToken).ConfigureAwait(false))
        {
            if (properties.Name is { } name && name.StartsWith(prefix, StringComparison.Ordinal))
            {
                names.Add(name);
            }
        }

        return [.. names.Order(StringComparer.Ordinal)];
    }

    /// <summary>
    /// The same pass, with each secret's <c>created</c> time (its current version's, set by Key Vault's clock when the
    /// secret was set; a secret name is set once, rotations use new names). Null when the vault reports none.
    /// </summary>
    public async Task<IReadOnlyList<StoredWebhookSecret>> ListStoredAsync(string prefix, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        var stored = new List<StoredWebhookSecret>();
        await foreach (var properties in client.GetPropertiesOfSecretsAsync(cancellationToken).ConfigureAwait(false))
        {
            if (properties.Name is { } name && name.StartsWith(prefix, StringComparison.Ordinal))
            {
                stored.Add(new StoredWebhookSecret(name, properties.CreatedOn));
            }
        }

        return [.. stored.OrderBy(s => s.Name, StringComparer.Ordinal)];
    }
}
