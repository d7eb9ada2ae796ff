namespace CovidFunctions.Imaging.Archives;

/// <summary>A regular file inside a <see cref="SafeZipArchive"/>, whose name has been checked.</summary>
/// <param name="Name">The normalised relative path ('/'-separated, no '.' or '..' segments).</param>
/// <param name="RawName">The name as stored in the archive.</param>
/// <param name="CompressedSize">Bytes of compressed data (as declared; reads are bounded by it).</param>
/// <param name="UncompressedSize">Bytes the entry declares it expands to (enforced while reading).</param>
/// <param name="Method">0 stored, 8 deflate.</param>
/// <param name="Crc32">The declared CRC-32, verified at the end of a read.</param>
/// <param name="LocalHeaderOffset">Where the entry's local header starts.</param>
public sealed record SafeZipEntry(
    string Name,
    string RawName,
    long CompressedSize,
    long UncompressedSize,
    int Method,
    uint Crc32,
    long LocalHeaderOffset);
