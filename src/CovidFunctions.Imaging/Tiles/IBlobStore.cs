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
}
