using System.Reflection;
using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// host.json's log levels, applied the way the Functions host applies them (Microsoft.Extensions.Logging filter rules:
/// the longest matching category prefix wins). The host writes each invocation's "Executing 'Functions.IngestUpload'
/// (Reason='New blob detected(EventGrid): ct-uploads/{tenant}/{upload name}', ...)" line in the category
/// <c>Function.IngestUpload</c>, and the request telemetry of every invocation, with the same trigger reason, in
/// <c>Host.Results</c>; upload names may carry patient names (docs/compliance/phi-flow.md). Neither may be written at
/// the levels host.json keeps, while the app's own lines (<c>Function.IngestUpload.User</c> for the isolated worker's
/// logs of that function, <c>Function.{name}.User</c> for the others) stay at Information.
/// </summary>
public sealed class HostJsonLoggingTests
{
    private static readonly string OutputDirectory = typeof(HostJsonLoggingTests).Assembly
        .GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "FunctionAppOutput").Value!;

    private static string SourceHostJson => Path.Combine(TestData.RepoRoot, "src", "CovidFunctions.FunctionApp", "host.json");

    private const string ExecutingLine =
        "Executing 'Functions.IngestUpload' (Reason='New blob detected(EventGrid): ct-uploads/alpha/Smith_John_ZQXHOSTLOG.zip', Id=4f0c2b7e-0000-4000-8000-000000000001)";

    [Fact]
    public void TheBlobTriggersInvocationLine_IsNotWritten_ButTheAppsOwnLinesAre()
    {
        var sink = new CapturingProvider();
        using var factory = HostLoggerFactory(SourceHostJson, sink);

        factory.CreateLogger("Function." + IngestFunctions.IngestUploadName).LogInformation(ExecutingLine);
        factory.CreateLogger("Host.Results").LogInformation("{TriggerReason}", "New blob detected(EventGrid): ct-uploads/alpha/Smith_John_ZQXHOSTLOG.zip");
        factory.CreateLogger("Host.Results").LogError("{TriggerReason}", "New blob detected(EventGrid): ct-uploads/alpha/Smith_John_ZQXHOSTLOG.zip");
        factory.CreateLogger("Microsoft.Azure.WebJobs.Extensions.Storage.Blobs.Listeners.BlobListener").LogDebug("Blob 'alpha/Smith_John_ZQXHOSTLOG.zip' is being processed");
        factory.CreateLogger("Host.Triggers.Blob").LogDebug("Blob 'alpha/Smith_John_ZQXHOSTLOG.zip' is being processed");
        Assert.DoesNotContain(sink.Lines, l => l.Contains("ZQXHOSTLOG", StringComparison.Ordinal));

        // The app's own lines: ingest's masked outcome line, another function's user log, the host's line for a
        // function whose trigger names no upload, a failed ingest invocation, the invocation counts.
        factory.CreateLogger("Function.IngestUpload.User").LogInformation("Upload of study alpha/s0123: Ingested (-)");
        factory.CreateLogger("Function.AggregateStudy.User").LogInformation("Aggregated study s0123");
        factory.CreateLogger("Function.RelayChunkResult").LogInformation("Executing 'Functions.RelayChunkResult' (Reason='New queue message detected on 'slice-results'.')");
        factory.CreateLogger("Function.IngestUpload").LogError("Executed 'Functions.IngestUpload' (Failed, Id=4f0c2b7e)");
        factory.CreateLogger("Host.Aggregator").LogInformation("IngestUpload.Count 3");
        Assert.Equal(
            ["Upload of study alpha/s0123: Ingested (-)", "Aggregated study s0123", "Executing 'Functions.RelayChunkResult' (Reason='New queue message detected on 'slice-results'.')", "Executed 'Functions.IngestUpload' (Failed, Id=4f0c2b7e)", "IngestUpload.Count 3"],
            sink.Lines);
    }

    [Fact]
    public void TheHostJsonThatShips_IsTheOneTested()
    {
        var built = Path.Combine(OutputDirectory, "host.json");
        Assert.True(File.Exists(built), $"{built} is missing: build the Function app first");
        Assert.Equal(File.ReadAllText(SourceHostJson), File.ReadAllText(built));
    }

    /// <summary>A logger factory filtered by host.json's <c>logging</c> section, as the host configures its own.</summary>
    private static ILoggerFactory HostLoggerFactory(string hostJson, ILoggerProvider sink)
    {
        var configuration = new ConfigurationBuilder().AddJsonFile(hostJson, optional: false, reloadOnChange: false).Build();
        return LoggerFactory.Create(logging =>
        {
            logging.SetMinimumLevel(LogLevel.Trace);
            logging.AddConfiguration(configuration.GetSection("logging"));
            logging.AddProvider(sink);
        });
    }

    private sealed class CapturingProvider : ILoggerProvider
    {
        private readonly List<string> _lines = [];

        public IReadOnlyList<string> Lines
        {
            get
            {
                lock (_lines)
                {
                    return [.. _lines];
                }
            }
        }

        public ILogger CreateLogger(string categoryName) => new Logger(this);

        public void Dispose()
        {
        }

        private sealed class Logger(CapturingProvider owner) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                lock (owner._lines)
                {
                    owner._lines.Add(formatter(state, exception));
                }
            }
        }
    }
}
