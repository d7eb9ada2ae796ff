using System.Text;
using CovidFunctions.Pipeline.Azure.Storage;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

[Collection(AzuriteCollection.Name)]
public sealed class AzureBlobStoreTests(AzuriteFixture azurite)
{
    private static MemoryStream Text(string text) => new(Encoding.UTF8.GetBytes(text));

    private static async Task<string> ReadAsync(Stream stream)
    {
        await using (stream)
        {
            using var reader = new StreamReader(stream, Encoding.UTF8);
            return await reader.ReadToEndAsync();
        }
    }

    [Fact]
    public async Task Write_read_overwrite_list_and_delete_round_trip()
    {
        var tenant = AzuriteFixture.NewTenant();
        var store = azurite.Storage.BlobContainers.Get(PipelineNames.SlicesContainer);
        var ct = CancellationToken.None;

        await store.WriteAsync($"{tenant}/s1/tiles/manifest.json", Text("{\"v\":1}"), ct);
        await store.WriteAsync($"{tenant}/s1/tiles/0001.bin", new MemoryStream(new byte[300_000]), ct);
        await store.WriteAsync($"{tenant}/s2/tiles/manifest.json", Text("{}"), ct);
        await store.WriteAsync($"{tenant}/s1/tiles/manifest.json", Text("{\"v\":2}"), ct);

        Assert.Equal("{\"v\":2}", await ReadAsync(await store.OpenReadAsync($"{tenant}/s1/tiles/manifest.json", ct)));
        await using (var binary = await store.OpenReadAsync($"{tenant}/s1/tiles/0001.bin", ct))
        {
            var copy = new MemoryStream();
            await binary.CopyToAsync(copy, ct);
            Assert.Equal(300_000, copy.Length);
        }

        var listed = await store.ListAsync($"{tenant}/s1/", ct).ToListAsync(ct);
        Assert.Equal([$"{tenant}/s1/tiles/0001.bin", $"{tenant}/s1/tiles/manifest.json"], listed);
        Assert.Equal(3, await store.ListAsync($"{tenant}/", ct).CountAsync(ct));

        Assert.True(await store.ExistsAsync($"{tenant}/s2/tiles/manifest.json", ct));
        await store.DeleteAsync($"{tenant}/s2/tiles/manifest.json", ct);
        Assert.False(await store.ExistsAsync($"{tenant}/s2/tiles/manifest.json", ct));
        await store.DeleteAsync($"{tenant}/s2/tiles/manifest.json", ct); // deleting a missing blob is not an error
    }

    [Fact]
    public async Task Missing_blob_reads_as_FileNotFoundException_and_bad_paths_are_refused()
    {
        var store = azurite.Storage.BlobContainers.Get(PipelineNames.ResultsContainer);
        await Assert.ThrowsAsync<FileNotFoundException>(() => store.OpenReadAsync(AzuriteFixture.NewTenant() + "/none.json", CancellationToken.None));
        await Assert.ThrowsAsync<ArgumentException>(() => store.WriteAsync("a/../b.json", Text("x"), CancellationToken.None));
        await Assert.ThrowsAsync<ArgumentException>(() => store.WriteAsync("/abs.json", Text("x"), CancellationToken.None));
    }

    [Fact]
    public async Task LinkTo_is_the_blob_url_and_serves_the_content()
    {
        var tenant = AzuriteFixture.NewTenant();
        var path = $"{tenant}/s1/overlays/0007.png";
        await azurite.Storage.BlobContainers.Get(PipelineNames.ResultsContainer).WriteAsync(path, new MemoryStream([137, 80, 78, 71]), CancellationToken.None);

        var link = azurite.Storage.BlobContainers.LinkTo(PipelineNames.ResultsContainer, path);

        Assert.Equal($"http://127.0.0.1:{azurite.Server.Ports.Blob}/devstoreaccount1/results/{path}", link);
        var blob = azurite.Storage.Blobs.GetBlobContainerClient(PipelineNames.ResultsContainer).GetBlobClient(path);
        Assert.Equal(new Uri(link), blob.Uri);
        var properties = await blob.GetPropertiesAsync();
        Assert.Equal("image/png", properties.Value.ContentType);
        Assert.Equal(4, properties.Value.ContentLength);
    }

    [Fact]
    public async Task Upload_listing_reports_every_upload_with_size_and_time()
    {
        var tenant = AzuriteFixture.NewTenant();
        var uploads = azurite.Storage.BlobContainers.Get(PipelineNames.UploadsContainer);
        var before = DateTimeOffset.UtcNow.AddMinutes(-1);
        await uploads.WriteAsync($"{tenant}/study.zip", new MemoryStream(new byte[1234]), CancellationToken.None);
        await uploads.WriteAsync($"{tenant}/folder/1.dcm", new MemoryStream(new byte[10]), CancellationToken.None);
        await uploads.WriteAsync($"{tenant}/folder/.complete", new MemoryStream(), CancellationToken.None);

        var listed = await azurite.Storage.UploadListing.ListAsync(CancellationToken.None)
            .Where(u => u.Path.StartsWith(tenant + "/", StringComparison.Ordinal))
            .ToListAsync();

        Assert.Equal([$"{tenant}/folder/.complete", $"{tenant}/folder/1.dcm", $"{tenant}/study.zip"], listed.Select(u => u.Path));
        Assert.Equal([0L, 10L, 1234L], listed.Select(u => u.Length));
        Assert.All(listed, u => Assert.InRange(u.LastModified, before, DateTimeOffset.UtcNow.AddMinutes(1)));
    }

    [Fact]
    public void Loopback_connection_strings_are_recognised()
    {
        Assert.True(PipelineStorage.IsLoopbackConnectionString(azurite.Server.ConnectionString));
        Assert.True(PipelineStorage.IsLoopbackConnectionString("UseDevelopmentStorage=true"));
        Assert.False(PipelineStorage.IsLoopbackConnectionString("DefaultEndpointsProtocol=https;AccountName=x;AccountKey=eA==;EndpointSuffix=core.windows.net"));
    }
}
