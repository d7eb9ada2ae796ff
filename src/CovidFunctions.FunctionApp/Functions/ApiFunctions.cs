using CovidFunctions.Pipeline.Api;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;

namespace CovidFunctions.FunctionApp.Functions;

/// <summary>
/// The results API (study list and detail, report, FHIR, files, usage and closing a month, webhook subscriptions) as HTTP functions over
/// the same <see cref="ResultsApi"/> handlers <c>covidfn up</c> serves. The Functions host checks the function key
/// (authorization level Function); the caller's tenants then come from the <c>X-Api-Key</c> header through the
/// registered <see cref="IApiKeyAuthorizer"/> (<see cref="StoredApiKeyAuthorizer"/>: tenant-bound keys in the
/// <c>ApiKeys</c> table, minted by <see cref="ApiKeyFunctions"/>). No valid <c>X-Api-Key</c>: 401.
/// </summary>
public sealed class ApiFunctions(ResultsApi api, IApiKeyAuthorizer authorizer)
{
    [Function("ListStudies")]
    public Task<IActionResult> ListStudies([HttpTrigger(AuthorizationLevel.Function, "get", Route = "studies")] HttpRequest request) =>
        RunAsync(request, (caller, q, ct) => ResultsApiEndpoints.ListStudiesAsync(api, caller, q, ct));

    [Function("GetStudy")]
    public Task<IActionResult> GetStudy([HttpTrigger(AuthorizationLevel.Function, "get", Route = "studies/{id}")] HttpRequest request, string id) =>
        RunAsync(request, (caller, q, ct) => api.GetStudyAsync(caller, id, ResultsApiEndpoints.QueryValue(q["tenant"]), ct));

    [Function("GetStudyReport")]
    public Task<IActionResult> GetStudyReport([HttpTrigger(AuthorizationLevel.Function, "get", Route = "studies/{id}/report")] HttpRequest request, string id) =>
        RunAsync(request, (caller, q, ct) => api.GetReportAsync(caller, id, ResultsApiEndpoints.QueryValue(q["tenant"]), ct));

    [Function("GetStudyFhir")]
    public Task<IActionResult> GetStudyFhir([HttpTrigger(AuthorizationLevel.Function, "get", Route = "studies/{id}/fhir")] HttpRequest request, string id) =>
        RunAsync(request, (caller, q, ct) => api.GetFhirAsync(caller, id, ResultsApiEndpoints.QueryValue(q["tenant"]), ct));

    [Function("GetStudyFile")]
    public Task<IActionResult> GetStudyFile([HttpTrigger(AuthorizationLevel.Function, "get", Route = "studies/{id}/files/{*path}")] HttpRequest request, string id, string path) =>
        RunAsync(request, (caller, q, ct) => api.GetFileAsync(caller, id, path, ResultsApiEndpoints.QueryValue(q["tenant"]), ct));

    [Function("GetUsage")]
    public Task<IActionResult> GetUsage([HttpTrigger(AuthorizationLevel.Function, "get", Route = "usage")] HttpRequest request) =>
        RunAsync(request, (caller, q, ct) => api.GetUsageAsync(caller, ResultsApiEndpoints.QueryValue(q["tenant"]), ResultsApiEndpoints.QueryValue(q["month"]), ct));

    /// <summary>Closes a past month's bills (all-tenant keys only; <see cref="ResultsApi.CloseUsageMonthAsync"/>).</summary>
    [Function("CloseUsage")]
    public Task<IActionResult> CloseUsage([HttpTrigger(AuthorizationLevel.Function, "post", Route = "usage/{month}/close")] HttpRequest request, string month) =>
        RunAsync(request, (caller, q, ct) => api.CloseUsageMonthAsync(caller, month, ResultsApiEndpoints.QueryValue(q["tenant"]), ct));

    [Function("ListWebhooks")]
    public Task<IActionResult> ListWebhooks([HttpTrigger(AuthorizationLevel.Function, "get", Route = "webhooks")] HttpRequest request) =>
        RunAsync(request, (caller, q, ct) => api.ListWebhooksAsync(caller, ResultsApiEndpoints.QueryValue(q["tenant"]), ct));

    [Function("CreateWebhook")]
    public Task<IActionResult> CreateWebhook([HttpTrigger(AuthorizationLevel.Function, "post", Route = "webhooks")] HttpRequest request) =>
        RunAsync(request, (caller, q, ct) => ResultsApiEndpoints.CreateWebhookAsync(api, caller, request.Body, ct));

    [Function("DeleteWebhook")]
    public Task<IActionResult> DeleteWebhook([HttpTrigger(AuthorizationLevel.Function, "delete", Route = "webhooks/{id}")] HttpRequest request, string id) =>
        RunAsync(request, (caller, q, ct) => api.DeleteWebhookAsync(caller, id, ResultsApiEndpoints.QueryValue(q["tenant"]), ct));

    [Function("RotateWebhookSecret")]
    public Task<IActionResult> RotateWebhookSecret([HttpTrigger(AuthorizationLevel.Function, "post", Route = "webhooks/{id}/rotate-secret")] HttpRequest request, string id) =>
        RunAsync(request, (caller, q, ct) => ResultsApiEndpoints.RotateWebhookSecretAsync(api, caller, id, ResultsApiEndpoints.QueryValue(q["tenant"]), request.Body, ct));

    [Function("TestWebhook")]
    public Task<IActionResult> TestWebhook([HttpTrigger(AuthorizationLevel.Function, "post", Route = "webhooks/{id}/test")] HttpRequest request, string id) =>
        RunAsync(request, (caller, q, ct) => api.TestWebhookAsync(caller, id, ResultsApiEndpoints.QueryValue(q["tenant"]), ct));

    private async Task<IActionResult> RunAsync(HttpRequest request, Func<ApiCaller, IQueryCollection, CancellationToken, Task<ApiResponse>> handler)
    {
        ArgumentNullException.ThrowIfNull(request);
        var cancellationToken = request.HttpContext.RequestAborted;
        var check = await authorizer.CheckAsync(ResultsApiEndpoints.ApiKeyOf(request.Headers), cancellationToken).ConfigureAwait(false);
        var response = check.Caller is not { } caller
            ? ResultsApiEndpoints.Unauthorized(check)
            : await handler(caller, request.Query, cancellationToken).ConfigureAwait(false);
        return new ApiResponseResult(response);
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
