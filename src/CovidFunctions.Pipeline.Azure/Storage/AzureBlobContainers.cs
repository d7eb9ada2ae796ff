using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Azure.Storage;

/// <summary><see cref="IBlobContainers"/> on a Blob service: each container is an <see cref="AzureBlobStore"/>; links are blob URLs.</summary>
public sealed class AzureBlobContainers(BlobServiceClient service) : IBlobContainers
{
    private readonly ConcurrentDictionary<string, AzureBlobStore> _stores = new(StringComparer.Ordinal);

    public IBlobStore Get(string container)
    {
        ArgumentException.ThrowIfNullOrEmpty(container);
        return _stores.GetOrAdd(container, name => new AzureBlobStore(service.GetBlobContainerClient(name)));
    }

    public string LinkTo(string container, string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(container);
        return service.GetBlobContainerClient(container).GetBlobClient(AzureBlobStore.ValidatePath(path)).Uri.AbsoluteUri;
    }
}

/// <summary>
/// <see cref="IBlobStore"/> on one blob container. A write is one Put Blob (or staged blocks committed at the end by
/// the SDK for large content): readers see the old blob or the whole new one, never a partial one. A missing blob reads
/// as <see cref="FileNotFoundException"/>; deleting a missing blob is not an error (the <see cref="IBlobStore.DeleteAsync"/> contract).
/// </summary>
public sealed class AzureBlobStore(BlobContainerClient container) : IBlobStore
{
    public BlobContainerClient Container { get; } = container;

    public async Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken)
    {
        var blob = Container.GetBlobClient(ValidatePath(path));
        try
        {
            var response = await blob.DownloadStreamingAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            return response.Value.Content;
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            throw new FileNotFoundException($"Blob '{path}' not found in container '{Container.Name}'.", path, ex);
        }
    }

    public async Task WriteAsync(string path, Stream content, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(content);
        var blob = Container.GetBlobClient(ValidatePath(path));
        var options = new BlobUploadOptions { HttpHeaders = new BlobHttpHeaders { ContentType = ContentTypeOf(path) } };
        await blob.UploadAsync(content, options, cancellationToken).ConfigureAwait(false);
    }

    public async Task<bool> ExistsAsync(string path, CancellationToken cancellationToken)
    {
        var response = await Container.GetBlobClient(ValidatePath(path)).ExistsAsync(cancellationToken).ConfigureAwait(false);
        return response.Value;
    }

    public async IAsyncEnumerable<string> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        await foreach (var item in Container.GetBlobsAsync(new GetBlobsOptions { Prefix = prefix.Length == 0 ? null : prefix }, cancellationToken).ConfigureAwait(false))
        {
            yield return item.Name;
        }
    }

    /// <remarks>
    /// A missing blob is not an error (<see cref="IBlobStore.DeleteAsync"/>): Delete Blob If Exists answers a missing blob
    /// (and a missing container) with false; any other 404 is treated the same way, since nothing is there to delete.
    /// </remarks>
    public async Task DeleteAsync(string path, CancellationToken cancellationToken)
    {
        var blob = Container.GetBlobClient(ValidatePath(path));
        try
        {
            await blob.DeleteIfExistsAsync(DeleteSnapshotsOption.IncludeSnapshots, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            // Not there (the SDK maps BlobNotFound and ContainerNotFound to false; a 404 with another code means the same).
        }
    }

    /// <remarks>The version is the blob's ETag as the download answered it: the ETag of the content this stream reads.</remarks>
    public async Task<VersionedStream> OpenReadVersionedAsync(string path, CancellationToken cancellationToken)
    {
        var blob = Container.GetBlobClient(ValidatePath(path));
        try
        {
            var response = await blob.DownloadStreamingAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            return new VersionedStream(response.Value.Content, VersionOf(response.Value.Details.ETag));
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            throw new FileNotFoundException($"Blob '{path}' not found in container '{Container.Name}'.", path, ex);
        }
    }

    /// <remarks>
    /// One Delete Blob with If-Match: the service deletes the blob only while its ETag is the one given (412 otherwise;
    /// a 412 is told from a missing blob by one existence check).
    /// </remarks>
    public async Task<ConditionalDelete> DeleteIfVersionAsync(string path, string version, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(version);
        var blob = Container.GetBlobClient(ValidatePath(path));
        try
        {
            var deleted = await blob.DeleteIfExistsAsync(DeleteSnapshotsOption.IncludeSnapshots, new BlobRequestConditions { IfMatch = new ETag(version) }, cancellationToken).ConfigureAwait(false);
            return deleted.Value ? ConditionalDelete.Deleted : ConditionalDelete.Missing;
        }
        catch (RequestFailedException ex) when (ex.Status == 412)
        {
            // A missing blob fails If-Match too (412 on Azurite): Changed only if there is a blob to keep.
            return (await blob.ExistsAsync(cancellationToken).ConfigureAwait(false)).Value ? ConditionalDelete.Changed : ConditionalDelete.Missing;
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return ConditionalDelete.Missing;
        }
    }

    /// <summary>
    /// A blob's version as this store gives it: its ETag in the quoted header form. A download answers the ETag header
    /// quoted, a listing the bare value: both are written one way, so a listed blob's version compares with a read one's.
    /// </summary>
    public static string VersionOf(ETag etag) => $"\"{etag.ToString().Trim('"')}\"";

    /// <summary>
    /// The file-system store's path rules (relative, '/'-separated, no '.' or '..' segments) but for empty segments: a blob
    /// name such as <c>lab/scan//part-2.zip</c> is a name Blob Storage keeps as it is, and uploads arrive under whatever
    /// names the uploader's tool wrote. Refusing it here made such an upload unreadable, so ingest could neither screen
    /// it nor move it to quarantine. A leading '/' stays refused ('.' and '..' too: the request URI would address another blob).
    /// </summary>
    internal static string ValidatePath(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (path.StartsWith('/') || path.Contains('\\', StringComparison.Ordinal) || path.Split('/').Any(s => s is "." or ".."))
        {
            throw new ArgumentException($"Blob path '{path}' must be relative and '/'-separated, without '.' or '..' segments.", nameof(path));
        }

        return path;
    }

    internal static string ContentTypeOf(string path) => Path.GetExtension(path).ToLowerInvariant() switch
    {
        ".json" => "application/json",
        ".png" => "image/png",
        ".html" => "text/html; charset=utf-8",
        ".txt" => "text/plain; charset=utf-8",
        ".zip" => "application/zip",
        ".dcm" => "application/dicom",
        _ => "application/octet-stream",
    };
}
