using System.CommandLine;
using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.Pipeline.Azure.Storage;

namespace CovidFunctions.Cli.LocalHost;

/// <summary>Opens the pipeline storage for <c>submit</c> and <c>status</c>, failing fast with a clear message when nothing answers.</summary>
public static class LocalStorageConnection
{
    /// <summary><c>--data-dir</c> of the commands that talk to the storage of a running <c>covidfn up</c>.</summary>
    public static Option<string?> DataDirOption() =>
        new("--data-dir") { Description = "The data folder of `covidfn up` (default .covidfn/ in the working directory)." };

    /// <summary>The hidden <c>--storage</c> connection-string override of those commands (tests, other accounts).</summary>
    public static Option<string?> StorageOption() =>
        new("--storage") { Description = "Storage connection string (default: COVIDFN_STORAGE, else Azurite on 10000-10002).", Hidden = true };

    /// <summary>The storage, or null with the reason written to <paramref name="error"/> (Azurite not running).</summary>
    public static async Task<PipelineStorage?> OpenAsync(string command, string? connection, string? dataDir, TextWriter error, CancellationToken cancellationToken)
    {
        var connectionString = LocalStorage.ResolveConnectionString(connection, LocalStorage.ResolveDataDir(dataDir));
        if (LocalStorage.PortsOf(connectionString) is { } ports && !await AzuriteServer.IsRunningAtAsync(ports, cancellationToken).ConfigureAwait(false))
        {
            error.WriteLine($"{command}: no local storage answers at 127.0.0.1:{ports.Blob}/{ports.Queue}/{ports.Table}; start the pipeline with `covidfn up` first (or set {LocalStorage.ConnectionVariable}).");
            return null;
        }

        return PipelineStorage.FromConnectionString(connectionString);
    }
}
