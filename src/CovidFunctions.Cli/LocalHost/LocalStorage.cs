using CovidFunctions.Pipeline.Azure.Local;

namespace CovidFunctions.Cli.LocalHost;

/// <summary>
/// Where the local pipeline keeps things and how commands reach its storage. <c>covidfn up</c>, <c>submit</c> and
/// <c>status</c> share these conventions: the data folder is <c>--data-dir</c>, else <c>COVIDFN_DATA_DIR</c>, else
/// <c>.covidfn/</c> in the working directory; storage is the connection string in <c>COVIDFN_STORAGE</c>, else Azurite
/// on its default ports 10000-10002 at 127.0.0.1 (what <c>up</c> starts or reuses).
/// </summary>
public static class LocalStorage
{
    /// <summary>The environment variable holding a Storage connection string that overrides the Azurite default.</summary>
    public const string ConnectionVariable = "COVIDFN_STORAGE";

    /// <summary>The environment variable naming the data folder when <c>--data-dir</c> is not given.</summary>
    public const string DataDirVariable = "COVIDFN_DATA_DIR";

    public const string DefaultDataDir = ".covidfn";

    public static string ResolveDataDir(string? dataDir) =>
        Path.GetFullPath(dataDir is { Length: > 0 } given ? given
            : Environment.GetEnvironmentVariable(DataDirVariable) is { Length: > 0 } configured ? configured
            : DefaultDataDir);

    /// <summary>
    /// Whether <paramref name="dataDir"/> is the data folder of a <c>covidfn up</c>: it holds the de-identification key up
    /// creates at its first start (<c>keys/deid.key</c>). <c>submit</c> keys study ids with it and <c>webhooks</c> keeps
    /// subscription secrets beside it, so in any other folder they would give ids and secrets that up never uses.
    /// </summary>
    public static bool IsUpDataDir(string dataDir) => File.Exists(UpKeyPath(dataDir));

    /// <summary>The key file of the data folder's <c>covidfn up</c>.</summary>
    public static string UpKeyPath(string dataDir) => Path.Combine(dataDir, "keys", "deid.key");

    /// <summary>Why <paramref name="command"/> refuses a folder that is not an up data folder (<see cref="IsUpDataDir"/>), and what to do.</summary>
    public static string NotAnUpDataDir(string command, string dataDir, string consequence) =>
        $"{command}: {dataDir} is not the data folder of a covidfn up (it has no {Path.Combine("keys", "deid.key")}), so {consequence}. " +
        $"Pass the running up's --data-dir (or set {DataDirVariable}), or run it in the folder where up was started.";

    /// <summary>The file in the data folder where a running <c>covidfn up</c> records its storage connection string.</summary>
    public const string ConnectionFileName = "storage.connection";

    /// <summary>
    /// The connection string: <paramref name="explicitConnection"/>, else <c>COVIDFN_STORAGE</c>, else the one
    /// <c>covidfn up</c> recorded in <paramref name="dataDir"/> (when given), else Azurite on its default ports.
    /// </summary>
    public static string ResolveConnectionString(string? explicitConnection = null, string? dataDir = null)
    {
        if (explicitConnection is { Length: > 0 } given)
        {
            return given;
        }

        if (Environment.GetEnvironmentVariable(ConnectionVariable) is { Length: > 0 } configured)
        {
            return configured;
        }

        if (dataDir is not null && File.Exists(Path.Combine(dataDir, ConnectionFileName)))
        {
            var recorded = File.ReadAllText(Path.Combine(dataDir, ConnectionFileName)).Trim();
            if (recorded.Length > 0)
            {
                return recorded;
            }
        }

        return AzuriteServer.ConnectionStringFor(AzuritePorts.Default);
    }

    /// <summary>True when the connection string names no explicit storage beyond the Azurite default (so <c>up</c> may start Azurite).</summary>
    public static bool IsExplicit(string? explicitConnection) =>
        explicitConnection is { Length: > 0 } || Environment.GetEnvironmentVariable(ConnectionVariable) is { Length: > 0 };

    /// <summary>The Azurite ports of a connection string's blob/queue/table endpoints, when all three are loopback http URLs.</summary>
    public static AzuritePorts? PortsOf(string connectionString)
    {
        int? blob = null, queue = null, table = null;
        foreach (var part in connectionString.Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || !Uri.TryCreate(part[(eq + 1)..].Trim(), UriKind.Absolute, out var uri) || !uri.IsLoopback)
            {
                continue;
            }

            switch (part[..eq].Trim().ToUpperInvariant())
            {
                case "BLOBENDPOINT": blob = uri.Port; break;
                case "QUEUEENDPOINT": queue = uri.Port; break;
                case "TABLEENDPOINT": table = uri.Port; break;
            }
        }

        if (connectionString.Contains("UseDevelopmentStorage=true", StringComparison.OrdinalIgnoreCase))
        {
            return AzuritePorts.Default;
        }

        return blob is { } b && queue is { } q && table is { } t ? new AzuritePorts(b, q, t) : null;
    }
}
