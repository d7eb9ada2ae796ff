using System.Runtime.CompilerServices;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using CovidFunctions.Pipeline.Ingest;

namespace CovidFunctions.Pipeline.Azure.Storage;

/// <summary><see cref="IUploadListing"/> over the <c>ct-uploads</c> container (one listing call per page of 5,000 blobs).</summary>
public sealed class AzureUploadListing(BlobContainerClient uploads) : IUploadListing
{
    public async IAsyncEnumerable<UploadBlob> ListAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var item in uploads.GetBlobsAsync(new GetBlobsOptions(), cancellationToken).ConfigureAwait(false))
        {
            yield return new UploadBlob(
                item.Name,
                item.Properties.LastModified ?? item.Properties.CreatedOn ?? DateTimeOffset.UtcNow,
                item.Properties.ContentLength ?? 0,
                item.Properties.ETag is { } etag ? AzureBlobStore.VersionOf(etag) : null);
        }
    }
}
