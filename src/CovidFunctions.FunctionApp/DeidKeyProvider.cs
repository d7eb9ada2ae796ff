using Azure.Core;
using Azure.Security.KeyVault.Secrets;
using CovidFunctions.Dicom.Deidentification;
using Microsoft.Extensions.Configuration;

namespace CovidFunctions.FunctionApp;

/// <summary>
/// Where the de-identification HMAC key comes from, first match wins:
/// <c>Deidentification:HmacKey</c> (base64; in Azure a Key Vault reference the platform resolves),
/// <c>Deidentification:KeyFile</c> (a local key file, created on first use),
/// or <c>KeyVault:VaultUri</c> + <c>Deidentification:SecretName</c> (default <c>deid-hmac-key</c>) read with the
/// app's identity. No key: start-up fails rather than de-identify with an ad-hoc key (pseudonyms must be stable).
/// </summary>
public static class DeidKeyProvider
{
    public const string DefaultSecretName = "deid-hmac-key";

    public static DeidKey Load(IConfiguration configuration, TokenCredential credential)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        if (configuration["Deidentification:HmacKey"] is { Length: > 0 } base64)
        {
            return DeidKey.FromBase64(base64);
        }

        if (configuration["Deidentification:KeyFile"] is { Length: > 0 } file)
        {
            return DeidKey.LoadOrCreate(file, out _);
        }

        // The de-identification vault only: Webhooks:KeyVaultUri (the writable webhook-secrets vault) never holds this key.
        if (configuration[FunctionAppServices.DeidVaultUriSetting] is { Length: > 0 } vault)
        {
            var secretName = configuration["Deidentification:SecretName"] is { Length: > 0 } s ? s : DefaultSecretName;
            var secret = new SecretClient(new Uri(vault), credential).GetSecret(secretName);
            return DeidKey.FromBase64(secret.Value.Value);
        }

        throw new InvalidOperationException(
            "No de-identification key: set Deidentification:HmacKey (base64, a Key Vault reference in Azure), Deidentification:KeyFile, or KeyVault:VaultUri.");
    }
}
