using System.IO.Compression;
using CovidFunctions.Imaging.Archives;
using CovidFunctions.Imaging.Series;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CovidFunctions.Imaging.Tests.Hosting;

/// <summary>AddCovidFunctionsImaging: options from configuration, validation, and the assembler's log messages.</summary>
public sealed class ImagingRegistrationTests
{
    private static ServiceProvider Build(Dictionary<string, string?> settings, RecordingLoggerProvider? logs = null)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddLogging(b =>
        {
            b.SetMinimumLevel(LogLevel.Debug);
            if (logs is not null)
            {
                b.AddProvider(logs);
            }
        });
        services.AddCovidFunctionsImaging(configuration);
        return services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
    }

    [Fact]
    public void AddCovidFunctionsImaging_BindsTheImagingSection()
    {
        using var provider = Build(new()
        {
            ["Imaging:WindowLevel"] = "-600",
            ["Imaging:MinSlices"] = "20",
            ["Imaging:MixedImageSizes"] = "KeepMostCommonSize",
            ["Imaging:LungKernelHints:0"] = "B70",
            ["Imaging:Zip:MaxEntries"] = "100",
        });

        var options = provider.GetRequiredService<SeriesAssemblyOptions>();
        var imaging = provider.GetRequiredService<IOptions<ImagingOptions>>().Value;

        Assert.Equal(CovidFunctions.Imaging.Preprocessing.WindowSettings.Lung, imaging.Window);
        Assert.Equal(20, options.MinSlices);
        Assert.Equal(MixedImageSizePolicy.KeepMostCommonSize, options.MixedImageSizes);
        Assert.Equal(["B70"], options.LungKernelHints);
        Assert.Equal(100, options.ZipLimits.MaxEntries);
        Assert.Equal(ZipSafetyLimits.Default.MaxTotalUncompressedBytes, options.ZipLimits.MaxTotalUncompressedBytes);
        Assert.Equal(SeriesAssemblyOptions.Default.MaskFolderNames, options.MaskFolderNames);
        Assert.Equal(50_000, ZipSafetyLimits.Default.MaxEntries); // the shared defaults are not touched by binding
    }

    [Fact]
    public void AddCovidFunctionsImaging_InvalidSettings_FailWithEveryKeyNamed()
    {
        using var provider = Build(new()
        {
            ["Imaging:WindowLevel"] = "-500",
            ["Imaging:WindowWidth"] = "0",
            ["Imaging:MinSlices"] = "0",
            ["Imaging:Zip:MaxCompressionRatio"] = "0.5",
        });

        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<ImagingOptions>>().Value);

        // The lung window is the models' preprocessing contract (lung2d-v1): another value is refused, saying why.
        Assert.Contains(ex.Failures, f => f.StartsWith("Imaging:WindowLevel is fixed at -600 HU: it is part of the lung2d-v1 preprocessing contract", StringComparison.Ordinal));
        Assert.Contains(ex.Failures, f => f.StartsWith("Imaging:WindowWidth is fixed at 1500 HU", StringComparison.Ordinal));
        Assert.Contains("Imaging:MinSlices must be ≥ 1", ex.Failures);
        Assert.Contains("Imaging:Zip:MaxCompressionRatio must be ≥ 1", ex.Failures);
    }

    [Fact]
    public void SeriesAssemblyService_UsesConfiguredZipLimits()
    {
        using var temp = TestData.CreateTempDirectory();
        var zipPath = Path.Combine(temp.Path, "upload.zip");
        using (var zip = ZipFile.Open(zipPath, ZipArchiveMode.Create))
        {
            foreach (var file in Directory.GetFiles(TestData.Shared("dicom", "chest-ct", "lung-pet-ct-dx", "A0002-s2-b70f")))
            {
                zip.CreateEntryFromFile(file, Path.GetFileName(file));
            }
        }

        using var provider = Build(new() { ["Imaging:Zip:MaxEntries"] = "10" });
        var service = provider.GetRequiredService<SeriesAssemblyService>();

        var ex = Assert.Throws<ArchiveLimitExceededException>(() => service.Assemble(zipPath));
        Assert.Equal(10, ex.Limit);
    }

    [Fact]
    public void Assemble_WithLogger_LogsSelectionSkippedFilesAndGeometry()
    {
        using var temp = TestData.CreateTempDirectory();
        foreach (var file in Directory.GetFiles(TestData.Shared("dicom", "edge", "ge-head-tilt")))
        {
            File.Copy(file, Path.Combine(temp.Path, Path.GetFileName(file)));
        }

        File.WriteAllText(Path.Combine(temp.Path, "notes.txt"), "not an image");
        var logs = new RecordingLoggerProvider();
        using var provider = Build([], logs);

        using var series = provider.GetRequiredService<SeriesAssemblyService>().Assemble(temp.Path);

        Assert.Contains(logs.Entries, e => e.EventId == 5001 && e.Level == LogLevel.Information && e.Message.Contains("assembled 10 slices from dicom input", StringComparison.Ordinal));
        Assert.Contains(logs.Entries, e => e.EventId == 5003 && e.Message.Contains("4 file(s) left out", StringComparison.Ordinal));
        Assert.Contains(logs.Entries, e => e.EventId == 5004 && e.Level == LogLevel.Debug && e.Message.Contains("notes.txt", StringComparison.Ordinal));
        Assert.Contains(logs.Entries, e => e.EventId == 5005 && e.Level == LogLevel.Warning && e.Message.Contains("gantry-tilt", StringComparison.Ordinal));
        Assert.Equal(nameof(SeriesAssemblyService), logs.Entries.First(e => e.EventId == 5001).Category.Split('.')[^1]);
    }

    [Fact]
    public void Assemble_Refused_LogsTheReason()
    {
        using var temp = TestData.CreateTempDirectory();
        File.WriteAllText(Path.Combine(temp.Path, "a.txt"), "hello");
        var logs = new RecordingLoggerProvider();
        using var factory = LoggerFactory.Create(b => b.AddProvider(logs));

        Assert.Throws<SeriesAssemblyException>(() => SeriesAssembler.Assemble(temp.Path, null, factory.CreateLogger("test")));

        var entry = Assert.Single(logs.Entries, e => e.EventId == 5006);
        Assert.Equal(LogLevel.Warning, entry.Level);
        Assert.Contains("cannot be assembled (no-images)", entry.Message, StringComparison.Ordinal);
    }

    internal sealed record LogEntry(string Category, LogLevel Level, int EventId, string Message);

    /// <summary>Keeps every message (a real provider; the logging pipeline and the generated code run as in a host).</summary>
    internal sealed class RecordingLoggerProvider : ILoggerProvider
    {
        private readonly List<LogEntry> _entries = [];

        public IReadOnlyList<LogEntry> Entries
        {
            get
            {
                lock (_entries)
                {
                    return [.. _entries];
                }
            }
        }

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(RecordingLoggerProvider owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                lock (owner._entries)
                {
                    owner._entries.Add(new LogEntry(category, logLevel, eventId.Id, formatter(state, exception)));
                }
            }
        }
    }
}
