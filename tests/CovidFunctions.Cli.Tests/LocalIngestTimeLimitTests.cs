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
    public void AnUnsetWatchdog_OutlastsIngestsOwnBound_WhateverTheLargestUpload()
    {
        // 20 GiB uploads: the sized limit is 466 min, one attempt alone longer than the default 6-h StuckStudyAge. Before,
        // the watchdog failed as stuck-processing a study whose ingest was running within its limit (from about 14 GiB;
        // from about 5.3 GiB once its 3 attempts are counted). Now the unset watchdog outlasts 3 × 466 min by an hour.
        var large = LocalHostSettings.Load(Environment(("Pipeline__MaxUploadBytes", (5 * FourGiB).ToString(System.Globalization.CultureInfo.InvariantCulture))), null).Pipeline;
        Assert.Equal(TimeSpan.FromMinutes(466), large.IngestTimeLimit);
        Assert.True(large.StuckStudyAge > large.IngestTimeLimit * large.MaxIngestAttempts, $"StuckStudyAge {large.StuckStudyAge} cuts an ingest allowed {large.MaxIngestAttempts} × {large.IngestTimeLimit}");
        Assert.Equal(TimeSpan.FromHours(25), large.StuckStudyAge);

        // 8 GiB: 3 × 187 min = 9 h 21 min, so 11 h. A set limit counts the same way (3 × 2 h 30 min, so 9 h).
        Assert.Equal(TimeSpan.FromHours(11), LocalHostSettings.Load(Environment(("Pipeline__MaxUploadBytes", (2 * FourGiB).ToString(System.Globalization.CultureInfo.InvariantCulture))), null).Pipeline.StuckStudyAge);
        Assert.Equal(TimeSpan.FromHours(9), LocalHostSettings.Load(Environment(("Pipeline__IngestTimeLimit", "02:30:00")), null).Pipeline.StuckStudyAge);

        // Up to 4 GiB (3 × 94 min) the default 6 h already outlasts it, and without a limit there is nothing to outlast.
        Assert.Equal(new PipelineOptions().StuckStudyAge, LocalHostSettings.Load(Environment(), null).Pipeline.StuckStudyAge);
        Assert.Equal(new PipelineOptions().StuckStudyAge, LocalHostSettings.Load(Environment(("Pipeline__IngestTimeLimit", "0"), ("Pipeline__MaxUploadBytes", (5 * FourGiB).ToString(System.Globalization.CultureInfo.InvariantCulture))), null).Pipeline.StuckStudyAge);
    }

    [Fact]
    public void ASetWatchdog_ThatWouldCutAnIngestWithinItsLimit_IsRefused_NamingBothSettings_AndZeroStillTurnsItOff()
    {
        var twentyGiB = (5 * FourGiB).ToString(System.Globalization.CultureInfo.InvariantCulture);

        var refused = Assert.Throws<InvalidOperationException>(() => LocalHostSettings.Load(Environment(("Pipeline__MaxUploadBytes", twentyGiB), ("Pipeline__StuckStudyAge", "06:00:00")), null));
        Assert.Equal(
            "Pipeline__StuckStudyAge (06:00:00) must be longer than ingest's own bound, Pipeline__MaxIngestAttempts (3) × Pipeline__IngestTimeLimit (466 min, sized to Pipeline__MaxUploadBytes 21474836480) = 23:18:00: the watchdog would fail as stuck a study whose ingest is still within its limit. Set Pipeline__StuckStudyAge above 23:18:00, or leave it unset (up sizes it), or lower Pipeline__IngestTimeLimit or Pipeline__MaxUploadBytes.",
            refused.Message);
        var setLimit = Assert.Throws<InvalidOperationException>(() => LocalHostSettings.Load(Environment(("Pipeline__IngestTimeLimit", "03:00:00"), ("Pipeline__StuckStudyAge", "09:00:00")), null));
        Assert.Contains("Pipeline__MaxIngestAttempts (3) × Pipeline__IngestTimeLimit (03:00:00) = 09:00:00", setLimit.Message, StringComparison.Ordinal);

        // Above the bound, or no watchdog at all: used as given.
        Assert.Equal(TimeSpan.FromHours(24), LocalHostSettings.Load(Environment(("Pipeline__MaxUploadBytes", twentyGiB), ("Pipeline__StuckStudyAge", "1.00:00:00")), null).Pipeline.StuckStudyAge);
        Assert.Equal(TimeSpan.Zero, LocalHostSettings.Load(Environment(("Pipeline__MaxUploadBytes", twentyGiB), ("Pipeline__StuckStudyAge", "0")), null).Pipeline.StuckStudyAge);
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
