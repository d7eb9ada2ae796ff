using CovidFunctions.Imaging.Tiles;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Imaging.Tests.Tiles;

/// <summary>
/// The local store's version (<see cref="FileSystemBlobStore.OpenReadVersionedAsync"/>) is what ingest's conditional
/// delete trusts: a file written again after ingest read it must never be deleted as the content read. A write that
/// keeps the length and sets the last-write time back (<c>cp -p</c>, <c>touch -d</c>, <c>rsync --times</c>) used to
/// keep the version (last-write time + length), so the conditional delete removed content that was never screened.
/// </summary>
public sealed class FileSystemBlobStoreVersionTests
{
    private const string BlobPath = "lab/series/slice.dcm";

    private static byte[] RealSlice() =>
        File.ReadAllBytes(Directory.EnumerateFiles(TestData.Shared("dicom", "chest-ct", "lung-pet-ct-dx", "A0002-s2-b70f"), "*.dcm").Order(StringComparer.Ordinal).First());

    /// <summary>The same length, other bytes (the tail of the pixel data changed).</summary>
    private static byte[] Rewritten(byte[] original)
    {
        var changed = (byte[])original.Clone();
        for (var i = changed.Length - 4096; i < changed.Length; i++)
        {
            changed[i] ^= 0x5A;
        }

        return changed;
    }

    [Theory]
    [InlineData("in place")]
    [InlineData("renamed into place")]
    public async Task A_same_length_rewrite_with_its_last_write_time_set_back_is_a_new_version_and_is_not_deleted(string how)
    {
        // Only Linux gives the inode and ctime (statx); elsewhere the version is last-write time + length (documented).
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        using var temp = TestData.CreateTempDirectory();
        var store = new FileSystemBlobStore(temp.Path);
        var original = RealSlice();
        await store.WriteAsync(BlobPath, new MemoryStream(original), CancellationToken.None);
        string read;
        await using (var stream = await store.OpenReadVersionedAsync(BlobPath, CancellationToken.None))
        {
            read = stream.Version;
        }

        var file = Path.Combine(temp.Path, "lab", "series", "slice.dcm");
        var writtenAt = File.GetLastWriteTimeUtc(file);

        // Past the kernel's coarse timestamp tick, for kernels without fine-grained ctimes (before 6.13): a real rewrite
        // comes seconds or more after ingest read the file.
        await Task.Delay(20);
        var changed = Rewritten(original);
        if (how == "in place")
        {
            // cp -p onto the existing file: the same inode, truncated and written, then its times set back.
            await using (var output = new FileStream(file, FileMode.Truncate, FileAccess.Write))
            {
                await output.WriteAsync(changed);
            }

            File.SetLastWriteTimeUtc(file, writtenAt);
        }
        else
        {
            // rsync --times: a temporary file with the original's time, renamed over it.
            var staged = file + ".staged";
            await File.WriteAllBytesAsync(staged, changed);
            File.SetLastWriteTimeUtc(staged, writtenAt);
            File.Move(staged, file, overwrite: true);
        }

        // The quick check (time + length) cannot tell: the case the version must catch.
        Assert.Equal((writtenAt, (long)original.Length), (File.GetLastWriteTimeUtc(file), new FileInfo(file).Length));

        Assert.Equal(ConditionalDelete.Changed, await store.DeleteIfVersionAsync(BlobPath, read, CancellationToken.None));
        Assert.Equal(changed, await File.ReadAllBytesAsync(file));
        Assert.Equal([BlobPath], await ListAsync(store));

        await using (var stream = await store.OpenReadVersionedAsync(BlobPath, CancellationToken.None))
        {
            Assert.NotEqual(read, stream.Version);
            read = stream.Version;
        }

        Assert.Equal(ConditionalDelete.Deleted, await store.DeleteIfVersionAsync(BlobPath, read, CancellationToken.None));
        Assert.False(File.Exists(file));
    }

    [Fact]
    public async Task An_unchanged_file_is_deleted_by_its_version_and_by_the_older_time_and_length_form()
    {
        using var temp = TestData.CreateTempDirectory();
        var store = new FileSystemBlobStore(temp.Path);
        var original = RealSlice();
        var file = Path.Combine(temp.Path, "lab", "series", "slice.dcm");
        foreach (var older in new[] { false, true })
        {
            await store.WriteAsync(BlobPath, new MemoryStream(original), CancellationToken.None);
            string version;
            await using (var stream = await store.OpenReadVersionedAsync(BlobPath, CancellationToken.None))
            {
                version = stream.Version;
            }

            // Read lists written before the inode and ctime were part of the version keep this form.
            if (older)
            {
                version = FormattableString.Invariant($"{File.GetLastWriteTimeUtc(file).Ticks:x}-{original.Length:x}");
            }

            Assert.Equal(ConditionalDelete.Deleted, await store.DeleteIfVersionAsync(BlobPath, version, CancellationToken.None));
            Assert.False(File.Exists(file));
            Assert.Empty(Directory.EnumerateFiles(temp.Path, "*", SearchOption.AllDirectories));
            Assert.Equal(ConditionalDelete.Missing, await store.DeleteIfVersionAsync(BlobPath, version, CancellationToken.None));
        }
    }

    [Fact]
    public async Task A_metadata_change_reads_as_a_change_and_keeps_the_file()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        using var temp = TestData.CreateTempDirectory();
        var store = new FileSystemBlobStore(temp.Path);
        await store.WriteAsync(BlobPath, new MemoryStream(RealSlice()), CancellationToken.None);
        string read;
        await using (var stream = await store.OpenReadVersionedAsync(BlobPath, CancellationToken.None))
        {
            read = stream.Version;
        }

        // A chmod changes the ctime too: the store cannot tell it from a write, and keeps the file (the safe side).
        var file = Path.Combine(temp.Path, "lab", "series", "slice.dcm");
        await Task.Delay(20);
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Assert.Equal(ConditionalDelete.Changed, await store.DeleteIfVersionAsync(BlobPath, read, CancellationToken.None));
        Assert.True(File.Exists(file));
    }

    private static async Task<List<string>> ListAsync(FileSystemBlobStore store)
    {
        var paths = new List<string>();
        await foreach (var path in store.ListAsync(string.Empty, CancellationToken.None))
        {
            paths.Add(path);
        }

        return paths;
    }
}
