using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace CovidFunctions.Pipeline;

/// <summary>
/// Deterministic identifiers. A study id is derived from the tenant and the upload's path in <c>ct-uploads</c>, so
/// a re-delivered blob event (or a second watcher pass) maps to the same study and the same orchestration instance;
/// <c>covidfn submit</c> can print it before ingest runs. It reveals nothing about the patient (the path is hashed).
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

    /// <summary><c>s</c> + 24 lower-case hex digits of SHA-256("{tenant}\n{uploadPath}").</summary>
    public static string ForUpload(string tenant, string uploadPath)
    {
        RequireTenant(tenant);
        ArgumentException.ThrowIfNullOrEmpty(uploadPath);
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"{tenant}\n{uploadPath.Trim('/')}"));
        return "s" + Convert.ToHexStringLower(hash)[..24];
    }

    /// <summary>The orchestration instance id of a study: one per tenant and study.</summary>
    public static string OrchestrationId(string tenant, string studyId) => $"study-{tenant}-{studyId}";

    /// <summary>The deterministic message id of a chunk request (Service Bus duplicate detection keys on it).</summary>
    public static string ChunkMessageId(string studyId, int chunkIndex, int attempt) => $"{studyId}-c{chunkIndex:D4}-a{attempt}";

    // \z, not $: $ also matches before a final "\n", which let "alpha\n" pass as a valid tenant.
    [GeneratedRegex(@"^[a-z0-9][a-z0-9-]{0,39}\z")]
    private static partial Regex TenantPattern();
}
