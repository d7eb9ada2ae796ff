using System.Text.Json;

namespace CovidFunctions.Pipeline.Notifications;

/// <summary>
/// The local secret store: one JSON file (name → secret) under the data dir, created with mode 0600 so only the user
/// running <c>covidfn</c> can read it, and replaced atomically on every change. Key Vault replaces it in Azure.
/// </summary>
public sealed class FileWebhookSecretStore : IWebhookSecretStore
{
    /// <summary>The file name under the data dir.</summary>
    public const string FileName = "webhook-secrets.json";

    private static readonly SemaphoreSlim Gate = new(1, 1);

    public FileWebhookSecretStore(string dataDirectory)
    {
        ArgumentException.ThrowIfNullOrEmpty(dataDirectory);
        FilePath = Path.Combine(Path.GetFullPath(dataDirectory), FileName);
    }

    public string FilePath { get; }

    public async Task SetAsync(string name, string value, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentException.ThrowIfNullOrEmpty(value);
        await Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var secrets = await ReadAsync(cancellationToken).ConfigureAwait(false);
            secrets[name] = value;
            await WriteAsync(secrets, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Gate.Release();
        }
    }

    public async Task<string?> GetAsync(string name, CancellationToken cancellationToken)
    {
        var secrets = await ReadAsync(cancellationToken).ConfigureAwait(false);
        return secrets.TryGetValue(name, out var value) ? value : null;
    }

    public async Task DeleteAsync(string name, CancellationToken cancellationToken)
    {
        await Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var secrets = await ReadAsync(cancellationToken).ConfigureAwait(false);
            if (secrets.Remove(name))
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
        return [.. secrets.Keys.Where(n => n.StartsWith(prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal)];
    }

    private async Task<Dictionary<string, string>> ReadAsync(CancellationToken cancellationToken)
    {
        if (!File.Exists(FilePath))
        {
            return new(StringComparer.Ordinal);
        }

        await using var stream = File.OpenRead(FilePath);
        return await JsonSerializer.DeserializeAsync<Dictionary<string, string>>(stream, cancellationToken: cancellationToken).ConfigureAwait(false)
            ?? new(StringComparer.Ordinal);
    }

    private async Task WriteAsync(Dictionary<string, string> secrets, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(FilePath)!);
        var temp = FilePath + "." + Guid.NewGuid().ToString("N") + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            // Created 0600 from the start: the secrets are never readable by others, not even for a moment.
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        await using (var stream = new FileStream(temp, options))
        {
            await JsonSerializer.SerializeAsync(stream, secrets, cancellationToken: cancellationToken).ConfigureAwait(false);
        }

        File.Move(temp, FilePath, overwrite: true);
    }
}
