namespace CovidFunctions.Pipeline.Ingest;

/// <summary>
/// A blob in <c>ct-uploads</c> as the watcher sees it. <see cref="Version"/> is the store's version of its content
/// (<see cref="CovidFunctions.Imaging.Tiles.IBlobStore.OpenReadVersionedAsync"/>; the ETag in Azure) when the listing
/// gives one: the next look at an ingested upload tells by it a blob written again under its name.
/// </summary>
public sealed record UploadBlob(string Path, DateTimeOffset LastModified, long Length, string? Version = null);

/// <summary>
/// Lists the uploads container with last-modified times (the local watcher polls, since Azurite raises no Event Grid
/// events; in Azure the blob trigger delivers single blobs and the folder rule runs on a timer).
/// </summary>
public interface IUploadListing
{
    IAsyncEnumerable<UploadBlob> ListAsync(CancellationToken cancellationToken);
}
