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

    /// <summary>The default of <see cref="MaxLifetimeDays"/>: a year.</summary>
    public const int DefaultMaxLifetimeDays = 365;

    /// <summary>
    /// The longest lifetime a minted key may be given (<c>expiresInDays</c> of <c>POST /api/apikeys</c>), in days; default
    /// 365, at most 3650. A key minted without <c>expiresInDays</c> does not expire (as every key minted before expiry
    /// existed): the bound is on what a mint may ask, so a key meant to expire cannot be given a practically endless life.
    /// </summary>
    public int MaxLifetimeDays { get; init; } = DefaultMaxLifetimeDays;

    /// <summary>Throws <see cref="InvalidOperationException"/> naming the setting when a value is out of range (at start-up, not at the first mint).</summary>
    public void Validate()
    {
        if (MaxTenantsPerKey < 1)
        {
            throw new InvalidOperationException($"{SectionName}:{nameof(MaxTenantsPerKey)} must be at least 1 (got '{MaxTenantsPerKey}').");
        }

        if (MaxLifetimeDays is < 1 or > 3650)
        {
            throw new InvalidOperationException($"{SectionName}:{nameof(MaxLifetimeDays)} must be 1-3650 (got '{MaxLifetimeDays}').");
        }
    }
}

/// <summary>Expiry of API keys (stored and local): a key with an expiry time is refused from that time on.</summary>
public static class ApiKeyExpiry
{
    /// <summary>Whether a key expiring at <paramref name="expiresAt"/> (null: never) has expired at <paramref name="now"/>.</summary>
    public static bool IsExpired(DateTimeOffset? expiresAt, DateTimeOffset now) => expiresAt is { } at && now >= at;

    /// <summary>The 401's error for an expired key, naming its non-secret id (or none, for a local key) and when it expired.</summary>
    public static string Refusal(string? id, DateTimeOffset expiresAt) =>
        string.Create(
            System.Globalization.CultureInfo.InvariantCulture,
            $"this {LocalApiKeys.HeaderName}{(id is null ? "" : " (key " + id + ")")} expired at {expiresAt.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ}; ask the operator for a new key");
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

/// <summary>
/// A stored API key: never the key itself, only its hash, id, tenants (<c>*</c>: all), creation time and expiry (null:
/// never; every key minted before expiry existed).
/// </summary>
public sealed record StoredApiKey(string Id, string Hash, IReadOnlyList<string> Tenants, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt = null);

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
/// key: null (401); an expired key (<see cref="StoredApiKey.ExpiresAt"/> reached): null too, and
/// <see cref="CheckAsync"/> says it expired and when; otherwise a caller bound to the key's tenants (<c>*</c>: every
/// tenant).
/// </summary>
public sealed class StoredApiKeyAuthorizer(IApiKeyStore store, TimeProvider? time = null) : IApiKeyAuthorizer
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public async Task<ApiCaller?> AuthorizeAsync(string? apiKey, CancellationToken cancellationToken) =>
        (await CheckAsync(apiKey, cancellationToken).ConfigureAwait(false)).Caller;

    public async Task<ApiKeyCheck> CheckAsync(string? apiKey, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(apiKey) || !apiKey.StartsWith(ApiKeyFormat.Prefix, StringComparison.Ordinal))
        {
            return new ApiKeyCheck(null);
        }

        var stored = await store.FindByHashAsync(ApiKeyFormat.Hash(apiKey), cancellationToken).ConfigureAwait(false);
        if (stored is null)
        {
            return new ApiKeyCheck(null);
        }

        // Only the holder of the key itself learns it expired (the lookup is by its hash): no one learns which keys exist.
        return ApiKeyExpiry.IsExpired(stored.ExpiresAt, _time.GetUtcNow())
            ? new ApiKeyCheck(null, ApiKeyExpiry.Refusal(stored.Id, stored.ExpiresAt!.Value))
            : new ApiKeyCheck(ApiKeyTenants.CallerFor(stored.Tenants));
    }
}

/// <summary>The body of <c>POST /api/apikeys</c>: the tenants and, optionally, the key's lifetime in days (none: no expiry).</summary>
public sealed record MintApiKeyRequest(IReadOnlyList<string>? Tenants, double? ExpiresInDays = null);

/// <summary>A minted key: the only response that ever shows <see cref="Key"/>; <see cref="ExpiresAt"/> null: no expiry.</summary>
public sealed record MintedApiKey(string Id, string Key, IReadOnlyList<string> Tenants, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt = null);

/// <summary>
/// A listed key: id, tenants, creation time and, for a key with an expiry, when it expires and whether it has (both
/// absent for a key that never expires, so such a key lists as before); never the key or its hash.
/// </summary>
public sealed record ApiKeySummary(string Id, IReadOnlyList<string> Tenants, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt = null, bool? Expired = null);

/// <summary>
/// Minting, listing and revoking the stored API keys: the handlers behind the Function app's operator routes
/// (<c>/api/apikeys</c>, authorization level Admin: only the host master key reaches them).
/// </summary>
public sealed class ApiKeyAdmin(IApiKeyStore store, TimeProvider time, ApiKeyOptions? options = null)
{
    private readonly int _maxTenants = (options ?? new ApiKeyOptions()).MaxTenantsPerKey is var max && max >= 1
        ? max
        : throw new ArgumentOutOfRangeException(nameof(options), max, "ApiKeys:MaxTenantsPerKey must be at least 1");

    private readonly int _maxLifetimeDays = (options ?? new ApiKeyOptions()).MaxLifetimeDays is var days && days is >= 1 and <= 3650
        ? days
        : throw new ArgumentOutOfRangeException(nameof(options), days, "ApiKeys:MaxLifetimeDays must be 1-3650");

    /// <summary>
    /// Mints a key bound to <paramref name="tenants"/> (each valid per <see cref="StudyIds.IsValidTenant"/>, or <c>*</c>;
    /// at most <see cref="ApiKeyOptions.MaxTenantsPerKey"/> distinct ones).
    /// </summary>
    public Task<MintedApiKey> MintAsync(IReadOnlyList<string> tenants, CancellationToken cancellationToken) =>
        MintAsync(tenants, null, cancellationToken);

    /// <summary>
    /// Mints a key as above that expires <paramref name="lifetime"/> after now (null: never; more than zero and at most
    /// <see cref="ApiKeyOptions.MaxLifetimeDays"/> days, else <see cref="ArgumentException"/>).
    /// </summary>
    public async Task<MintedApiKey> MintAsync(IReadOnlyList<string> tenants, TimeSpan? lifetime, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenants);
        if (LifetimeProblem(lifetime?.TotalDays) is { } problem)
        {
            throw new ArgumentException(problem, nameof(lifetime));
        }

        if (tenants.Count == 0)
        {
            throw new ArgumentException("a key needs at least one tenant (or \"*\")", nameof(tenants));
        }

        ApiKeyTenants.Require(tenants);
        ApiKeyTenants.RequireWithinCap(tenants, _maxTenants);
        var key = ApiKeyFormat.NewKey();
        var hash = ApiKeyFormat.Hash(key);
        var now = time.GetUtcNow();
        var stored = new StoredApiKey(ApiKeyFormat.IdOf(hash), hash, [.. tenants.Distinct(StringComparer.Ordinal)], now, now + lifetime);
        await store.AddAsync(stored, cancellationToken).ConfigureAwait(false);
        return new MintedApiKey(stored.Id, key, stored.Tenants, stored.CreatedAt, stored.ExpiresAt);
    }

    /// <summary>What is wrong with a requested lifetime in days (null when none was asked for or it is within the bound).</summary>
    private string? LifetimeProblem(double? days) =>
        days is not { } d ? null
        : double.IsFinite(d) && d > 0 && d <= _maxLifetimeDays ? null
        : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"expiresInDays must be more than 0 and at most {_maxLifetimeDays} (ApiKeys:MaxLifetimeDays), not {d}; leave it out for a key that does not expire");

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

        if (LifetimeProblem(body.ExpiresInDays) is { } badLifetime)
        {
            return ApiResponse.Error(400, badLifetime);
        }

        var lifetime = body.ExpiresInDays is { } days ? TimeSpan.FromDays(days) : (TimeSpan?)null;
        return ApiResponse.Json(await MintAsync(tenants, lifetime, cancellationToken).ConfigureAwait(false), 201);
    }

    /// <summary><c>GET</c>: every key's id, tenants, creation time and expiry (with whether it has expired), oldest first.</summary>
    public async Task<ApiResponse> ListAsync(CancellationToken cancellationToken)
    {
        var keys = await store.ListAsync(cancellationToken).ConfigureAwait(false);
        var now = time.GetUtcNow();
        return ApiResponse.Json(keys
            .OrderBy(k => k.CreatedAt)
            .ThenBy(k => k.Id, StringComparer.Ordinal)
            .Select(k => new ApiKeySummary(k.Id, k.Tenants, k.CreatedAt, k.ExpiresAt, k.ExpiresAt is null ? null : ApiKeyExpiry.IsExpired(k.ExpiresAt, now)))
            .ToList());
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
