using System.Net.Http.Json;
using CovidFunctions.Pipeline.Api;
using Microsoft.AspNetCore.Builder;

namespace CovidFunctions.Pipeline.Tests.Api;

/// <summary>
/// A results API served over real HTTP as <c>covidfn up</c> serves it (its minimal-API mapping, Kestrel on 127.0.0.1
/// at a free port) with the given key authorizer, and a client for it (<see cref="Http"/>); disposing stops both.
/// </summary>
internal sealed class ApiHttpServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ApiHttpServer(WebApplication app, Uri baseUrl)
    {
        _app = app;
        BaseUrl = baseUrl;
        Http = new HttpClient { BaseAddress = baseUrl };
    }

    public Uri BaseUrl { get; }

    /// <summary>A client whose relative URIs go to this server.</summary>
    public HttpClient Http { get; }

    public static async Task<ApiHttpServer> StartAsync(ResultsApi api, IApiKeyAuthorizer keys)
    {
        var app = ResultsApiEndpoints.BuildLoopbackHost(api, keys, 0);
        await app.StartAsync();
        return new ApiHttpServer(app, ResultsApiEndpoints.ListeningAddress(app));
    }

    /// <summary>Sends <paramref name="method"/> <paramref name="path"/> with one <c>X-Api-Key</c> header and <paramref name="body"/> as JSON when given.</summary>
    public static async Task<HttpResponseMessage> Send(HttpClient http, HttpMethod method, string path, string key, object? body = null)
    {
        ArgumentNullException.ThrowIfNull(http);
        using var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative));
        request.Headers.Add(LocalApiKeys.HeaderName, key);
        if (body is not null)
        {
            request.Content = JsonContent.Create(body);
        }

        return await http.SendAsync(request);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _app.DisposeAsync();
    }
}
