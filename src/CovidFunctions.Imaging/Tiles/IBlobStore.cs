namespace CovidFunctions.Imaging.Tiles;

/// <summary>
/// Byte streams by path: the storage the tiles are written to and read from. Paths are relative, '/'-separated,
/// with no '.' or '..' segments. <see cref="FileSystemBlobStore"/> implements it on a folder; the pipeline adds an
/// Azure Blob implementation outside this project (no Azure SDK here).
/// </summary>
public interface IBlobStore
{
    /// <summary>Opens a blob for reading; throws <see cref="FileNotFoundException"/> when it does not exist.</summary>
    Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken);

    /// <summary>Writes a whole blob from a stream (replacing it); readers never see a partial blob.</summary>
    Task WriteAsync(string path, Stream content, CancellationToken cancellationToken);

    Task<bool> ExistsAsync(string path, CancellationToken cancellationToken);

    /// <summary>Paths of the blobs under a prefix (a folder-like prefix ending in '/', or empty for all).</summary>
    IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes a blob. A missing blob is not an error: deleting a path that holds no blob (never written, already
    /// deleted, under a folder or container that does not exist, or a folder-like prefix with no blob of its own)
    /// does nothing and returns normally, so callers never check <see cref="ExistsAsync"/> first. Invalid paths and
    /// storage failures still throw.
    /// </summary>
    Task DeleteAsync(string path, CancellationToken cancellationToken);

    /// <summary>
    /// Opens a blob for reading together with its <see cref="VersionedStream.Version"/>: an opaque token of the content
    /// this stream reads (the ETag in Azure), which changes whenever the blob is written again under the same path.
    /// Throws <see cref="FileNotFoundException"/> when the blob does not exist.
    /// </summary>
    Task<VersionedStream> OpenReadVersionedAsync(string path, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes a blob only while it still holds <paramref name="version"/> (from <see cref="OpenReadVersionedAsync"/>;
    /// If-Match in Azure). A blob written again since keeps its new content and answers <see cref="ConditionalDelete.Changed"/>;
    /// a missing blob answers <see cref="ConditionalDelete.Missing"/> (not an error, as <see cref="DeleteAsync"/>).
    /// </summary>
    Task<ConditionalDelete> DeleteIfVersionAsync(string path, string version, CancellationToken cancellationToken);
}

/// <summary>A blob's content stream and the version of that content (<see cref="IBlobStore.OpenReadVersionedAsync"/>). Disposing it disposes the stream.</summary>
public sealed record VersionedStream(Stream Content, string Version) : IAsyncDisposable, IDisposable
{
    public ValueTask DisposeAsync() => Content.DisposeAsync();

    public void Dispose() => Content.Dispose();
}

/// <summary>What <see cref="IBlobStore.DeleteIfVersionAsync"/> found.</summary>
public enum ConditionalDelete
{
    /// <summary>The blob held the version and is deleted.</summary>
    Deleted,

    /// <summary>No blob at the path (never written, or already deleted): nothing to do.</summary>
    Missing,

    /// <summary>The blob was written again since that version was read: it is kept.</summary>
    Changed,
}
