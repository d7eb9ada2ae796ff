using System.Buffers.Binary;
using System.IO.Compression;
using CovidFunctions.Imaging.Archives;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Imaging.Tests.Archives;

public sealed class SafeZipArchiveTests
{
    private static string BuildZip(string directory, string name, Action<ZipArchive> fill)
    {
        var path = Path.Combine(directory, name);
        using var file = File.Create(path);
        using (var zip = new ZipArchive(file, ZipArchiveMode.Create))
        {
            fill(zip);
        }

        return path;
    }

    private static void AddText(ZipArchive zip, string name, string text)
    {
        using var writer = new StreamWriter(zip.CreateEntry(name).Open());
        writer.Write(text);
    }

    [Fact]
    public void Open_OrdinaryArchive_ListsFilesAndReadsContent()
    {
        using var temp = TestData.CreateTempDirectory();
        var path = BuildZip(temp.Path, "ok.zip", zip =>
        {
            zip.CreateEntry("series/");
            AddText(zip, "series/a.txt", "alpha");
            using var b = zip.CreateEntry("./series\\b.txt").Open();
            var random = new byte[5_000_000];
            new Random(7).NextBytes(random);
            b.Write(random);
        });

        using var archive = SafeZipArchive.Open(path);

        Assert.Equal(["series/a.txt", "series/b.txt"], archive.Entries.Select(e => e.Name));
        Assert.Equal("alpha"u8.ToArray(), archive.ReadAllBytes(archive.Entries[0]));
        Assert.Equal(5_000_000, archive.ReadAllBytes(archive.Entries[1]).Length);
    }

    [Theory]
    [InlineData("../evil.dcm", "path-traversal")]
    [InlineData("series/../../evil.dcm", "path-traversal")]
    [InlineData("..\\evil.dcm", "path-traversal")]
    [InlineData("/etc/cron.d/evil", "absolute-path")]
    [InlineData("\\\\server\\share\\evil", "absolute-path")]
    [InlineData("C:\\Windows\\evil.dll", "absolute-path")]
    public void Open_HostileEntryName_ThrowsUnsafeEntryNamingArchiveAndEntry(string entryName, string reason)
    {
        using var temp = TestData.CreateTempDirectory();
        var path = BuildZip(temp.Path, "hostile.zip", zip =>
        {
            AddText(zip, "fine.txt", "ok");
            AddText(zip, entryName, "payload");
        });

        var ex = Assert.Throws<UnsafeArchiveEntryException>(() => SafeZipArchive.Open(path));

        Assert.Equal(reason, ex.Reason);
        Assert.Equal(path, ex.FilePath);
        Assert.Equal(entryName, ex.EntryName);
        Assert.Contains("hostile.zip", ex.Message, StringComparison.Ordinal);
        Assert.Contains(entryName, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_SymlinkEntry_ThrowsUnsafeEntry()
    {
        using var temp = TestData.CreateTempDirectory();
        var path = BuildZip(temp.Path, "link.zip", zip =>
        {
            var entry = zip.CreateEntry("series/link");
            entry.ExternalAttributes = unchecked((int)(0xA1FFu << 16)); // lrwxrwxrwx
            using var writer = new StreamWriter(entry.Open());
            writer.Write("/etc/passwd");
        });
        ForceUnixMadeBy(path);

        var ex = Assert.Throws<UnsafeArchiveEntryException>(() => SafeZipArchive.Open(path));

        Assert.Equal("symlink", ex.Reason);
        Assert.Equal("series/link", ex.EntryName);
    }

    [Fact]
    public void Open_DuplicateNames_ThrowsUnsafeEntry()
    {
        using var temp = TestData.CreateTempDirectory();
        var path = BuildZip(temp.Path, "dup.zip", zip =>
        {
            AddText(zip, "a.dcm", "1");
            AddText(zip, "./a.dcm", "2");
        });

        var ex = Assert.Throws<UnsafeArchiveEntryException>(() => SafeZipArchive.Open(path));
        Assert.Equal("duplicate-name", ex.Reason);
    }

    [Fact]
    public void Open_OneGigabyteOfZeros_RejectedByRatioQuicklyWithBoundedMemory()
    {
        using var temp = TestData.CreateTempDirectory();
        var path = Path.Combine(temp.Path, "bomb.zip");
        ZeroBomb.Write(path, "zeros.dcm", 1024);
        Assert.True(new FileInfo(path).Length < 8 << 20, "the bomb should be small on disk");

        var allocated = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<ArchiveLimitExceededException>(() => SafeZipArchive.Open(path));

        Assert.Equal("compression-ratio", ex.Reason);
        Assert.Equal("zeros.dcm", ex.EntryName);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - allocated < 16 << 20, "opening must not allocate much");
    }

    [Fact]
    public void OpenEntry_HeaderLiesAboutSize_CutOffWhileStreaming()
    {
        // A 1 GiB deflate stream of zeros whose central directory claims 4 MiB: passes the declared checks
        // (ratio under the limit), then is cut off after 4 MiB + 1 byte while reading.
        using var temp = TestData.CreateTempDirectory();
        var path = Path.Combine(temp.Path, "liar.zip");
        ZeroBomb.Write(path, "zeros.dcm", 1024, declaredUncompressed: 4 << 20);
        var limits = ZipSafetyLimits.Default with { MaxCompressionRatio = 5000 };

        using var archive = SafeZipArchive.Open(path, limits);
        var allocated = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<ArchiveLimitExceededException>(() =>
        {
            using var entry = archive.OpenEntry(archive.Entries[0]);
            entry.CopyTo(Stream.Null);
        });

        Assert.Equal("size-mismatch", ex.Reason);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - allocated < 16 << 20, "streaming must not buffer the entry");
    }

    [Fact]
    public void ZeroBomb_Built_ExpandsToOneGibibyteOfZeros()
    {
        using var temp = TestData.CreateTempDirectory();
        var path = Path.Combine(temp.Path, "bomb.zip");
        ZeroBomb.Write(path, "zeros.dcm", 1024);

        using var file = File.OpenRead(path);
        file.Position = 30 + "zeros.dcm".Length;
        using var inflate = new DeflateStream(file, CompressionMode.Decompress);
        var buffer = new byte[1 << 20];
        long total = 0;
        int n;
        while ((n = inflate.Read(buffer)) > 0)
        {
            Assert.False(buffer.AsSpan(0, n).ContainsAnyExcept((byte)0));
            total += n;
        }

        Assert.Equal(1L << 30, total);
    }

    [Fact]
    public void OpenEntry_TotalLimitReachedAcrossEntries_Throws()
    {
        using var temp = TestData.CreateTempDirectory();
        var path = BuildZip(temp.Path, "many.zip", zip =>
        {
            for (var i = 0; i < 3; i++)
            {
                AddText(zip, $"f{i}.txt", new string('x', 1000));
            }
        });

        var ex = Assert.Throws<ArchiveLimitExceededException>(() => SafeZipArchive.Open(path, new ZipSafetyLimits { MaxTotalUncompressedBytes = 2500 }));
        Assert.Equal("total-size", ex.Reason);
        Assert.Equal(2500, ex.Limit);
    }

    [Fact]
    public void Open_HundredThousandEntries_RejectedFromEndRecordWithBoundedMemory()
    {
        using var temp = TestData.CreateTempDirectory();
        var path = BuildZip(temp.Path, "entries.zip", zip =>
        {
            for (var i = 0; i < 100_000; i++)
            {
                zip.CreateEntry($"e{i}", CompressionLevel.NoCompression);
            }
        });

        var allocated = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<ArchiveLimitExceededException>(() => SafeZipArchive.Open(path));

        Assert.Equal("too-many-entries", ex.Reason);
        Assert.Equal(50_000, ex.Limit);
        Assert.Contains("100000", ex.Message, StringComparison.Ordinal);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - allocated < 4 << 20, "the count is refused before entries are read");
    }

    [Fact]
    public void Open_EndRecordUnderstatesEntries_RefusedWhileWalking()
    {
        using var temp = TestData.CreateTempDirectory();
        var path = BuildZip(temp.Path, "few.zip", zip =>
        {
            for (var i = 0; i < 20; i++)
            {
                zip.CreateEntry($"e{i}", CompressionLevel.NoCompression);
            }
        });

        var ex = Assert.Throws<ArchiveLimitExceededException>(() => SafeZipArchive.Open(path, new ZipSafetyLimits { MaxEntries = 10 }));
        Assert.Equal("too-many-entries", ex.Reason);
    }

    [Fact]
    public void ExtractTo_OrdinaryArchive_WritesOnlyInsideTarget()
    {
        using var temp = TestData.CreateTempDirectory();
        var path = BuildZip(temp.Path, "ok.zip", zip => AddText(zip, "a/b/c.txt", "x"));
        using var archive = SafeZipArchive.Open(path);

        var written = archive.ExtractTo(Path.Combine(temp.Path, "out"));

        Assert.Equal(Path.Combine(temp.Path, "out", "a", "b", "c.txt"), Assert.Single(written));
        Assert.Equal("x", File.ReadAllText(written[0]));
    }

    [Fact]
    public void OpenEntry_CorruptedData_ThrowsArchiveException()
    {
        using var temp = TestData.CreateTempDirectory();
        var path = BuildZip(temp.Path, "crc.zip", zip =>
        {
            using var s = zip.CreateEntry("a.bin", CompressionLevel.NoCompression).Open();
            s.Write(new byte[100]);
        });
        var bytes = File.ReadAllBytes(path);
        bytes[30 + "a.bin".Length + 50] = 1; // flip one stored byte
        File.WriteAllBytes(path, bytes);
        using var archive = SafeZipArchive.Open(path);

        var ex = Assert.Throws<ArchiveException>(() => archive.ReadAllBytes(archive.Entries[0]));
        Assert.Contains("CRC", ex.Message, StringComparison.Ordinal);
    }

    private static (int Offset, (long Compressed, long Uncompressed) Sizes) FindCentralRecord(byte[] bytes)
    {
        for (var i = bytes.Length - 46; i >= 0; i--)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(i)) == 0x02014b50)
            {
                return (i, (BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(i + 20)), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(i + 24))));
            }
        }

        throw new InvalidOperationException("no central directory record");
    }

    private static void ForceUnixMadeBy(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var (offset, _) = FindCentralRecord(bytes);
        bytes[offset + 5] = 3; // version made by: host 3 = Unix
        File.WriteAllBytes(path, bytes);
    }
}
