using Azure;
using Azure.Security.KeyVault.Secrets;

namespace CovidFunctions.Pipeline.Azure.Tests.Webhooks;

/// <summary>
/// The <see cref="SecretClient"/> calls <c>KeyVaultWebhookSecretStore</c> makes, with Key Vault's behaviour (no emulator
/// exists): a set of a soft-deleted name is a 409 (the name stays taken until purged), a get or delete of a missing or
/// deleted one a 404, the list leaves deleted ones out, comes in pages of 25 and carries each secret's <c>created</c>
/// time (set by the vault's clock, <paramref name="clock"/>, when the secret is set; never its value).
/// <see cref="FailDeletes"/> answers deletes with a 503 (the vault unavailable for a moment).
/// </summary>
internal sealed class FakeSecretClient(TimeProvider? clock = null) : SecretClient
{
    private readonly Dictionary<string, (string Value, DateTimeOffset CreatedOn)> _secrets = new(StringComparer.Ordinal);
    private readonly HashSet<string> _deleted = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private readonly TimeProvider _clock = clock ?? TimeProvider.System;
    private int _pages;

    public IReadOnlyCollection<string> SoftDeleted
    {
        get
        {
            lock (_gate)
            {
                return [.. _deleted];
            }
        }
    }

    public int PagesListed => _pages;

    /// <summary>While true, every delete fails with a 503 and changes nothing.</summary>
    public bool FailDeletes { get; set; }

    public override Uri VaultUri { get; } = new("https://kv-wh-test.vault.azure.net/");

    public override Task<Response<KeyVaultSecret>> SetSecretAsync(KeyVaultSecret secret, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            if (_deleted.Contains(secret.Name))
            {
                throw new RequestFailedException(409, $"Secret {secret.Name} is currently in a deleted but recoverable state");
            }

            _secrets[secret.Name] = (secret.Value, _clock.GetUtcNow());
        }

        return Task.FromResult(Response.FromValue(secret, null!));
    }

    public override Task<Response<KeyVaultSecret>> GetSecretAsync(string name, string? version = null, CancellationToken cancellationToken = default) =>
        GetSecretAsync(name, version, null, cancellationToken);

    public override Task<Response<KeyVaultSecret>> GetSecretAsync(string name, string? version, SecretContentType? outContentType, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            return _secrets.TryGetValue(name, out var secret)
                ? Task.FromResult(Response.FromValue(new KeyVaultSecret(name, secret.Value), null!))
                : throw new RequestFailedException(404, $"A secret with (name/id) {name} was not found in this key vault");
        }
    }

    public override Task<DeleteSecretOperation> StartDeleteSecretAsync(string name, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            if (FailDeletes)
            {
                throw new RequestFailedException(503, "The service is unavailable");
            }

            if (!_secrets.Remove(name))
            {
                throw new RequestFailedException(404, $"A secret with (name/id) {name} was not found in this key vault");
            }

            _deleted.Add(name);
        }

        return Task.FromResult<DeleteSecretOperation>(new StartedDelete());
    }

    public override AsyncPageable<SecretProperties> GetPropertiesOfSecretsAsync(CancellationToken cancellationToken = default)
    {
        List<(string Name, DateTimeOffset CreatedOn)> secrets;
        lock (_gate)
        {
            secrets = [.. _secrets.OrderBy(s => s.Key, StringComparer.Ordinal).Select(s => (s.Key, s.Value.CreatedOn))];
        }

        var pages = secrets.Chunk(25).Select(chunk =>
        {
            Interlocked.Increment(ref _pages);
            return Page<SecretProperties>.FromValues(
                [.. chunk.Select(s => SecretModelFactory.SecretProperties(name: s.Name, vaultUri: VaultUri, createdOn: s.CreatedOn, updatedOn: s.CreatedOn))],
                null,
                null!);
        }).ToList();
        return AsyncPageable<SecretProperties>.FromPages(pages);
    }

    /// <summary>The delete was accepted (the store does not wait for it).</summary>
    private sealed class StartedDelete : DeleteSecretOperation;
}
