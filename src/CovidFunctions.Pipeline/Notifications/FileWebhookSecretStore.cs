using System.Globalization;
using System.Text.Json;

namespace CovidFunctions.Pipeline.Notifications;

/// <summary>
/// The local secret store: one JSON file (name → secret) under the data dir, created with mode 0600 so only the user
/// running <c>covidfn</c> can read it, and replaced atomically on every change. Key Vault replaces it in Azure.
/// Beside each secret the file holds when it was stored, under <see cref="StoredAtPrefix"/> + its name (a string, so
/// the file stays a name → string map that earlier versions read and keep): the orphan sweep judges a secret's age by it.
/// </summary>
public sealed class FileWebhookSecretStore : IWebhookSecretStore
{
    /// <summary>The file name under the data dir.</summary>
    public const string FileName = "webhook-secrets.json";

    /// <summary>
    /// The key prefix of the entries dating the secrets (<c>~stored:{name}</c> → ISO 8601 UTC). '~' starts no secret name
    /// (Key Vault names are letters, digits and '-'), so these entries are never listed, read or set as secrets.
    /// </summary>
    public const string StoredAtPrefix = "~stored:";

    /// <summary>A temp file at least this old is no write in flight but one a killed process left.</summary>
    private static readonly TimeSpan StaleTempAge = TimeSpan.FromMinutes(10);

    private const string TempSuffix = ".tmp";

    private static readonly SemaphoreSlim Gate = new(1, 1);

    private readonly TimeProvider _time;

    public FileWebhookSecretStore(string dataDirectory, TimeProvider? time = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(dataDirectory);
        FilePath = Path.Combine(Path.GetFullPath(dataDirectory), FileName);
        _time = time ?? TimeProvider.System;
    }

    public string FilePath { get; }

    public async Task SetAsync(string name, string value, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentException.ThrowIfNullOrEmpty(value);
        if (IsReserved(name))
        {
            throw new ArgumentException($"a secret name must not start with '~' (got '{name}')", nameof(name));
        }

        await Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var secrets = await ReadAsync(cancellationToken).ConfigureAwait(false);
            secrets[name] = value;
            secrets[StoredAtPrefix + name] = _time.GetUtcNow().UtcDateTime.ToString("O", CultureInfo.InvariantCulture);
            await WriteAsync(secrets, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Gate.Release();
        }
    }

    public async Task<string?> GetAsync(string name, CancellationToken cancellationToken)
    {
        if (IsReserved(name))
        {
            return null;
        }

        var secrets = await ReadAsync(cancellationToken).ConfigureAwait(false);
        return secrets.TryGetValue(name, out var value) ? value : null;
    }

    public async Task DeleteAsync(string name, CancellationToken cancellationToken)
    {
        await Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var secrets = await ReadAsync(cancellationToken).ConfigureAwait(false);
            if (!IsReserved(name) && (secrets.Remove(name) | secrets.Remove(StoredAtPrefix + name)))
            {
                await WriteAsync(secrets, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            Gate.Release();
        }
    }

    public async Task<IReadOnlyList<string>> ListNamesAsync(string prefix, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        var secrets = await ReadAsync(cancellationToken).ConfigureAwait(false);
        return [.. secrets.Keys.Where(n => !IsReserved(n) && n.StartsWith(prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal)];
    }

    /// <summary>
    /// The secrets under <paramref name="prefix"/> with when each was stored. A secret an earlier version stored has no
    /// date: it is dated now, when first listed, and written so (its age counts from then, so the sweep deletes such
    /// a secret only a grace period after it first saw it, never at once).
    /// </summary>
    public async Task<IReadOnlyList<StoredWebhookSecret>> ListStoredAsync(string prefix, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        await Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var secrets = await ReadAsync(cancellationToken).ConfigureAwait(false);
            var now = _time.GetUtcNow();
            var listed = new List<StoredWebhookSecret>();
            var dated = false;
            foreach (var name in secrets.Keys.Where(n => !IsReserved(n) && n.StartsWith(prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList())
            {
                if (secrets.TryGetValue(StoredAtPrefix + name, out var text)
                    && DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var storedAt))
                {
                    listed.Add(new StoredWebhookSecret(name, storedAt));
                }
                else
                {
                    secrets[StoredAtPrefix + name] = now.UtcDateTime.ToString("O", CultureInfo.InvariantCulture);
                    listed.Add(new StoredWebhookSecret(name, now));
                    dated = true;
                }
            }

            if (dated)
            {
                await WriteAsync(secrets, cancellationToken).ConfigureAwait(false);
            }

            return listed;
        }
        finally
        {
            Gate.Release();
        }
    }

    private static bool IsReserved(string name) => name.StartsWith('~');

    private async Task<Dictionary<string, string>> ReadAsync(CancellationToken cancellationToken)
    {
        if (!File.Exists(FilePath))
        {
            return new(StringComparer.Ordinal);
        }

        await using var stream = File.OpenRead(FilePath);
        try
        {
            return await JsonSerializer.DeserializeAsync<Dictionary<string, string>>(stream, cancellationToken: cancellationToken).ConfigureAwait(false)
                ?? new(StringComparer.Ordinal);
        }
        catch (JsonException ex)
        {
            // Every change reads the file first, so a file that does not read is never written over: the secrets it
            // still holds stay for whoever repairs it. JsonException's message can quote a character of the file (a
            // value's), so the reason is composed from its position only.
            throw new WebhookSecretFileCorruptException(FilePath, ex);
        }
    }

    private async Task WriteAsync(Dictionary<string, string> secrets, CancellationToken cancellationToken)
    {
        var directory = Path.GetDirectoryName(FilePath)!;
        Directory.CreateDirectory(directory);
        var temp = FilePath + "." + Guid.NewGuid().ToString("N") + TempSuffix;
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            // Created 0600 from the start: the secrets are never readable by others, not even for a moment.
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            await using (var stream = new FileStream(temp, options))
            {
                await JsonSerializer.SerializeAsync(stream, secrets, cancellationToken: cancellationToken).ConfigureAwait(false);
            }

            File.Move(temp, FilePath, overwrite: true);
        }
        catch
        {
            // The temp file holds every secret (a full disk or quota, the target not a file, a cancel): it must not stay
            // beside the store, for a backup or a later reader to find.
            TryDelete(temp);
            throw;
        }

        DeleteStaleTempFiles(directory);
    }

    /// <summary>
    /// Deletes the temp files a process killed mid-write left (each a copy of the secrets of its time, which would
    /// otherwise stay for ever). Only those older than <see cref="StaleTempAge"/>: a younger one may be another
    /// process's write in flight (<c>up</c> and a <c>covidfn webhooks</c> command share the file; the gate is per process).
    /// </summary>
    private static void DeleteStaleTempFiles(string directory)
    {
        var prefix = FileName + ".";
        foreach (var path in Directory.EnumerateFiles(directory, prefix + "*" + TempSuffix))
        {
            // The pattern is loose (its '*' matches any run, even an empty one): only names of WriteAsync's shape go.
            var name = Path.GetFileName(path);
            if (name.Length == prefix.Length + 32 + TempSuffix.Length
                && Guid.TryParseExact(name.AsSpan(prefix.Length, 32), "N", out _)
                && DateTime.UtcNow - File.GetLastWriteTimeUtc(path) > StaleTempAge)
            {
                TryDelete(path);
            }
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Best effort: the write's own outcome (or the next write's clean-up) is what counts.
        }
    }
}

/// <summary>
/// The local secret file (<see cref="FileWebhookSecretStore.FilePath"/>) is not a JSON object of names to strings:
/// truncated, or edited by hand. The message names the file and where it stops reading, never a value from it; the file
/// is left as it is.
/// </summary>
public sealed class WebhookSecretFileCorruptException : IOException
{
    public WebhookSecretFileCorruptException(string filePath, JsonException inner)
        : base(Describe(filePath, inner), inner)
    {
        FilePath = filePath;
    }

    public string FilePath { get; }

    private static string Describe(string filePath, JsonException inner)
    {
        var at = inner.LineNumber is { } line
            ? string.Create(CultureInfo.InvariantCulture, $" at line {line + 1}, byte {(inner.BytePositionInLine ?? 0) + 1}")
            : "";
        var path = string.IsNullOrEmpty(inner.Path) || inner.Path == "$" ? "" : $" ({inner.Path})";
        return $"the webhook secret file {filePath} does not read as a JSON object of secret names to strings{at}{path}: truncated or edited? It was left as it is; restore it from a backup or repair it";
    }
}
