using System.Text.RegularExpressions;

namespace CovidFunctions.Deployment.Tests;

/// <summary>No secret leaves the template: no key-listing functions, no keys or connection strings, no secret outputs.</summary>
[Collection(CompiledTemplateCollection.Name)]
public sealed partial class TemplateSecurityTests(CompiledTemplateFixture fixture)
{
    [Fact]
    public void CompiledTemplate_Anywhere_CallsNoListFunction()
    {
        var json = fixture.Main.Root.ToJsonString();

        // listKeys, listSecrets, listAccountSas, listConnectionStrings, listCredentials, ...
        Assert.DoesNotMatch(ListFunction(), json);
    }

    [Fact]
    public void CompiledTemplate_Anywhere_ContainsNoKeyOrConnectionStringMarkers()
    {
        var json = fixture.Main.Root.ToJsonString();

        // ("sharedKey" as a property: the Log Analytics destination of a Container Apps environment would need it.)
        foreach (var marker in new[] { "AccountKey=", "SharedAccessKey=", "SharedAccessSignature=", "DefaultEndpointsProtocol=", "\"sharedKey\"", "primarySharedKey", "primaryKey", "InstrumentationKey=" })
        {
            Assert.DoesNotContain(marker, json, StringComparison.OrdinalIgnoreCase);
        }
    }

    [Fact]
    public void Outputs_EveryTemplate_AreNotSecretsByNameTypeOrSource()
    {
        foreach (var template in fixture.Main.SelfAndDescendants())
        {
            var secureParameters = (template.Root["parameters"]?.AsObject() ?? [])
                .Where(p => ((string?)p.Value!["type"])?.StartsWith("secure", StringComparison.OrdinalIgnoreCase) == true)
                .Select(p => p.Key)
                .ToList();
            foreach (var (name, output) in template.Root["outputs"]?.AsObject() ?? [])
            {
                var where = $"{template.Name} output {name}";
                Assert.DoesNotMatch(SecretName(), name);
                Assert.DoesNotContain("secure", (string?)output!["type"] ?? string.Empty, StringComparison.OrdinalIgnoreCase);
                var value = output["value"]?.ToJsonString() ?? string.Empty;
                Assert.All(secureParameters, p => Assert.DoesNotContain($"parameters('{p}')", value, StringComparison.Ordinal));
                Assert.False(value.Contains("ConnectionString", StringComparison.OrdinalIgnoreCase), where + " exposes a connection string");
            }
        }
    }

    [Fact]
    public void SecureParameters_Main_HaveNoDefaultOtherThanEmpty()
    {
        foreach (var (name, parameter) in fixture.Main.Root["parameters"]!.AsObject())
        {
            if (((string?)parameter!["type"])?.StartsWith("secure", StringComparison.OrdinalIgnoreCase) == true)
            {
                Assert.True(parameter["defaultValue"] is null || (string?)parameter["defaultValue"] == string.Empty, name);
            }
        }
    }

    [Fact]
    public void ContainerApps_Scorer_DeclaresNoSecrets()
    {
        var scorer = fixture.Main.Module("containerapps").ResourcesOfType("Microsoft.App/containerApps").Single();

        Assert.Null(scorer["properties"]!["configuration"]!["secrets"]);
        var env = scorer["properties"]!["template"]!["containers"]!.AsArray().SelectMany(c => c!["env"]!.AsArray());
        Assert.All(env, e => Assert.Null(e!["secretRef"]));
        Assert.Null(scorer["properties"]!["template"]!["scale"]!["rules"]![0]!["custom"]!["auth"]);
    }

    [Fact]
    public void FunctionApp_AppSettings_UseIdentityConnectionsOnly()
    {
        var module = fixture.Main.Module("functionapp");
        var settings = module.ResourcesOfType("Microsoft.Web/sites/config").Single(r => ((string)r["name"]!).Contains("appsettings", StringComparison.Ordinal))["properties"]!.AsObject();
        var text = settings.ToJsonString();

        Assert.DoesNotContain("AccountKey=", text, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("SharedAccessKey=", text, StringComparison.OrdinalIgnoreCase);
        Assert.False(settings.ContainsKey("AzureWebJobsStorage"), "AzureWebJobsStorage must be identity-based (__accountName), not a connection string");
        Assert.Equal("managedidentity", (string?)settings["AzureWebJobsStorage__credential"]);
        // The app's Service Bus client takes DefaultAzureCredential (AZURE_CLIENT_ID); no binding reads a ServiceBus
        // connection, so ServiceBus__credential/__clientId would be dead settings (ConfigurationContractTests).
        Assert.False(settings.ContainsKey("ServiceBus__credential"));
        Assert.Equal($"reference({module.Resolve(module.Root["variables"]!["identityId"])}).clientId", module.Resolve(settings["AZURE_CLIENT_ID"]));
        Assert.Equal(fixture.Main.Resolve(fixture.Main.Root["variables"]!["names"]!["storage"]), module.Resolve(settings["AzureWebJobsStorage__accountName"]));
        Assert.Contains("Microsoft.ServiceBus/namespaces(", module.Resolve(settings["ServiceBus__fullyQualifiedNamespace"]), StringComparison.Ordinal);
        var identity = module.Resolve(module.Root["variables"]!["identityId"]);
        Assert.Equal($"reference({identity}).clientId", module.Resolve(settings["AzureWebJobsStorage__clientId"]));
        Assert.StartsWith("Authorization=AAD;", module.Resolve(settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]), StringComparison.Ordinal);
        // Flex Consumption takes the runtime from functionAppConfig; these settings are rejected there.
        Assert.False(settings.ContainsKey("FUNCTIONS_WORKER_RUNTIME"));
        Assert.False(settings.ContainsKey("FUNCTIONS_EXTENSION_VERSION"));
        // The one secret the app reads, the de-identification key (DeidKeyProvider), arrives as a Key Vault reference
        // resolved by the platform, never as a value; it lives in the de-identification vault, which the app identity
        // may only read. Webhooks are signed with per-subscription secrets, so no other reference exists.
        var names = fixture.Main.Root["variables"]!["names"]!;
        var deidVault = fixture.Main.Resolve(names["keyVault"]);
        Assert.StartsWith($"@Microsoft.KeyVault(VaultName={deidVault};", module.Resolve(settings["Deidentification__HmacKey"]), StringComparison.Ordinal);
        Assert.Contains("SecretName=deid-hmac-key", module.Resolve(settings["Deidentification__HmacKey"]), StringComparison.Ordinal);
        var references = settings.Where(s => s.Value is not null && s.Value.ToJsonString().Contains("@Microsoft.KeyVault(", StringComparison.Ordinal)).Select(s => s.Key);
        Assert.Equal(["Deidentification__HmacKey"], references);
    }

    [Fact]
    public void FunctionApp_VaultSettings_PointAtTheDeidentificationAndTheWebhookVault()
    {
        var module = fixture.Main.Module("functionapp");
        var settings = module.ResourcesOfType("Microsoft.Web/sites/config").Single()["properties"]!;
        var names = fixture.Main.Root["variables"]!["names"]!;
        var deidVault = fixture.Main.Resolve(names["keyVault"]);
        var webhookVault = fixture.Main.Resolve(names["webhookKeyVault"]);

        Assert.NotEqual(deidVault, webhookVault);
        // The de-identification key is read from KeyVault__VaultUri; webhook subscription secrets are written to
        // Webhooks__KeyVaultUri (FunctionAppServices), the only vault where the app identity is Secrets Officer.
        Assert.Equal($"reference(Microsoft.KeyVault/vaults({deidVault})).vaultUri", module.Resolve(settings["KeyVault__VaultUri"]));
        Assert.Equal($"reference(Microsoft.KeyVault/vaults({webhookVault})).vaultUri", module.Resolve(settings["Webhooks__KeyVaultUri"]));
        // The webhook vault the app uses is the vault the webhook-keyvault module deploys and grants on.
        var webhookModule = fixture.Main.Module("webhook-keyvault");
        Assert.Equal(webhookVault, webhookModule.Resolve(webhookModule.ResourcesOfType("Microsoft.KeyVault/vaults").Single()["name"]));
        Assert.Equal("SecretsOfficer", fixture.Main.Resolve(webhookModule.Deployment!["properties"]!["parameters"]!["functionVaultRole"]!["value"]));
        var deidModule = fixture.Main.Module("keyvault");
        Assert.Equal("SecretsUser", fixture.Main.Resolve(deidModule.Deployment!["properties"]!["parameters"]!["functionVaultRole"]!["value"]));
    }

    [Fact]
    public void Outputs_WebhookVault_IsItsUriFromTheModule()
    {
        var output = fixture.Main.Root["outputs"]!["AZURE_WEBHOOK_VAULT_URI"]!;

        Assert.Equal("string", (string?)output["type"]);
        Assert.Contains("'webhook-keyvault'", (string?)output["value"], StringComparison.Ordinal);
        Assert.EndsWith(".outputs.vaultUri.value]", (string?)output["value"], StringComparison.Ordinal);
    }

    [Fact]
    public void Monitoring_Telemetry_RequiresEntraAuthentication()
    {
        var monitoring = fixture.Main.Module("monitoring");

        Assert.True((bool)monitoring.ResourcesOfType("Microsoft.Insights/components").Single()["properties"]!["DisableLocalAuth"]!);
        Assert.True((bool)monitoring.ResourcesOfType("Microsoft.OperationalInsights/workspaces").Single()["properties"]!["features"]!["disableLocalAuth"]!);
    }

    [GeneratedRegex(@"\blist[A-Z][A-Za-z]*\(", RegexOptions.CultureInvariant)]
    private static partial Regex ListFunction();

    [GeneratedRegex("(?i)(key|secret|password|passwd|connection|token|sas|credential)", RegexOptions.CultureInvariant)]
    private static partial Regex SecretName();
}
