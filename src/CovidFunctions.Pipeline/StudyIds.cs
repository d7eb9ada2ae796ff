using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using CovidFunctions.Dicom.Deidentification;

namespace CovidFunctions.Pipeline;

/// <summary>
/// The key of study ids: an HMAC-SHA256 key derived from the de-identification key (<see cref="DeidKey.DeriveSubkey"/>,
/// HKDF-SHA256 with the fixed label <see cref="DerivationLabel"/>), so no second secret has to be kept, and holding a
/// study id, or this key's output, reveals nothing about the de-identification key. Every component that names studies
/// (ingest in the Function app and in <c>covidfn up</c>, <c>covidfn submit</c>, <c>covidfn screen</c>) must derive it from
/// the same de-identification key, or the same upload gets two ids. The bytes are never formatted.
/// </summary>
public sealed class StudyIdKey
{
    /// <summary>The HKDF info of the derivation; changing it changes every study id.</summary>
    public const string DerivationLabel = "covidfn/study-id/v1";

    private readonly byte[] _key;

    private StudyIdKey(byte[] key) => _key = key;

    /// <summary>The study-id key of <paramref name="deidKey"/>.</summary>
    public static StudyIdKey From(DeidKey deidKey)
    {
        ArgumentNullException.ThrowIfNull(deidKey);
        return new StudyIdKey(deidKey.DeriveSubkey(DerivationLabel));
    }

    /// <summary>The first 12 bytes of HMAC-SHA256 over <paramref name="message"/>'s UTF-8, as 24 lower-case hex digits.</summary>
    internal string Mac24(string message) => Convert.ToHexStringLower(HMACSHA256.HashData(_key, Encoding.UTF8.GetBytes(message)))[..24];

    public override string ToString() => "StudyIdKey(redacted)";
}

/// <summary>
/// Deterministic identifiers. A study id is derived from the tenant and the upload's path in <c>ct-uploads</c> under
/// the deployment's <see cref="StudyIdKey"/>, so a re-delivered blob event (or a second watcher pass) maps to the same
/// study and the same orchestration instance, and <c>covidfn submit</c> can print it before ingest runs. It is keyed:
/// without the key, a study id cannot be checked against guessed upload names (which often are patient names), also
/// long after the upload and its path are gone.
/// </summary>
public static partial class StudyIds
{
    /// <summary>Tenants are lower-case letters, digits and '-', 1–40 characters (they are blob path segments and table partition keys).</summary>
    public static bool IsValidTenant(string? tenant) => tenant is not null && TenantPattern().IsMatch(tenant);

    /// <summary>Throws <see cref="ArgumentException"/> naming the tenant when it is not valid.</summary>
    public static string RequireTenant(string? tenant) =>
        IsValidTenant(tenant) ? tenant! : throw new ArgumentException(InvalidTenantMessage(tenant), nameof(tenant));

    /// <summary>What is wrong with a tenant that <see cref="IsValidTenant"/> refuses (one wording for every caller).</summary>
    public static string InvalidTenantMessage(string? tenant) => $"tenant '{tenant}' is not valid: use 1-40 of a-z, 0-9 and '-'";

    /// <summary>
    /// <c>s</c> + 24 lower-case hex digits of HMAC-SHA256(<paramref name="key"/>, "{tenant}\n{uploadPath}") (the path
    /// without leading or trailing '/').
    /// </summary>
    public static string ForUpload(StudyIdKey key, string tenant, string uploadPath)
    {
        RequireTenant(tenant);
        return ForUploadUnchecked(key, tenant, uploadPath);
    }

    /// <summary>
    /// <see cref="ForUpload"/> without the tenant check: the stable id under which an upload with an invalid tenant is
    /// quarantined (<see cref="Ingest.UploadUnitPlanner"/>).
    /// </summary>
    public static string ForUploadUnchecked(StudyIdKey key, string tenant, string uploadPath)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentException.ThrowIfNullOrEmpty(uploadPath);
        return "s" + key.Mac24($"{tenant}\n{uploadPath.Trim('/')}");
    }

    /// <summary>The orchestration instance id of a study: one per tenant and study.</summary>
    public static string OrchestrationId(string tenant, string studyId) => $"study-{tenant}-{studyId}";

    /// <summary>The deterministic message id of a chunk request (Service Bus duplicate detection keys on it).</summary>
    public static string ChunkMessageId(string studyId, int chunkIndex, int attempt) => $"{studyId}-c{chunkIndex:D4}-a{attempt}";

    // \z, not $: $ also matches before a final "\n", which let "alpha\n" pass as a valid tenant.
    [GeneratedRegex(@"^[a-z0-9][a-z0-9-]{0,39}\z")]
    private static partial Regex TenantPattern();
}
