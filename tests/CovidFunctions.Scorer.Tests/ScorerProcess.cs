using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Reflection;
using System.Text;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Scorer.Tests;

/// <summary>
/// The scorer as its container runs it: <c>dotnet CovidFunctions.Scorer.dll</c> in its own process, settings from
/// environment variables (as bicep sets them), stdout and stderr captured, readiness read from <c>/readyz</c>.
/// </summary>
internal sealed class ScorerProcess : IDisposable
{
    // COVIDFN_SCORER_OUTPUT: another build of the scorer (a copy of an earlier commit's output, to measure before and
    // after a change with the same tests); else this build's.
    private static readonly string ScorerDll = Path.Combine(
        Environment.GetEnvironmentVariable("COVIDFN_SCORER_OUTPUT") is { Length: > 0 } other
            ? other
            : typeof(ScorerProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "ScorerOutput").Value!,
        "CovidFunctions.Scorer.dll");

    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly HttpClient _http;

    private ScorerProcess(IReadOnlyDictionary<string, string> environment)
    {
        Assert.True(File.Exists(ScorerDll), ScorerDll);
        var port = TestNetwork.FreePort();
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(ScorerDll);
        start.Environment["Scorer__HealthPort"] = port.ToString(CultureInfo.InvariantCulture);
        start.Environment["Logging__Console__FormatterName"] = "simple";
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        _http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };
    }

    public int Id => _process.Id;

    public int ExitCode => _process.ExitCode;

    public bool HasExited => _process.HasExited;

    /// <summary>Everything the process printed so far.</summary>
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

    /// <summary>Starts the scorer without waiting for it.</summary>
    public static ScorerProcess Start(IReadOnlyDictionary<string, string> environment) => new(environment);

    /// <summary>Waits for the process to end by itself.</summary>
    public async Task WaitForExitAsync()
    {
        using var exit = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        await _process.WaitForExitAsync(exit.Token);
    }

    /// <summary>Starts the scorer and waits until <c>/readyz</c> says ready (a generous bound for a loaded machine).</summary>
    public static async Task<ScorerProcess> StartReadyAsync(IReadOnlyDictionary<string, string> environment)
    {
        var scorer = new ScorerProcess(environment);
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(4);
        while (!await scorer.IsReadyAsync())
        {
            Assert.False(scorer.HasExited, "the scorer exited before it was ready:\n" + scorer.Output);
            Assert.True(DateTime.UtcNow < deadline, "the scorer did not become ready:\n" + scorer.Output);
            await Task.Delay(250);
        }

        return scorer;
    }

    /// <summary>Sends SIGTERM (Container Apps' stop signal) and waits for the process to exit.</summary>
    public async Task TerminateAsync()
    {
        using (var kill = Process.Start("kill", ["-TERM", Id.ToString(CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
        }

        using var exit = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        await _process.WaitForExitAsync(exit.Token);
    }

    /// <summary>SIGKILL: the process ends at once, with no drain, settlement or clean-up (a crashed or evicted replica).</summary>
    public async Task KillAsync()
    {
        _process.Kill(entireProcessTree: true);
        using var exit = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await _process.WaitForExitAsync(exit.Token);
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        _process.Dispose();
        _http.Dispose();
    }

    /// <summary>
    /// The chunks the replica is handling now (<c>/readyz</c>'s <c>inFlight</c>: a received chunk's handler has started);
    /// null while it is not ready or does not answer.
    /// </summary>
    public async Task<int?> InFlightAsync()
    {
        try
        {
            using var response = await _http.GetAsync(new Uri("/readyz", UriKind.Relative));
            if (response.StatusCode != HttpStatusCode.OK)
            {
                return null;
            }

            using var body = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            return body.RootElement.GetProperty("inFlight").GetInt32();
        }
        catch (HttpRequestException)
        {
            return null;
        }
        catch (TaskCanceledException)
        {
            return null;
        }
    }

    private async Task<bool> IsReadyAsync()
    {
        try
        {
            return (await _http.GetAsync(new Uri("/readyz", UriKind.Relative))).StatusCode == HttpStatusCode.OK;
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

    private void Append(string? line)
    {
        lock (_output)
        {
            _output.AppendLine(line);
        }
    }
}
