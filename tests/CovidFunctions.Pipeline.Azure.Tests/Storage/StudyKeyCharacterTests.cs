using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// A study id (or tenant) that cannot be a Table Storage key is a study that does not exist: no row can have that key.
/// Before, the point read failed in storage (RequestFailedException), so <c>covidfn status a/b</c> and any other
/// caller of <see cref="IStudyStore.GetAsync"/> answered a storage error instead of "unknown study".
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class StudyKeyCharacterTests(AzuriteFixture azurite)
{
    [Theory]
    [InlineData("a/b")]
    [InlineData("a\\b")]
    [InlineData("a#b")]
    [InlineData("a?b")]
    [InlineData("a\u0001b")]
    [InlineData("a\u007fb")]
    [InlineData("a\u0085b")]
    public async Task GetAsync_OfAKeyTableStorageRefuses_IsNull(string id)
    {
        var tenant = AzuriteFixture.NewTenant();
        Assert.True(await azurite.Storage.Studies.TryCreateAsync(new StudyRecord { Tenant = tenant, StudyId = "a", CreatedAt = DateTimeOffset.UtcNow }, CancellationToken.None));

        Assert.Null(await azurite.Storage.Studies.GetAsync(tenant, id, CancellationToken.None));
        Assert.Null(await azurite.Storage.Studies.GetAsync(id, "a", CancellationToken.None));
        Assert.NotNull(await azurite.Storage.Studies.GetAsync(tenant, "a", CancellationToken.None));
    }
}
