using System.Collections;
using CovidFunctions.Cli.Commands;
using CovidFunctions.Cli.Tests.Pipeline;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests;

/// <summary>
/// The offline commands (<c>screen</c>, <c>segment</c>, <c>classify</c>) read the <c>Imaging__*</c> settings as
/// <c>covidfn up</c> and the Function app do (<c>IngestSettings.LoadImaging</c>), with the same refusals, so an offline
/// run assembles a series exactly as the pipeline would. Before, they used the library's defaults whatever the
/// environment said: <c>Imaging__MinSlices=5</c> screened a 4-slice series offline that <c>up</c> rejects, and a
/// misspelt or out-of-range <c>Imaging__*</c> key changed nothing, silently.
/// </summary>
public sealed class OfflineImagingSettingsTests
{
    [Theory]
    [InlineData("segment")]
    [InlineData("classify")]
    [InlineData("screen")]
    public void MinSlices_FromTheEnvironment_RefusesASeriesWithFewerSlices_AsUpDoes(string command)
    {
        using var temp = TestData.CreateTempDirectory();
        var series = PipelineFixture.RealSubset(Path.Combine(temp.Path, "ct"), 4);

        var (rc, stderr) = StartupSettingsTests.Covidfn([("Imaging__MinSlices", "5")], Arguments(command, series, temp.Path));

        Assert.True(rc == 2, stderr);
        Assert.Contains("4 slices, fewer than 5", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("segment", "Imaging__MinSlices", "0", "Imaging:MinSlices must be ≥ 1")]
    [InlineData("classify", "Imaging__Zip__MaxEntrys", "3", "Imaging:Zip:MaxEntrys (Imaging__Zip__MaxEntrys)")]
    [InlineData("screen", "Imaging__WindowLevel", "-500", "Imaging:WindowLevel is fixed at -600 HU")]
    [InlineData("screen", "Deidentification__RetainSafePrivate", "true", "Deidentification:RetainSafePrivate (Deidentification__RetainSafePrivate) changes nothing in ingest")]
    public void BadImagingSetting_StopsTheCommandBeforeItReadsTheInput_NamingIt(string command, string name, string value, string expected)
    {
        using var temp = TestData.CreateTempDirectory();
        var series = PipelineFixture.RealSubset(Path.Combine(temp.Path, "ct"), 4);

        var (rc, stderr) = StartupSettingsTests.Covidfn([(name, value)], Arguments(command, series, temp.Path));

        Assert.True(rc == 2, stderr);
        Assert.Contains($"{command}: ", stderr, StringComparison.Ordinal);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(temp.Path, "out")), "the command wrote output before refusing the setting");
        Assert.False(File.Exists(Path.Combine(temp.Path, "c.json")), "the command wrote output before refusing the setting");
    }

    [Fact]
    public void ImagingSettings_FromTheEnvironment_AreTheAssemblyOptions_InAnyCase()
    {
        var environment = new Hashtable { ["Imaging__MinSlices"] = "5", ["imaging__zip__maxentries"] = "3", ["Other__X"] = "1" };

        var assembly = ImagingSettings.Load(environment);

        Assert.Equal(5, assembly.MinSlices);
        Assert.Equal(3, assembly.ZipLimits.MaxEntries);
        Assert.Equal(CovidFunctions.Imaging.Series.SeriesAssemblyOptions.Default.MaxAxialAngleDegrees, assembly.MaxAxialAngleDegrees);
    }

    private static string[] Arguments(string command, string series, string temp) => command switch
    {
        "segment" => ["segment", series, "--out-dir", Path.Combine(temp, "out")],
        "classify" => ["classify", series, "--json", Path.Combine(temp, "c.json")],
        _ => ["screen", series, "--key-file", Path.Combine(temp, "deid.key"), "--out-dir", Path.Combine(temp, "out")],
    };
}
