using Azure.Identity;
using Microsoft.Extensions.Configuration;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// The de-identification key's setting: in Azure a Key Vault reference the platform resolves. When it cannot (the
/// secret is not created yet, the identity lacks its role) the app receives the reference text itself; the error
/// says that, names the setting, and never echoes a value (which would be the key).
/// </summary>
public sealed class DeidKeyProviderTests
{
    [Fact]
    public void UnresolvedKeyVaultReference_Load_SaysTheReferenceIsUnresolved()
    {
        var configuration = Configuration("@Microsoft.KeyVault(VaultName=kv-abc;SecretName=deid-hmac-key)");

        var error = Assert.Throws<InvalidOperationException>(() => DeidKeyProvider.Load(configuration, new DefaultAzureCredential()));

        Assert.Contains("Deidentification:HmacKey is an unresolved Key Vault reference", error.Message, StringComparison.Ordinal);
        Assert.Contains("postdeploy.sh", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("not base64 at all!")]
    [InlineData("c2hvcnQ=")]
    public void MalformedKey_Load_NamesTheSettingWithoutTheValue(string value)
    {
        var error = Assert.Throws<InvalidOperationException>(() => DeidKeyProvider.Load(Configuration(value), new DefaultAzureCredential()));

        Assert.StartsWith("Deidentification:HmacKey: ", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(value, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Base64Key_Load_IsTheKey()
    {
        var key = Convert.ToBase64String(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());

        Assert.NotNull(DeidKeyProvider.Load(Configuration(key), new DefaultAzureCredential()));
    }

    private static IConfiguration Configuration(string hmacKey) =>
        new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Deidentification:HmacKey"] = hmacKey }).Build();
}
