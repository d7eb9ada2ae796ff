using CovidFunctions.Dicom.Deidentification;

namespace CovidFunctions.Cli.LocalHost;

/// <summary>
/// The de-identification key of the local pipeline and of offline screening. Commands resolve it when they start, before
/// reading any input or starting any service; a key that cannot be used throws a <see cref="DeidKeyException"/> whose
/// message names where the key came from (the option, the environment variable, the file) and why, never the key.
/// </summary>
public static class DeidKeys
{
    /// <summary>Environment variable holding the key itself (base64).</summary>
    public const string KeyVariable = "COVIDFN_DEID_KEY";

    /// <summary>Environment variable naming the key file.</summary>
    public const string KeyFileVariable = "COVIDFN_DEID_KEY_FILE";

    /// <summary>The key of <c>covidfn up</c>: <c>{data-dir}/keys/deid.key</c>, created (mode 0600) on first start.</summary>
    public static DeidKey ForDataDir(string dataDir, out string path, out bool created)
    {
        path = Path.Combine(dataDir, "keys", "deid.key");
        return LoadOrCreate(path, "the data folder's key file", out created);
    }

    /// <summary>
    /// The key of <c>covidfn screen</c> and <c>covidfn deid</c>: <paramref name="keyFile"/>, else <c>COVIDFN_DEID_KEY</c>
    /// (base64), else the file in <c>COVIDFN_DEID_KEY_FILE</c>, else <c>$XDG_CONFIG_HOME/covidfn/deid.key</c> (or
    /// <c>~/.config/covidfn/deid.key</c>). A key file that does not exist is created (mode 0600) and returned in
    /// <paramref name="createdPath"/>.
    /// </summary>
    public static DeidKey Resolve(string? keyFile, out string? createdPath)
    {
        createdPath = null;
        string source;
        if (!string.IsNullOrWhiteSpace(keyFile))
        {
            source = "--key-file";
        }
        else if (Environment.GetEnvironmentVariable(KeyVariable) is { Length: > 0 } inline)
        {
            try
            {
                return DeidKey.FromBase64(inline);
            }
            catch (DeidKeyException e)
            {
                throw new DeidKeyException($"{KeyVariable}: {e.Message}", e);
            }
        }
        else if (Environment.GetEnvironmentVariable(KeyFileVariable) is { Length: > 0 } fromVariable && !string.IsNullOrWhiteSpace(fromVariable))
        {
            keyFile = fromVariable;
            source = KeyFileVariable;
        }
        else
        {
            var config = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME");
            if (string.IsNullOrWhiteSpace(config))
            {
                config = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config");
            }

            keyFile = Path.Combine(config, "covidfn", "deid.key");
            source = "the default key file";
        }

        var key = LoadOrCreate(keyFile, source, out var created);
        createdPath = created ? keyFile : null;
        return key;
    }

    private static DeidKey LoadOrCreate(string path, string source, out bool created)
    {
        try
        {
            return DeidKey.LoadOrCreate(path, out created);
        }
        catch (DeidKeyException e)
        {
            // Read or create failures already name the file; a malformed or short key does not.
            var message = e.Message.Contains(path, StringComparison.Ordinal) ? e.Message : $"'{path}': {e.Message}";
            throw new DeidKeyException($"{source}: {message}", e);
        }
    }
}
