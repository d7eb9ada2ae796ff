using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Azure.Local;

/// <summary>The three Azurite listener ports.</summary>
public sealed record AzuritePorts(int Blob, int Queue, int Table)
{
    /// <summary>Azurite's (and the Storage tools') defaults: 10000, 10001, 10002. <c>covidfn up</c> uses these.</summary>
    public static AzuritePorts Default { get; } = new(10000, 10001, 10002);
}

/// <summary>How to start <see cref="AzuriteServer"/>.</summary>
public sealed record AzuriteServerOptions
{
    /// <summary>Azurite's <c>--location</c>: blobs, queues, tables and the log (<c>azurite.log</c>) live here and survive restarts.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>Listener ports; <see cref="AzuritePorts.Default"/> unless set (tests use <see cref="AzuriteServer.FreePorts"/>).</summary>
    public AzuritePorts Ports { get; init; } = AzuritePorts.Default;

    /// <summary>
    /// The repository root holding <c>infra/azurite/package.json</c>; when null it is found by walking up from
    /// <see cref="AppContext.BaseDirectory"/> and then the current directory to <c>CovidFunctions.sln</c>.
    /// </summary>
    public string? RepoRoot { get; init; }

    /// <summary>The Node.js executable (<c>node</c> on PATH by default).</summary>
    public string NodeExecutable { get; init; } = "node";

    /// <summary>
    /// The process whose death ends the server (<c>infra/azurite/parent-watchdog.cjs</c> checks every second); this
    /// process by default, so a killed test run or <c>covidfn up</c> leaves no orphan Azurite. Null: none.
    /// </summary>
    public int? ParentProcessId { get; init; } = Environment.ProcessId;

    /// <summary>
    /// Pass <c>--skipApiVersionCheck</c> (default). The pipeline's clients pin service versions Azurite accepts, so they
    /// also work without it, like against an Azurite someone else started; tests turn it off to prove that.
    /// </summary>
    public bool SkipApiVersionCheck { get; init; } = true;

    /// <summary>How long to wait for the listeners to answer after the process starts.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(60);
}

/// <summary>
/// Runs the repository's pinned Azurite (npm <c>azurite@3.37.0</c> in <c>infra/azurite</c>) as a child process on
/// 127.0.0.1, the storage behind <c>covidfn up</c> and the integration tests.
/// <para>
/// Use: <c>await using var azurite = await AzuriteServer.StartAsync(new() { DataDirectory = dir, Ports = AzuriteServer.FreePorts() }, logger, ct);</c>
/// then <see cref="ConnectionString"/> feeds <see cref="Storage.PipelineStorage.FromConnectionString"/> and the
/// Durable sidecar. Before starting one, <c>covidfn up</c> should call <see cref="IsRunningAtAsync"/> with
/// <see cref="AzuritePorts.Default"/> and reuse an Azurite that already answers (<see cref="ConnectionStringFor"/>).
/// </para>
/// <para>
/// On first use it runs <c>npm ci</c> in <c>infra/azurite</c> (about a minute; <c>infra/scripts/prepare.sh</c> does the
/// same for CI). The server is started with <c>node …/azurite.js</c> directly (so the process id is the server's),
/// <c>--skipApiVersionCheck --loose</c> (the SDKs send a newer API version than 3.37 knows), and its output goes to
/// <c>{DataDirectory}/azurite.log</c>. <see cref="StopAsync"/> sends SIGTERM twice (Azurite closes its listeners on the
/// first and exits on the second) and kills it if it lingers; <see cref="RestartAsync"/> brings it back on the same
/// folder and ports, with its data.
/// </para>
/// </summary>
public sealed partial class AzuriteServer : IAsyncDisposable
{
    /// <summary>The well-known Azurite/Storage-emulator account (public, documented; not a secret).</summary>
    public const string AccountName = "devstoreaccount1";

    /// <summary>The well-known Azurite/Storage-emulator account key (public, documented; not a secret).</summary>
    public const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    /// <summary>The pinned version (infra/azurite/package.json).</summary>
    public const string PinnedVersion = "3.37.0";

    private const string Host = "127.0.0.1";
    private static readonly SemaphoreSlim InstallGate = new(1, 1);

    private readonly AzuriteServerOptions _options;
    private readonly string _scriptPath;
    private readonly ILogger _logger;
    private Process? _process;
    private long _logStartOffset;

    private AzuriteServer(AzuriteServerOptions options, string scriptPath, ILogger logger)
    {
        _options = options;
        _scriptPath = scriptPath;
        _logger = logger;
        DataDirectory = Path.GetFullPath(options.DataDirectory);
    }

    public string DataDirectory { get; }

    public AzuritePorts Ports => _options.Ports;

    /// <summary>Azurite's stdout/stderr.</summary>
    public string LogPath => Path.Combine(DataDirectory, "azurite.log");

    /// <summary>A connection string with explicit 127.0.0.1 endpoints for this server's ports.</summary>
    public string ConnectionString => ConnectionStringFor(Ports);

    /// <summary>The server's process id while it runs.</summary>
    public int? ProcessId => _process is { HasExited: false } p ? p.Id : null;

    /// <summary>The emulator account's connection string for Azurite on <paramref name="ports"/> at 127.0.0.1.</summary>
    public static string ConnectionStringFor(AzuritePorts ports)
    {
        ArgumentNullException.ThrowIfNull(ports);
        return $"DefaultEndpointsProtocol=http;AccountName={AccountName};AccountKey={AccountKey};" +
               $"BlobEndpoint=http://{Host}:{ports.Blob}/{AccountName};" +
               $"QueueEndpoint=http://{Host}:{ports.Queue}/{AccountName};" +
               $"TableEndpoint=http://{Host}:{ports.Table}/{AccountName};";
    }

    /// <summary>Starts Azurite (installing it first if needed) and returns once all three services answer.</summary>
    /// <exception cref="InvalidOperationException">A port is taken, Node.js is missing, or Azurite did not come up (the message has the log's tail).</exception>
    public static async Task<AzuriteServer> StartAsync(AzuriteServerOptions options, ILogger? logger, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        logger ??= NullLogger.Instance;
        var repoRoot = options.RepoRoot ?? FindRepoRoot();
        var script = await EnsureInstalledAsync(repoRoot, options.NodeExecutable, logger, cancellationToken).ConfigureAwait(false);
        var server = new AzuriteServer(options, script, logger);
        await server.StartProcessAsync(cancellationToken).ConfigureAwait(false);
        return server;
    }

    /// <summary>
    /// True when an Azurite answers on all three ports at 127.0.0.1 (each replies over HTTP with an
    /// <c>Azurite-*</c> Server header). Never throws for a closed port.
    /// </summary>
    public static async Task<bool> IsRunningAtAsync(AzuritePorts ports, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(ports);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        foreach (var port in new[] { ports.Blob, ports.Queue, ports.Table })
        {
            try
            {
                using var response = await http.GetAsync(new Uri($"http://{Host}:{port}/{AccountName}"), cancellationToken).ConfigureAwait(false);
                if (!response.Headers.Server.ToString().Contains("Azurite", StringComparison.OrdinalIgnoreCase))
                {
                    return false;
                }
            }
            catch (HttpRequestException)
            {
                return false;
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// Three distinct loopback ports that were free a moment ago (bound to port 0 and released). Tests use them so
    /// parallel runs and a developer's own Azurite on 10000-10002 do not collide.
    /// </summary>
    public static AzuritePorts FreePorts()
    {
        var listeners = new List<TcpListener>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                var listener = new TcpListener(IPAddress.Loopback, 0);
                listener.Start();
                listeners.Add(listener);
            }

            var ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
            return new AzuritePorts(ports[0], ports[1], ports[2]);
        }
        finally
        {
            foreach (var listener in listeners)
            {
                listener.Stop();
            }
        }
    }

    /// <summary>The folder holding <c>CovidFunctions.sln</c>, searched upwards from the app's base directory, then the current directory.</summary>
    /// <exception cref="InvalidOperationException">No such folder above either.</exception>
    public static string FindRepoRoot()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "CovidFunctions.sln")) && Directory.Exists(Path.Combine(dir.FullName, "infra", "azurite")))
                {
                    return dir.FullName;
                }
            }
        }

        throw new InvalidOperationException(
            $"CovidFunctions.sln with infra/azurite not found above {AppContext.BaseDirectory} or {Directory.GetCurrentDirectory()}: pass AzuriteServerOptions.RepoRoot.");
    }

    /// <summary>
    /// Returns the path of the pinned <c>azurite.js</c>, running <c>npm ci</c> in <c>infra/azurite</c> when it is not
    /// installed yet (serialised within the process and, through a lock file, across processes).
    /// </summary>
    public static async Task<string> EnsureInstalledAsync(string repoRoot, string nodeExecutable, ILogger? logger, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(repoRoot);
        logger ??= NullLogger.Instance;
        var packageDir = Path.Combine(repoRoot, "infra", "azurite");
        var script = Path.Combine(packageDir, "node_modules", "azurite", "dist", "src", "azurite.js");
        if (File.Exists(script))
        {
            return script;
        }

        await InstallGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            using var crossProcessLock = await AcquireInstallLockAsync(cancellationToken).ConfigureAwait(false);
            if (File.Exists(script))
            {
                return script;
            }

            if (!File.Exists(Path.Combine(packageDir, "package-lock.json")))
            {
                throw new InvalidOperationException($"{packageDir} has no package-lock.json: the pinned Azurite cannot be installed.");
            }

            LogInstalling(logger, packageDir);
            var npm = Path.Combine(Path.GetDirectoryName(ResolveOnPath(nodeExecutable) ?? "") ?? "", "npm");
            var (exitCode, output) = await RunToEndAsync(File.Exists(npm) ? npm : "npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], packageDir, cancellationToken).ConfigureAwait(false);
            if (exitCode != 0 || !File.Exists(script))
            {
                throw new InvalidOperationException($"npm ci in {packageDir} failed (exit {exitCode}): {Tail(output, 2000)}");
            }

            return script;
        }
        finally
        {
            InstallGate.Release();
        }
    }

    /// <summary>Stops the server: SIGTERM, a second SIGTERM (Azurite lingers after the first), then a kill.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        var process = _process;
        _process = null;
        if (process is null)
        {
            return;
        }

        using (process)
        {
            if (!process.HasExited)
            {
                if (OperatingSystem.IsWindows())
                {
                    process.Kill(entireProcessTree: true);
                }
                else
                {
                    // The first SIGTERM closes the three services (flushing their metadata); the process then lingers
                    // until a second one. Send it once the log says all three closed (or after 10 s).
                    _ = SendSignal(process.Id, SigTerm);
                    if (!await WaitForServicesClosedAsync(process, TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false))
                    {
                        _ = SendSignal(process.Id, SigTerm);
                        if (!await WaitForExitAsync(process, TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false))
                        {
                            LogKilling(_logger, process.Id);
                            process.Kill(entireProcessTree: true);
                        }
                    }
                }

                await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            }

            LogStopped(_logger, process.Id, process.ExitCode);
        }
    }

    /// <summary>Stops and starts the server again on the same folder and ports (its data survives).</summary>
    public async Task RestartAsync(CancellationToken cancellationToken)
    {
        await StopAsync(cancellationToken).ConfigureAwait(false);
        await StartProcessAsync(cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (InvalidOperationException)
        {
            // The process is already gone.
        }
    }

    private async Task StartProcessAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(DataDirectory);
        _logStartOffset = File.Exists(LogPath) ? new FileInfo(LogPath).Length : 0;
        foreach (var port in new[] { Ports.Blob, Ports.Queue, Ports.Table })
        {
            if (IsListening(port))
            {
                throw new InvalidOperationException($"Port {port} on {Host} is already in use: cannot start Azurite on {Ports}.");
            }
        }

        // infra/azurite/node_modules/azurite/dist/src/azurite.js -> infra/azurite/parent-watchdog.cjs
        var packageDir = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(_scriptPath)!, "..", "..", "..", ".."));
        var watchdog = Path.Combine(packageDir, "parent-watchdog.cjs");
        string[] preload = _options.ParentProcessId is > 0 && File.Exists(watchdog) ? ["-r", watchdog] : [];
        string[] skipApiVersionCheck = _options.SkipApiVersionCheck ? ["--skipApiVersionCheck"] : [];
        string[] azuriteArgs =
        [
            .. preload, _scriptPath, "--silent", .. skipApiVersionCheck, "--loose",
            "--location", DataDirectory,
            "--blobHost", Host, "--queueHost", Host, "--tableHost", Host,
            "--blobPort", Ports.Blob.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--queuePort", Ports.Queue.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--tablePort", Ports.Table.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ];

        var start = new ProcessStartInfo { UseShellExecute = false, RedirectStandardInput = true };
        if (_options.ParentProcessId is > 0 and var parent)
        {
            start.Environment["COVIDFN_AZURITE_PARENT_PID"] = parent.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        if (OperatingSystem.IsWindows())
        {
            start.FileName = _options.NodeExecutable;
            foreach (var arg in azuriteArgs)
            {
                start.ArgumentList.Add(arg);
            }
        }
        else
        {
            // exec keeps the pid the server's; output goes straight to the log file, so it outlives no pipe of ours.
            // setsid puts it in its own session: a Ctrl+C in the terminal must not close the storage while the
            // pipeline's hosts are still draining (StopAsync ends it last). setsid forks only for a group leader,
            // which the shell started here is not, so the pid stays the same.
            start.FileName = "/bin/sh";
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add(File.Exists("/usr/bin/setsid") || File.Exists("/bin/setsid")
                ? "log=\"$1\"; shift; exec setsid \"$@\" >>\"$log\" 2>&1"
                : "log=\"$1\"; shift; exec \"$@\" >>\"$log\" 2>&1");
            start.ArgumentList.Add("azurite");
            start.ArgumentList.Add(LogPath);
            start.ArgumentList.Add(_options.NodeExecutable);
            foreach (var arg in azuriteArgs)
            {
                start.ArgumentList.Add(arg);
            }
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {_options.NodeExecutable}.");
        _process = process;
        LogStarting(_logger, process.Id, Ports.Blob, Ports.Queue, Ports.Table, DataDirectory);

        var deadline = Stopwatch.StartNew();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (process.HasExited)
            {
                _process = null;
                throw new InvalidOperationException($"Azurite exited with code {process.ExitCode} while starting: {ReadLogTail()}");
            }

            if (await IsRunningAtAsync(Ports, cancellationToken).ConfigureAwait(false))
            {
                LogStarted(_logger, process.Id, deadline.Elapsed.TotalSeconds);
                return;
            }

            if (deadline.Elapsed > _options.StartTimeout)
            {
                await StopAsync(CancellationToken.None).ConfigureAwait(false);
                throw new InvalidOperationException($"Azurite did not answer on {Ports} within {_options.StartTimeout}: {ReadLogTail()}");
            }

            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }
    }

    private string ReadLogTail()
    {
        try
        {
            using var stream = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(stream);
            return Tail(reader.ReadToEnd(), 2000);
        }
        catch (IOException)
        {
            return "(no log)";
        }
    }

    private static bool IsListening(int port)
    {
        try
        {
            using var client = new TcpClient();
            client.Connect(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>True when the process exited; false once the log reports the three services closed or the timeout passed.</summary>
    private async Task<bool> WaitForServicesClosedAsync(Process process, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout)
        {
            if (await WaitForExitAsync(process, TimeSpan.FromMilliseconds(100), cancellationToken).ConfigureAwait(false))
            {
                return true;
            }

            if (CountInLogSinceStart("successfully closed") >= 3)
            {
                return false;
            }
        }

        return false;
    }

    private int CountInLogSinceStart(string text)
    {
        try
        {
            using var stream = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            stream.Seek(Math.Min(_logStartOffset, stream.Length), SeekOrigin.Begin);
            using var reader = new StreamReader(stream);
            var log = reader.ReadToEnd();
            var count = 0;
            for (var at = log.IndexOf(text, StringComparison.Ordinal); at >= 0; at = log.IndexOf(text, at + text.Length, StringComparison.Ordinal))
            {
                count++;
            }

            return count;
        }
        catch (IOException)
        {
            return 0;
        }
    }

    private static async Task<bool> WaitForExitAsync(Process process, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timer.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(timer.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    private static async Task<IDisposable> AcquireInstallLockAsync(CancellationToken cancellationToken)
    {
        var path = Path.Combine(Path.GetTempPath(), "covidfn-azurite-install.lock");
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
            }
            catch (IOException)
            {
                await Task.Delay(500, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private static async Task<(int ExitCode, string Output)> RunToEndAsync(string fileName, IEnumerable<string> args, string workingDirectory, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {fileName}.");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        return (process.ExitCode, await stdout.ConfigureAwait(false) + await stderr.ConfigureAwait(false));
    }

    private static string? ResolveOnPath(string executable)
    {
        if (Path.IsPathRooted(executable))
        {
            return executable;
        }

        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, executable);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private static string Tail(string text, int length) => text.Length <= length ? text : "…" + text[^length..];

    private const int SigTerm = 15;

    private static int SendSignal(int pid, int signal) => NativeMethods.Kill(pid, signal);

    private static partial class NativeMethods
    {
        [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
        internal static partial int Kill(int pid, int signal);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Installing the pinned Azurite with npm ci in {PackageDirectory}")]
    private static partial void LogInstalling(ILogger logger, string packageDirectory);

    [LoggerMessage(Level = LogLevel.Information, Message = "Starting Azurite (pid {Pid}) on blob {BlobPort}, queue {QueuePort}, table {TablePort} with data in {DataDirectory}")]
    private static partial void LogStarting(ILogger logger, int pid, int blobPort, int queuePort, int tablePort, string dataDirectory);

    [LoggerMessage(Level = LogLevel.Information, Message = "Azurite (pid {Pid}) answered after {Seconds:F1} s")]
    private static partial void LogStarted(ILogger logger, int pid, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Azurite (pid {Pid}) did not exit after two SIGTERMs: killing it")]
    private static partial void LogKilling(ILogger logger, int pid);

    [LoggerMessage(Level = LogLevel.Information, Message = "Azurite (pid {Pid}) stopped with exit code {ExitCode}")]
    private static partial void LogStopped(ILogger logger, int pid, int exitCode);
}
