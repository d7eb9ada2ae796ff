using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace CovidFunctions.Pipeline.Api;

/// <summary>
/// The results API on ASP.NET Core minimal APIs: every route authorizes the <c>X-Api-Key</c> header with the
/// registered <see cref="IApiKeyAuthorizer"/> (401 without a valid key) and calls <see cref="ResultsApi"/>.
/// Register <see cref="ResultsApi"/> and an <see cref="IApiKeyAuthorizer"/> in the container, then call
/// <see cref="MapResultsApi"/>.
/// </summary>
public static partial class ResultsApiEndpoints
{
    /// <summary>
    /// The results API's own HTTP host on 127.0.0.1 at <paramref name="port"/> (0: a free one), as <c>covidfn up</c>
    /// serves it, built but not started. It takes nothing from the ambient ASP.NET configuration: an
    /// ASPNETCORE_ENVIRONMENT=Development in the operator's shell would turn on the developer exception page (stack
    /// traces and request headers, the API key among them, in a 500's body), and a Kestrel__Endpoints__* variable or an
    /// appsettings.json in the working folder would open a listener beside 127.0.0.1, on any address it names. Tests
    /// serve the API through this same host, so what they probe is what <c>up</c> listens with.
    /// </summary>
    public static WebApplication BuildLoopbackHost(ResultsApi api, IApiKeyAuthorizer keys, int port)
    {
        ArgumentNullException.ThrowIfNull(api);
        ArgumentNullException.ThrowIfNull(keys);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { EnvironmentName = Environments.Production });
        builder.Configuration.Sources.Clear();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(api);
        builder.Services.AddSingleton(keys);
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, port));
        var app = builder.Build();
        app.MapResultsApi();
        return app;
    }

    /// <summary>The address a started <see cref="BuildLoopbackHost"/> host listens on (its port resolved when 0 was asked for).</summary>
    public static Uri ListeningAddress(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        return new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    }

    public static IEndpointRouteBuilder MapResultsApi(this IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var api = app.MapGroup("/api");
        api.MapGet("/studies", ListStudies);
        api.MapGet("/studies/{id}", (HttpContext http, string id) => Run(http, (a, c, q, ct) => a.GetStudyAsync(c, id, QueryValue(q["tenant"]), ct)));
        api.MapGet("/studies/{id}/report", (HttpContext http, string id) => Run(http, (a, c, q, ct) => a.GetReportAsync(c, id, QueryValue(q["tenant"]), ct)));
        api.MapGet("/studies/{id}/fhir", (HttpContext http, string id) => Run(http, (a, c, q, ct) => a.GetFhirAsync(c, id, QueryValue(q["tenant"]), ct)));
        api.MapGet("/studies/{id}/files/{**path}", (HttpContext http, string id, string path) => Run(http, (a, c, q, ct) => a.GetFileAsync(c, id, path, QueryValue(q["tenant"]), ct)));
        api.MapGet("/usage", Usage);
        api.MapPost("/usage/{month}/close", (HttpContext http, string month) => Run(http, (a, c, q, ct) => a.CloseUsageMonthAsync(c, month, QueryValue(q["tenant"]), ct)));
        api.MapGet("/webhooks", ListWebhooks);
        api.MapPost("/webhooks", CreateWebhook);
        api.MapDelete("/webhooks/{id}", (HttpContext http, string id) => Run(http, (a, c, q, ct) => a.DeleteWebhookAsync(c, id, QueryValue(q["tenant"]), ct)));
        api.MapPost("/webhooks/{id}/rotate-secret", (HttpContext http, string id) => Run(http, (a, c, q, ct) => RotateWebhookSecretAsync(a, c, id, QueryValue(q["tenant"]), http.Request.Body, ct)));
        api.MapPost("/webhooks/{id}/test", (HttpContext http, string id) => Run(http, (a, c, q, ct) => a.TestWebhookAsync(c, id, QueryValue(q["tenant"]), ct)));
        return app;
    }

    private static Task ListStudies(HttpContext http) => Run(http, ListStudiesAsync);

    private static Task Usage(HttpContext http) => Run(http, (a, c, q, ct) => a.GetUsageAsync(c, QueryValue(q["tenant"]), QueryValue(q["month"]), ct));

    private static Task ListWebhooks(HttpContext http) => Run(http, (a, c, q, ct) => a.ListWebhooksAsync(c, QueryValue(q["tenant"]), ct));

    private static Task CreateWebhook(HttpContext http) => Run(http, (a, c, q, ct) => CreateWebhookAsync(a, c, http.Request.Body, ct));

    /// <summary>The study list from its query string (tenant, status, from/to ISO 8601 dates, continuation, pageSize);
    /// 400 on a bad date. Shared with the Function app's ListStudies function.</summary>
    public static Task<ApiResponse> ListStudiesAsync(ResultsApi api, ApiCaller caller, IQueryCollection query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(api);
        ArgumentNullException.ThrowIfNull(query);
        // Each refusal names the parameter and the value (before: "from/to must be ...", whichever of the two was wrong).
        foreach (var name in (string[])["from", "to"])
        {
            if (!TryDate(query[name], out _))
            {
                return Task.FromResult(ApiResponse.Error(400, $"{name} '{QueryValue(query[name])}' is not an ISO 8601 date or time (2026-11-27, 2026-11-27T08:00:00Z; encode the '+' of an offset as %2B)"));
            }
        }

        TryDate(query["from"], out var from);
        TryDate(query["to"], out var to);

        // A pageSize that is not a number is refused like one out of range (it used to give the default page silently).
        int? pageSize = null;
        if (QueryValue(query["pageSize"]) is { } sizeText)
        {
            if (!int.TryParse(sizeText, NumberStyles.None, CultureInfo.InvariantCulture, out var size))
            {
                return Task.FromResult(ApiResponse.Error(400, $"pageSize '{sizeText}' is not a whole number 1-{ResultsApi.MaxPageSize}"));
            }

            pageSize = size;
        }

        return api.ListStudiesAsync(caller, new StudyListQuery(QueryValue(query["tenant"]), QueryValue(query["status"]), from, to, QueryValue(query["continuation"]), pageSize), cancellationToken);
    }

    /// <summary>Creates a webhook subscription from a JSON request body; 400 when the body is not valid JSON, 413 when it
    /// is over <see cref="ApiRequestBody.MaxBytes"/>. Shared
    /// with the Function app's CreateWebhook function.</summary>
    public static async Task<ApiResponse> CreateWebhookAsync(ResultsApi api, ApiCaller caller, Stream requestBody, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(api);
        var (body, error) = await ApiRequestBody.ReadJsonAsync<CreateWebhookRequest>(requestBody, cancellationToken).ConfigureAwait(false);
        return error ?? await api.CreateWebhookAsync(caller, body, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Rotates a subscription's secret from an optional JSON body (<see cref="RotateWebhookSecretRequest"/>; an
    /// empty body takes the defaults). Shared with the Function app's RotateWebhookSecret function.</summary>
    public static async Task<ApiResponse> RotateWebhookSecretAsync(ResultsApi api, ApiCaller caller, string id, string? tenant, Stream requestBody, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(api);
        var (body, error) = await ApiRequestBody.ReadOptionalJsonAsync<RotateWebhookSecretRequest>(requestBody, cancellationToken).ConfigureAwait(false);
        return error ?? await api.RotateWebhookSecretAsync(caller, id, tenant, body, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes an <see cref="ApiResponse"/> to an ASP.NET Core response.</summary>
    public static async Task WriteAsync(HttpResponse response, ApiResponse result)
    {
        ArgumentNullException.ThrowIfNull(response);
        ArgumentNullException.ThrowIfNull(result);
        response.StatusCode = result.Status;
        response.Headers.CacheControl = "no-store";
        response.Headers["X-Content-Type-Options"] = "nosniff";
        if (result.RetryAfter is { } retryAfter)
        {
            response.Headers.RetryAfter = Math.Max(1, (long)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        }

        if (result.Status == StatusCodes.Status204NoContent)
        {
            return;
        }

        response.ContentType = result.ContentType;
        if (result.ContentType.StartsWith("text/html", StringComparison.Ordinal))
        {
            // The report is self-contained: no scripts, images only as data: URIs.
            // Nor may it be framed by another site, change its base URL or submit forms.
            response.Headers.ContentSecurityPolicy = "default-src 'none'; img-src data: 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
        }

        response.ContentLength = result.Body.Length;
        await response.Body.WriteAsync(result.Body, response.HttpContext.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>One route's work once the caller is known.</summary>
    private delegate Task<ApiResponse> ApiHandler(ResultsApi api, ApiCaller caller, IQueryCollection query, CancellationToken cancellationToken);

    private static async Task Run(HttpContext http, ApiHandler handler)
    {
        var authorizer = http.RequestServices.GetRequiredService<IApiKeyAuthorizer>();
        ApiKeyCheck check;
        try
        {
            check = await authorizer.CheckAsync(ApiKeyOf(http.Request.Headers), http.RequestAborted).ConfigureAwait(false);
        }
        catch (InvalidDataException ex)
        {
            // A hand-edited local key file that cannot be read: no request passes (fail closed), and the answer says why
            // (the local API listens on loopback only, to the operator of the data folder).
            await WriteAsync(http.Response, ApiResponse.Error(500, "the API keys cannot be read: " + ex.Message)).ConfigureAwait(false);
            return;
        }

        if (check.Caller is not { } caller)
        {
            await WriteAsync(http.Response, Unauthorized(check)).ConfigureAwait(false);
            return;
        }

        var api = http.RequestServices.GetRequiredService<ResultsApi>();
        var result = await handler(api, caller, http.Request.Query, http.RequestAborted).ConfigureAwait(false);
        await WriteAsync(http.Response, result).ConfigureAwait(false);
    }

    /// <summary>The 401 for a refused key: the reason when there is one to tell (an expired key), else the generic one.</summary>
    public static ApiResponse Unauthorized(ApiKeyCheck check)
    {
        ArgumentNullException.ThrowIfNull(check);
        return ApiResponse.Error(401, check.Refusal ?? $"a valid {LocalApiKeys.HeaderName} header is required");
    }

    /// <summary>
    /// The request's <c>X-Api-Key</c>: null (401) when it is absent or sent more than once. With two values, which one
    /// counts would depend on the order a proxy keeps them in, so neither does.
    /// </summary>
    public static string? ApiKeyOf(IHeaderDictionary headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        return headers.TryGetValue(LocalApiKeys.HeaderName, out var values) && values.Count == 1 ? values[0] : null;
    }

    /// <summary>A query parameter's first value, or null when it is absent or empty.</summary>
    public static string? QueryValue(Microsoft.Extensions.Primitives.StringValues values) => values.Count > 0 && !string.IsNullOrEmpty(values[0]) ? values[0] : null;

    private static bool TryDate(Microsoft.Extensions.Primitives.StringValues values, out DateTimeOffset? value)
    {
        value = null;
        if (QueryValue(values) is not { } text)
        {
            return true;
        }

        // ISO 8601 only: the invariant culture would also read "01/02/2026" (as 2 January) or "Friday".
        if (IsoDateOrTime().IsMatch(text)
            && DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed))
        {
            value = parsed;
            return true;
        }

        return false;
    }

    /// <summary>An ISO 8601 extended date, or date and time with optional seconds, fraction and offset (no offset: UTC).</summary>
    [GeneratedRegex(@"\A[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,7})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?\z", RegexOptions.CultureInvariant)]
    private static partial Regex IsoDateOrTime();
}
