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
        var folder = LocalStorage.ResolveDataDir(dataDir);
        var connectionString = LocalStorage.ResolveConnectionString(connection, folder);
        if (LocalStorage.PortsOf(connectionString) is { } ports && !await AzuriteServer.IsRunningAtAsync(ports, cancellationToken).ConfigureAwait(false))
        {
            var source = LocalStorage.IsExplicit(connection) ? StorageSource.Explicit
                : connectionString != AzuriteServer.ConnectionStringFor(AzuritePorts.Default) || File.Exists(Path.Combine(folder, LocalStorage.ConnectionFileName)) ? StorageSource.Recorded
                : StorageSource.Default;
            error.WriteLine(NothingAnswers(command, ports, folder, source));
            return null;
        }

        return PipelineStorage.FromConnectionString(connectionString);
    }

    /// <summary>Where the connection string of a command came from.</summary>
    internal enum StorageSource
    {
        /// <summary><c>--storage</c> or <c>COVIDFN_STORAGE</c>.</summary>
        Explicit,

        /// <summary>The <c>storage.connection</c> a <c>covidfn up</c> wrote in the data folder.</summary>
        Recorded,

        /// <summary>Neither: Azurite's default ports.</summary>
        Default,
    }

    /// <summary>
    /// The line when nothing answers at <paramref name="ports"/>. It names the data folder: before, every case said "start
    /// the pipeline with `covidfn up` first", also to a user whose up was running but who ran the command outside its
    /// data folder (the default ports then, where nothing listens when up was given --port or another folder's Azurite),
    /// and to one whose data folder's up had stopped.
    /// </summary>
    internal static string NothingAnswers(string command, AzuritePorts ports, string dataDir, StorageSource source)
    {
        var at = $"127.0.0.1:{ports.Blob}/{ports.Queue}/{ports.Table}";
        return source switch
        {
            StorageSource.Recorded =>
                $"{command}: the covidfn up of {dataDir} is not running: nothing answers at {at}, the storage it recorded in {LocalStorage.ConnectionFileName}; " +
                $"start it again with `covidfn up --data-dir {dataDir}` (or set {LocalStorage.ConnectionVariable}).",
            StorageSource.Default =>
                $"{command}: no local storage answers at {at}, and {dataDir} is not the data folder of a covidfn up (no {LocalStorage.ConnectionFileName}); " +
                $"run this in the folder where `covidfn up` runs or give its --data-dir (or set {LocalStorage.DataDirVariable}), or start the pipeline with `covidfn up` first (or set {LocalStorage.ConnectionVariable}).",
            _ => $"{command}: no local storage answers at {at}; start the pipeline with `covidfn up` first (or set {LocalStorage.ConnectionVariable}).",
        };
    }
}
