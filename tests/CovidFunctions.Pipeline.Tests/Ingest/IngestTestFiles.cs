using System.IO.Compression;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Pipeline.Tests.Ingest;

/// <summary>What the ingest tests upload: real CT series and slices, and zips of files as an uploader sends them.</summary>
internal static class IngestTestFiles
{
    /// <summary>A real chest CT series (TCIA Lung-PET-CT-Dx A0002, 30 slices, sharp B70f kernel).</summary>
    public static string SharpSeries => TestData.Shared("dicom", "chest-ct", "lung-pet-ct-dx", "A0002-s2-b70f");

    /// <summary>The same 30 positions reconstructed with the soft B40f kernel: a second series of the same study.</summary>
    public static string SoftSeries => TestData.Shared("dicom", "chest-ct", "lung-pet-ct-dx", "A0002-s3-b40f");

    /// <summary>Consecutive slices from the middle of <see cref="SharpSeries"/>, by file name.</summary>
    public static List<string> MidChestSlices(int count) =>
        [.. Directory.EnumerateFiles(SharpSeries, "*.dcm").Order(StringComparer.Ordinal).Skip(10).Take(count)];

    /// <summary>A zip with each file as a top-level entry under its own name.</summary>
    public static byte[] ZipFiles(IEnumerable<string> files) => Zip(files.Select(f => (Path.GetFileName(f), File.ReadAllBytes(f))));

    /// <summary>A zip of the entries as named.</summary>
    public static byte[] Zip(IEnumerable<(string Name, byte[] Content)> entries)
    {
        using var buffer = new MemoryStream();
        using (var zip = new ZipArchive(buffer, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, content) in entries)
            {
                using var stream = zip.CreateEntry(name, CompressionLevel.Fastest).Open();
                stream.Write(content);
            }
        }

        return buffer.ToArray();
    }
}
