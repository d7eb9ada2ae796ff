using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Azure.Storage;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// The <see cref="IBlobStore.DeleteAsync"/> contract, run against every implementation: the Azure store on a real
/// Azurite and the file-system store. Deleting what is not there (a blob never written or already deleted, one under
/// a folder or container that does not exist, a folder-like prefix) does nothing and does not throw; an existing
/// blob is deleted and its neighbours are kept.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class BlobStoreDeleteContractTests(AzuriteFixture azurite) : IDisposable
{
    private readonly TempDirectory _temp = TestData.CreateTempDirectory();

    public static TheoryData<string> Stores => ["azurite", "filesystem"];

    public void Dispose() => _temp.Dispose();

    private IBlobStore Store(string kind, string container) => kind switch
    {
        "azurite" => new AzureBlobStore(azurite.Storage.Blobs.GetBlobContainerClient(container)),
        _ => new FileSystemBlobStore(Path.Combine(_temp.Path, container)),
    };

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Deleting_an_existing_blob_deletes_it_and_keeps_its_neighbours(string kind)
    {
        var store = Store(kind, PipelineNames.UploadsContainer);
        var tenant = AzuriteFixture.NewTenant();
        await store.WriteAsync($"{tenant}/a/1.dcm", new MemoryStream([1]), CancellationToken.None);
        await store.WriteAsync($"{tenant}/a/2.dcm", new MemoryStream([2]), CancellationToken.None);

        await store.DeleteAsync($"{tenant}/a/1.dcm", CancellationToken.None);

        Assert.False(await store.ExistsAsync($"{tenant}/a/1.dcm", CancellationToken.None));
        Assert.Equal([$"{tenant}/a/2.dcm"], await store.ListAsync($"{tenant}/", CancellationToken.None).ToListAsync());
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Deleting_a_blob_twice_or_one_never_written_is_not_an_error(string kind)
    {
        var store = Store(kind, PipelineNames.UploadsContainer);
        var tenant = AzuriteFixture.NewTenant();
        await store.WriteAsync($"{tenant}/scan.zip", new MemoryStream([1]), CancellationToken.None);

        await store.DeleteAsync($"{tenant}/scan.zip", CancellationToken.None);
        await store.DeleteAsync($"{tenant}/scan.zip", CancellationToken.None);
        await store.DeleteAsync($"{tenant}/never.zip", CancellationToken.None);

        Assert.Empty(await store.ListAsync($"{tenant}/", CancellationToken.None).ToListAsync());
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Deleting_a_blob_under_a_folder_that_does_not_exist_is_not_an_error(string kind)
    {
        // The file-system store threw DirectoryNotFoundException here (File.Delete ignores only a missing file).
        var store = Store(kind, PipelineNames.UploadsContainer);
        var tenant = AzuriteFixture.NewTenant();

        await store.DeleteAsync($"{tenant}/no-such-folder/deeper/1.dcm", CancellationToken.None);

        Assert.False(await store.ExistsAsync($"{tenant}/no-such-folder/deeper/1.dcm", CancellationToken.None));
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Deleting_a_folder_prefix_is_not_an_error_and_deletes_nothing_under_it(string kind)
    {
        // A folder is no blob in Azure (Delete Blob If Exists finds none); the file-system store threw
        // UnauthorizedAccessException for a path that is a directory.
        var store = Store(kind, PipelineNames.UploadsContainer);
        var tenant = AzuriteFixture.NewTenant();
        await store.WriteAsync($"{tenant}/folder/1.dcm", new MemoryStream([1]), CancellationToken.None);

        await store.DeleteAsync($"{tenant}/folder", CancellationToken.None);

        Assert.True(await store.ExistsAsync($"{tenant}/folder/1.dcm", CancellationToken.None));
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Deleting_in_a_container_that_does_not_exist_is_not_an_error(string kind)
    {
        var container = "none" + Guid.NewGuid().ToString("N")[..12];
        var store = Store(kind, container);
        if (store is FileSystemBlobStore files)
        {
            Directory.Delete(files.Root); // the constructor creates its root; a container removed later is the case here
        }

        await store.DeleteAsync("tenant/study/scan.zip", CancellationToken.None);

        Assert.False(await store.ExistsAsync("tenant/study/scan.zip", CancellationToken.None));
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Invalid_paths_still_throw(string kind)
    {
        var store = Store(kind, PipelineNames.UploadsContainer);
        await Assert.ThrowsAsync<ArgumentException>(() => store.DeleteAsync("a/../b.dcm", CancellationToken.None));
        await Assert.ThrowsAsync<ArgumentException>(() => store.DeleteAsync("/abs.dcm", CancellationToken.None));
    }
}
