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
            StorageSource.Recorded when UpDataDirLock.IsHeld(dataDir) =>
                $"{command}: the covidfn up of {dataDir} is running{PidOf(UpDataDirLock.ReadRecord(dataDir))} but its storage does not answer at {at}, the storage it recorded in {LocalStorage.ConnectionFileName}: " +
                $"the Azurite it uses has stopped or is being restarted. Try again in a few seconds; up restarts an Azurite it started, or stops saying why (its console, {Path.Combine(dataDir, "logs", "covidfn-up.log")}).",
            StorageSource.Recorded =>
                $"{command}: the covidfn up of {dataDir} is not running: nothing answers at {at}, the storage it recorded in {LocalStorage.ConnectionFileName}; " +
                $"start it again as it ran: `{RestartCommand(dataDir, ports)}` (or set {LocalStorage.ConnectionVariable}).",
            StorageSource.Default =>
                $"{command}: no local storage answers at {at}, and {dataDir} is not the data folder of a covidfn up (no {LocalStorage.ConnectionFileName}); " +
                $"run this in the folder where `covidfn up` runs or give its --data-dir (or set {LocalStorage.DataDirVariable}), or start the pipeline with `covidfn up` first (or set {LocalStorage.ConnectionVariable}).",
            _ => $"{command}: no local storage answers at {at}; start the pipeline with `covidfn up` first (or set {LocalStorage.ConnectionVariable}).",
        };
    }

    private static string PidOf(UpRecord? record) =>
        record is null ? string.Empty : string.Create(System.Globalization.CultureInfo.InvariantCulture, $" (pid {record.Pid}, started {record.StartedAt.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC)");

    /// <summary>
    /// The restart command with the options the last <c>up</c> ran with, from its <c>up.json</c>. A folder an older
    /// <c>up</c> left without one: the ports recorded in <c>storage.connection</c> and <c>api.url</c>, and
    /// <c>--allow-loopback-webhooks</c> when its marker was left (that <c>up</c> did not record the flag otherwise).
    /// </summary>
    internal static string RestartCommand(string dataDir, AzuritePorts ports)
    {
        if (UpDataDirLock.ReadRecord(dataDir) is { } record)
        {
            return record.RestartCommand(dataDir);
        }

        var apiPort = 7071;
        try
        {
            var url = File.ReadAllText(Path.Combine(dataDir, LocalApiServer.UrlFileName)).Trim();
            if (Uri.TryCreate(url, UriKind.Absolute, out var uri))
            {
                apiPort = uri.Port;
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // No API recorded: the default.
        }

        var loopback = File.Exists(Path.Combine(dataDir, LocalWebhooks.AllowLoopbackMarker));
        return new UpRecord(0, default, ports.Blob, apiPort, loopback).RestartCommand(dataDir);
    }
}
