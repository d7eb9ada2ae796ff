using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Cli.Tests.Pipeline;

/// <summary>Helpers of the end-to-end tests: a real Azurite per test (own ports and folder), small real series, waiting.</summary>
internal static class PipelineFixture
{
    /// <summary>The real chest CT series used end to end (30 axial slices, 512×512, Lung-PET-CT-Dx B70f).</summary>
    public static string RealSeries => TestData.Shared("dicom", "chest-ct", "lung-pet-ct-dx", "A0002-s2-b70f");

    public static readonly TimeSpan StudyTimeout = TimeSpan.FromMinutes(8);

    public static async Task<AzuriteServer> StartAzuriteAsync(string folder) =>
        await AzuriteServer.StartAsync(new AzuriteServerOptions { DataDirectory = Path.Combine(folder, "azurite"), Ports = AzuriteServer.FreePorts() }, null, CancellationToken.None);

    /// <summary>A folder with the first <paramref name="count"/> instances of the real series (keeps scoring short on 2 cores).</summary>
    public static string RealSubset(string folder, int count)
    {
        Directory.CreateDirectory(folder);
        foreach (var file in Directory.GetFiles(RealSeries, "*.dcm").Order(StringComparer.Ordinal).Skip(10).Take(count))
        {
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        }

        return folder;
    }

    public static LocalPipelineOptions Options(string dataDir, string connection, int chunkSize = 2) => new()
    {
        DataDirectory = dataDir,
        ConnectionString = connection,
        Pipeline = new PipelineOptions { ChunkSize = chunkSize, ChunkTimeout = TimeSpan.FromMinutes(3) },
        ModelsDirectory = Path.Combine(TestData.RepoRoot, "models"),
        WatchInterval = TimeSpan.FromSeconds(1),
        ScorerVisibilityTimeout = TimeSpan.FromSeconds(15),
    };

    public static ILoggerFactory Loggers(string dataDir, out FileLoggerProvider provider)
    {
        provider = new FileLoggerProvider(Path.Combine(dataDir, "logs", "test.log"));
        var p = provider;
        return LoggerFactory.Create(b => b.AddProvider(p).SetMinimumLevel(LogLevel.Information));
    }

    /// <summary>Waits until the study's row is terminal (completed, failed or rejected) and returns it.</summary>
    public static async Task<StudyRecord> WaitForTerminalAsync(IStudyStore studies, string tenant, string studyId, string? logPath = null)
    {
        using var timeout = new CancellationTokenSource(StudyTimeout);
        StudyRecord? last = null;
        while (!timeout.IsCancellationRequested)
        {
            try
            {
                last = await studies.GetAsync(tenant, studyId, CancellationToken.None);
                if (last is not null && StudyStatus.IsTerminal(last.Status))
                {
                    return last;
                }
            }
            catch (Azure.RequestFailedException)
            {
                // Azurite restarting.
            }

            await Task.Delay(1000);
        }

        var log = logPath is not null && File.Exists(logPath) ? string.Join('\n', File.ReadLines(logPath).TakeLast(40)) : "";
        throw new TimeoutException($"study {tenant}/{studyId} not finished in {StudyTimeout}: last status {last?.Status} {last?.Reason}\n{log}");
    }

    /// <summary>
    /// Waits until the study's orchestration has ended. The row turns completed in the aggregate step; usage and
    /// notify follow in the same orchestration, so a test counting them right after the row raced the last activities.
    /// </summary>
    public static async Task WaitForOrchestrationEndAsync(LocalPipelineHost host, string tenant, string studyId)
    {
        using var timeout = new CancellationTokenSource(StudyTimeout);
        await host.Durable.WaitForInstanceCompletionAsync(StudyIds.OrchestrationId(tenant, studyId), getInputsAndOutputs: false, timeout.Token);
    }

    /// <summary>Waits until <paramref name="condition"/> holds (polling every 250 ms).</summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        using var timeout = new CancellationTokenSource(StudyTimeout);
        while (!await condition())
        {
            if (timeout.IsCancellationRequested)
            {
                throw new TimeoutException("timed out waiting until " + what);
            }

            await Task.Delay(250);
        }
    }

    public static async Task<List<string>> ListAsync(IBlobContainers containers, string container, string prefix)
    {
        var paths = new List<string>();
        await foreach (var path in containers.Get(container).ListAsync(prefix, CancellationToken.None))
        {
            paths.Add(path);
        }

        return paths;
    }

    public static async Task<byte[]> ReadAsync(IBlobContainers containers, string container, string path)
    {
        await using var stream = await containers.Get(container).OpenReadAsync(path, CancellationToken.None);
        using var buffer = new MemoryStream();
        await stream.CopyToAsync(buffer);
        return buffer.ToArray();
    }
}
