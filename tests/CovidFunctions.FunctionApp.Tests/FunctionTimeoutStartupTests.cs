using System.Text.Json.Nodes;
using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// <c>Pipeline:IngestTimeLimit</c> against the host's <c>functionTimeout</c>, checked when the app starts
/// (AddCovidFunctionsApp): the timeout is read from <c>AzureFunctionsJobHost__functionTimeout</c>, else from the host.json
/// next to the app. An attempt must reach its limit (and record itself as a counted failure) before the host cuts the
/// invocation, whose cut ingest does not count. Before, a limit at or above the timeout, or 0, started and every upload
/// slower than the timeout was cut and retried until the 6-h watchdog failed it. <c>Pipeline:StuckStudyAge</c> is checked
/// at the same start-up against ingest's own bound, which the timeout check makes finite.
/// </summary>
public sealed class FunctionTimeoutStartupTests
{
    [Fact]
    public void TheHostJsonBesideTheApp_IsTheRepositorysHostJson()
    {
        // The premise of reading it at start-up: the SDK copies host.json into the app's output folder (and so into this
        // test's, through the project reference), where the deployed package's host.json is read by the host.
        var beside = HostFunctionTimeout.HostJsonBesideTheApp;

        Assert.True(File.Exists(beside), $"no host.json at {beside}");
        Assert.Equal(File.ReadAllText(Path.Combine(TestData.RepoRoot, "src", "CovidFunctions.FunctionApp", "host.json")), File.ReadAllText(beside));
        Assert.Equal(IngestFunctions.InvocationBudget, HostFunctionTimeout.Read(Configuration(), beside).Limit);
    }

    [Theory]
    [InlineData("01:00:00")]
    [InlineData("02:00:00")]
    public void AnIngestTimeLimit_NotBelowHostJsonsFunctionTimeout_StopsStartUp_NamingBoth(string limit)
    {
        var error = Assert.Throws<InvalidOperationException>(() => Start(("Pipeline:IngestTimeLimit", limit)));

        Assert.Contains($"Pipeline:IngestTimeLimit (Pipeline__IngestTimeLimit) is {limit}, not below the host's functionTimeout 01:00:00 (host.json at '{HostFunctionTimeout.HostJsonBesideTheApp}')", error.Message, StringComparison.Ordinal);
        Assert.Contains("not counted", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NoIngestTimeLimit_UnderABoundedFunctionTimeout_StopsStartUp()
    {
        var error = Assert.Throws<InvalidOperationException>(() => Start(("Pipeline:IngestTimeLimit", "0")));

        Assert.Contains("Pipeline:IngestTimeLimit (Pipeline__IngestTimeLimit) is 0 (no limit), but the host cuts every invocation at functionTimeout 01:00:00", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheFunctionTimeoutOverride_WinsOverHostJson_AndIsNamed()
    {
        // 40 min by the host's app-setting override: the 50-min default limit would be cut by the host.
        var error = Assert.Throws<InvalidOperationException>(() => Start(("AzureFunctionsJobHost:functionTimeout", "00:40:00")));
        Assert.Contains("Pipeline:IngestTimeLimit (Pipeline__IngestTimeLimit) is 00:50:00, not below the host's functionTimeout 00:40:00 (AzureFunctionsJobHost__functionTimeout)", error.Message, StringComparison.Ordinal);

        // Raised by the override, a limit above host.json's 60 min is sound; unbounded (-1), no limit is too.
        Assert.Equal(TimeSpan.FromMinutes(90), Load(("AzureFunctionsJobHost:functionTimeout", "02:00:00"), ("Pipeline:IngestTimeLimit", "01:30:00")).Pipeline.IngestTimeLimit);
        Assert.Equal(TimeSpan.Zero, Load(("AzureFunctionsJobHost:functionTimeout", "-1"), ("Pipeline:IngestTimeLimit", "0")).Pipeline.IngestTimeLimit);
    }

    [Fact]
    public void AFunctionTimeoutBelowTheSweepsInvocationBudget_StopsStartUp()
    {
        // The limit fits the timeout, but the minute sweep plans for 60 min: after 20 min of one folder it would start
        // another whose 30-min attempt the host cuts at 45.
        var error = Assert.Throws<InvalidOperationException>(() => Start(("AzureFunctionsJobHost:functionTimeout", "00:45:00"), ("Pipeline:IngestTimeLimit", "00:30:00")));

        Assert.Contains("The host's functionTimeout 00:45:00 (AzureFunctionsJobHost__functionTimeout) is below the 01:00:00 the minute upload sweep plans each invocation for", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ten minutes")]
    [InlineData("00:00:00")]
    public void AFunctionTimeoutOverrideThatIsNoDuration_StopsStartUp_NamingIt(string value)
    {
        var error = Assert.Throws<InvalidOperationException>(() => Start(("AzureFunctionsJobHost:functionTimeout", value)));

        Assert.Contains($"functionTimeout '{value}' (AzureFunctionsJobHost__functionTimeout) is not a positive duration", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AMissingHostJson_StopsStartUp_NamingThePath_UnlessTheTimeoutIsGivenBySetting()
    {
        using var temp = TestData.CreateTempDirectory();
        var missing = Path.Combine(temp.Path, "host.json");

        var error = Assert.Throws<InvalidOperationException>(() => FunctionAppOptions.Load(Configuration(), missing));
        Assert.Contains($"no host.json at '{missing}'", error.Message, StringComparison.Ordinal);
        Assert.Contains("AzureFunctionsJobHost__functionTimeout", error.Message, StringComparison.Ordinal);

        Assert.Equal(TimeSpan.FromMinutes(50), FunctionAppOptions.Load(Configuration(("AzureFunctionsJobHost:functionTimeout", "01:00:00")), missing).Pipeline.IngestTimeLimit);
    }

    [Theory]
    [InlineData("{ \"version\": \"2.0\" }", "sets no functionTimeout: the host would apply its plan's default")]
    [InlineData("{ \"version\": \"2.0\", \"functionTimeout\": ", "is not JSON")]
    [InlineData("{ \"functionTimeout\": \"1h\" }", "functionTimeout '1h' (host.json at")]
    public void AHostJsonWithoutAUsableFunctionTimeout_StopsStartUp_NamingTheFile(string hostJson, string expected)
    {
        using var temp = TestData.CreateTempDirectory();
        var path = Path.Combine(temp.Path, "host.json");
        File.WriteAllText(path, hostJson);

        var error = Assert.Throws<InvalidOperationException>(() => FunctionAppOptions.Load(Configuration(), path));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AHostJsonWithComments_IsReadAsTheHostReadsIt()
    {
        using var temp = TestData.CreateTempDirectory();
        var path = Path.Combine(temp.Path, "host.json");
        File.WriteAllText(path, "{\n  // longer for large studies\n  \"FunctionTimeout\": \"02:00:00\",\n}\n");

        Assert.Equal(TimeSpan.FromHours(2), HostFunctionTimeout.Read(Configuration(), path).Limit);
        Assert.Equal(TimeSpan.FromMinutes(90), FunctionAppOptions.Load(Configuration(("Pipeline:IngestTimeLimit", "01:30:00")), path).Pipeline.IngestTimeLimit);
    }

    // Pipeline:StuckStudyAge against ingest's own bound (MaxIngestAttempts x IngestTimeLimit), as covidfn up checks it
    // (ce46a51): the watchdog fails a study still processing that long after it was created, so one at or below the
    // bound fails as stuck-processing a study whose ingest is still retrying within its limit. Before, this app accepted
    // any value.
    [Theory]
    [InlineData("02:00:00", "3", "00:50:00", "02:30:00")]
    [InlineData("02:30:00", "3", "00:50:00", "02:30:00")]
    [InlineData("06:00:00", "8", "00:50:00", "06:40:00")]
    [InlineData("03:00:00", "2", "01:30:00", "03:00:00")]
    public void AWatchdogAtOrBelowIngestsOwnBound_StopsStartUp_NamingBothSettingsAndTheBound(string age, string attempts, string limit, string bound)
    {
        var error = Assert.Throws<InvalidOperationException>(() => Start(
            ("AzureFunctionsJobHost:functionTimeout", "02:00:00"), ("Pipeline:StuckStudyAge", age), ("Pipeline:MaxIngestAttempts", attempts), ("Pipeline:IngestTimeLimit", limit)));

        Assert.Contains(
            $"Pipeline:StuckStudyAge (Pipeline__StuckStudyAge) is {age}, not longer than ingest's own bound, Pipeline__MaxIngestAttempts ({attempts}) × Pipeline__IngestTimeLimit ({limit}) = {bound}",
            error.Message,
            StringComparison.Ordinal);
        Assert.Contains($"Set Pipeline__StuckStudyAge above {bound}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AWatchdogAboveTheBound_NoWatchdog_AndTheDefaults_Start()
    {
        // The sample's (and the code's) 6 h over 3 × 50 min; a minute above the bound; 0, no watchdog at all.
        Assert.Equal(TimeSpan.FromHours(6), Load().Pipeline.StuckStudyAge);
        Assert.Equal(TimeSpan.Parse("02:31:00", System.Globalization.CultureInfo.InvariantCulture), Load(("Pipeline:StuckStudyAge", "02:31:00")).Pipeline.StuckStudyAge);
        Assert.Equal(TimeSpan.Zero, Load(("Pipeline:StuckStudyAge", "00:00:00")).Pipeline.StuckStudyAge);

        // No ingest limit (allowed only under an unbounded functionTimeout): ingest has no bound of its own to outlast.
        Assert.Equal(TimeSpan.FromHours(1), Load(("AzureFunctionsJobHost:functionTimeout", "-1"), ("Pipeline:IngestTimeLimit", "0"), ("Pipeline:StuckStudyAge", "01:00:00")).Pipeline.StuckStudyAge);

        // Unbounded attempts (0) count as one attempt's limit, as covidfn up counts them.
        Assert.Equal(TimeSpan.FromHours(1), Load(("Pipeline:MaxIngestAttempts", "0"), ("Pipeline:StuckStudyAge", "01:00:00")).Pipeline.StuckStudyAge);
        Assert.Throws<InvalidOperationException>(() => Load(("Pipeline:MaxIngestAttempts", "0"), ("Pipeline:StuckStudyAge", "00:50:00")));
    }

    private static void Start(params (string Key, string Value)[] values) =>
        new ServiceCollection().AddLogging().AddCovidFunctionsApp(Configuration(values));

    private static FunctionAppOptions Load(params (string Key, string Value)[] values) => FunctionAppOptions.Load(Configuration(values));

    /// <summary>local.settings.sample.json's values (a key, so that start-up gets as far as these checks), with <paramref name="values"/> over them.</summary>
    private static IConfiguration Configuration(params (string Key, string Value)[] values)
    {
        var settings = JsonNode.Parse(File.ReadAllText(Path.Combine(TestData.RepoRoot, "local.settings.sample.json")))!["Values"]!.AsObject()
            .Where(v => !string.IsNullOrEmpty((string?)v.Value))
            .ToDictionary(v => v.Key.Replace("__", ":", StringComparison.Ordinal), v => (string?)v.Value, StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in values)
        {
            settings[key] = value;
        }

        return new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
    }
}
