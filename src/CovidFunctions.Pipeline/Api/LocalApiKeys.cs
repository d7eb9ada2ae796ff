using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace CovidFunctions.Pipeline.Api;

/// <summary>
/// One local API key, the tenants it may see (<c>*</c>: all) and, optionally, when it expires (<c>"expiresAt"</c> in the
/// file; absent: never, as in every file written before expiry existed).
/// </summary>
public sealed record LocalApiKey(string Key, IReadOnlyList<string> Tenants, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt = null);

/// <summary>
/// The API keys of <c>covidfn up</c>: <c>api-keys.json</c> under the data dir (mode 0600), created on first use
/// with one operator key bound to every tenant. Add a tenant-bound key with <see cref="AddKeyAsync(IReadOnlyList{string}, TimeSpan?, CancellationToken)"/>; a key bound
/// to tenants sees only their studies (another tenant's study answers 404).
/// </summary>
public sealed class LocalApiKeys : IApiKeyAuthorizer
{
    public const string FileName = "api-keys.json";
    public const string AllTenantsMarker = "*";
    public const string HeaderName = "X-Api-Key";

    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly TimeProvider _time;

    public LocalApiKeys(string dataDirectory, TimeProvider? time = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(dataDirectory);
        FilePath = Path.Combine(Path.GetFullPath(dataDirectory), FileName);
        _time = time ?? TimeProvider.System;
    }

    public string FilePath { get; }

    /// <summary>The operator key (bound to all tenants), creating the file with a fresh one when it does not exist.</summary>
    public async Task<string> GetOrCreateOperatorKeyAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var keys = await ReadAsync(cancellationToken).ConfigureAwait(false);
            // An operator key that expired (an expiresAt put into the file) is not handed out: a fresh one is added.
            var existing = keys.FirstOrDefault(k => k.Tenants.Contains(AllTenantsMarker) && !ApiKeyExpiry.IsExpired(k.ExpiresAt, _time.GetUtcNow()));
            if (existing is not null)
            {
                return existing.Key;
            }

            var key = ApiKeyFormat.NewKey();
            keys.Add(new LocalApiKey(key, [AllTenantsMarker], _time.GetUtcNow()));
            await WriteAsync(keys, cancellationToken).ConfigureAwait(false);
            return key;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Adds a key bound to <paramref name="tenants"/> (at most <see cref="ApiKeyOptions.DefaultMaxTenantsPerKey"/>
    /// distinct ones, as for stored keys) and returns it.
    /// </summary>
    public Task<string> AddKeyAsync(IReadOnlyList<string> tenants, CancellationToken cancellationToken) =>
        AddKeyAsync(tenants, null, cancellationToken);

    /// <summary>
    /// Adds a key as above that expires <paramref name="lifetime"/> after now (null: never; more than zero and at most
    /// <see cref="ApiKeyOptions.DefaultMaxLifetimeDays"/> days, as for stored keys).
    /// </summary>
    public async Task<string> AddKeyAsync(IReadOnlyList<string> tenants, TimeSpan? lifetime, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenants);
        if (lifetime is { } span && (span <= TimeSpan.Zero || span > TimeSpan.FromDays(ApiKeyOptions.DefaultMaxLifetimeDays)))
        {
            throw new ArgumentException($"a key's lifetime must be more than 0 and at most {ApiKeyOptions.DefaultMaxLifetimeDays} days", nameof(lifetime));
        }

        // As a stored key's mint: an entry without tenants is one ReadAsync refuses, so writing it would make every
        // request of every key (the operator's too) fail until the file is edited by hand.
        if (tenants.Count == 0)
        {
            throw new ArgumentException("a key needs at least one tenant (or \"*\")", nameof(tenants));
        }

        ApiKeyTenants.Require(tenants);
        ApiKeyTenants.RequireWithinCap(tenants, ApiKeyOptions.DefaultMaxTenantsPerKey);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var keys = await ReadAsync(cancellationToken).ConfigureAwait(false);
            var key = ApiKeyFormat.NewKey();
            var now = _time.GetUtcNow();
            keys.Add(new LocalApiKey(key, [.. tenants], now, now + lifetime));
            await WriteAsync(keys, cancellationToken).ConfigureAwait(false);
            return key;
        }
        finally
        {
            _gate.Release();
        }
    }

    public async Task<ApiCaller?> AuthorizeAsync(string? apiKey, CancellationToken cancellationToken) =>
        (await CheckAsync(apiKey, cancellationToken).ConfigureAwait(false)).Caller;

    /// <summary>The caller of a key in the file; an entry whose <c>expiresAt</c> has passed is refused, saying so.</summary>
    public async Task<ApiKeyCheck> CheckAsync(string? apiKey, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(apiKey))
        {
            return new ApiKeyCheck(null);
        }

        var presented = Encoding.UTF8.GetBytes(apiKey);
        foreach (var entry in await ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            if (CryptographicOperations.FixedTimeEquals(presented, Encoding.UTF8.GetBytes(entry.Key)))
            {
                return ApiKeyExpiry.IsExpired(entry.ExpiresAt, _time.GetUtcNow())
                    ? new ApiKeyCheck(null, ApiKeyExpiry.Refusal(null, entry.ExpiresAt!.Value))
                    : new ApiKeyCheck(ApiKeyTenants.CallerFor(entry.Tenants));
            }
        }

        return new ApiKeyCheck(null);
    }

    /// <summary>
    /// The keys in the file. The file may be edited by hand, so every entry is checked: one that is not JSON, or an
    /// entry without a key or without tenants, with a tenant that is not valid, or with the key of an earlier entry, stops with
    /// <see cref="InvalidDataException"/> naming the file, the entry and what is wrong (before, an entry without a key
    /// made every request fail with a NullReferenceException-style 500, and one without tenants did so for its key).
    /// </summary>
    private async Task<List<LocalApiKey>> ReadAsync(CancellationToken cancellationToken)
    {
        if (!File.Exists(FilePath))
        {
            return [];
        }

        List<LocalApiKey?>? entries;
        try
        {
            await using var stream = File.OpenRead(FilePath);
            entries = await JsonSerializer.DeserializeAsync<List<LocalApiKey?>>(stream, ApiJson.Options, cancellationToken).ConfigureAwait(false);
        }
        catch (JsonException ex)
        {
            // The position, not ex.Message: that names .NET types ("could not be converted to System.Collections…").
            var where = ex.LineNumber is { } line ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $" (line {line + 1}, byte {ex.BytePositionInLine + 1})") : "";
            throw new InvalidDataException($"{FilePath}: not a JSON array of {{\"key\", \"tenants\"}} entries{where}", ex);
        }

        var keys = new List<LocalApiKey>(entries?.Count ?? 0);
        for (var i = 0; i < (entries?.Count ?? 0); i++)
        {
            var entry = entries![i];
            var problem = entry switch
            {
                null => "null instead of an entry",
                { Key: null or "" } => "no \"key\"",
                { Tenants: null or [] } => "no \"tenants\" (use [\"*\"] for every tenant)",
                _ when entry.Tenants.FirstOrDefault(t => t is null || !ApiKeyTenants.IsValid(t)) is { } bad => StudyIds.InvalidTenantMessage(bad),
                _ when entry.Tenants.Contains(null!) => "a null tenant",
                // Only the first entry of a key would count (its tenants), the second ignored without a word: a key copied
                // into a second entry for another tenant would go on seeing the first one's. The key itself is not named.
                _ when keys.FindIndex(k => string.Equals(k.Key, entry.Key, StringComparison.Ordinal)) is var first and >= 0 =>
                    string.Create(System.Globalization.CultureInfo.InvariantCulture, $"the same key as entry {first + 1} (one entry per key: list all its tenants there)"),
                _ => null,
            };
            if (problem is not null)
            {
                throw new InvalidDataException($"{FilePath}: entry {i + 1}: {problem}");
            }

            keys.Add(entry!);
        }

        return keys;
    }

    private async Task WriteAsync(List<LocalApiKey> keys, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(FilePath)!);
        var temp = FilePath + "." + Guid.NewGuid().ToString("N") + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        await using (var stream = new FileStream(temp, options))
        {
            await JsonSerializer.SerializeAsync(stream, keys, ApiJson.Options, cancellationToken).ConfigureAwait(false);
        }

        File.Move(temp, FilePath, overwrite: true);
    }
}
