using System.Globalization;
using System.Text.Json;
using CovidFunctions.Pipeline.Api;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.Primitives;

namespace CovidFunctions.FunctionApp.Functions;

/// <summary>
/// The results API (study list and detail, report, FHIR, files, usage, webhook subscriptions) as HTTP functions over
/// the same <see cref="ResultsApi"/> handlers <c>covidfn up</c> serves. The Functions host checks the function key
/// (authorization level Function); the caller's tenants then come from the registered <see cref="IApiKeyAuthorizer"/>
/// (<see cref="PlatformKeyAuthorizer"/>: a function key sees every tenant).
/// </summary>
public sealed class ApiFunctions(ResultsApi api, IApiKeyAuthorizer authorizer)
{
    [Function("ListStudies")]
    public Task<IActionResult> ListStudies([HttpTrigger(AuthorizationLevel.Function, "get", Route = "studies")] HttpRequest request) =>
        RunAsync(request, (caller, q, ct) =>
        {
            if (!TryDate(q["from"], out var from) || !TryDate(q["to"], out var to))
            {
                return Task.FromResult(ApiResponse.Error(400, "from/to must be ISO 8601 dates"));
            }

            int? pageSize = int.TryParse(q["pageSize"], NumberStyles.None, CultureInfo.InvariantCulture, out var size) ? size : null;
            return api.ListStudiesAsync(caller, new StudyListQuery(Value(q["tenant"]), Value(q["status"]), from, to, Value(q["continuation"]), pageSize), ct);
        });

    [Function("GetStudy")]
    public Task<IActionResult> GetStudy([HttpTrigger(AuthorizationLevel.Function, "get", Route = "studies/{id}")] HttpRequest request, string id) =>
        RunAsync(request, (caller, q, ct) => api.GetStudyAsync(caller, id, Value(q["tenant"]), ct));

    [Function("GetStudyReport")]
    public Task<IActionResult> GetStudyReport([HttpTrigger(AuthorizationLevel.Function, "get", Route = "studies/{id}/report")] HttpRequest request, string id) =>
        RunAsync(request, (caller, q, ct) => api.GetReportAsync(caller, id, Value(q["tenant"]), ct));

    [Function("GetStudyFhir")]
    public Task<IActionResult> GetStudyFhir([HttpTrigger(AuthorizationLevel.Function, "get", Route = "studies/{id}/fhir")] HttpRequest request, string id) =>
        RunAsync(request, (caller, q, ct) => api.GetFhirAsync(caller, id, Value(q["tenant"]), ct));

    [Function("GetStudyFile")]
    public Task<IActionResult> GetStudyFile([HttpTrigger(AuthorizationLevel.Function, "get", Route = "studies/{id}/files/{*path}")] HttpRequest request, string id, string path) =>
        RunAsync(request, (caller, q, ct) => api.GetFileAsync(caller, id, path, Value(q["tenant"]), ct));

    [Function("GetUsage")]
    public Task<IActionResult> GetUsage([HttpTrigger(AuthorizationLevel.Function, "get", Route = "usage")] HttpRequest request) =>
        RunAsync(request, (caller, q, ct) => api.GetUsageAsync(caller, Value(q["tenant"]), Value(q["month"]), ct));

    [Function("ListWebhooks")]
    public Task<IActionResult> ListWebhooks([HttpTrigger(AuthorizationLevel.Function, "get", Route = "webhooks")] HttpRequest request) =>
        RunAsync(request, (caller, q, ct) => api.ListWebhooksAsync(caller, Value(q["tenant"]), ct));

    [Function("CreateWebhook")]
    public Task<IActionResult> CreateWebhook([HttpTrigger(AuthorizationLevel.Function, "post", Route = "webhooks")] HttpRequest request) =>
        RunAsync(request, async (caller, q, ct) =>
        {
            CreateWebhookRequest? body;
            try
            {
                body = await JsonSerializer.DeserializeAsync<CreateWebhookRequest>(request.Body, ApiJson.Options, ct).ConfigureAwait(false);
            }
            catch (JsonException ex)
            {
                return ApiResponse.Error(400, "request body is not valid JSON: " + ex.Message);
            }

            return await api.CreateWebhookAsync(caller, body, ct).ConfigureAwait(false);
        });

    [Function("DeleteWebhook")]
    public Task<IActionResult> DeleteWebhook([HttpTrigger(AuthorizationLevel.Function, "delete", Route = "webhooks/{id}")] HttpRequest request, string id) =>
        RunAsync(request, (caller, q, ct) => api.DeleteWebhookAsync(caller, id, Value(q["tenant"]), ct));

    [Function("TestWebhook")]
    public Task<IActionResult> TestWebhook([HttpTrigger(AuthorizationLevel.Function, "post", Route = "webhooks/{id}/test")] HttpRequest request, string id) =>
        RunAsync(request, (caller, q, ct) => api.TestWebhookAsync(caller, id, Value(q["tenant"]), ct));

    private async Task<IActionResult> RunAsync(HttpRequest request, Func<ApiCaller, IQueryCollection, CancellationToken, Task<ApiResponse>> handler)
    {
        ArgumentNullException.ThrowIfNull(request);
        var cancellationToken = request.HttpContext.RequestAborted;
        var caller = await authorizer.AuthorizeAsync(request.Headers[LocalApiKeys.HeaderName].FirstOrDefault(), cancellationToken).ConfigureAwait(false);
        var response = caller is null
            ? ApiResponse.Error(401, $"a valid {LocalApiKeys.HeaderName} header is required")
            : await handler(caller, request.Query, cancellationToken).ConfigureAwait(false);
        return new ApiResponseResult(response);
    }

    private static string? Value(StringValues values) => values.Count > 0 && !string.IsNullOrEmpty(values[0]) ? values[0] : null;

    private static bool TryDate(StringValues values, out DateTimeOffset? value)
    {
        value = null;
        if (Value(values) is not { } text)
        {
            return true;
        }

        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed))
        {
            value = parsed;
            return true;
        }

        return false;
    }

    /// <summary>Writes an <see cref="ApiResponse"/> exactly as the local API does (status, headers, body).</summary>
    internal sealed class ApiResponseResult(ApiResponse response) : IActionResult
    {
        public ApiResponse Response { get; } = response;

        public Task ExecuteResultAsync(ActionContext context)
        {
            ArgumentNullException.ThrowIfNull(context);
            return ResultsApiEndpoints.WriteAsync(context.HttpContext.Response, Response);
        }
    }
}
