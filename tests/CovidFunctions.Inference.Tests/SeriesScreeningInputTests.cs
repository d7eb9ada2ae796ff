using System.Buffers.Binary;
using System.IO.Compression;
using CovidFunctions.Imaging;
using CovidFunctions.Imaging.Series;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Inference.Tests;

public sealed class SeriesScreeningInputTests
{
    [Fact]
    public void Screen_FloatVolumeWithNaNVoxels_ThrowsBadInputNamingTheSlice()
    {
        using var dir = TestData.CreateTempDirectory();
        var chest = NiftiTestVolumes.ChestOnMaskGeometry(TestData.Shared("seg", "mosmed-masks", "masks", "study_0276_mask.nii.gz"), dir.Path);
        var path = Path.Combine(dir.Path, "float_with_nan.nii.gz");
        WriteAsFloat32WithOneNaNPerSlice(chest, path);
        using var series = SeriesAssembler.Assemble(path);
        var models = ScreeningModels.Load(new InferenceOptions { ModelsDirectory = Path.Combine(TestData.RepoRoot, "models"), PreferCuda = false });

        var ex = Assert.Throws<ImageFormatException>(() => SeriesScreening.Screen(series, models));

        Assert.Contains($"slice 1 of {series.SliceCount} (feet to head) holds 1 non-finite value(s)", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>The int16 NIfTI-1 volume as float32 (datatype 16), with voxel (0, 0) of every slice NaN.</summary>
    private static void WriteAsFloat32WithOneNaNPerSlice(string int16Path, string floatPath)
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
