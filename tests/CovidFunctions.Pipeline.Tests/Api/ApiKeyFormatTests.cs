using System.Security.Cryptography;
using System.Text;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Pipeline.Tests.Api;

/// <summary>One key format for the local keys and the Function app's stored keys; stored keys are SHA-256 hex.</summary>
public sealed class ApiKeyFormatTests
{
    [Fact]
    public void NewKey_IsPrefixedRandomHex_AndHashIsLowerHexSha256_IdItsFirst12Digits()
    {
        var key = ApiKeyFormat.NewKey();
        Assert.Matches("^cfk_[0-9a-f]{48}$", key);
        Assert.NotEqual(key, ApiKeyFormat.NewKey());

        var hash = ApiKeyFormat.Hash(key);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key))), hash);
        Assert.Matches("^[0-9a-f]{64}$", hash);
        Assert.Equal(hash[..12], ApiKeyFormat.IdOf(hash));
    }

    [Fact]
    public async Task LocalKeys_UseTheSameFormat()
    {
        using var temp = TestData.CreateTempDirectory();
        var keys = new LocalApiKeys(temp.Path);
        Assert.Matches("^cfk_[0-9a-f]{48}$", await keys.GetOrCreateOperatorKeyAsync(CancellationToken.None));
        Assert.Matches("^cfk_[0-9a-f]{48}$", await keys.AddKeyAsync(["t1"], CancellationToken.None));
    }
}
