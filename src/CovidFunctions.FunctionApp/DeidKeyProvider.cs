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

    /// <summary>How an app setting that is a Key Vault reference starts (App Service keeps it as is when resolution fails).</summary>
    private const string UnresolvedKeyVaultReference = "@Microsoft.KeyVault(";

    public static DeidKey Load(IConfiguration configuration, TokenCredential credential)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        if (configuration["Deidentification:HmacKey"] is { Length: > 0 } base64)
        {
            // The platform leaves a Key Vault reference it cannot resolve as its literal text; say so rather than
            // report a base64 error on the reference (or, worse, on a key that is present but wrong).
            if (base64.StartsWith(UnresolvedKeyVaultReference, StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidOperationException(
                    "Deidentification:HmacKey is an unresolved Key Vault reference: the secret does not exist yet (infra/scripts/postdeploy.sh creates deid-hmac-key) or the app identity cannot read the vault (Key Vault Secrets User, keyVaultReferenceIdentity). Fix either and restart the app.");
            }

            try
            {
                return DeidKey.FromBase64(base64);
            }
            catch (DeidKeyException e)
            {
                // DeidKeyException messages hold no key material; this one names the setting too.
                throw new InvalidOperationException($"Deidentification:HmacKey: {e.Message}", e);
            }
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
