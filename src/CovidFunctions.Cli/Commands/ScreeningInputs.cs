using System.Buffers.Binary;
using System.CommandLine;
using System.Diagnostics.CodeAnalysis;
using System.IO.Compression;
using CovidFunctions.Imaging;
using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.Inference;

namespace CovidFunctions.Cli.Commands;

/// <summary>Shared by <c>segment</c> and <c>classify</c>: input discovery, model loading, batching and mask PNGs.</summary>
public static class ScreeningInputs
{
    /// <summary>Images per inference batch (memory: 8 × 352² floats in, the same out).</summary>
    public const int Batch = 8;

    /// <summary>2-D images under <paramref name="input"/>: the file itself or every image file below the folder
    /// (recursive, ordinal order); null and a message when the input is not usable as 2-D images.</summary>
    public static IReadOnlyList<string>? Find2DImages(string input, out string? problem)
    {
        problem = null;
        if (File.Exists(input))
        {
            if (IsVolumeOrDicom(input))
            {
                problem = $"{input}: NIfTI / DICOM / zip input is not supported yet by this command (2-D PNG/JPG/TIFF only).";
                return null;
            }

            return [input];
        }

        if (!Directory.Exists(input))
        {
            problem = $"{input}: no such file or folder.";
            return null;
        }

        var files = Directory.EnumerateFiles(input, "*", SearchOption.AllDirectories)
            .Where(ImageLoader.HasImageExtension)
            .OrderBy(p => p, StringComparer.Ordinal)
            .ToList();
        if (files.Count == 0)
        {
            var volumes = Directory.EnumerateFiles(input, "*", SearchOption.AllDirectories).Any(IsVolumeOrDicom);
            problem = volumes
                ? $"{input}: holds NIfTI / DICOM files; volume input is not supported yet by this command (2-D PNG/JPG/TIFF only)."
                : $"{input}: no PNG/JPG/TIFF images found (searched recursively).";
            return null;
        }

        return files;
    }

    private static bool IsVolumeOrDicom(string path)
    {
        var name = Path.GetFileName(path).ToUpperInvariant();
        return name.EndsWith(".NII", StringComparison.Ordinal) || name.EndsWith(".NII.GZ", StringComparison.Ordinal) ||
               name.EndsWith(".DCM", StringComparison.Ordinal) || name.EndsWith(".ZIP", StringComparison.Ordinal);
    }

    /// <summary>The <c>--models</c> option both commands take.</summary>
    public static Option<string?> ModelsOption() =>
        new("--models") { Description = "Models folder (default: COVIDFN_MODELS_DIR or models/ next to covidfn)." };

    /// <summary>The <c>--threads</c> option both commands take.</summary>
    public static Option<int> ThreadsOption() =>
        new("--threads") { Description = "ONNX Runtime intra-op threads (0: one per core).", DefaultValueFactory = _ => 0 };

    /// <summary>The common start of <c>segment</c> and <c>classify</c>: finds the images and loads the models. On failure
    /// writes one line prefixed with <paramref name="commandName"/> to <paramref name="error"/> and returns false.</summary>
    public static bool TryStart(
        string commandName,
        string input,
        string? modelsDir,
        int threads,
        TextWriter error,
        [NotNullWhen(true)] out IReadOnlyList<string>? files,
        [NotNullWhen(true)] out ScreeningModels? models)
    {
        models = null;
        files = Find2DImages(input, out var problem);
        if (files is null)
        {
            error.WriteLine(commandName + ": " + problem);
            return false;
        }

        try
        {
            models = LoadModels(modelsDir, threads);
            return true;
        }
        catch (Exception ex) when (ex is InferenceException or ArgumentException)
        {
            error.WriteLine(commandName + ": cannot load the models: " + ex.Message);
            files = null;
            return false;
        }
    }

    /// <summary>Loads the images in batches of <see cref="Batch"/>. An image that cannot be read is reported on
    /// <paramref name="error"/>, counted in <paramref name="failures"/> and skipped; empty batches are not returned.</summary>
    public static IEnumerable<List<(string Path, GreyImage Image)>> LoadInBatches(
        IReadOnlyList<string> files, string commandName, TextWriter error, System.Runtime.CompilerServices.StrongBox<int> failures)
    {
        foreach (var chunk in files.Chunk(Batch))
        {
            var images = new List<(string Path, GreyImage Image)>(chunk.Length);
            foreach (var path in chunk)
            {
                try
                {
                    images.Add((path, ImageLoader.Load(path)));
                }
                catch (ImagingException ex)
                {
                    error.WriteLine($"{commandName}: {path}: {ex.Message}");
                    failures.Value++;
                }
            }

            if (images.Count > 0)
            {
                yield return images;
            }
        }
    }

    /// <summary>Loads the models (one session per graph per process), with optional models folder and thread count.</summary>
    public static ScreeningModels LoadModels(string? modelsDir, int threads) =>
        ScreeningModels.Load(new InferenceOptions { ModelsDirectory = modelsDir, IntraOpThreads = threads, MaxBatch = Batch });

    /// <summary>Writes an 8-bit greyscale PNG (no filter, zlib); deterministic bytes.</summary>
    public static void WriteGreyPng(string path, ReadOnlySpan<byte> pixels, int width, int height)
    {
        using var raw = new MemoryStream();
        using (var z = new ZLibStream(raw, CompressionLevel.Optimal, leaveOpen: true))
        {
            for (var y = 0; y < height; y++)
            {
                z.WriteByte(0);
                z.Write(pixels.Slice(y * width, width));
            }
        }

        using var file = File.Create(path);
        file.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        Span<byte> ihdr = stackalloc byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr[4..], height);
        ihdr[8] = 8;  // bit depth
        ihdr[9] = 0;  // greyscale
        WriteChunk(file, "IHDR"u8, ihdr);
        WriteChunk(file, "IDAT"u8, raw.GetBuffer().AsSpan(0, (int)raw.Length));
        WriteChunk(file, "IEND"u8, []);
    }

    private static void WriteChunk(Stream s, ReadOnlySpan<byte> type, ReadOnlySpan<byte> data)
    {
        Span<byte> len = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(len, data.Length);
        s.Write(len);
        s.Write(type);
        s.Write(data);
        var crc = Crc32(Crc32(0xFFFFFFFFu, type), data) ^ 0xFFFFFFFFu;
        BinaryPrimitives.WriteUInt32BigEndian(len, crc);
        s.Write(len);
    }

    private static readonly uint[] CrcTable = BuildCrcTable();

    private static uint[] BuildCrcTable()
    {
        var t = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            var c = n;
            for (var k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }

            t[n] = c;
        }

        return t;
    }

    private static uint Crc32(uint crc, ReadOnlySpan<byte> data)
    {
        foreach (var b in data)
        {
            crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }

        return crc;
    }
}
