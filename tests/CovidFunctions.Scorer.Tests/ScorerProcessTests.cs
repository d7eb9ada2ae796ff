using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Text;

namespace CovidFunctions.Scorer.Tests;

/// <summary>
/// The scorer as the container runs it (<c>dotnet CovidFunctions.Scorer.dll</c>, settings from environment
/// variables as bicep sets them) on CPU with the Storage-queue transport against Azurite: it becomes ready, and
/// SIGTERM (Container Apps' stop signal) ends it cleanly through the drain path with exit code 0.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class ScorerProcessTests(AzuriteFixture azurite)
{
    private static readonly string ScorerDll = Path.Combine(
        typeof(ScorerProcessTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "ScorerOutput").Value!,
        "CovidFunctions.Scorer.dll");

    [Fact]
    public async Task EntryPoint_OnCpuWithStorageQueues_BecomesReadyAndDrainsOnSigterm()
    {
        Assert.True(File.Exists(ScorerDll), ScorerDll);
        var port = FreePort();
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(ScorerDll);
        start.Environment["Scorer__StorageConnectionString"] = azurite.Server.ConnectionString;
        start.Environment["Scorer__SliceQueueName"] = "proc-" + Guid.NewGuid().ToString("N")[..8];
        start.Environment["Scorer__ExecutionProvider"] = "Cpu";
        start.Environment["Scorer__HealthPort"] = port.ToString(CultureInfo.InvariantCulture);
        start.Environment["Scorer__IntraOpThreads"] = "1";
        start.Environment["Logging__Console__FormatterName"] = "simple";
        var output = new StringBuilder();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };
            var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(4);
            while (!await IsReadyAsync(http))
            {
                Assert.False(process.HasExited, "the scorer exited before it was ready:\n" + Snapshot(output));
                Assert.True(DateTime.UtcNow < deadline, "the scorer did not become ready:\n" + Snapshot(output));
                await Task.Delay(250);
            }

            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync();
            }

            using var exit = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            await process.WaitForExitAsync(exit.Token);
            Assert.Equal(0, process.ExitCode);
            var log = Snapshot(output);
            Assert.Contains("Scorer ready on CPU", log, StringComparison.OrdinalIgnoreCase);
            Assert.Contains("Scorer drained", log, StringComparison.Ordinal);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }

    private static async Task<bool> IsReadyAsync(HttpClient http)
    {
        try
        {
            return (await http.GetAsync(new Uri("/readyz", UriKind.Relative))).StatusCode == HttpStatusCode.OK;
        }
        catch (HttpRequestException)
        {
            return false;
        }
        catch (TaskCanceledException)
        {
            return false;
        }
    }

    private static string Snapshot(StringBuilder output)
    {
        lock (output)
        {
            return output.ToString();
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
