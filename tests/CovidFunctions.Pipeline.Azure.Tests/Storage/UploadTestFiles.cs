using System.IO.Compression;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Pipeline.Azure.Tests.Storage;

/// <summary>
/// What the upload and ingest tests on Azurite share: real CT slices, a blob's bytes, a zip of files as an uploader sends
/// it, and the units the planner makes of one tenant's uploads.
/// </summary>
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

    /// <summary>Consecutive slices from the middle of a real chest CT (TCIA Lung-PET-CT-Dx A0002, B70f), by file name.</summary>
    public static List<string> MidChestSlices(int count) =>
        [.. Directory.EnumerateFiles(TestData.Shared("dicom", "chest-ct", "lung-pet-ct-dx", "A0002-s2-b70f"), "*.dcm").Order(StringComparer.Ordinal).Skip(10).Take(count)];

    /// <summary>The upload units the planner makes now of the blobs under <paramref name="tenant"/>'s folder (study ids keyed from <paramref name="key"/>).</summary>
    public static async Task<IReadOnlyList<UploadUnit>> PlanTenantAsync(IUploadListing listing, string tenant, DeidKey key)
    {
        var blobs = new List<UploadBlob>();
        await foreach (var blob in listing.ListAsync(CancellationToken.None))
        {
            if (blob.Path.StartsWith(tenant + "/", StringComparison.Ordinal))
            {
                blobs.Add(blob);
            }
        }

        return UploadUnitPlanner.Plan(blobs, DateTimeOffset.UtcNow, new PipelineOptions(), StudyIdKey.From(key));
    }
}
