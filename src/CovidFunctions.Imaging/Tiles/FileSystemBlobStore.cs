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
        Stream stream = Open(Resolve(path), path);
        return Task.FromResult(stream);
    }

    /// <summary>
    /// Opens a file for reading; a missing parent folder is a missing blob (<see cref="FileNotFoundException"/>, as the
    /// interface says), not the <see cref="DirectoryNotFoundException"/> the file system answers.
    /// </summary>
    private static FileStream Open(string full, string path)
    {
        try
        {
            return new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        }
        catch (DirectoryNotFoundException ex)
        {
            throw new FileNotFoundException($"Blob '{path}' not found: its folder does not exist.", path, ex);
        }
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

    /// <remarks>
    /// The version is the file's last-write time (100 ns) and length, read from the opened handle: what this stream
    /// reads. <see cref="WriteAsync"/> renames a new file into place, and a tool writing in place changes the time, so
    /// the version changes with every write (only a write that restores both time and length, such as <c>cp -p</c> of a
    /// file of the same size and time, goes unseen: the quick check of rsync, the best a plain folder offers).
    /// </remarks>
    public Task<VersionedStream> OpenReadVersionedAsync(string path, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var stream = Open(Resolve(path), path);
        try
        {
            var version = VersionOf(File.GetLastWriteTimeUtc(stream.SafeFileHandle), RandomAccess.GetLength(stream.SafeFileHandle));
            return Task.FromResult(new VersionedStream(stream, version));
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <remarks>
    /// The file is first renamed aside (one atomic rename, to a <c>.tmp</c> name <see cref="ListAsync"/> never shows), so a
    /// write that lands at the path meanwhile is a new file there, never the one deleted; the aside file is deleted only
    /// when its version matches. Otherwise it is renamed back; if a newer write took the path in that instant, it stays
    /// next to it as <c>{name}.changed-{id}</c>, a blob of its own (a late file to the pipeline), so neither is lost.
    /// </remarks>
    public Task<ConditionalDelete> DeleteIfVersionAsync(string path, string version, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(version);
        cancellationToken.ThrowIfCancellationRequested();
        var full = Resolve(path);
        if (Directory.Exists(full) || !File.Exists(full))
        {
            return Task.FromResult(ConditionalDelete.Missing);
        }

        var id = Guid.NewGuid().ToString("N");
        var aside = $"{full}.{id}.deleting.tmp";
        try
        {
            File.Move(full, aside, overwrite: false);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return Task.FromResult(ConditionalDelete.Missing); // deleted since the check above
        }

        var info = new FileInfo(aside);
        if (VersionOf(info.LastWriteTimeUtc, info.Length) == version)
        {
            File.Delete(aside);
            return Task.FromResult(ConditionalDelete.Deleted);
        }

        try
        {
            File.Move(aside, full, overwrite: false);
        }
        catch (IOException) when (File.Exists(full))
        {
            File.Move(aside, $"{full}.changed-{id}", overwrite: false);
        }

        return Task.FromResult(ConditionalDelete.Changed);
    }

    private static string VersionOf(DateTime lastWriteUtc, long length) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{lastWriteUtc.Ticks:x}-{length:x}");

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
