using System.Security.Cryptography;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// The de-identification key is loaded when the app starts (AddCovidFunctionsApp, before the host is built), not when
/// the first upload is ingested: an app without a usable key refuses to start, naming the setting and the reason and
/// never the value. Before, it started, and every ingest failed on the key until its attempts ran out and the upload
/// went to quarantine.
/// </summary>
public sealed class DeidKeyStartupTests
{
    [Fact]
    public void NoKeySetting_AtStartUp_StopsTheApp()
    {
        var error = Assert.Throws<InvalidOperationException>(() => Start(new()));

        Assert.Contains("No de-identification key", error.Message, StringComparison.Ordinal);
        Assert.Contains("Deidentification:HmacKey", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnresolvedKeyVaultReference_AtStartUp_StopsTheAppSayingSo()
    {
        var error = Assert.Throws<InvalidOperationException>(() => Start(new() { ["Deidentification:HmacKey"] = "@Microsoft.KeyVault(VaultName=kv-abc;SecretName=deid-hmac-key)" }));

        Assert.Contains("Deidentification:HmacKey is an unresolved Key Vault reference", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("c2hvcnQ=", "at least 32 bytes")]
    [InlineData("not base64 at all!", "not valid base64")]
    [InlineData("   ", "at least 32 bytes")]
    public void MalformedOrShortKey_AtStartUp_StopsTheAppNamingTheSettingNotTheValue(string value, string reason)
    {
        var error = Assert.Throws<InvalidOperationException>(() => Start(new() { ["Deidentification:HmacKey"] = value }));

        Assert.StartsWith("Deidentification:HmacKey: ", error.Message, StringComparison.Ordinal);
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
        if (!string.IsNullOrWhiteSpace(value))
        {
            Assert.DoesNotContain(value, error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void KeyFileThatCannotBeRead_AtStartUp_StopsTheAppNamingTheSettingAndFile()
    {
        // A folder where the file should be: neither readable as a key nor creatable (root reads any 0000 file, so a
        // permission test would pass vacuously here).
        using var temp = TestData.CreateTempDirectory();
        var path = Path.Combine(temp.Path, "deid.key");
        Directory.CreateDirectory(path);

        var error = Assert.Throws<InvalidOperationException>(() => Start(new() { ["Deidentification:KeyFile"] = path }));

        Assert.StartsWith("Deidentification:KeyFile: ", error.Message, StringComparison.Ordinal);
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.Contains("cannot be read or created", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void KeyFileWithAShortKey_AtStartUp_StopsTheAppNamingTheSetting()
    {
        using var temp = TestData.CreateTempDirectory();
        var path = Path.Combine(temp.Path, "deid.key");
        File.WriteAllText(path, Convert.ToBase64String(new byte[16]));

        var error = Assert.Throws<InvalidOperationException>(() => Start(new() { ["Deidentification:KeyFile"] = path }));

        Assert.StartsWith("Deidentification:KeyFile: ", error.Message, StringComparison.Ordinal);
        Assert.Contains("at least 32 bytes; got 16", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void VaultUriThatIsNoHttpsUrl_AtStartUp_StopsTheAppNamingTheSetting()
    {
        var error = Assert.Throws<InvalidOperationException>(() => Start(new() { ["KeyVault:VaultUri"] = "kv-deid.vault.azure.net" }));

        Assert.Contains("KeyVault:VaultUri must be an absolute https URL", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MissingKeyFile_AtStartUp_IsCreatedThen_AndIsTheKeyTheAppUses()
    {
        // A local run's first start makes its key (mode 0600), before any function runs; later starts read it.
        using var temp = TestData.CreateTempDirectory();
        var path = Path.Combine(temp.Path, "keys", "deid.key");

        await using var services = Start(new() { ["Deidentification:KeyFile"] = path }).BuildServiceProvider();

        Assert.True(File.Exists(path));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }

        var key = services.GetRequiredService<DeidKey>();
        var expected = DeidKey.FromBase64(File.ReadAllText(path));
        Assert.Equal(expected.DeriveSubkey("check"), key.DeriveSubkey("check"));
    }

    [Fact]
    public async Task Base64Key_AtStartUp_IsTheKeyTheAppUses()
    {
        var bytes = RandomNumberGenerator.GetBytes(DeidKey.MinimumLength);

        await using var services = Start(new() { ["Deidentification:HmacKey"] = Convert.ToBase64String(bytes) }).BuildServiceProvider();

        Assert.Equal(DeidKey.FromBytes(bytes).DeriveSubkey("check"), services.GetRequiredService<DeidKey>().DeriveSubkey("check"));
    }

    private static IServiceCollection Start(Dictionary<string, string?> values)
    {
        values.TryAdd("AzureWebJobsStorage", "UseDevelopmentStorage=true");
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        return new ServiceCollection().AddLogging().AddCovidFunctionsApp(configuration);
    }
}
