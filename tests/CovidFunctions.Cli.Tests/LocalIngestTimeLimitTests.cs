using System.Collections;
using CovidFunctions.Cli.Commands;
using CovidFunctions.Cli.Tests.Pipeline;
using CovidFunctions.Pipeline;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// <c>Pipeline:IngestTimeLimit</c> in <c>covidfn up</c> and <c>screen</c>, which have no Function timeout: unless set, it
/// is sized to the largest upload they accept at the slowest ingest rate measured (<see cref="LocalHostSettings.LocalIngestTimeLimit"/>);
/// a value set is used as given. Before, both kept the Function app's 50 min, set by host.json's 60-min functionTimeout,
/// while accepting 4 GiB uploads: a 4 GiB JPEG 2000 study (about 62 min at the measured 1.1 MiB/s) failed on a slow
/// machine; and <c>screen</c> listed the setting as applied but never copied it, so even <c>0</c> changed nothing.
/// </summary>
public sealed class LocalIngestTimeLimitTests
{
    private const long FourGiB = 4L * 1024 * 1024 * 1024;

    /// <summary>The slowest measured ingest of the largest upload <c>up</c> and <c>screen</c> accept by default (about 62 min).</summary>
    private static readonly TimeSpan SlowestIngestOfTheLargestUpload =
        TimeSpan.FromSeconds(FourGiB / (1024.0 * 1024.0) / LocalHostSettings.SlowestMeasuredIngestMiBPerSecond);

    [Fact]
    public void UpsDefault_OutlastsTheSlowestMeasuredIngestOfTheLargestUploadItAccepts()
    {
        var limit = LocalHostSettings.Load(Environment(), chunkSize: null).Pipeline.IngestTimeLimit;

        Assert.True(SlowestIngestOfTheLargestUpload > new PipelineOptions().IngestTimeLimit, "the premise: the Function app's 50 min is too short for 4 GiB of JPEG 2000");
        Assert.True(limit >= SlowestIngestOfTheLargestUpload * LocalHostSettings.LocalIngestMargin, $"up's default IngestTimeLimit {limit} fails a 4 GiB JPEG 2000 study that takes {SlowestIngestOfTheLargestUpload} at the slowest measured rate");
        Assert.Equal(TimeSpan.FromMinutes(94), limit);
    }

    [Fact]
    public void ScreensDefault_IsUpsDefault()
    {
        Assert.Equal(TimeSpan.FromMinutes(94), OfflinePipelineSettings.Load(Environment()).Pipeline.IngestTimeLimit);
        Assert.Equal(TimeSpan.FromMinutes(187), OfflinePipelineSettings.Load(Environment(("Pipeline__MaxUploadBytes", (2 * FourGiB).ToString(System.Globalization.CultureInfo.InvariantCulture)))).Pipeline.IngestTimeLimit);
    }

    [Theory]
    [InlineData("00:10:00", 10)]
    [InlineData("02:30:00", 150)]
    [InlineData("0", 0)]
    public void ASetLimit_IsUsedAsGiven_ByUpAndScreen(string value, int minutes)
    {
        var environment = Environment(("pipeline__ingesttimelimit", value));

        Assert.Equal(TimeSpan.FromMinutes(minutes), LocalHostSettings.Load(environment, chunkSize: null).Pipeline.IngestTimeLimit);
        Assert.Equal(TimeSpan.FromMinutes(minutes), OfflinePipelineSettings.Load(environment).Pipeline.IngestTimeLimit);
    }

    [Fact]
    public void TheDefault_ScalesWithTheLargestUploadAccepted_NeverBelowTheFunctionAppsDefault_AndIsNoneForUnlimitedUploads()
    {
        Assert.Equal(TimeSpan.Zero, LocalHostSettings.Load(Environment(("Pipeline__MaxUploadBytes", "0")), null).Pipeline.IngestTimeLimit);
        Assert.Equal(TimeSpan.FromMinutes(50), LocalHostSettings.Load(Environment(("Pipeline__MaxUploadBytes", "104857600")), null).Pipeline.IngestTimeLimit);

        // The rate is a parameter: 1 MiB at one MiB an hour is 60 min, 90 with the margin.
        Assert.Equal(TimeSpan.FromMinutes(90), LocalHostSettings.LocalIngestTimeLimit(1024 * 1024, slowestMiBPerSecond: 1.0 / 3600));
        Assert.Equal(TimeSpan.FromMinutes(50), LocalHostSettings.LocalIngestTimeLimit(1024 * 1024, slowestMiBPerSecond: 1.0));
    }

    [Fact]
    public void Screen_AppliesASetLimit_ToItsIngest_AndSaysSo()
    {
        // A real study under a limit no ingest can meet: the one attempt is stopped and the study fails naming the
        // limit. Before, screen ignored the value (it screened the study) and, once applied, the handler threw for a retry
        // that never comes offline (an unhandled exception).
        using var temp = TestData.CreateTempDirectory();
        var series = PipelineFixture.RealSubset(Path.Combine(temp.Path, "ct"), 4);

        var (rc, stderr) = StartupSettingsTests.Covidfn([("Pipeline__IngestTimeLimit", "00:00:00.001")], Screen(series, temp.Path));

        Assert.True(rc == ExitCodes.InternalError, stderr);
        Assert.Contains($"screen: failed: {series}: ", stderr, StringComparison.Ordinal);
        Assert.Contains("(Pipeline:IngestTimeLimit; upload ", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Screen_WithTheDefault_ScreensTheStudy()
    {
        using var temp = TestData.CreateTempDirectory();
        var series = PipelineFixture.RealSubset(Path.Combine(temp.Path, "ct"), 4);

        var (rc, stderr) = StartupSettingsTests.Covidfn([], Screen(series, temp.Path));

        Assert.True(rc == ExitCodes.Success, stderr);
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

    private static string[] Screen(string series, string temp) =>
        ["screen", series, "--key-file", Path.Combine(temp, "deid.key"), "--out-dir", Path.Combine(temp, "out")];
}
