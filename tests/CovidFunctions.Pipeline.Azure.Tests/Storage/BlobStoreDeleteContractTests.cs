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

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task A_conditional_delete_keeps_a_blob_written_again_since_the_version_read(string kind)
    {
        var store = Store(kind, PipelineNames.UploadsContainer);
        var tenant = AzuriteFixture.NewTenant();
        var path = $"{tenant}/series/1.dcm";
        await store.WriteAsync(path, new MemoryStream([1, 1]), CancellationToken.None);
        string read;
        await using (var first = await store.OpenReadVersionedAsync(path, CancellationToken.None))
        {
            read = first.Version;
            Assert.Equal([1, 1], await ReadAllAsync(first.Content));
        }

        // Written again under the same name (same length, as a re-exported slice can be): the version read is stale.
        await store.WriteAsync(path, new MemoryStream([2, 2]), CancellationToken.None);

        Assert.Equal(ConditionalDelete.Changed, await store.DeleteIfVersionAsync(path, read, CancellationToken.None));
        await using (var kept = await store.OpenReadVersionedAsync(path, CancellationToken.None))
        {
            Assert.Equal([2, 2], await ReadAllAsync(kept.Content));
            Assert.NotEqual(read, kept.Version);
            Assert.Equal([path], await store.ListAsync($"{tenant}/", CancellationToken.None).ToListAsync()); // nothing left aside
            Assert.Equal(ConditionalDelete.Deleted, await store.DeleteIfVersionAsync(path, kept.Version, CancellationToken.None));
        }

        Assert.False(await store.ExistsAsync(path, CancellationToken.None));
        Assert.Equal(ConditionalDelete.Missing, await store.DeleteIfVersionAsync(path, read, CancellationToken.None));
        Assert.Equal(ConditionalDelete.Missing, await store.DeleteIfVersionAsync($"{tenant}/no-such-folder/1.dcm", read, CancellationToken.None));
        await Assert.ThrowsAsync<FileNotFoundException>(() => store.OpenReadVersionedAsync($"{tenant}/no-such-folder/1.dcm", CancellationToken.None));
    }

    [Fact]
    public async Task The_upload_listing_gives_the_version_a_read_gives()
    {
        var store = Store("azurite", PipelineNames.UploadsContainer);
        var tenant = AzuriteFixture.NewTenant();
        await store.WriteAsync($"{tenant}/scan.zip", new MemoryStream([1]), CancellationToken.None);
        await using var read = await store.OpenReadVersionedAsync($"{tenant}/scan.zip", CancellationToken.None);

        var listed = (await azurite.Storage.UploadListing.ListAsync(CancellationToken.None).ToListAsync()).Single(b => b.Path == $"{tenant}/scan.zip");

        Assert.Equal(read.Version, listed.Version);
    }

    private static async Task<byte[]> ReadAllAsync(Stream stream)
    {
        using var buffer = new MemoryStream();
        await stream.CopyToAsync(buffer);
        return buffer.ToArray();
    }
}
