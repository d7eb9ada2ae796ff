using System.Text;
using System.Text.Json;

namespace CovidFunctions.Pipeline.Api;

/// <summary>A framework-neutral HTTP response: the ASP.NET Core mapping and the Function app write it out as is.</summary>
public sealed record ApiResponse(int Status, string ContentType, byte[] Body)
{
    public const string JsonContentType = "application/json; charset=utf-8";
    public const string FhirJsonContentType = "application/fhir+json; charset=utf-8";
    public const string HtmlContentType = "text/html; charset=utf-8";

    public static ApiResponse Json<T>(T value, int status = 200) =>
        new(status, JsonContentType, JsonSerializer.SerializeToUtf8Bytes(value, ApiJson.Options));

    public static ApiResponse Text(string contentType, string text, int status = 200) => new(status, contentType, Encoding.UTF8.GetBytes(text));

    /// <summary>An error as <c>{"error": "...", "status": n}</c>.</summary>
    public static ApiResponse Error(int status, string message) => Json(new ApiError(message, status), status);

    public static ApiResponse NotFound(string what) => Error(404, what + " not found");

    public static ApiResponse NoContent { get; } = new(204, "text/plain", []);

    public string BodyText => Encoding.UTF8.GetString(Body);

    /// <summary>Sent as the <c>Retry-After</c> header in whole seconds (a 429's wait).</summary>
    public TimeSpan? RetryAfter { get; init; }
}

public sealed record ApiError(string Error, int Status);

/// <summary>
/// Who is calling: the tenants the caller's <c>X-Api-Key</c> is bound to, or every tenant (<see cref="AllTenants"/>: a
/// key bound to <c>*</c>, locally in <c>api-keys.json</c>, in Azure in the <c>ApiKeys</c> table).
/// </summary>
public sealed record ApiCaller(IReadOnlySet<string>? Tenants)
{
    public static ApiCaller AllTenants { get; } = new((IReadOnlySet<string>?)null);

    public static ApiCaller ForTenants(params string[] tenants) => new(new HashSet<string>(tenants, StringComparer.Ordinal));

    public bool SeesAllTenants => Tenants is null;

    public bool CanSee(string tenant) => Tenants is null || Tenants.Contains(tenant);
}

/// <summary>
/// What checking an <c>X-Api-Key</c> found: the caller, or (null caller, 401) the reason to tell the client when there
/// is one to tell (an expired key); null <see cref="Refusal"/> means the generic "a valid X-Api-Key header is required".
/// </summary>
public sealed record ApiKeyCheck(ApiCaller? Caller, string? Refusal = null);

/// <summary>Maps an <c>X-Api-Key</c> value to its caller; null when the key is missing, unknown or expired (401).</summary>
public interface IApiKeyAuthorizer
{
    Task<ApiCaller?> AuthorizeAsync(string? apiKey, CancellationToken cancellationToken);

    /// <summary><see cref="AuthorizeAsync"/> with the reason a known key was refused (it expired), for the 401's error.</summary>
    Task<ApiKeyCheck> CheckAsync(string? apiKey, CancellationToken cancellationToken);
}
