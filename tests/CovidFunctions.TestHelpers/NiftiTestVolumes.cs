using System.Buffers.Binary;
using System.IO.Compression;

namespace CovidFunctions.TestHelpers;

/// <summary>Real NIfTI headers and geometry, made screenable.</summary>
public static class NiftiTestVolumes
{
    /// <summary>
    /// Copies a little-endian int16 NIfTI-1 <c>.nii.gz</c> lesion mask (MosMed) into <paramref name="directory"/> under
    /// the same file name, keeping its header (dimensions, spacing, sform/qform) and replacing the voxels with a
    /// synthetic chest in HU: air −1000 around an elliptic body at 40 HU holding two elliptic lungs at −850, the mask's
    /// lesions at −400 where they fall in a lung. The MosMed CT volumes are absent from the shared data and their masks
    /// are the only real NIfTI files there; a bare mask is refused (rightly) as "not Hounsfield units", and air alone
    /// would be refused as "no lungs".
    /// </summary>
    public static string ChestOnMaskGeometry(string maskPath, string directory)
    {
        byte[] bytes;
        using (var gz = new GZipStream(File.OpenRead(maskPath), CompressionMode.Decompress))
        using (var buffer = new MemoryStream())
        {
            gz.CopyTo(buffer);
            bytes = buffer.ToArray();
        }

        if (BinaryPrimitives.ReadInt32LittleEndian(bytes) != 348 || BinaryPrimitives.ReadInt16LittleEndian(bytes.AsSpan(70)) != 4)
        {
            throw new InvalidDataException($"{maskPath} is not a little-endian int16 NIfTI-1 file");
        }

        int nx = BinaryPrimitives.ReadInt16LittleEndian(bytes.AsSpan(42)), ny = BinaryPrimitives.ReadInt16LittleEndian(bytes.AsSpan(44)), nz = BinaryPrimitives.ReadInt16LittleEndian(bytes.AsSpan(46));
        var offset = (int)BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(108));
        BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(112), 1f);
        BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(116), 0f);
        for (var k = 0; k < nz; k++)
        {
            for (var j = 0; j < ny; j++)
            {
                for (var i = 0; i < nx; i++)
                {
                    var at = offset + (2 * (((k * ny) + j) * nx + i));
                    double u = (i - (nx / 2.0)) / (nx / 2.0), v = (j - (ny / 2.0)) / (ny / 2.0);
                    var lung = Inside(u - 0.35, v, 0.25, 0.45) || Inside(u + 0.35, v, 0.25, 0.45);
                    var lesion = BinaryPrimitives.ReadInt16LittleEndian(bytes.AsSpan(at)) != 0;
                    short hu = lung ? (short)(lesion ? -400 : -850) : Inside(u, v, 0.85, 0.65) ? (short)40 : (short)-1000;
                    BinaryPrimitives.WriteInt16LittleEndian(bytes.AsSpan(at), hu);
                }
            }
        }

        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, Path.GetFileName(maskPath));
        using (var output = new GZipStream(File.Create(path), CompressionLevel.Fastest))
        {
            output.Write(bytes);
        }

        return path;
    }

    private static bool Inside(double u, double v, double a, double b) => ((u * u) / (a * a)) + ((v * v) / (b * b)) <= 1;

    /// <summary>The int16 NIfTI-1 volume as float32 (datatype 16), with voxel (0, 0) of every slice NaN.</summary>
    public static void WriteAsFloat32WithOneNaNPerSlice(string int16Path, string floatPath)
    {
        byte[] bytes;
        using (var gz = new GZipStream(File.OpenRead(int16Path), CompressionMode.Decompress))
        using (var buffer = new MemoryStream())
        {
            gz.CopyTo(buffer);
            bytes = buffer.ToArray();
        }

        int nx = BinaryPrimitives.ReadInt16LittleEndian(bytes.AsSpan(42)), ny = BinaryPrimitives.ReadInt16LittleEndian(bytes.AsSpan(44));
        var offset = (int)BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(108));
        var count = (bytes.Length - offset) / 2;
        var output = new byte[offset + (count * 4)];
        bytes.AsSpan(0, offset).CopyTo(output);
        BinaryPrimitives.WriteInt16LittleEndian(output.AsSpan(70), 16); // datatype FLOAT32
        BinaryPrimitives.WriteInt16LittleEndian(output.AsSpan(72), 32); // bitpix
        for (var i = 0; i < count; i++)
        {
            var v = (float)BinaryPrimitives.ReadInt16LittleEndian(bytes.AsSpan(offset + (i * 2)));
            BinaryPrimitives.WriteSingleLittleEndian(output.AsSpan(offset + (i * 4)), i % (nx * ny) == 0 ? float.NaN : v);
        }

        using var file = File.Create(floatPath);
        using var zip = new GZipStream(file, CompressionLevel.Fastest);
        zip.Write(output);
    }
}
