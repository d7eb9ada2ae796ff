using CovidFunctions.Pipeline.Api;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;

namespace CovidFunctions.FunctionApp.Functions;

/// <summary>
/// Minting, listing and revoking the results API's tenant-bound <c>X-Api-Key</c> keys (<see cref="ApiKeyAdmin"/>), for
/// the operator only: authorization level Admin, so only the host master key passes. The route is <c>apikeys</c>, not
/// <c>admin/apikeys</c>: the Functions host refuses any function route that starts with <c>admin</c> ("The specified
/// route conflicts with one or more built in routes"), whatever the route prefix, since <c>/admin</c> is its own API.
/// </summary>
public sealed class ApiKeyFunctions(ApiKeyAdmin admin)
{
    /// <summary><c>POST /api/apikeys</c> <c>{"tenants": ["t1"]}</c>: 201 <c>{"id", "key", "tenants", "createdAt"}</c>, the only time the key is shown.</summary>
    [Function("MintApiKey")]
    public async Task<IActionResult> MintApiKey([HttpTrigger(AuthorizationLevel.Admin, "post", Route = "apikeys")] HttpRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return new ApiFunctions.ApiResponseResult(await admin.MintAsync(request.Body, request.HttpContext.RequestAborted).ConfigureAwait(false));
    }

    /// <summary><c>GET /api/apikeys</c>: <c>[{"id", "tenants", "createdAt"}]</c> (never a key or hash).</summary>
    [Function("ListApiKeys")]
    public async Task<IActionResult> ListApiKeys([HttpTrigger(AuthorizationLevel.Admin, "get", Route = "apikeys")] HttpRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return new ApiFunctions.ApiResponseResult(await admin.ListAsync(request.HttpContext.RequestAborted).ConfigureAwait(false));
    }

    /// <summary><c>DELETE /api/apikeys/{id}</c>: 204, or 404 when no key has that id.</summary>
    [Function("RevokeApiKey")]
    public async Task<IActionResult> RevokeApiKey([HttpTrigger(AuthorizationLevel.Admin, "delete", Route = "apikeys/{id}")] HttpRequest request, string id)
    {
        ArgumentNullException.ThrowIfNull(request);
        return new ApiFunctions.ApiResponseResult(await admin.RevokeAsync(id, request.HttpContext.RequestAborted).ConfigureAwait(false));
    }
}
