using System.Net;
using System.Net.Sockets;
using Azure.Data.Tables;
using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Cli.Tests.Pipeline;

/// <summary>
/// The local API server (<c>covidfn up</c>) takes nothing from the ambient ASP.NET configuration: an
/// <c>ASPNETCORE_ENVIRONMENT=Development</c> in the operator's shell does not turn on the developer exception page (a
/// stack trace and the request's headers, API key included, in a 500's body), and a <c>Kestrel__Endpoints__*</c>
/// variable or an <c>appsettings.json</c> in the working folder does not open a second listener beside 127.0.0.1.
/// The variables are process-wide, so this class runs alone (its collection disables parallelisation).
/// </summary>
[Collection(LocalApiServerHostingCollection.Name)]
public sealed class LocalApiServerHostingTests
{
    [Fact]
    public async Task AmbientAspNetSettings_NeitherShowStackTraces_NorOpenAnotherListener()
    {
        using var data = TestData.CreateTempDirectory();
        await using var azurite = await AzuriteServer.StartAsync(new AzuriteServerOptions { DataDirectory = Path.Combine(data.Path, "azurite"), Ports = AzuriteServer.FreePorts() }, null, CancellationToken.None);
        var storage = PipelineStorage.FromConnectionString(azurite.ConnectionString);
        await storage.EnsureCreatedAsync(CancellationToken.None);

        var extraPort = FreePort();
        var saved = new Dictionary<string, string?>();
        foreach (var (name, value) in new[]
                 {
                     ("ASPNETCORE_ENVIRONMENT", "Development"),
                     ("DOTNET_ENVIRONMENT", "Development"),
                     ("Kestrel__Endpoints__Extra__Url", $"http://127.0.0.1:{extraPort}"),
                 })
        {
            saved[name] = Environment.GetEnvironmentVariable(name);
            Environment.SetEnvironmentVariable(name, value);
        }

        try
        {
            await using var server = await LocalApiServer.StartAsync(new LocalApiServerOptions { DataDir = Path.Combine(data.Path, "local"), Port = 0 }, storage, null, CancellationToken.None);

            Assert.False(Listening(extraPort), $"a Kestrel__Endpoints variable opened port {extraPort} beside the local API");

            // An unhandled storage failure: the Studies table is gone under the running server.
            await new TableServiceClient(azurite.ConnectionString).DeleteTableAsync(PipelineNames.StudiesTable);
            using var http = new HttpClient { BaseAddress = server.BaseUrl };
            using var request = new HttpRequestMessage(HttpMethod.Get, "/api/studies");
            request.Headers.Add(LocalApiKeys.HeaderName, server.OperatorKey);
            using var response = await http.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();

            Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
            Assert.DoesNotContain("Exception", body, StringComparison.Ordinal);
            Assert.DoesNotContain(server.OperatorKey, body, StringComparison.Ordinal);
            Assert.DoesNotContain(" at ", body, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var (name, value) in saved)
            {
                Environment.SetEnvironmentVariable(name, value);
            }
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static bool Listening(int port)
    {
        using var client = new TcpClient();
        try
        {
            client.Connect(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class LocalApiServerHostingCollection
{
    public const string Name = "Local API server hosting (process environment)";
}
