using Azure;
using Azure.Core;
using Azure.Identity;
using Azure.Security.KeyVault.Secrets;
using CovidFunctions.Dicom.Deidentification;
using Microsoft.Extensions.Configuration;

namespace CovidFunctions.FunctionApp;

/// <summary>
/// Where the de-identification HMAC key comes from, first match wins:
/// <c>Deidentification:HmacKey</c> (base64; in Azure a Key Vault reference the platform resolves),
/// <c>Deidentification:KeyFile</c> (a local key file, created on first use),
/// or <c>KeyVault:VaultUri</c> + <c>Deidentification:SecretName</c> (default <c>deid-hmac-key</c>) read with the
/// app's identity. <see cref="FunctionAppServices.AddCovidFunctionsApp"/> loads it at start-up: a key that is missing,
/// malformed, too short, an unreadable file, an unresolved Key Vault reference or a secret the identity cannot read
/// stops the app with an <see cref="InvalidOperationException"/> naming the setting and the reason (never the value),
/// instead of failing the first upload's ingest. Pseudonyms must be stable, so there is never an ad-hoc key.
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
            try
            {
                // Created (mode 0600) when it does not exist yet: a local run's first start makes its key.
                return DeidKey.LoadOrCreate(file, out _);
            }
            catch (DeidKeyException e)
            {
                throw new InvalidOperationException($"Deidentification:KeyFile: {e.Message}", e);
            }
        }

        // The de-identification vault only: Webhooks:KeyVaultUri (the writable webhook-secrets vault) never holds this key.
        if (configuration[FunctionAppServices.DeidVaultUriSetting] is { Length: > 0 } vault)
        {
            var secretName = configuration["Deidentification:SecretName"] is { Length: > 0 } s ? s : DefaultSecretName;
            var where = $"{FunctionAppServices.DeidVaultUriSetting} (secret '{secretName}' in {vault})";
            if (!Uri.TryCreate(vault, UriKind.Absolute, out var vaultUri) || vaultUri.Scheme != Uri.UriSchemeHttps)
            {
                throw new InvalidOperationException($"{FunctionAppServices.DeidVaultUriSetting} must be an absolute https URL of a Key Vault.");
            }

            string value;
            try
            {
                value = new SecretClient(vaultUri, credential).GetSecret(secretName).Value.Value;
            }
            catch (Exception e) when (e is RequestFailedException or AuthenticationFailedException)
            {
                // 404: the secret is not created yet (infra/scripts/postdeploy.sh); 403 or no credential: the identity.
                throw new InvalidOperationException($"{where}: the de-identification key cannot be read: {e.Message}", e);
            }

            try
            {
                return DeidKey.FromBase64(value);
            }
            catch (DeidKeyException e)
            {
                throw new InvalidOperationException($"{where}: {e.Message}", e);
            }
        }

        throw new InvalidOperationException(
            "No de-identification key: set Deidentification:HmacKey (base64, a Key Vault reference in Azure), Deidentification:KeyFile, or KeyVault:VaultUri.");
    }
}
