using System.IO.Compression;
using CovidFunctions.Imaging.Tiles;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>What the upload and ingest tests on Azurite share: a blob's bytes, and a zip of files as an uploader sends it.</summary>
internal static class UploadTestFiles
{
    public static async Task<byte[]> ReadAsync(IBlobStore store, string path)
    {
        await using var stream = await store.OpenReadAsync(path, CancellationToken.None);
        using var buffer = new MemoryStream();
        await stream.CopyToAsync(buffer);
        return buffer.ToArray();
    }

    /// <summary>A zip with each file as a top-level entry under its own name.</summary>
    public static byte[] Zip(IEnumerable<string> files)
    {
        using var buffer = new MemoryStream();
        using (var zip = new ZipArchive(buffer, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var file in files)
            {
                using var stream = zip.CreateEntry(Path.GetFileName(file), CompressionLevel.Fastest).Open();
                stream.Write(File.ReadAllBytes(file));
            }
        }

        return buffer.ToArray();
    }
}
