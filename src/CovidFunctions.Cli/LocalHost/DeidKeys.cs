using CovidFunctions.Dicom.Deidentification;

namespace CovidFunctions.Cli.LocalHost;

/// <summary>The de-identification key of the local pipeline and of offline screening.</summary>
public static class DeidKeys
{
    /// <summary>The key of <c>covidfn up</c>: <c>{data-dir}/keys/deid.key</c>, created (mode 0600) on first start.</summary>
    public static DeidKey ForDataDir(string dataDir, out string path, out bool created)
    {
        path = Path.Combine(dataDir, "keys", "deid.key");
        return DeidKey.LoadOrCreate(path, out created);
    }

    /// <summary>
    /// The key of <c>covidfn screen</c>, resolved like <c>covidfn deid</c>: <paramref name="keyFile"/>, else
    /// <c>COVIDFN_DEID_KEY</c> (base64), else the file in <c>COVIDFN_DEID_KEY_FILE</c>, else <c>~/.config/covidfn/deid.key</c>.
    /// </summary>
    public static DeidKey Resolve(string? keyFile, out string? createdPath)
    {
        createdPath = null;
        if (string.IsNullOrWhiteSpace(keyFile))
        {
            if (Environment.GetEnvironmentVariable("COVIDFN_DEID_KEY") is { Length: > 0 } inline)
            {
                return DeidKey.FromBase64(inline);
            }

            keyFile = Environment.GetEnvironmentVariable("COVIDFN_DEID_KEY_FILE");
            if (string.IsNullOrWhiteSpace(keyFile))
            {
                var config = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME");
                if (string.IsNullOrWhiteSpace(config))
                {
                    config = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config");
                }

                keyFile = Path.Combine(config, "covidfn", "deid.key");
            }
        }

        var key = DeidKey.LoadOrCreate(keyFile, out var created);
        createdPath = created ? keyFile : null;
        return key;
    }
}
