using System.Buffers.Binary;
using System.IO.Compression;

namespace CovidFunctions.TestHelpers;

/// <summary>Real NIfTI headers and geometry, made screenable.</summary>
public static class NiftiTestVolumes
{
    /// <summary>
    /// Copies a little-endian NIfTI-1 <c>.nii.gz</c> into <paramref name="directory"/> under the same file name with
    /// scl_slope 1000 and scl_inter −1000, so a MosMed 0/1 lesion mask reads as air (−1000 HU) with its lesions at
    /// 0 HU. The MosMed CT volumes themselves are absent from the shared data; their masks are the only real NIfTI
    /// files there, and a bare mask is refused as "not Hounsfield units" (rightly).
    /// </summary>
    public static string MaskAsHounsfield(string maskPath, string directory)
    {
        byte[] bytes;
        using (var gz = new GZipStream(File.OpenRead(maskPath), CompressionMode.Decompress))
        using (var buffer = new MemoryStream())
        {
            gz.CopyTo(buffer);
            bytes = buffer.ToArray();
        }

        if (BinaryPrimitives.ReadInt32LittleEndian(bytes) != 348)
        {
            throw new InvalidDataException($"{maskPath} is not a little-endian NIfTI-1 file");
        }

        BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(112), 1000f);
        BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(116), -1000f);
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, Path.GetFileName(maskPath));
        using (var output = new GZipStream(File.Create(path), CompressionLevel.Fastest))
        {
            output.Write(bytes);
        }

        return path;
    }
}
