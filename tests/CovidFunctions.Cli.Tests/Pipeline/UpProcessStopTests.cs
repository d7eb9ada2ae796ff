using System.Diagnostics;
using System.Globalization;
using System.Text;
using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests.Pipeline;

/// <summary>
/// Stopping the real <c>covidfn up</c> process with a signal while the scorer is in the middle of a chunk (the soak's
/// Ctrl+C). The stop must run to its end: the scorer gives its chunk back at once, then the worker and sidecar stop, exit
/// 0. System.CommandLine ends the process <c>ProcessTerminationTimeout</c> after the signal, 2 s by default; before the
/// fix a stop mid-chunk took longer, so <c>up</c> exited 143 (130 for Ctrl+C) without "stopped", and the chunk it held
/// stayed invisible for the scorer's 2-minute visibility timeout: the study waited that long after the restart.
/// SIGTERM is sent because a test run in the background may have SIGINT ignored (POSIX shells do that to background
/// jobs, and the child inherits it); System.CommandLine handles both signals the same way.
/// </summary>
[Collection(PipelineCollection.Name)]
public sealed class UpProcessStopTests
{
    [Fact]
    public async Task Sigterm_while_a_chunk_is_scored_stops_cleanly_and_gives_the_chunk_back_at_once()
    {
        using var temp = TestData.CreateTempDirectory();
        await using var azurite = await PipelineFixture.StartAzuriteAsync(temp.Path);
        var dataDir = Path.Combine(temp.Path, "data");
        var output = new StringBuilder();
        var psi = new ProcessStartInfo("dotnet",
        [
            Path.Combine(AppContext.BaseDirectory, "covidfn.dll"), "up", "--data-dir", dataDir, "--api-port", "0",
            // One thread and 16-slice chunks: a model batch takes seconds, so the signal lands while one runs.
            "--threads", "1", "--chunk-size", "16", "--models", Path.Combine(TestData.RepoRoot, "models"),
        ])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.Environment[LocalStorage.ConnectionVariable] = azurite.ConnectionString;
        psi.Environment["NO_COLOR"] = "1";
        using var up = Process.Start(psi)!;
        up.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        up.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        up.BeginOutputReadLine();
        up.BeginErrorReadLine();
        string Output() { lock (output) { return output.ToString(); } }

        try
        {
            await PipelineFixture.WaitUntilAsync(() => Task.FromResult(Output().Contains("ready", StringComparison.Ordinal) || up.HasExited), "covidfn up is ready");
            Assert.False(up.HasExited, Output());

            var storage = PipelineStorage.FromConnectionString(azurite.ConnectionString);
            var key = DeidKeys.ForDataDir(dataDir, out _, out _);
            var submitter = new StudySubmitter(storage.BlobContainers, storage.Studies, StudyIdKey.From(key));
            await submitter.SubmitAsync(PipelineFixture.RealSubset(Path.Combine(temp.Path, "series"), 16), "stop-lab", CancellationToken.None);

            // The scorer holds the chunk when the queue has a message and none of it is visible.
            var requests = storage.Queues.GetQueueClient(PipelineNames.SliceRequestsQueue);
            await PipelineFixture.WaitUntilAsync(
                async () => (await requests.GetPropertiesAsync()).Value.ApproximateMessagesCount > 0
                    && (await requests.PeekMessagesAsync(1)).Value.Length == 0,
                "the scorer has received the study's chunk");
            await Task.Delay(TimeSpan.FromSeconds(1.5)); // tiles read, the first model batch running

            var signalled = Stopwatch.StartNew();
            using (var kill = Process.Start("kill", ["-TERM", up.Id.ToString(CultureInfo.InvariantCulture)])!)
            {
                await kill.WaitForExitAsync();
                Assert.Equal(0, kill.ExitCode);
            }
            using (var stopped = new CancellationTokenSource(TimeSpan.FromMinutes(3)))
            {
                await up.WaitForExitAsync(stopped.Token);
            }

            var text = Output();
            Assert.True(up.ExitCode == 0, $"exit {up.ExitCode} {signalled.Elapsed.TotalSeconds:0.0} s after SIGTERM:\n{text}");
            Assert.Contains("stopped; unfinished studies resume", text, StringComparison.Ordinal);

            // Given back, not left invisible until the visibility timeout: the next start scores it at once.
            var visible = (await requests.PeekMessagesAsync(1)).Value;
            Assert.True(visible.Length == 1, $"the chunk is not visible on {PipelineNames.SliceRequestsQueue} after the stop:\n{text}");
        }
        finally
        {
            if (!up.HasExited)
            {
                up.Kill(entireProcessTree: true);
                await up.WaitForExitAsync();
            }
        }
    }
}
