using System.Text;
using CovidFunctions.Pipeline.Api;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Primitives;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// Calls an HTTP function as the Functions host would: a request with an <c>X-Api-Key</c> header, a query and a body,
/// and the function's result written to a fresh response and read back (<see cref="FunctionAnswer"/>).
/// </summary>
internal static class FunctionHttp
{
    /// <summary>A request with at most one <c>X-Api-Key</c> header.</summary>
    public static HttpRequest Request(string method, string? apiKey = null, string? body = null, string query = "") =>
        NewRequest(method, apiKey is null ? (StringValues?)null : new StringValues(apiKey), body, query);

    /// <summary>A request with one <c>X-Api-Key</c> header line per value of <paramref name="apiKeys"/>.</summary>
    public static HttpRequest Request(string method, string[] apiKeys, string? body = null) =>
        NewRequest(method, new StringValues(apiKeys), body, "");

    /// <summary>Writes the function's result to a fresh response, as the host would, and reads status, headers and body back.</summary>
    public static async Task<FunctionAnswer> Run(IActionResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var context = new DefaultHttpContext();
        var buffer = new MemoryStream();
        context.Response.Body = buffer;
        await result.ExecuteResultAsync(new ActionContext { HttpContext = context });
        return new FunctionAnswer(context.Response.StatusCode, context.Response.ContentType ?? "", buffer.ToArray(), context.Response.Headers);
    }

    private static HttpRequest NewRequest(string method, StringValues? apiKeys, string? body, string query)
    {
        var context = new DefaultHttpContext();
        context.Request.Method = method;
        context.Request.QueryString = new QueryString(query.Length == 0 ? null : query);
        if (apiKeys is { } keys)
        {
            context.Request.Headers[LocalApiKeys.HeaderName] = keys;
        }

        context.Request.Body = new MemoryStream(Encoding.UTF8.GetBytes(body ?? ""));
        context.Response.Body = new MemoryStream();
        return context.Request;
    }
}

/// <summary>What an HTTP function answered: status, content type, body and headers.</summary>
internal sealed record FunctionAnswer(int Status, string ContentType, byte[] Body, IHeaderDictionary Headers)
{
    public string Text => Encoding.UTF8.GetString(Body);
}
