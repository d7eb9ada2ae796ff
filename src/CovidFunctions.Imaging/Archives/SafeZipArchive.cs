using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace CovidFunctions.Imaging.Archives;

/// <summary>
/// A read-only zip reader that refuses hostile archives with an <see cref="ArchiveException"/> naming the archive
/// and entry: path traversal (<c>..</c> segments), absolute or drive-rooted names, symbolic links and other
/// non-regular Unix entry types (external attributes), encrypted entries, duplicate names, and zip bombs (entry count,
/// total size, per-entry size and compression ratio, see <see cref="ZipSafetyLimits"/>).
/// </summary>
/// <remarks>
/// The central directory is walked by this class (not <see cref="ZipArchive"/>), so an archive with too many entries
/// is refused from its end record before any entry is materialised, and memory stays bounded. Declared sizes are
/// checked on open; actual decompressed bytes are counted again while reading, so lying headers are caught: an entry
/// producing more bytes than it declares, or more than its ratio allows, is cut off. CRC-32 is verified at the end of
/// each entry. Methods: stored (0) and deflate (8); Zip64 is understood.
/// </remarks>
public sealed class SafeZipArchive : IDisposable
{
    private const uint EocdSignature = 0x06054b50;
    private const uint Zip64EocdSignature = 0x06064b50;
    private const uint Zip64LocatorSignature = 0x07064b50;
    private const uint CentralSignature = 0x02014b50;
    private const uint LocalSignature = 0x04034b50;

    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private readonly string? _path;
    private long _totalRead;

    private SafeZipArchive(Stream stream, string archiveName, ZipSafetyLimits limits, bool leaveOpen, string? path = null)
    {
        _stream = stream;
        _path = path;
        _leaveOpen = leaveOpen;
        ArchiveName = archiveName;
        Limits = limits;
        Entries = ReadCentralDirectory();
    }

    /// <summary>The archive's name, used in every error.</summary>
    public string ArchiveName { get; }

    public ZipSafetyLimits Limits { get; }

    /// <summary>The regular files of the archive, in central-directory order (directories are left out).</summary>
    public IReadOnlyList<SafeZipEntry> Entries { get; }

    /// <summary>Whether a file starts like a zip archive (local header or empty-archive end record).</summary>
    public static bool IsZip(string path)
    {
        using var stream = File.OpenRead(path);
        Span<byte> head = stackalloc byte[4];
        return stream.Read(head) == 4 && BinaryPrimitives.ReadUInt32LittleEndian(head) is LocalSignature or EocdSignature;
    }

    public static SafeZipArchive Open(string path, ZipSafetyLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.RandomAccess);
        try
        {
            return new SafeZipArchive(stream, path, limits ?? ZipSafetyLimits.Default, leaveOpen: false, path);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    public static SafeZipArchive Open(Stream seekableStream, string archiveName, ZipSafetyLimits? limits = null, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(seekableStream);
        if (!seekableStream.CanSeek)
        {
            throw new ArgumentException("The zip stream must be seekable.", nameof(seekableStream));
        }

        return new SafeZipArchive(seekableStream, archiveName, limits ?? ZipSafetyLimits.Default, leaveOpen);
    }

    /// <summary>
    /// Opens an entry for reading. The stream enforces the limits while it is read and throws
    /// <see cref="ArchiveLimitExceededException"/> or <see cref="ArchiveException"/> (CRC or size mismatch).
    /// An archive opened from a path gives each entry stream its own file handle, so entries may be read from several
    /// threads at once; an archive opened on a caller's stream shares it, so read its entries one at a time.
    /// </summary>
    public Stream OpenEntry(SafeZipEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var source = _path is null ? _stream : new FileStream(_path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        try
        {
            return OpenEntry(entry, source, ownsSource: _path is not null);
        }
        catch
        {
            if (_path is not null)
            {
                source.Dispose();
            }

            throw;
        }
    }

    private GuardedEntryStream OpenEntry(SafeZipEntry entry, Stream source, bool ownsSource)
    {
        Span<byte> local = stackalloc byte[30];
        source.Position = entry.LocalHeaderOffset;
        if (source.Read(local) != 30 || BinaryPrimitives.ReadUInt32LittleEndian(local) != LocalSignature)
        {
            throw Corrupt(entry.RawName, $"local header at byte {entry.LocalHeaderOffset} is missing");
        }

        var nameLength = BinaryPrimitives.ReadUInt16LittleEndian(local[26..]);
        var extraLength = BinaryPrimitives.ReadUInt16LittleEndian(local[28..]);
        var dataStart = entry.LocalHeaderOffset + 30 + nameLength + extraLength;
        if (dataStart + entry.CompressedSize > source.Length)
        {
            throw Corrupt(entry.RawName, "entry data runs past the end of the archive");
        }

        var raw = new BoundedReadStream(source, dataStart, entry.CompressedSize, ownsSource);
        Stream decoded = entry.Method == 8 ? new DeflateStream(raw, CompressionMode.Decompress) : raw;
        return new GuardedEntryStream(this, entry, decoded);
    }

    /// <summary>Reads a whole entry into memory (subject to the limits).</summary>
    public byte[] ReadAllBytes(SafeZipEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        using var input = OpenEntry(entry);
        using var buffer = new MemoryStream((int)Math.Min(entry.UncompressedSize, int.MaxValue));
        input.CopyTo(buffer);
        return buffer.ToArray();
    }

    /// <summary>Extracts every file under <paramref name="directory"/> (names were checked; no path escapes it).</summary>
    public IReadOnlyList<string> ExtractTo(string directory)
    {
        var root = Path.GetFullPath(directory);
        Directory.CreateDirectory(root);
        var written = new List<string>(Entries.Count);
        foreach (var entry in Entries)
        {
            var target = Path.GetFullPath(Path.Combine(root, entry.Name));
            if (!target.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            {
                throw Unsafe(entry.RawName, "path-traversal", "the entry would be written outside the target folder");
            }

            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            using (var output = new FileStream(target, FileMode.CreateNew, FileAccess.Write))
            using (var input = OpenEntry(entry))
            {
                input.CopyTo(output);
            }

            written.Add(target);
        }

        return written;
    }

    public void Dispose()
    {
        if (!_leaveOpen)
        {
            _stream.Dispose();
        }
    }

    /// <summary>Checks a stored name and returns it normalised, or throws <see cref="UnsafeArchiveEntryException"/>.</summary>
    internal static string NormaliseName(string archive, string rawName)
    {
        if (rawName.Length == 0)
        {
            throw new UnsafeArchiveEntryException($"{archive}: an entry has an empty name") { FilePath = archive, EntryName = rawName, Reason = "empty-name" };
        }

        if (rawName.Contains('\0', StringComparison.Ordinal) || rawName.Any(char.IsControl))
        {
            throw UnsafeStatic(archive, rawName, "control-character", "the name contains control characters");
        }

        var name = rawName.Replace('\\', '/');
        if (name.StartsWith('/') || (name.Length >= 2 && name[1] == ':' && char.IsAsciiLetter(name[0])))
        {
            throw UnsafeStatic(archive, rawName, "absolute-path", "absolute paths are not allowed");
        }

        var segments = new List<string>();
        foreach (var segment in name.Split('/'))
        {
            if (segment is "" or ".")
            {
                continue;
            }

            if (segment == "..")
            {
                throw UnsafeStatic(archive, rawName, "path-traversal", "'..' path segments are not allowed");
            }

            segments.Add(segment);
        }

        return string.Join('/', segments);
    }

    private static UnsafeArchiveEntryException UnsafeStatic(string archive, string entry, string reason, string text) =>
        new($"{archive}: entry '{entry}' refused ({reason}): {text}") { FilePath = archive, EntryName = entry, Reason = reason };

    private UnsafeArchiveEntryException Unsafe(string entry, string reason, string text) => UnsafeStatic(ArchiveName, entry, reason, text);

    private ArchiveException Corrupt(string? entry, string text) =>
        new($"{ArchiveName}: {(entry is null ? string.Empty : $"entry '{entry}': ")}{text}") { FilePath = ArchiveName, EntryName = entry, Reason = "corrupt" };

    private ArchiveLimitExceededException Limit(string? entry, string reason, long limit, string text) =>
        new($"{ArchiveName}: {(entry is null ? string.Empty : $"entry '{entry}': ")}{text}") { FilePath = ArchiveName, EntryName = entry, Reason = reason, Limit = limit };

    private List<SafeZipEntry> ReadCentralDirectory()
    {
        var (entryCount, cdOffset, cdSize) = ReadEndRecords();
        if (entryCount > Limits.MaxEntries)
        {
            throw Limit(null, "too-many-entries", Limits.MaxEntries, $"{entryCount} entries exceed the limit of {Limits.MaxEntries}");
        }

        if (cdOffset < 0 || cdSize < 0 || cdOffset + cdSize > _stream.Length)
        {
            throw Corrupt(null, "the central directory lies outside the archive");
        }

        var entries = new List<SafeZipEntry>((int)Math.Min(entryCount, 4096));
        var names = new HashSet<string>(StringComparer.Ordinal);
        long declaredTotal = 0;
        _stream.Position = cdOffset;
        var reader = new BufferedStream(new BoundedReadStream(_stream, cdOffset, cdSize), 1 << 16);
        Span<byte> fixedPart = stackalloc byte[46];
        var nameBuffer = new byte[ushort.MaxValue];
        var seen = 0L;
        while (true)
        {
            var got = reader.ReadAtLeast(fixedPart, 46, throwOnEndOfStream: false);
            if (got == 0)
            {
                break;
            }

            if (got < 46 || BinaryPrimitives.ReadUInt32LittleEndian(fixedPart) != CentralSignature)
            {
                throw Corrupt(null, "central directory record is damaged");
            }

            if (++seen > Limits.MaxEntries)
            {
                throw Limit(null, "too-many-entries", Limits.MaxEntries, $"more than {Limits.MaxEntries} entries");
            }

            var madeBy = BinaryPrimitives.ReadUInt16LittleEndian(fixedPart[4..]);
            var flags = BinaryPrimitives.ReadUInt16LittleEndian(fixedPart[8..]);
            int method = BinaryPrimitives.ReadUInt16LittleEndian(fixedPart[10..]);
            var crc = BinaryPrimitives.ReadUInt32LittleEndian(fixedPart[16..]);
            long compressed = BinaryPrimitives.ReadUInt32LittleEndian(fixedPart[20..]);
            long uncompressed = BinaryPrimitives.ReadUInt32LittleEndian(fixedPart[24..]);
            var nameLength = BinaryPrimitives.ReadUInt16LittleEndian(fixedPart[28..]);
            var extraLength = BinaryPrimitives.ReadUInt16LittleEndian(fixedPart[30..]);
            var commentLength = BinaryPrimitives.ReadUInt16LittleEndian(fixedPart[32..]);
            var externalAttributes = BinaryPrimitives.ReadUInt32LittleEndian(fixedPart[38..]);
            long localOffset = BinaryPrimitives.ReadUInt32LittleEndian(fixedPart[42..]);

            reader.ReadExactly(nameBuffer.AsSpan(0, nameLength));
            var rawName = (flags & 0x800) != 0 ? Encoding.UTF8.GetString(nameBuffer, 0, nameLength) : Encoding.Latin1.GetString(nameBuffer, 0, nameLength);
            var extra = new byte[extraLength];
            reader.ReadExactly(extra);
            for (int skip = commentLength; skip > 0;)
            {
                var n = reader.Read(nameBuffer, 0, skip);
                if (n == 0)
                {
                    throw Corrupt(rawName, "central directory comment is truncated");
                }

                skip -= n;
            }

            if (nameLength > Limits.MaxNameLength)
            {
                throw Unsafe(rawName[..Math.Min(rawName.Length, 80)], "name-too-long", $"names are limited to {Limits.MaxNameLength} bytes");
            }

            ApplyZip64(extra, ref uncompressed, ref compressed, ref localOffset);

            // Unix file type in the high 16 bits of the external attributes when made on Unix (host 3).
            var host = madeBy >> 8;
            var unixMode = (externalAttributes >> 16) & 0xF000;
            var isDirectory = rawName.EndsWith('/') || rawName.EndsWith('\\') || (host == 3 && unixMode == 0x4000) || (externalAttributes & 0x10) != 0;
            if (host == 3 && unixMode == 0xA000)
            {
                throw Unsafe(rawName, "symlink", "symbolic links are not allowed");
            }

            if (host == 3 && unixMode is not (0 or 0x8000 or 0x4000))
            {
                throw Unsafe(rawName, "special-file", $"Unix file type 0x{unixMode:X4} is not a regular file");
            }

            var name = NormaliseName(ArchiveName, rawName);
            if (isDirectory)
            {
                continue;
            }

            if ((flags & 1) != 0)
            {
                throw Unsafe(rawName, "encrypted", "encrypted entries are not supported");
            }

            if (method is not (0 or 8))
            {
                throw new ArchiveException($"{ArchiveName}: entry '{rawName}' uses compression method {method}; only stored (0) and deflate (8) are supported")
                {
                    FilePath = ArchiveName,
                    EntryName = rawName,
                    Reason = "unsupported-method",
                };
            }

            if (!names.Add(name))
            {
                throw Unsafe(rawName, "duplicate-name", "another entry has the same name");
            }

            CheckDeclared(rawName, compressed, uncompressed, method);
            declaredTotal += uncompressed;
            if (declaredTotal > Limits.MaxTotalUncompressedBytes)
            {
                throw Limit(rawName, "total-size", Limits.MaxTotalUncompressedBytes, $"entries declare more than {Limits.MaxTotalUncompressedBytes} bytes in total");
            }

            if (localOffset < 0 || localOffset >= cdOffset)
            {
                throw Corrupt(rawName, "local header offset points outside the data area");
            }

            entries.Add(new SafeZipEntry(name, rawName, compressed, uncompressed, method, crc, localOffset));
        }

        if (seen != entryCount)
        {
            throw Corrupt(null, $"the end record declares {entryCount} entries but the central directory holds {seen}");
        }

        return entries;
    }

    private void CheckDeclared(string rawName, long compressed, long uncompressed, int method)
    {
        if (uncompressed > Limits.MaxEntryUncompressedBytes)
        {
            throw Limit(rawName, "entry-size", Limits.MaxEntryUncompressedBytes, $"declares {uncompressed} bytes, over the per-entry limit of {Limits.MaxEntryUncompressedBytes}");
        }

        if (method == 0 && compressed != uncompressed)
        {
            throw Corrupt(rawName, "stored entry with different compressed and uncompressed sizes");
        }

        if (uncompressed > Limits.RatioCheckThresholdBytes && uncompressed > Limits.MaxCompressionRatio * Math.Max(compressed, 1))
        {
            throw Limit(rawName, "compression-ratio", (long)Limits.MaxCompressionRatio, $"compression ratio {uncompressed / (double)Math.Max(compressed, 1):0} exceeds {Limits.MaxCompressionRatio}");
        }
    }

    private (long Count, long Offset, long Size) ReadEndRecords()
    {
        var length = _stream.Length;
        if (length < 22)
        {
            throw Corrupt(null, "not a zip archive (too short)");
        }

        var tailLength = (int)Math.Min(length, 22 + ushort.MaxValue + 20);
        var tail = new byte[tailLength];
        _stream.Position = length - tailLength;
        _stream.ReadExactly(tail);
        var eocd = -1;
        for (var i = tailLength - 22; i >= 0; i--)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(i)) == EocdSignature)
            {
                eocd = i;
                break;
            }
        }

        if (eocd < 0)
        {
            throw Corrupt(null, "not a zip archive (no end of central directory record)");
        }

        long count = BinaryPrimitives.ReadUInt16LittleEndian(tail.AsSpan(eocd + 10));
        long size = BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(eocd + 12));
        long offset = BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(eocd + 16));
        if (eocd >= 20 && BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(eocd - 20)) == Zip64LocatorSignature)
        {
            var zip64Offset = (long)BinaryPrimitives.ReadUInt64LittleEndian(tail.AsSpan(eocd - 20 + 8));
            if (zip64Offset < 0 || zip64Offset + 56 > length)
            {
                throw Corrupt(null, "Zip64 end record lies outside the archive");
            }

            Span<byte> z = stackalloc byte[56];
            _stream.Position = zip64Offset;
            _stream.ReadExactly(z);
            if (BinaryPrimitives.ReadUInt32LittleEndian(z) != Zip64EocdSignature)
            {
                throw Corrupt(null, "Zip64 end record is damaged");
            }

            count = (long)BinaryPrimitives.ReadUInt64LittleEndian(z[32..]);
            size = (long)BinaryPrimitives.ReadUInt64LittleEndian(z[40..]);
            offset = (long)BinaryPrimitives.ReadUInt64LittleEndian(z[48..]);
        }

        return (count, offset, size);
    }

    private static void ApplyZip64(ReadOnlySpan<byte> extra, ref long uncompressed, ref long compressed, ref long localOffset)
    {
        var i = 0;
        while (i + 4 <= extra.Length)
        {
            var id = BinaryPrimitives.ReadUInt16LittleEndian(extra[i..]);
            var size = BinaryPrimitives.ReadUInt16LittleEndian(extra[(i + 2)..]);
            var body = extra.Slice(i + 4, Math.Min(size, extra.Length - i - 4));
            if (id == 1)
            {
                var p = 0;
                if (uncompressed == uint.MaxValue && p + 8 <= body.Length)
                {
                    uncompressed = (long)BinaryPrimitives.ReadUInt64LittleEndian(body[p..]);
                    p += 8;
                }

                if (compressed == uint.MaxValue && p + 8 <= body.Length)
                {
                    compressed = (long)BinaryPrimitives.ReadUInt64LittleEndian(body[p..]);
                    p += 8;
                }

                if (localOffset == uint.MaxValue && p + 8 <= body.Length)
                {
                    localOffset = (long)BinaryPrimitives.ReadUInt64LittleEndian(body[p..]);
                }

                return;
            }

            i += 4 + size;
        }
    }

    /// <summary>Counts decompressed bytes, enforces the limits and checks size and CRC at the end.</summary>
    private sealed class GuardedEntryStream(SafeZipArchive owner, SafeZipEntry entry, Stream inner) : Stream
    {
        private long _produced;
        private uint _crc;
        private bool _done;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => entry.UncompressedSize;

        public override long Position { get => _produced; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (_done || buffer.IsEmpty)
            {
                return 0;
            }

            // Never ask for more than one byte past the declared size: enough to detect a lie, no more.
            var allowed = entry.UncompressedSize - _produced + 1;
            var want = (int)Math.Min(buffer.Length, allowed);
            int n;
            try
            {
                n = inner.Read(buffer[..want]);
            }
            catch (InvalidDataException ex)
            {
                throw owner.Corrupt(entry.RawName, "deflate data is corrupt: " + ex.Message);
            }

            _produced += n;
            var total = Interlocked.Add(ref owner._totalRead, n);
            if (_produced > entry.UncompressedSize)
            {
                throw owner.Limit(entry.RawName, "size-mismatch", entry.UncompressedSize, $"expands beyond its declared {entry.UncompressedSize} bytes");
            }

            if (total > owner.Limits.MaxTotalUncompressedBytes)
            {
                throw owner.Limit(entry.RawName, "total-size", owner.Limits.MaxTotalUncompressedBytes, $"the archive expands beyond {owner.Limits.MaxTotalUncompressedBytes} bytes");
            }

            if (n == 0)
            {
                _done = true;
                if (_produced != entry.UncompressedSize)
                {
                    throw owner.Corrupt(entry.RawName, $"expands to {_produced} bytes, not the declared {entry.UncompressedSize}");
                }

                if (_crc != entry.Crc32)
                {
                    throw owner.Corrupt(entry.RawName, "CRC-32 mismatch");
                }

                return 0;
            }

            _crc = Crc32.Append(_crc, buffer[..n]);
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }

    /// <summary>A window [start, start+length) of a seekable stream; repositions before each read.</summary>
    private sealed class BoundedReadStream(Stream inner, long start, long length, bool ownsInner = false) : Stream
    {
        protected override void Dispose(bool disposing)
        {
            if (disposing && ownsInner)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

        private long _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var remaining = length - _position;
            if (remaining <= 0)
            {
                return 0;
            }

            if (inner.Position != start + _position)
            {
                inner.Position = start + _position;
            }

            var n = inner.Read(buffer[..(int)Math.Min(buffer.Length, remaining)]);
            _position += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
