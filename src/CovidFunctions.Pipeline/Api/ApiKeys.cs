using System.Security.Cryptography;
using System.Text;

namespace CovidFunctions.Pipeline.Api;

/// <summary>
/// The <c>X-Api-Key</c> format shared by the local keys (<see cref="LocalApiKeys"/>) and the Function app's stored keys
/// (<see cref="StoredApiKeyAuthorizer"/>): <c>cfk_</c> + 48 lower-case hex digits (24 random bytes). A stored key is
/// kept only as its SHA-256 (<see cref="Hash"/>); its id (<see cref="IdOf"/>) is the hash's first 12 hex digits.
/// </summary>
public static class ApiKeyFormat
{
    public const string Prefix = "cfk_";

    /// <summary>How many hex digits of the hash make a key's non-secret id.</summary>
    public const int IdLength = 12;

    /// <summary>A fresh random key.</summary>
    public static string NewKey() => Prefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));

    /// <summary>SHA-256 of the key's UTF-8 bytes, as 64 lower-case hex digits.</summary>
    public static string Hash(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));
    }

    /// <summary>The short, non-secret id of a key (the first <see cref="IdLength"/> hex digits of its hash), for listing and revocation.</summary>
    public static string IdOf(string hash)
    {
        ArgumentNullException.ThrowIfNull(hash);
        return hash[..IdLength];
    }
}

/// <summary>Settings of the API keys (configuration section <c>ApiKeys</c>).</summary>
public sealed record ApiKeyOptions
{
    public const string SectionName = "ApiKeys";

    /// <summary>The default of <see cref="MaxTenantsPerKey"/>.</summary>
    public const int DefaultMaxTenantsPerKey = 25;

    /// <summary>
    /// The most tenants one key may be bound to (<c>*</c>, every tenant, counts as one). Each request of a key bound to
    /// several tenants may read each of them (a study lookup without <c>?tenant=</c> tries every one, usage sums
    /// every one), so an unbounded list makes one request cost as many reads as the key has tenants; and a key for
    /// many groups is better minted as several keys that can be revoked one by one.
    /// </summary>
    public int MaxTenantsPerKey { get; init; } = DefaultMaxTenantsPerKey;

    /// <summary>Throws <see cref="InvalidOperationException"/> naming the setting when <see cref="MaxTenantsPerKey"/> is below 1 (at start-up, not at the first mint).</summary>
    public void Validate()
    {
        if (MaxTenantsPerKey < 1)
        {
            throw new InvalidOperationException($"{SectionName}:{nameof(MaxTenantsPerKey)} must be at least 1 (got '{MaxTenantsPerKey}').");
        }
    }
}

/// <summary>
/// The tenants an API key (local or stored) is bound to: valid tenant names (<see cref="StudyIds.IsValidTenant"/>), or
/// <see cref="LocalApiKeys.AllTenantsMarker"/> for every tenant.
/// </summary>
public static class ApiKeyTenants
{
    /// <summary>Whether <paramref name="tenant"/> may be bound to a key.</summary>
    public static bool IsValid(string tenant) => tenant == LocalApiKeys.AllTenantsMarker || StudyIds.IsValidTenant(tenant);

    /// <summary>Throws as <see cref="StudyIds.RequireTenant"/> does for the first tenant that may not be bound to a key.</summary>
    public static void Require(IEnumerable<string> tenants)
    {
        ArgumentNullException.ThrowIfNull(tenants);
        foreach (var tenant in tenants)
        {
            if (tenant != LocalApiKeys.AllTenantsMarker)
            {
                StudyIds.RequireTenant(tenant);
            }
        }
    }

    /// <summary>
    /// The error for a key bound to more than <paramref name="maxTenants"/> distinct tenants, or null when the count is
    /// within the cap.
    /// </summary>
    public static string? TooManyTenants(IEnumerable<string> tenants, int maxTenants)
    {
        ArgumentNullException.ThrowIfNull(tenants);
        var count = tenants.Distinct(StringComparer.Ordinal).Count();
        return count > maxTenants
            ? $"a key may be bound to at most {maxTenants} tenants, not {count} (ApiKeys:MaxTenantsPerKey); mint one key per group of tenants"
            : null;
    }

    /// <summary>Throws <see cref="ArgumentException"/> with <see cref="TooManyTenants"/>'s message when the key would exceed the cap.</summary>
    public static void RequireWithinCap(IEnumerable<string> tenants, int maxTenants)
    {
        if (TooManyTenants(tenants, maxTenants) is { } error)
        {
            throw new ArgumentException(error, nameof(tenants));
        }
    }

    /// <summary>The caller a key bound to <paramref name="tenants"/> is (<c>*</c> among them: every tenant).</summary>
    public static ApiCaller CallerFor(IReadOnlyList<string> tenants)
    {
        ArgumentNullException.ThrowIfNull(tenants);
        return tenants.Contains(LocalApiKeys.AllTenantsMarker) ? ApiCaller.AllTenants : ApiCaller.ForTenants([.. tenants]);
    }
}

/// <summary>A stored API key: never the key itself, only its hash, id, tenants (<c>*</c>: all) and creation time.</summary>
public sealed record StoredApiKey(string Id, string Hash, IReadOnlyList<string> Tenants, DateTimeOffset CreatedAt);

/// <summary>Where the Function app keeps its API keys (the <c>ApiKeys</c> table in Azure), looked up by hash.</summary>
public interface IApiKeyStore
{
    /// <summary>Adds a key; the store creates its table on first use.</summary>
    Task AddAsync(StoredApiKey key, CancellationToken cancellationToken);

    /// <summary>The key whose SHA-256 is <paramref name="hash"/>, or null.</summary>
    Task<StoredApiKey?> FindByHashAsync(string hash, CancellationToken cancellationToken);

    Task<IReadOnlyList<StoredApiKey>> ListAsync(CancellationToken cancellationToken);

    /// <summary>Deletes the key with this id; false when there is none.</summary>
    Task<bool> DeleteByIdAsync(string id, CancellationToken cancellationToken);
}

/// <summary>Names of the stored-key table (one of <see cref="PipelineNames.Tables"/>: bicep and the local host create it).</summary>
public static class ApiKeyNames
{
    public const string Table = PipelineNames.ApiKeysTable;

    /// <summary>Every key row shares this PartitionKey; the RowKey is the key's hash.</summary>
    public const string Partition = "apikey";
}

/// <summary>
/// The Function app's <see cref="IApiKeyAuthorizer"/>: the presented <c>X-Api-Key</c> is hashed and looked up in the
/// <see cref="IApiKeyStore"/> (no plaintext is stored, so no comparison of secrets happens here). Missing or unknown
/// key: null (401); otherwise a caller bound to the key's tenants (<c>*</c>: every tenant).
/// </summary>
public sealed class StoredApiKeyAuthorizer(IApiKeyStore store) : IApiKeyAuthorizer
{
    public async Task<ApiCaller?> AuthorizeAsync(string? apiKey, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(apiKey) || !apiKey.StartsWith(ApiKeyFormat.Prefix, StringComparison.Ordinal))
        {
            return null;
        }

        var stored = await store.FindByHashAsync(ApiKeyFormat.Hash(apiKey), cancellationToken).ConfigureAwait(false);
        return stored is null ? null : ApiKeyTenants.CallerFor(stored.Tenants);
    }
}

/// <summary>The body of <c>POST /api/apikeys</c>.</summary>
public sealed record MintApiKeyRequest(IReadOnlyList<string>? Tenants);

/// <summary>A minted key: the only response that ever shows <see cref="Key"/>.</summary>
public sealed record MintedApiKey(string Id, string Key, IReadOnlyList<string> Tenants, DateTimeOffset CreatedAt);

/// <summary>A listed key: id, tenants and creation time (never the key or its hash).</summary>
public sealed record ApiKeySummary(string Id, IReadOnlyList<string> Tenants, DateTimeOffset CreatedAt);

/// <summary>
/// Minting, listing and revoking the stored API keys: the handlers behind the Function app's operator routes
/// (<c>/api/apikeys</c>, authorization level Admin: only the host master key reaches them).
/// </summary>
public sealed class ApiKeyAdmin(IApiKeyStore store, TimeProvider time, ApiKeyOptions? options = null)
{
    private readonly int _maxTenants = (options ?? new ApiKeyOptions()).MaxTenantsPerKey is var max && max >= 1
        ? max
        : throw new ArgumentOutOfRangeException(nameof(options), max, "ApiKeys:MaxTenantsPerKey must be at least 1");

    /// <summary>
    /// Mints a key bound to <paramref name="tenants"/> (each valid per <see cref="StudyIds.IsValidTenant"/>, or <c>*</c>;
    /// at most <see cref="ApiKeyOptions.MaxTenantsPerKey"/> distinct ones).
    /// </summary>
    public async Task<MintedApiKey> MintAsync(IReadOnlyList<string> tenants, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenants);
        if (tenants.Count == 0)
        {
            throw new ArgumentException("a key needs at least one tenant (or \"*\")", nameof(tenants));
        }

        ApiKeyTenants.Require(tenants);
        ApiKeyTenants.RequireWithinCap(tenants, _maxTenants);
        var key = ApiKeyFormat.NewKey();
        var hash = ApiKeyFormat.Hash(key);
        var stored = new StoredApiKey(ApiKeyFormat.IdOf(hash), hash, [.. tenants.Distinct(StringComparer.Ordinal)], time.GetUtcNow());
        await store.AddAsync(stored, cancellationToken).ConfigureAwait(false);
        return new MintedApiKey(stored.Id, key, stored.Tenants, stored.CreatedAt);
    }

    /// <summary>
    /// <c>POST</c>: 201 with the new key; 400 on a body that is not <c>{"tenants": [...]}</c>, an invalid tenant or more
    /// tenants than <see cref="ApiKeyOptions.MaxTenantsPerKey"/>; 413 over <see cref="ApiRequestBody.MaxBytes"/>.
    /// </summary>
    public async Task<ApiResponse> MintAsync(Stream requestBody, CancellationToken cancellationToken)
    {
        var (body, error) = await ApiRequestBody.ReadJsonAsync<MintApiKeyRequest>(requestBody, cancellationToken).ConfigureAwait(false);
        if (error is not null)
        {
            return error;
        }

        if (body?.Tenants is not { Count: > 0 } tenants || tenants.Any(t => t is null))
        {
            return ApiResponse.Error(400, "body must be {\"tenants\": [\"tenant\", ...]} (\"*\": every tenant)");
        }

        if (tenants.FirstOrDefault(t => !ApiKeyTenants.IsValid(t)) is { } invalid)
        {
            return ApiResponse.Error(400, StudyIds.InvalidTenantMessage(invalid));
        }

        if (ApiKeyTenants.TooManyTenants(tenants, _maxTenants) is { } tooMany)
        {
            return ApiResponse.Error(400, tooMany);
        }

        return ApiResponse.Json(await MintAsync(tenants, cancellationToken).ConfigureAwait(false), 201);
    }

    /// <summary><c>GET</c>: every key's id, tenants and creation time, oldest first.</summary>
    public async Task<ApiResponse> ListAsync(CancellationToken cancellationToken)
    {
        var keys = await store.ListAsync(cancellationToken).ConfigureAwait(false);
        return ApiResponse.Json(keys.OrderBy(k => k.CreatedAt).ThenBy(k => k.Id, StringComparer.Ordinal).Select(k => new ApiKeySummary(k.Id, k.Tenants, k.CreatedAt)).ToList());
    }

    /// <summary><c>DELETE {id}</c>: 204, or 404 when no key has that id.</summary>
    public async Task<ApiResponse> RevokeAsync(string id, CancellationToken cancellationToken)
    {
        var valid = id is { Length: ApiKeyFormat.IdLength } && id.All(char.IsAsciiHexDigitLower);
        return valid && await store.DeleteByIdAsync(id, cancellationToken).ConfigureAwait(false)
            ? ApiResponse.NoContent
            : ApiResponse.NotFound("api key " + id);
    }
}
