using System.Text.Json.Nodes;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// The Function app's composition root as these tests build it, wired as in Azure: <c>AddCovidFunctionsApp</c> over the
/// values of local.settings.sample.json (<c>Section__Key</c> as <c>Section:Key</c>, empty values left out), with storage
/// on the test's Azurite and the de-identification key in a file of the test's own folder.
/// </summary>
internal static class SampleApp
{
    /// <summary>The sample settings on <paramref name="azurite"/>, then <paramref name="overrides"/> (a null value removes a setting).</summary>
    public static Dictionary<string, string?> Settings(AzuriteFixture azurite, string keyDirectory, params (string Key, string? Value)[] overrides)
    {
        ArgumentNullException.ThrowIfNull(azurite);
        var values = JsonNode.Parse(File.ReadAllText(Path.Combine(TestData.RepoRoot, "local.settings.sample.json")))!["Values"]!.AsObject()
            .Select(v => KeyValuePair.Create(v.Key.Replace("__", ":", StringComparison.Ordinal), (string?)v.Value))
            .Where(v => !string.IsNullOrEmpty(v.Value))
            .ToDictionary();
        values["AzureWebJobsStorage"] = azurite.Server.ConnectionString;
        values["Deidentification:KeyFile"] = Path.Combine(keyDirectory, "deid.key");
        foreach (var (key, value) in overrides)
        {
            if (value is null)
            {
                values.Remove(key);
            }
            else
            {
                values[key] = value;
            }
        }

        return values;
    }

    /// <summary>The app's services from <see cref="Settings"/>.</summary>
    public static ServiceProvider Build(AzuriteFixture azurite, string keyDirectory, params (string Key, string? Value)[] overrides) =>
        Services(azurite, keyDirectory, overrides).BuildServiceProvider();

    /// <summary>The app's services from <see cref="Settings"/>, with <paramref name="clock"/> as the app's time.</summary>
    public static ServiceProvider Build(AzuriteFixture azurite, string keyDirectory, TimeProvider clock, params (string Key, string? Value)[] overrides) =>
        Services(azurite, keyDirectory, overrides).AddSingleton(clock).BuildServiceProvider();

    private static IServiceCollection Services(AzuriteFixture azurite, string keyDirectory, (string Key, string? Value)[] overrides)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(Settings(azurite, keyDirectory, overrides)).Build();
        return new ServiceCollection().AddLogging().AddCovidFunctionsApp(configuration);
    }
}
