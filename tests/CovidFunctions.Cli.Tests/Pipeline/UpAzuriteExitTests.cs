using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests.Pipeline;

/// <summary>
/// The Azurite that <c>covidfn up</c> started dies under it (<c>kill -9</c>; session-22 incident drill, docs/operations.md
/// entry 3). Before: the progress display met Connection refused (an AggregateException it did not catch), <c>up</c>
/// began to shut down, and the shutdown hung until Azurite came back, then printed a stack trace and no "stopped" line.
/// Now <c>up</c> starts Azurite again on the same ports and data and carries on; when it cannot, it stops with one line
/// saying why, exit 1. These run the real process, with the Azurite <c>up</c> starts itself (no COVIDFN_STORAGE).
/// </summary>
[Collection(PipelineCollection.Name)]
public sealed class UpAzuriteExitTests
{
    [Fact]
    public async Task Azurite_killed_under_up_is_started_again_and_up_goes_on_screening_then_stops_cleanly()
    {
        using var temp = TestData.CreateTempDirectory();
        var dataDir = Path.Combine(temp.Path, "data");
        var port = ConsecutiveFreePorts();
        var apiPort = TestNetwork.FreePort();
        await using var up = UpProcess.Start(dataDir, port, "--api-port", apiPort.ToString(CultureInfo.InvariantCulture), "--allow-loopback-webhooks");
        try
        {
            await up.WaitForReadyAsync();

            // A second up on the same folder is refused, naming this one (two Azurites over one azurite/ before).
            var (secondRc, _, secondErr) = CovidfnProcess.Run([], "up", "--data-dir", dataDir, "--port", (port + 10).ToString(CultureInfo.InvariantCulture), "--api-port", "0");
            Assert.True(secondRc == ExitCodes.BadInput, $"second up exit {secondRc}: {secondErr}");
            Assert.Contains($"another covidfn up (pid {up.Process.Id}", secondErr, StringComparison.Ordinal);

            // Azurite dies under an up that has run a while (the drill's case): what up created at start is saved by
            // then. Azurite saves its table metadata every 5 s, so a kill -9 right after ready could lose the Durable
            // hub's tables, which no restart of Azurite (or of up) brings back mid-run.
            await PipelineFixture.WaitUntilAsync(() => Task.FromResult(Saved(dataDir, PipelineNames.StudiesTable, PipelineNames.TaskHubName + "Instances")), "Azurite has saved the tables up created");
            var azuritePid = await up.AzuritePidAsync();
            Kill9(azuritePid);
            await PipelineFixture.WaitUntilAsync(() => Task.FromResult(up.Output.Contains("started it again", StringComparison.Ordinal) || up.Process.HasExited), "up restarted its Azurite");
            Assert.False(up.Process.HasExited, up.Output);
            Assert.Contains($"Azurite (pid {azuritePid}) exited", up.Output, StringComparison.Ordinal);

            // Storage answers again, and the pipeline (Durable sidecar and worker included) screens a study end to end.
            var (statusRc, _, statusErr) = CovidfnProcess.Run([], "status", "--data-dir", dataDir);
            Assert.True(statusRc == ExitCodes.Success, $"status exit {statusRc}: {statusErr}\n{up.Output}");
            var storage = PipelineStorage.FromConnectionString(File.ReadAllText(Path.Combine(dataDir, LocalStorage.ConnectionFileName)).Trim());
            var submitter = new StudySubmitter(storage.BlobContainers, storage.Studies, StudyIdKey.From(DeidKeys.ForDataDir(dataDir, out _, out _)));
            var study = await submitter.SubmitAsync(PipelineFixture.RealSubset(Path.Combine(temp.Path, "series"), 8), "default", CancellationToken.None);
            await PipelineFixture.WaitUntilAsync(() => Task.FromResult(up.Output.Contains($"{study.StudyId} completed", StringComparison.Ordinal) || up.Process.HasExited), "the study submitted after the restart completes");
            Assert.Contains($"{study.StudyId} completed", up.Output, StringComparison.Ordinal);

            var rc = await up.StopAsync();
            Assert.True(rc == 0, $"exit {rc}:\n{up.Output}\n{Tail(Path.Combine(dataDir, "logs", "covidfn-up.log"))}");
            Assert.Contains("stopped; unfinished studies resume", up.Output, StringComparison.Ordinal);
            Assert.DoesNotContain("Unhandled exception", up.Output, StringComparison.Ordinal);
            Assert.DoesNotMatch(new Regex(@"^\s+at ", RegexOptions.Multiline), up.Output);

            // Stopped: the client commands give the command that starts it again as it ran.
            var (afterRc, _, afterErr) = CovidfnProcess.Run([], "status", "--data-dir", dataDir);
            Assert.Equal(ExitCodes.InternalError, afterRc);
            Assert.Contains(
                string.Create(CultureInfo.InvariantCulture, $"`covidfn up --data-dir {dataDir} --port {port} --api-port {apiPort} --allow-loopback-webhooks`"),
                afterErr, StringComparison.Ordinal);
        }
        finally
        {
            await up.KillIfRunningAsync();
        }
    }

    [Fact]
    public async Task Azurite_that_cannot_be_started_again_stops_up_with_one_line_and_exit_1()
    {
        using var temp = TestData.CreateTempDirectory();
        var dataDir = Path.Combine(temp.Path, "data");
        var port = ConsecutiveFreePorts();
        await using var up = UpProcess.Start(dataDir, port, "--api-port", "0");
        TcpListener? squatter = null;
        try
        {
            await up.WaitForReadyAsync();
            var azuritePid = await up.AzuritePidAsync();
            Kill9(azuritePid);

            // Something else takes the blob port as soon as the dead Azurite lets it go: up cannot start it there again.
            using (var bind = new CancellationTokenSource(TimeSpan.FromMinutes(1)))
            {
                while (squatter is null)
                {
                    try
                    {
                        var listener = new TcpListener(IPAddress.Loopback, port);
                        listener.Start();
                        squatter = listener;
                    }
                    catch (SocketException)
                    {
                        await Task.Delay(5, bind.Token);
                    }
                }
            }

            using (var exited = new CancellationTokenSource(TimeSpan.FromMinutes(3)))
            {
                await up.Process.WaitForExitAsync(exited.Token);
            }

            var text = up.Output;
            Assert.True(up.Process.ExitCode == ExitCodes.InternalError, $"exit {up.Process.ExitCode}:\n{text}");
            Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"up: stopping: the Azurite it started (pid {azuritePid}) on 127.0.0.1:{port}-{port + 2}"), text, StringComparison.Ordinal);
            Assert.Contains("could not be started again", text, StringComparison.Ordinal);
            Assert.Contains("up: stopped without its storage", text, StringComparison.Ordinal);
            Assert.DoesNotContain("Unhandled exception", text, StringComparison.Ordinal);
            Assert.DoesNotMatch(new Regex(@"^\s+at ", RegexOptions.Multiline), text);
        }
        finally
        {
            squatter?.Stop();
            await up.KillIfRunningAsync();
        }
    }

    private static bool Saved(string dataDir, params string[] tables)
    {
        var path = Path.Combine(dataDir, "azurite", "__azurite_db_table__.json");
        if (!File.Exists(path))
        {
            return false;
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var text = new StreamReader(stream).ReadToEnd();
        return tables.All(t => text.Contains(t, StringComparison.Ordinal));
    }

    private static string Tail(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var text = new StreamReader(stream).ReadToEnd();
        return text.Length > 6000 ? text[^6000..] : text;
    }

    private static void Kill9(int pid)
    {
        using var kill = Process.Start("kill", ["-9", pid.ToString(CultureInfo.InvariantCulture)])!;
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }

    /// <summary>A blob port whose next two are free too (up puts queue and table there).</summary>
    private static int ConsecutiveFreePorts()
    {
        for (var attempt = 0; attempt < 200; attempt++)
        {
            var port = TestNetwork.FreePort();
            if (port > 65530)
            {
                continue;
            }

            var listeners = new List<TcpListener>();
            try
            {
                for (var i = 1; i <= 2; i++)
                {
                    var listener = new TcpListener(IPAddress.Loopback, port + i);
                    listener.Start();
                    listeners.Add(listener);
                }

                return port;
            }
            catch (SocketException)
            {
                // Taken: try another.
            }
            finally
            {
                foreach (var listener in listeners)
                {
                    listener.Stop();
                }
            }
        }

        throw new InvalidOperationException("no three consecutive free ports found");
    }

    /// <summary>The real <c>covidfn up</c> as a process, starting its own Azurite in the data folder.</summary>
    private sealed class UpProcess : IAsyncDisposable
    {
        private readonly StringBuilder _output = new();
        private readonly string _dataDir;

        private UpProcess(Process process, string dataDir)
        {
            Process = process;
            _dataDir = dataDir;
        }

        public Process Process { get; }

        public string Output
        {
            get
            {
                lock (_output)
                {
                    return _output.ToString();
                }
            }
        }

        public static UpProcess Start(string dataDir, int port, params string[] more)
        {
            var psi = new ProcessStartInfo("dotnet",
            [
                Path.Combine(AppContext.BaseDirectory, "covidfn.dll"), "up", "--data-dir", dataDir, "--port", port.ToString(CultureInfo.InvariantCulture),
                "--threads", "1", "--models", Path.Combine(TestData.RepoRoot, "models"), .. more,
            ])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            foreach (var name in psi.Environment.Keys.Where(k => k.StartsWith("COVIDFN_", StringComparison.Ordinal)).ToList())
            {
                psi.Environment.Remove(name);
            }

            psi.Environment["NO_COLOR"] = "1";
            var process = Process.Start(psi)!;
            var up = new UpProcess(process, dataDir);
            process.OutputDataReceived += (_, e) => up.Append(e.Data);
            process.ErrorDataReceived += (_, e) => up.Append(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            return up;
        }

        public async Task WaitForReadyAsync()
        {
            await PipelineFixture.WaitUntilAsync(() => Task.FromResult(Output.Contains("ready", StringComparison.Ordinal) || Process.HasExited), "covidfn up is ready");
            Assert.False(Process.HasExited, Output);
        }

        /// <summary>The pid of the Azurite up started, from up's log ("Starting Azurite (pid N)").</summary>
        public async Task<int> AzuritePidAsync()
        {
            var log = Path.Combine(_dataDir, "logs", "covidfn-up.log");
            var pid = 0;
            await PipelineFixture.WaitUntilAsync(
                () =>
                {
                    using var stream = new FileStream(log, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
                    var match = Regex.Match(new StreamReader(stream).ReadToEnd(), @"Starting Azurite \(pid (\d+)\)");
                    pid = match.Success ? int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
                    return Task.FromResult(match.Success);
                },
                "up's log names the Azurite it started");
            return pid;
        }

        public async Task<int> StopAsync()
        {
            using (var kill = Process.Start("kill", ["-TERM", Process.Id.ToString(CultureInfo.InvariantCulture)])!)
            {
                await kill.WaitForExitAsync();
            }

            using var stopped = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            await Process.WaitForExitAsync(stopped.Token);
            return Process.ExitCode;
        }

        public async Task KillIfRunningAsync()
        {
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
                await Process.WaitForExitAsync();
            }
        }

        public async ValueTask DisposeAsync()
        {
            await KillIfRunningAsync();
            Process.Dispose();
        }

        private void Append(string? line)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }
    }
}
