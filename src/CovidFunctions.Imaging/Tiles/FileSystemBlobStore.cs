using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CovidFunctions.Imaging.Tiles;

/// <summary>An <see cref="IBlobStore"/> on a local folder. Writes go to a temporary file renamed into place.</summary>
public sealed partial class FileSystemBlobStore : IBlobStore
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
    /// The version is read from the opened handle, so it is the version of what this stream reads. On Linux it is the
    /// file's inode number, status-change time (ctime), last-write time and length (<c>statx</c>): a write in place changes
    /// the ctime, a file renamed into place (<see cref="WriteAsync"/>, rsync) has another inode, and neither can be set
    /// back by a user, so a write that restores the last-write time and keeps the length (<c>cp -p</c>, <c>touch -d</c>,
    /// <c>rsync --times</c>) still changes the version. Anything else that changes the ctime (a chmod, a hard link) reads as
    /// a change too: the safe side, the file is kept. Elsewhere (Windows, macOS) it is the last-write time (100 ns) and
    /// length only, rsync's quick check, and such a write goes unseen.
    /// </remarks>
    public Task<VersionedStream> OpenReadVersionedAsync(string path, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var stream = Open(Resolve(path), path);
        try
        {
            var version = FileVersion.Of(stream.SafeFileHandle).Token;
            return Task.FromResult(new VersionedStream(stream, version));
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <remarks>
    /// The version is compared at the path first (with the ctime: the rename below changes it); a file that does not hold
    /// it is left where it is. A file that does is renamed aside (one atomic rename, to a <c>.tmp</c> name
    /// <see cref="ListAsync"/> never shows), so a write that lands at the path meanwhile is a new file there, never the one
    /// deleted, and the aside file is deleted only while it is the same file (inode) with the same last-write time and
    /// length. Otherwise it is renamed back; if a newer write took the path in that instant, it stays next to it as
    /// <c>{name}.changed-{id}</c>, a blob of its own (a late file to the pipeline), so neither is lost. A version in the
    /// older form (last-write time and length only, kept by read lists written before the ctime was) is compared in that form.
    /// </remarks>
    public Task<ConditionalDelete> DeleteIfVersionAsync(string path, string version, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(version);
        cancellationToken.ThrowIfCancellationRequested();
        var full = Resolve(path);
        if (Directory.Exists(full) || FileVersion.Of(full) is not { } before)
        {
            return Task.FromResult(ConditionalDelete.Missing);
        }

        if (!before.Matches(version))
        {
            return Task.FromResult(ConditionalDelete.Changed);
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

        if (FileVersion.Of(aside) is { } moved && moved.SameFileAndContentAs(before))
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

    /// <summary>
    /// What tells one content of a file from another (<see cref="OpenReadVersionedAsync"/>): last-write time and length
    /// everywhere; on Linux also the inode number and status-change time (<see cref="HasIdentity"/>).
    /// </summary>
    private readonly record struct FileVersion(long LastWriteTicks, long Length, bool HasIdentity, ulong Inode, long ChangeSeconds, uint ChangeNanoseconds)
    {
        /// <summary>The version token: <c>{inode}-{ctime s}.{ctime ns}-{mtime ticks}-{length}</c> (hex), or <see cref="Legacy"/>.</summary>
        public string Token => HasIdentity
            ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Inode:x}-{ChangeSeconds:x}.{ChangeNanoseconds:x}-{LastWriteTicks:x}-{Length:x}")
            : Legacy;

        /// <summary>The older form, last-write time and length only (what this store answered before, and still does off Linux).</summary>
        public string Legacy => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{LastWriteTicks:x}-{Length:x}");

        public bool Matches(string version) => version == Token || version == Legacy;

        /// <summary>Same inode (where known), last-write time and length: the ctime is left out, as a rename changes it.</summary>
        public bool SameFileAndContentAs(FileVersion other) =>
            HasIdentity == other.HasIdentity && Inode == other.Inode && LastWriteTicks == other.LastWriteTicks && Length == other.Length;

        /// <summary>The version of an open file.</summary>
        public static FileVersion Of(SafeFileHandle handle)
        {
            if (StatX.IsSupported)
            {
                var added = false;
                handle.DangerousAddRef(ref added);
                try
                {
                    return StatX.Of((int)handle.DangerousGetHandle(), string.Empty, StatX.EmptyPath)
                        ?? throw new IOException("statx of an open file found no file");
                }
                finally
                {
                    if (added)
                    {
                        handle.DangerousRelease();
                    }
                }
            }

            return new FileVersion(File.GetLastWriteTimeUtc(handle).Ticks, RandomAccess.GetLength(handle), false, 0, 0, 0);
        }

        /// <summary>The version of the file at <paramref name="path"/>; null when there is none.</summary>
        public static FileVersion? Of(string path)
        {
            if (StatX.IsSupported)
            {
                return StatX.Of(StatX.CurrentDirectory, path, 0);
            }

            var info = new FileInfo(path);
            return info.Exists ? new FileVersion(info.LastWriteTimeUtc.Ticks, info.Length, false, 0, 0, 0) : null;
        }
    }

    /// <summary>
    /// Linux <c>statx(2)</c> (glibc 2.28+): its <c>struct statx</c> has one layout on every architecture, unlike
    /// <c>struct stat</c>, and .NET exposes neither the inode number nor the ctime.
    /// </summary>
    private static unsafe partial class StatX
    {
        public const int CurrentDirectory = -100; // AT_FDCWD
        public const int EmptyPath = 0x1000; // AT_EMPTY_PATH: the descriptor itself

        private const uint Wanted = 0x40 | 0x80 | 0x100 | 0x200; // STATX_MTIME | STATX_CTIME | STATX_INO | STATX_SIZE
        private const int BufferSize = 256; // sizeof(struct statx)
        private const int NoEntry = 2; // ENOENT
        private const int NotDirectory = 20; // ENOTDIR: a parent is a file

        /// <summary>Whether statx answers here with all four fields (probed once; a seccomp filter may refuse it).</summary>
        public static bool IsSupported { get; } = Probe();

        public static FileVersion? Of(int directory, string path, int flags)
        {
            var buffer = stackalloc byte[BufferSize];
            if (Native(directory, path, flags, Wanted, buffer) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                return errno is NoEntry or NotDirectory
                    ? null
                    : throw new IOException($"statx of '{path}' failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})", errno);
            }

            if ((*(uint*)buffer & Wanted) != Wanted)
            {
                throw new IOException($"statx of '{path}' did not give the inode, ctime, last-write time and length");
            }

            var inode = *(ulong*)(buffer + 32);
            var length = *(long*)(buffer + 40);
            var changeSeconds = *(long*)(buffer + 96);
            var changeNanoseconds = *(uint*)(buffer + 104);
            var writeSeconds = *(long*)(buffer + 112);
            var writeNanoseconds = *(uint*)(buffer + 120);
            var writeTicks = DateTime.UnixEpoch.Ticks + (writeSeconds * TimeSpan.TicksPerSecond) + (writeNanoseconds / 100);
            return new FileVersion(writeTicks, length, true, inode, changeSeconds, changeNanoseconds);
        }

        private static bool Probe()
        {
            if (!OperatingSystem.IsLinux())
            {
                return false;
            }

            try
            {
                var buffer = stackalloc byte[BufferSize];
                return Native(CurrentDirectory, "/", 0, Wanted, buffer) == 0 && (*(uint*)buffer & Wanted) == Wanted;
            }
            catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
            {
                return false;
            }
        }

        [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        private static partial int Native(int directory, string path, int flags, uint mask, byte* buffer);
    }
}
