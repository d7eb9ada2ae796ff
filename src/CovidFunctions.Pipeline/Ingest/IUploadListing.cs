namespace CovidFunctions.Pipeline.Ingest;

/// <summary>A blob in <c>ct-uploads</c> as the watcher sees it.</summary>
public sealed record UploadBlob(string Path, DateTimeOffset LastModified, long Length);

/// <summary>
/// Lists the uploads container with last-modified times (the local watcher polls, since Azurite raises no Event Grid
/// events; in Azure the blob trigger delivers single blobs and the folder rule runs on a timer).
/// </summary>
public interface IUploadListing
{
    IAsyncEnumerable<UploadBlob> ListAsync(CancellationToken cancellationToken);
}
