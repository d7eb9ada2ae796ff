using System.Collections;
using CovidFunctions.Cli.Commands;
using CovidFunctions.Cli.Tests.Pipeline;
using CovidFunctions.Pipeline;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// <c>covidfn screen</c> reads the <c>Pipeline__*</c> settings as <c>covidfn up</c> does (same names, conversions, range
/// checks and unknown-key refusal), acts on those that change an offline run (chunk size, upload size limit, montage
/// slices) and names the others as ignored. Before, it used the defaults whatever the environment said:
/// <c>Pipeline__MaxUploadBytes</c> that makes <c>up</c> refuse an upload as too large screened it offline, and a
/// misspelt or out-of-range <c>Pipeline__*</c> key changed nothing, silently.
/// </summary>
public sealed class OfflinePipelineSettingsTests
{
    [Fact]
    public void MaxUploadBytes_FromTheEnvironment_RefusesALargerUpload_AsUpDoes()
    {
        using var temp = TestData.CreateTempDirectory();
        var series = PipelineFixture.RealSubset(Path.Combine(temp.Path, "ct"), 4);

        var (rc, stderr) = StartupSettingsTests.Covidfn([("Pipeline__MaxUploadBytes", "1000")], Screen(series, temp.Path));

        Assert.True(rc == 2, stderr);
        Assert.Contains("too-large", stderr, StringComparison.Ordinal);
        Assert.Contains("over the limit of 1000 bytes (Pipeline:MaxUploadBytes)", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Pipeline__ChunkSize", "0", "Pipeline:ChunkSize must be at least 1")]
    [InlineData("Pipeline__ChunkSzie", "8", "Pipeline:ChunkSzie (Pipeline__ChunkSzie)")]
    [InlineData("Pipeline__MontageSlices", "many", "Pipeline:MontageSlices")]
    [InlineData("Pipeline__ChunkTimeout", "-00:01:00", "Pipeline:ChunkTimeout must be positive")]
    public void BadPipelineSetting_StopsScreenBeforeItReadsTheInput_NamingIt(string name, string value, string expected)
    {
        using var temp = TestData.CreateTempDirectory();
        var series = PipelineFixture.RealSubset(Path.Combine(temp.Path, "ct"), 4);

        var (rc, stderr) = StartupSettingsTests.Covidfn([(name, value)], Screen(series, temp.Path));

        Assert.True(rc == 2, stderr);
        Assert.Contains("screen: ", stderr, StringComparison.Ordinal);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(temp.Path, "out")), "screen wrote output before refusing the setting");
    }

    [Fact]
    public void ChunkSize_FromTheEnvironment_ChunksTheScoring_AndSettingsScreenDoesNotUseAreNamedAsIgnored()
    {
        using var temp = TestData.CreateTempDirectory();
        var series = PipelineFixture.RealSubset(Path.Combine(temp.Path, "ct"), 4);

        var (rc, stderr) = StartupSettingsTests.Covidfn(
            [("Pipeline__ChunkSize", "2"), ("Pipeline__ChunkTimeout", "00:20:00"), ("Pipeline__UploadRetention", "7.00:00:00"), ("Pipeline__Transport", "ServiceBus")],
            Screen(series, temp.Path));

        Assert.True(rc == 0, stderr);

        // Four slices in chunks of two: two chunk documents (one with the default 32).
        var chunks = Directory.GetFiles(Path.Combine(temp.Path, "out", PipelineNames.ResultsContainer), "*.json", SearchOption.AllDirectories)
            .Where(f => Path.GetFileName(Path.GetDirectoryName(f)) == "chunks")
            .ToList();
        Assert.Equal(2, chunks.Count);
        Assert.Contains("screen: Pipeline__ChunkTimeout is not used by covidfn screen (", stderr, StringComparison.Ordinal);
        Assert.Contains("screen: Pipeline__Transport is not used by covidfn screen (", stderr, StringComparison.Ordinal);
        Assert.Contains("screen: Pipeline__UploadRetention is not used by covidfn screen (", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Pipeline__ChunkSize is not used", stderr, StringComparison.Ordinal);

        // UploadRetention is not applied: the copy of the input (not de-identified) is not kept in the work folder.
        var uploads = Path.Combine(temp.Path, "out", PipelineNames.UploadsContainer);
        Assert.Empty(Directory.Exists(uploads) ? Directory.GetFiles(uploads, "*", SearchOption.AllDirectories) : []);
    }

    [Fact]
    public void ScreenSettings_ApplyWhatChangesAnOfflineRun_AndKeepTheDefaultsOfTheRest()
    {
        var environment = new Hashtable
        {
            ["Pipeline__ChunkSize"] = "4",
            ["pipeline__maxuploadbytes"] = "0",
            ["Pipeline__MontageSlices"] = "3",
            ["Pipeline__MaxIngestAttempts"] = "1",
            ["Pipeline__UploadRetention"] = "1.00:00:00",
            ["Pipeline__SliceQueueName"] = "q",
            ["Other__X"] = "1",
        };

        var settings = OfflinePipelineSettings.Load(environment);

        var defaults = new PipelineOptions();
        // With uploads of any size accepted, no ingest time limit unless one is set (LocalIngestTimeLimitTests).
        Assert.Equal(defaults with { ChunkSize = 4, MaxUploadBytes = 0, MontageSlices = 3, IngestTimeLimit = TimeSpan.Zero }, settings.Pipeline);
        Assert.Equal(["Pipeline__MaxIngestAttempts", "Pipeline__SliceQueueName", "Pipeline__UploadRetention"], settings.Ignored);
        Assert.All(settings.Ignored, name => Assert.False(string.IsNullOrWhiteSpace(OfflinePipelineSettings.WhyIgnored(name))));
    }

    [Fact]
    public void EveryPipelineOption_IsEitherAppliedOrNamedAsIgnoredByScreen()
    {
        // A Pipeline option added later must be placed on one side: applied offline, or named with why not.
        var options = typeof(PipelineOptions).GetProperties().Where(p => p.SetMethod is { IsPublic: true }).Select(p => p.Name);

        Assert.All(options, name => Assert.True(
            OfflinePipelineSettings.Applied.Contains(name) ^ OfflinePipelineSettings.IsIgnored(name),
            $"Pipeline:{name} is neither applied by covidfn screen nor named as ignored (or both)"));
    }

    private static string[] Screen(string series, string temp) =>
        ["screen", series, "--key-file", Path.Combine(temp, "deid.key"), "--out-dir", Path.Combine(temp, "out")];
}
