using System.Text;
using System.Text.Json.Nodes;
using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// The Function app's tenant-bound <c>X-Api-Key</c> keys through its composition root (storage on the test's Azurite):
/// the container resolves the table-backed authorizer, a key minted by the Admin-level function sees its tenant's study
/// and gets 404 for another tenant's, a request without a key gets 401, and a revoked key gets 401.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class ApiKeyFunctionsTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task Container_ResolvesTheTableBackedAuthorizer()
    {
        using var keys = TestData.CreateTempDirectory();
        await using var services = Build(keys.Path);
        Assert.IsType<StoredApiKeyAuthorizer>(services.GetRequiredService<IApiKeyAuthorizer>());
        Assert.NotNull(ActivatorUtilities.CreateInstance<ApiKeyFunctions>(services));
    }

    [Fact]
    public async Task MintedTenantKey_SeesItsStudy_Gets404ForAnotherTenants_401WithoutKey_AndAfterRevocation()
    {
        using var keys = TestData.CreateTempDirectory();
        await using var services = Build(keys.Path);
        var admin = ActivatorUtilities.CreateInstance<ApiKeyFunctions>(services);
        var api = ActivatorUtilities.CreateInstance<ApiFunctions>(services);
        var studies = services.GetRequiredService<IStudyStore>();
        var tenant = "fa-" + Guid.NewGuid().ToString("N")[..10];
        var other = "fa-" + Guid.NewGuid().ToString("N")[..10];
        var own = await AddStudyAsync(studies, tenant);
        var foreign = await AddStudyAsync(studies, other);

        var minted = await Run(await admin.MintApiKey(Request("POST", body: $"{{\"tenants\":[\"{tenant}\"]}}")));
        Assert.Equal(201, minted.Status);
        var body = JsonNode.Parse(minted.BodyText)!;
        var key = (string)body["key"]!;
        var id = (string)body["id"]!;

        Assert.Equal(200, (await Run(await api.GetStudy(Request("GET", key), own))).Status);
        Assert.Equal(404, (await Run(await api.GetStudy(Request("GET", key), foreign))).Status);
        Assert.Equal(404, (await Run(await api.GetStudy(Request("GET", key, query: "?tenant=" + other), foreign))).Status);
        Assert.Equal(401, (await Run(await api.GetStudy(Request("GET"), own))).Status);
        Assert.Equal(401, (await Run(await api.GetStudy(Request("GET", ApiKeyFormat.NewKey()), own))).Status);

        var listed = await Run(await admin.ListApiKeys(Request("GET")));
        Assert.Equal(200, listed.Status);
        Assert.Contains(id, listed.BodyText, StringComparison.Ordinal);
        Assert.DoesNotContain(key, listed.BodyText, StringComparison.Ordinal);

        Assert.Equal(204, (await Run(await admin.RevokeApiKey(Request("DELETE"), id))).Status);
        Assert.Equal(401, (await Run(await api.GetStudy(Request("GET", key), own))).Status);
        Assert.Equal(404, (await Run(await admin.RevokeApiKey(Request("DELETE"), id))).Status);
    }

    private static async Task<string> AddStudyAsync(IStudyStore studies, string tenant)
    {
        var studyId = StudyIds.ForUpload(StudyIdKey.From(CovidFunctions.Dicom.Deidentification.DeidKey.Generate()), tenant, "scan.zip");
        Assert.True(await studies.TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = studyId, UploadPath = "scan.zip", CreatedAt = DateTimeOffset.UtcNow }, CancellationToken.None));
        return studyId;
    }

    private static HttpRequest Request(string method, string? apiKey = null, string? body = null, string query = "")
    {
        var context = new DefaultHttpContext();
        context.Request.Method = method;
        context.Request.QueryString = new QueryString(query.Length == 0 ? null : query);
        if (apiKey is not null)
        {
            context.Request.Headers[LocalApiKeys.HeaderName] = apiKey;
        }

        context.Request.Body = new MemoryStream(Encoding.UTF8.GetBytes(body ?? ""));
        context.Response.Body = new MemoryStream();
        return context.Request;
    }

    /// <summary>Writes the function's result to a fresh response, as the host would, and reads status and body back.</summary>
    private static async Task<ApiResponse> Run(IActionResult result)
    {
        var context = new DefaultHttpContext();
        var buffer = new MemoryStream();
        context.Response.Body = buffer;
        await result.ExecuteResultAsync(new ActionContext { HttpContext = context });
        return new ApiResponse(context.Response.StatusCode, context.Response.ContentType ?? "", buffer.ToArray());
    }

    private ServiceProvider Build(string keyDirectory)
    {
        var values = JsonNode.Parse(File.ReadAllText(Path.Combine(TestData.RepoRoot, "local.settings.sample.json")))!["Values"]!.AsObject()
            .Select(v => KeyValuePair.Create(v.Key.Replace("__", ":", StringComparison.Ordinal), (string?)v.Value))
            .Where(v => !string.IsNullOrEmpty(v.Value))
            .ToDictionary();
        values["AzureWebJobsStorage"] = azurite.Server.ConnectionString;
        values["Deidentification:KeyFile"] = Path.Combine(keyDirectory, "deid.key");
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        return new ServiceCollection().AddLogging().AddCovidFunctionsApp(configuration).BuildServiceProvider();
    }
}
