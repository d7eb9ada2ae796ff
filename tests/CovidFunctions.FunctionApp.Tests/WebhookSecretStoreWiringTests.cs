using System.Text.Json.Nodes;
using CovidFunctions.Pipeline.Azure.Webhooks;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// Which vault the Function app writes webhook subscription secrets to. In Azure bicep sets two vaults: the
/// de-identification vault (<c>KeyVault__VaultUri</c>, the app identity may only read it) and the webhook-secrets vault
/// (<c>Webhooks__KeyVaultUri</c>, the only one where it is Key Vault Secrets Officer). Writing to the first would be a 403.
/// Nothing here calls Key Vault: the clients are built, not used.
/// </summary>
public sealed class WebhookSecretStoreWiringTests
{
    private const string DeidVault = "https://kv-deid-test.vault.azure.net/";
    private const string WebhookVault = "https://kv-wh-test.vault.azure.net/";

    [Fact]
    public async Task AzureSettings_BothVaults_WebhookSecretsGoToTheWebhookVault()
    {
        await using var services = Build(new()
        {
            ["KeyVault:VaultUri"] = DeidVault,
            ["Webhooks:KeyVaultUri"] = WebhookVault,
        });

        var store = Assert.IsType<KeyVaultWebhookSecretStore>(services.GetRequiredService<IWebhookSecretStore>());
        Assert.Equal(new Uri(WebhookVault), store.VaultUri);
    }

    [Fact]
    public async Task SingleVaultSettings_OnlyKeyVaultUri_FallsBackToThatVault()
    {
        await using var services = Build(new() { ["KeyVault:VaultUri"] = DeidVault, ["Webhooks:KeyVaultUri"] = string.Empty });

        var store = Assert.IsType<KeyVaultWebhookSecretStore>(services.GetRequiredService<IWebhookSecretStore>());
        Assert.Equal(new Uri(DeidVault), store.VaultUri);
    }

    [Fact]
    public async Task SampleSettings_NoVault_KeepSecretsInMemoryForLocalRuns()
    {
        var values = JsonNode.Parse(File.ReadAllText(Path.Combine(TestData.RepoRoot, "local.settings.sample.json")))!["Values"]!.AsObject()
            .ToDictionary(v => v.Key.Replace("__", ":", StringComparison.Ordinal), v => (string?)v.Value);

        // The sample lists the setting (empty locally), so a developer sees where Azure puts the secrets.
        Assert.True(values.ContainsKey(FunctionAppServices.WebhookVaultUriSetting), "local.settings.sample.json lacks Webhooks__KeyVaultUri");
        await using var services = Build(values);

        Assert.IsType<InMemoryWebhookSecretStore>(services.GetRequiredService<IWebhookSecretStore>());
    }

    private static ServiceProvider Build(Dictionary<string, string?> values)
    {
        // Storage is only needed by the services not resolved here; a syntactically valid connection keeps start-up honest.
        values.TryAdd("AzureWebJobsStorage", "UseDevelopmentStorage=true");

        // The key is loaded at start-up and HmacKey is its first source: the de-identification vault is not read here.
        if (string.IsNullOrEmpty(values.GetValueOrDefault("Deidentification:HmacKey")))
        {
            values["Deidentification:HmacKey"] = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        }

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        return new ServiceCollection().AddLogging().AddCovidFunctionsApp(configuration).BuildServiceProvider();
    }
}
