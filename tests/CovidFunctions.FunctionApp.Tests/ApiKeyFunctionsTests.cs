using System.Text.Json.Nodes;
using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.DependencyInjection;
using static CovidFunctions.FunctionApp.Tests.FunctionHttp;

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
        var body = JsonNode.Parse(minted.Text)!;
        var key = (string)body["key"]!;
        var id = (string)body["id"]!;

        Assert.Equal(200, (await Run(await api.GetStudy(Request("GET", key), own))).Status);
        Assert.Equal(404, (await Run(await api.GetStudy(Request("GET", key), foreign))).Status);
        Assert.Equal(404, (await Run(await api.GetStudy(Request("GET", key, query: "?tenant=" + other), foreign))).Status);
        Assert.Equal(401, (await Run(await api.GetStudy(Request("GET"), own))).Status);
        Assert.Equal(401, (await Run(await api.GetStudy(Request("GET", ApiKeyFormat.NewKey()), own))).Status);

        var listed = await Run(await admin.ListApiKeys(Request("GET")));
        Assert.Equal(200, listed.Status);
        Assert.Contains(id, listed.Text, StringComparison.Ordinal);
        Assert.DoesNotContain(key, listed.Text, StringComparison.Ordinal);

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

    private ServiceProvider Build(string keyDirectory) => SampleApp.Build(azurite, keyDirectory);
}
