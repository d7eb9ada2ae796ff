using System.Collections;
using System.Diagnostics;
using CovidFunctions.Cli.Commands;
using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Inference;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests.Pipeline;

/// <summary>
/// <c>covidfn up</c> reads the <c>Imaging__*</c> settings as the Function app does and hands them to its ingest, and
/// refuses de-identification options at start. Before, <c>up</c> read neither section: <c>Imaging__MinSlices</c> or
/// <c>Imaging__Zip__MaxEntries</c> changed nothing, and <c>Deidentification__RetainSafePrivate=true</c> was ignored
/// without a word while <c>up</c> de-identified with its fixed profile.
/// </summary>
[Collection(PipelineCollection.Name)]
public sealed class UpIngestSettingsTests
{
    [Fact]
    public void ImagingSettings_FromTheEnvironment_ReachTheLocalHostOptions()
    {
        var settings = LocalHostSettings.Load(Environment(("Imaging__MinSlices", "5"), ("imaging__zip__maxentries", "3")), null);
        var args = new UpCommand.UpArguments("d", 10000, false, 64, false, null, null, null, null);

        var options = UpCommand.HostOptions(args, "d", null, new InferenceOptions(), settings);

        Assert.Equal(5, options.Assembly.MinSlices);
        Assert.Equal(3, options.Assembly.ZipLimits.MaxEntries);
    }

    [Theory]
    [InlineData("Imaging__MinSlices", "0", "Imaging:MinSlices must be ≥ 1")]
    [InlineData("Imaging__Zip__MaxEntrys", "3", "Imaging:Zip:MaxEntrys (Imaging__Zip__MaxEntrys)")]
    [InlineData("Imaging__WindowWidth", "1200", "Imaging:WindowWidth is fixed at 1500 HU: it is part of the lung2d-v1 preprocessing contract")]
    [InlineData("Deidentification__RetainSafePrivate", "true", "Deidentification:RetainSafePrivate (Deidentification__RetainSafePrivate) changes nothing in ingest")]
    public void BadIngestSetting_IsRefusedNamingIt(string name, string value, string expected)
    {
        var error = Assert.Throws<InvalidOperationException>(() => LocalHostSettings.Load(Environment((name, value)), null));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Up_WithADeidentificationOption_StopsBeforeAnythingStarts()
    {
        using var temp = TestData.CreateTempDirectory();
        var psi = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "covidfn.dll"), "up", "--data-dir", Path.Combine(temp.Path, "data"), "--api-port", "0", "--exit-when-done"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var name in psi.Environment.Keys.Where(k => k.StartsWith("COVIDFN_", StringComparison.Ordinal) || k.Contains("__", StringComparison.Ordinal)).ToList())
        {
            psi.Environment.Remove(name);
        }

        psi.Environment["NO_COLOR"] = "1";
        psi.Environment["COVIDFN_STORAGE"] = "not a connection string"; // never reached when the setting is refused
        psi.Environment["Deidentification__RetainSafePrivate"] = "true";
        using var process = Process.Start(psi)!;
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = await process.StandardError.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);
        await stdout;

        Assert.True(process.ExitCode == 2, stderr);
        Assert.Contains("up: Deidentification:RetainSafePrivate (Deidentification__RetainSafePrivate) changes nothing in ingest", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("cannot start the local pipeline", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_local_host_ingests_with_its_assembly_options()
    {
        // Four real slices with MinSlices 5: the local ingest refuses the series (before, it ingested it with the defaults).
        using var temp = TestData.CreateTempDirectory();
        await using var azurite = await PipelineFixture.StartAzuriteAsync(temp.Path);
        var dataDir = Path.Combine(temp.Path, "data");
        using var loggers = PipelineFixture.Loggers(dataDir, out var log);
        using var _ = log;
        var options = PipelineFixture.Options(dataDir, azurite.ConnectionString) with
        {
            Assembly = new CovidFunctions.Imaging.Series.SeriesAssemblyOptions { MinSlices = 5 },
        };
        await using var host = await LocalPipelineHost.StartAsync(options, loggers, CancellationToken.None);
        var folder = PipelineFixture.RealSubset(Path.Combine(temp.Path, "upload"), 4);

        var submitted = await new StudySubmitter(host.Storage.BlobContainers, host.Storage.Studies, host.StudyIdKey).SubmitAsync(folder, "lab-i", CancellationToken.None);

        var row = await PipelineFixture.WaitForTerminalAsync(host.Storage.Studies, "lab-i", submitted.StudyId, Path.Combine(dataDir, "logs", "test.log"));
        Assert.Equal(StudyStatus.Rejected, row.Status);
        Assert.Contains("4 slices, fewer than 5", row.Reason, StringComparison.Ordinal);
    }

    private static Hashtable Environment(params (string Name, string Value)[] variables)
    {
        var environment = new Hashtable();
        foreach (var (name, value) in variables)
        {
            environment[name] = value;
        }

        return environment;
    }
}
