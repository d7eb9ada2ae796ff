using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Storage;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.DependencyInjection;
using static CovidFunctions.FunctionApp.Tests.FunctionHttp;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// Adversarial requests to the Function app's HTTP functions through its composition root (tables on the test's
/// Azurite): a duplicated <c>X-Api-Key</c>, an oversized mint body, and study or webhook ids that are no valid table
/// keys (they must answer 404 like any unknown id, not fail in the table client).
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class ApiFunctionsSecurityTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task DuplicatedApiKeyHeader_Is401_EvenWhenTheFirstValueIsValid()
    {
        using var temp = TestData.CreateTempDirectory();
        await using var services = Build(temp.Path);
        var (api, key, studyId) = await TenantWithStudyAsync(services);

        Assert.Equal(200, (await Run(await api.GetStudy(Request("GET", [key]), studyId))).Status);
        Assert.Equal(401, (await Run(await api.GetStudy(Request("GET", [key, ApiKeyFormat.NewKey()]), studyId))).Status);
        Assert.Equal(401, (await Run(await api.GetStudy(Request("GET", [ApiKeyFormat.NewKey(), key]), studyId))).Status);
    }

    [Fact]
    public async Task MintApiKey_ABodyOverTheLimit_Is413()
    {
        using var temp = TestData.CreateTempDirectory();
        await using var services = Build(temp.Path);
        var admin = ActivatorUtilities.CreateInstance<ApiKeyFunctions>(services);
        var tenants = string.Join(",", Enumerable.Range(0, 10_000).Select(i => $"\"t{i}\""));

        var minted = await Run(await admin.MintApiKey(Request("POST", body: "{\"tenants\":[" + tenants + "]}")));

        Assert.Equal(413, minted.Status);
    }

    [Theory]
    [InlineData("a#b")]
    [InlineData("a\\b")]
    [InlineData("a?b")]
    [InlineData("a'b")]
    [InlineData("a\u0001b")]
    [InlineData("a/b")]
    public async Task IdsThatAreNoTableKeys_Answer404(string id)
    {
        using var temp = TestData.CreateTempDirectory();
        await using var services = Build(temp.Path);
        var (api, key, _) = await TenantWithStudyAsync(services);

        Assert.Equal(404, (await Run(await api.GetStudy(Request("GET", [key]), id))).Status);
        Assert.Equal(404, (await Run(await api.GetStudyReport(Request("GET", [key]), id))).Status);
        Assert.Equal(404, (await Run(await api.DeleteWebhook(Request("DELETE", [key]), id))).Status);
        Assert.Equal(404, (await Run(await api.TestWebhook(Request("POST", [key]), id))).Status);
    }

    [Fact]
    public async Task ExpiredApiKey_Is401_SayingItExpired_ThroughTheFunction()
    {
        using var temp = TestData.CreateTempDirectory();
        await using var services = Build(temp.Path);
        var (api, key, studyId) = await TenantWithStudyAsync(services);
        var store = services.GetRequiredService<IApiKeyStore>();
        var expiredKey = ApiKeyFormat.NewKey();
        var hash = ApiKeyFormat.Hash(expiredKey);
        var tenant = (await store.FindByHashAsync(ApiKeyFormat.Hash(key), CancellationToken.None))!.Tenants;
        await store.AddAsync(new StoredApiKey(ApiKeyFormat.IdOf(hash), hash, tenant, DateTimeOffset.UtcNow.AddDays(-2), DateTimeOffset.UtcNow.AddDays(-1)), CancellationToken.None);

        var refused = await Run(await api.GetStudy(Request("GET", [expiredKey]), studyId));

        Assert.Equal(401, refused.Status);
        Assert.Contains($"(key {ApiKeyFormat.IdOf(hash)}) expired at ", System.Text.Encoding.UTF8.GetString(refused.Body), StringComparison.Ordinal);
        Assert.Equal(200, (await Run(await api.GetStudy(Request("GET", [key]), studyId))).Status);
    }

    private static async Task<(ApiFunctions Api, string Key, string StudyId)> TenantWithStudyAsync(ServiceProvider services)
    {
        var tenant = "fs-" + Guid.NewGuid().ToString("N")[..10];
        var studyId = StudyIds.ForUpload(StudyIdKey.From(CovidFunctions.Dicom.Deidentification.DeidKey.Generate()), tenant, "scan.zip");
        Assert.True(await services.GetRequiredService<IStudyStore>().TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = studyId, UploadPath = "scan.zip", CreatedAt = DateTimeOffset.UtcNow }, CancellationToken.None));
        var minted = await services.GetRequiredService<ApiKeyAdmin>().MintAsync([tenant], CancellationToken.None);
        return (ActivatorUtilities.CreateInstance<ApiFunctions>(services), minted.Key, studyId);
    }

    private ServiceProvider Build(string keyDirectory) => SampleApp.Build(azurite, keyDirectory);
}
