using System.Runtime.CompilerServices;

namespace CovidFunctions.Imaging.Tiles;

/// <summary>An <see cref="IBlobStore"/> on a local folder. Writes go to a temporary file renamed into place.</summary>
public sealed class FileSystemBlobStore : IBlobStore
{
    public FileSystemBlobStore(string root)
    {
        ArgumentNullException.ThrowIfNull(root);
        Root = Path.GetFullPath(root);
        Directory.CreateDirectory(Root);
    }

    public string Root { get; }

    public Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var full = Resolve(path);
        Stream stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        return Task.FromResult(stream);
    }

    public async Task WriteAsync(string path, Stream content, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(content);
        var full = Resolve(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = full + "." + Guid.NewGuid().ToString("N") + ".tmp";
        try
        {
            await using (var output = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
            {
                await content.CopyToAsync(output, cancellationToken).ConfigureAwait(false);
            }

            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp))
            {
                File.Delete(temp);
            }
        }
    }

    public Task<bool> ExistsAsync(string path, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(File.Exists(Resolve(path)));
    }

    public async IAsyncEnumerable<string> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        await Task.Yield();
        var directory = Root;
        var slash = prefix.LastIndexOf('/');
        if (slash >= 0)
        {
            directory = Resolve(prefix[..slash]);
        }

        if (!Directory.Exists(directory))
        {
            yield break;
        }

        foreach (var file in Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var relative = Path.GetRelativePath(Root, file).Replace(Path.DirectorySeparatorChar, '/');
            if (relative.StartsWith(prefix, StringComparison.Ordinal) && !relative.EndsWith(".tmp", StringComparison.Ordinal))
            {
                yield return relative;
            }
        }
    }

    /// <remarks>
    /// A missing blob is not an error (<see cref="IBlobStore.DeleteAsync"/>): <see cref="File.Delete"/> already ignores a
    /// missing file, but throws <see cref="DirectoryNotFoundException"/> when a parent folder is missing, and
    /// <see cref="UnauthorizedAccessException"/> for a path that is a folder (a prefix, which is no blob here or in Azure).
    /// </remarks>
    public Task DeleteAsync(string path, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var full = Resolve(path);
        if (Directory.Exists(full))
        {
            return Task.CompletedTask;
        }

        try
        {
            File.Delete(full);
        }
        catch (DirectoryNotFoundException)
        {
            // A parent folder does not exist: neither does the blob.
        }

        return Task.CompletedTask;
    }

    private string Resolve(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var segments = path.Split('/');
        if (path.StartsWith('/') || path.Contains('\\', StringComparison.Ordinal) || segments.Any(s => s is "" or "." or ".."))
        {
            throw new ArgumentException($"Blob path '{path}' must be relative and '/'-separated, without empty, '.' or '..' segments.", nameof(path));
        }

        return Path.Combine([Root, .. segments]);
    }
}
