using System.Text.Json.Nodes;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// A bad app setting stops the Function app at start-up (AddCovidFunctionsApp, which Program.cs calls before the host
/// is built) with a message naming the setting, instead of failing the first study, delivery or API call; a misspelt
/// key fails too, instead of leaving the default silently.
/// </summary>
public sealed class FunctionAppOptionsTests
{
    [Fact]
    public void SampleSettings_Load_WithTheSamplesValues()
    {
        var options = FunctionAppOptions.Load(Configuration(SampleValues()));

        Assert.Equal(3, options.Pipeline.MaxIngestAttempts);
        Assert.Equal(TimeSpan.FromHours(6), options.Pipeline.StuckStudyAge);
        Assert.Equal(TimeSpan.FromMinutes(50), options.Pipeline.IngestTimeLimit);
        Assert.Equal(new HashSet<int> { 443 }, options.Webhooks.ParseAllowedPorts());
        Assert.Equal(new Uri("http://localhost:7071"), options.Webhooks.PublicBaseUrl);
        Assert.Equal(25, options.ApiKeys.MaxTenantsPerKey);
        Assert.Equal("slice-requests", options.Host.SliceQueueName);
        Assert.Equal((3, 10), (options.Metering.CloseAfterDays, options.Metering.CloseMaxWaitDays));
    }

    [Theory]
    [InlineData("Pipeline:ChunkSize", "0", "Pipeline:ChunkSize must be at least 1")]
    [InlineData("Pipeline:ChunkSize", "many", "Pipeline:ChunkSize")]
    [InlineData("Pipeline:ChunkTimeout", "00:00:00", "Pipeline:ChunkTimeout must be positive")]
    [InlineData("Pipeline:MaxChunkAttempts", "0", "Pipeline:MaxChunkAttempts must be at least 1")]
    [InlineData("Pipeline:UploadRetention", "-1.00:00:00", "Pipeline:UploadRetention must not be negative")]
    [InlineData("Pipeline:MaxUploadBytes", "-1", "Pipeline:MaxUploadBytes must not be negative")]
    [InlineData("Pipeline:MaxIngestAttempts", "-1", "Pipeline:MaxIngestAttempts must not be negative")]
    [InlineData("Pipeline:IngestTimeLimit", "-00:50:00", "Pipeline:IngestTimeLimit must not be negative")]
    [InlineData("Pipeline:StuckStudyAge", "-06:00:00", "Pipeline:StuckStudyAge must not be negative")]
    [InlineData("Pipeline:StuckStudyAge", "6h", "Pipeline:StuckStudyAge")]
    [InlineData("Pipeline:Transport", "Kafka", "Pipeline:Transport")]
    [InlineData("Webhooks:MaxRetries", "-1", "Webhooks:MaxRetries must not be negative")]
    [InlineData("Webhooks:AttemptTimeout", "00:00:00", "Webhooks:AttemptTimeout must be positive")]
    [InlineData("Webhooks:MaxRetryDelay", "00:00:10", "Webhooks:MaxRetryDelay must not be below Webhooks:BaseRetryDelay")]
    [InlineData("Webhooks:TestRequestsPerWindow", "0", "Webhooks:TestRequestsPerWindow must be at least 1")]
    [InlineData("Webhooks:TestRateWindow", "00:00:00", "Webhooks:TestRateWindow must be positive")]
    [InlineData("Webhooks:PublicBaseUrl", "/api", "Webhooks:PublicBaseUrl must be an absolute http(s) URL")]
    [InlineData("Webhooks:PublicBaseUrl", "ftp://example.org", "Webhooks:PublicBaseUrl must be an absolute http(s) URL")]
    [InlineData("ApiKeys:MaxTenantsPerKey", "0", "ApiKeys:MaxTenantsPerKey must be at least 1")]
    [InlineData("Metering:CloseAfterDays", "-1", "Metering:CloseAfterDays must be 0-27")]
    [InlineData("Metering:CloseAfterDays", "3d", "Metering:CloseAfterDays")]
    [InlineData("Metering:CloseMaxWaitDays", "2", "Metering:CloseMaxWaitDays must be from CloseAfterDays (3) to 27")]
    [InlineData("Metering:CloseMaxWaitDays", "31", "Metering:CloseMaxWaitDays must be from CloseAfterDays (3) to 27")]
    [InlineData("Webhooks:RetryPollInterval", "00:00:10", "Webhooks:RetryPollInterval (Webhooks__RetryPollInterval) changes nothing in the Function app: it retries due webhook deliveries on its own 30 s timer")]
    [InlineData("Imaging:MinSlices", "0", "Imaging:MinSlices must be ≥ 1")]
    [InlineData("Imaging:MinSlices", "many", "Imaging:MinSlices")]
    [InlineData("Imaging:MixedImageSizes", "Crop", "Imaging:MixedImageSizes")]
    [InlineData("Imaging:MaxAxialAngleDegrees", "120", "Imaging:MaxAxialAngleDegrees must be in (0, 90] degrees")]
    [InlineData("Imaging:Zip:MaxEntries", "0", "Imaging:Zip:MaxEntries must be ≥ 1")]
    [InlineData("Imaging:WindowLevel", "-500", "Imaging:WindowLevel is fixed at -600 HU: it is part of the lung2d-v1 preprocessing contract")]
    [InlineData("Imaging:WindowWidth", "1200", "Imaging:WindowWidth is fixed at 1500 HU: it is part of the lung2d-v1 preprocessing contract")]
    [InlineData("Deidentification:RetainSafePrivate", "true", "Deidentification:RetainSafePrivate (Deidentification__RetainSafePrivate) changes nothing in ingest: it de-identifies every upload with the project's fixed profile")]
    [InlineData("Deidentification:RetainInstitutionIdentity", "false", "Deidentification:RetainInstitutionIdentity (Deidentification__RetainInstitutionIdentity) changes nothing in ingest")]
    [InlineData("Deidentification:PseudonymLength", "24", "Deidentification:PseudonymLength (Deidentification__PseudonymLength) changes nothing in ingest")]
    public void BadValue_AtStartUp_StopsTheAppNamingTheSetting(string key, string value, string expected)
    {
        var values = SampleValues();
        values[key] = value;

        var error = Assert.Throws<InvalidOperationException>(() => new ServiceCollection().AddLogging().AddCovidFunctionsApp(Configuration(values)));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("443,https")]
    [InlineData("70000")]
    [InlineData(",")]
    public void AllowedPortsThatAreNoPortList_AtStartUp_StopTheAppNamingTheSetting(string value)
    {
        var values = SampleValues();
        values["Webhooks:AllowedPorts"] = value;

        var error = Assert.Throws<FormatException>(() => new ServiceCollection().AddLogging().AddCovidFunctionsApp(Configuration(values)));

        Assert.Contains("Webhooks:AllowedPorts", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Pipeline:MaxIngestAttemps", "Pipeline:MaxIngestAttemps (Pipeline__MaxIngestAttemps)")]
    [InlineData("Webhooks:AllowedPort", "Webhooks:AllowedPort (Webhooks__AllowedPort)")]
    [InlineData("ApiKeys:MaxTenants", "ApiKeys:MaxTenants (ApiKeys__MaxTenants)")]
    [InlineData("Metering:CloseAfter", "Metering:CloseAfter (Metering__CloseAfter)")]
    [InlineData("Imaging:MinSlice", "Imaging:MinSlice (Imaging__MinSlice)")]
    [InlineData("Imaging:Zip:MaxEntrys", "Imaging:Zip:MaxEntrys (Imaging__Zip__MaxEntrys)")]
    [InlineData("Deidentification:HmacKy", "Deidentification:HmacKy (Deidentification__HmacKy)")]
    public void MisspeltKey_AtStartUp_StopsTheAppNamingIt(string key, string expected)
    {
        var values = SampleValues();
        values[key] = "1";

        var error = Assert.Throws<InvalidOperationException>(() => new ServiceCollection().AddLogging().AddCovidFunctionsApp(Configuration(values)));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void KeysInOtherCase_AndReadByName_AreKnown()
    {
        // Configuration keys are case-insensitive (environment variables arrive as written); Webhooks:KeyVaultUri is
        // read by name, not bound.
        var values = SampleValues();
        values.Remove("Pipeline:ChunkSize");
        values.Add("pipeline:chunksize", "16");
        values["Webhooks:KeyVaultUri"] = "https://kv-wh.vault.azure.net/";

        Assert.Equal(16, FunctionAppOptions.Load(Configuration(values)).Pipeline.ChunkSize);
    }

    [Fact]
    public void ImagingSection_IsBoundIntoTheAssemblyOptions()
    {
        var values = SampleValues();
        values["Imaging:MinSlices"] = "40";
        values["Imaging:MixedImageSizes"] = "KeepMostCommonSize";
        values["Imaging:Zip:MaxEntries"] = "100";
        values["Imaging:WindowLevel"] = "-600"; // the contract's own value is accepted

        var assembly = FunctionAppOptions.Load(Configuration(values)).Assembly;

        Assert.Equal(40, assembly.MinSlices);
        Assert.Equal(CovidFunctions.Imaging.Series.MixedImageSizePolicy.KeepMostCommonSize, assembly.MixedImageSizes);
        Assert.Equal(100, assembly.ZipLimits.MaxEntries);
        Assert.Equal(CovidFunctions.Imaging.Archives.ZipSafetyLimits.Default.MaxTotalUncompressedBytes, assembly.ZipLimits.MaxTotalUncompressedBytes);
    }

    private static Dictionary<string, string?> SampleValues() =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(TestData.RepoRoot, "local.settings.sample.json")))!["Values"]!.AsObject()
            .Where(v => !string.IsNullOrEmpty((string?)v.Value))
            .ToDictionary(v => v.Key.Replace("__", ":", StringComparison.Ordinal), v => (string?)v.Value, StringComparer.OrdinalIgnoreCase);

    private static IConfiguration Configuration(Dictionary<string, string?> values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values).Build();
}
