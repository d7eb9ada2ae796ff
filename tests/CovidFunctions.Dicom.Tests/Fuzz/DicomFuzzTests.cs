using System.Diagnostics;
using System.Text.Json;
using CovidFunctions.Dicom.Imaging;
using CovidFunctions.Dicom.Json;
using CovidFunctions.Dicom.Tests.Peers;

namespace CovidFunctions.Dicom.Tests.Fuzz;

/// <summary>
/// Mutation fuzzing of the reader (and what a reader's caller does next: typed values, JSON, pixel frames) over
/// corpus files: bit flips, byte insertion and deletion, length-field corruption, splices and truncation, from a fixed
/// seed. The only exceptions allowed are <see cref="DicomFormatException"/> (reading) and
/// <see cref="UnsupportedTransferSyntaxException"/> (pixel decoding); every case must finish within a deadline.
/// CI runs <see cref="DefaultCases"/> cases bounded to about a minute; COVIDFN_FUZZ_CASES=N runs N cases with no time
/// bound and COVIDFN_FUZZ_SEED=S changes the seed (docs/fuzzing.md has the long-run numbers).
/// </summary>
public class DicomFuzzTests
{
    private const int DefaultCases = 4000;
    private const int DefaultSeed = 20261126;
    private const long MaxSeedBytes = 200 * 1024;
    private const int MaxSeeds = 60;

    [Fact]
    public async Task Read_MutatedCorpusFiles_ThrowsOnlyDicomFormatExceptionAndFinishes()
    {
        var (cases, seed, budget) = FuzzDriver.Settings(DefaultCases, DefaultSeed);
        var seeds = LoadSeeds();
        Assert.NotEmpty(seeds);

        var random = new Random(seed);
        var failures = new List<string>();
        var outcomes = new Dictionary<string, int>(StringComparer.Ordinal);
        var clock = Stopwatch.StartNew();
        var run = 0;
        for (; run < cases && clock.Elapsed < budget && failures.Count < 10; run++)
        {
            var (name, original) = seeds[random.Next(seeds.Count)];
            var (mutation, bytes) = Mutate(original, random);
            var outcome = await FuzzDriver.RunCaseAsync(() => Exercise(bytes));
            if (outcome is null)
            {
                failures.Add($"case {run} ({name}, {mutation}): no result within {FuzzDriver.CaseDeadline.TotalSeconds} s — {Save(bytes, run)}");
                continue;
            }

            if (outcome.Unexpected is { } ex)
            {
                failures.Add($"case {run} ({name}, {mutation}): {ex.GetType().Name}: {ex.Message} — {Save(bytes, run)}\n{ex.StackTrace}");
                continue;
            }

            outcomes[outcome.Kind] = outcomes.GetValueOrDefault(outcome.Kind) + 1;
        }

        var summary = $"seed {seed}: {run} cases in {clock.Elapsed.TotalSeconds:F1} s; " + string.Join(", ", outcomes.OrderBy(o => o.Key, StringComparer.Ordinal).Select(o => $"{o.Key} {o.Value}"));
        Console.WriteLine(summary);
        Assert.True(failures.Count == 0, summary + "\n" + string.Join("\n", failures));
        Assert.True(run >= Math.Min(cases, 500), $"only {run} cases ran in the budget: {summary}");
    }

    /// <summary>Small corpus files of every kind (each read fine before mutation), in a fixed order.</summary>
    internal static List<(string Name, byte[] Bytes)> LoadSeeds()
    {
        var seeds = new List<(string, byte[])>();
        foreach (var path in PeerCorpus.Files.Where(f => new FileInfo(f).Length <= MaxSeedBytes))
        {
            var bytes = File.ReadAllBytes(path);
            try
            {
                DicomFile.Read(new MemoryStream(bytes), DicomReadOptions.Default, path);
            }
            catch (DicomFormatException)
            {
                continue;
            }

            seeds.Add((PeerCorpus.Relative(path), bytes));
        }

        // Spread the picks over the corpus (every k-th) rather than only the first folders.
        var step = Math.Max(1, seeds.Count / MaxSeeds);
        return [.. seeds.Where((_, i) => i % step == 0).Take(MaxSeeds)];
    }

    internal static (string Mutation, byte[] Bytes) Mutate(byte[] original, Random random)
    {
        var data = new List<byte>(original);
        var rounds = 1 + random.Next(3);
        var names = new List<string>();
        for (var r = 0; r < rounds && data.Count > 0; r++)
        {
            var at = random.Next(data.Count);
            switch (random.Next(7))
            {
                case 0:
                    var bits = 1 + random.Next(8);
                    for (var b = 0; b < bits; b++)
                    {
                        var i = random.Next(data.Count);
                        data[i] ^= (byte)(1 << random.Next(8));
                    }

                    names.Add($"flip {bits} bits");
                    break;
                case 1:
                    var count = 1 + random.Next(8);
                    for (var k = 0; k < count; k++)
                    {
                        data.Insert(at, (byte)random.Next(256));
                    }

                    names.Add($"insert {count} at {at}");
                    break;
                case 2:
                    var remove = Math.Min(1 + random.Next(8), data.Count - at);
                    data.RemoveRange(at, remove);
                    names.Add($"delete {remove} at {at}");
                    break;
                case 3:
                    // A 16- or 32-bit length field: overwrite 2 or 4 bytes with an extreme or random value.
                    uint[] extremes = [0, 1, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFE, 0x7FFFFFFF, 0x80000000, (uint)random.Next()];
                    var value = extremes[random.Next(extremes.Length)];
                    var width = random.Next(2) == 0 ? 2 : 4;
                    for (var k = 0; k < width && at + k < data.Count; k++)
                    {
                        data[at + k] = (byte)(value >> (8 * k));
                    }

                    names.Add($"length {value:X8}/{width} at {at}");
                    break;
                case 4:
                    var keep = random.Next(data.Count);
                    data.RemoveRange(keep, data.Count - keep);
                    names.Add($"truncate at {keep}");
                    break;
                case 5:
                    // Splice: copy a chunk of the file elsewhere (duplicates tags, items, delimiters).
                    var from = random.Next(data.Count);
                    var len = Math.Min(1 + random.Next(64), data.Count - from);
                    var chunk = data.GetRange(from, len);
                    data.InsertRange(random.Next(data.Count), chunk);
                    names.Add($"splice {len} from {from}");
                    break;
                default:
                    // Structure bytes: an item / delimiter tag or an undefined length at a random place.
                    byte[][] tokens = [[0xFE, 0xFF, 0x00, 0xE0], [0xFE, 0xFF, 0x0D, 0xE0], [0xFE, 0xFF, 0xDD, 0xE0], [0xFF, 0xFF, 0xFF, 0xFF], "SQ\0\0"u8.ToArray(), "UN\0\0"u8.ToArray()];
                    var token = tokens[random.Next(tokens.Length)];
                    for (var k = 0; k < token.Length && at + k < data.Count; k++)
                    {
                        data[at + k] = token[k];
                    }

                    names.Add($"token {Convert.ToHexString(token)} at {at}");
                    break;
            }
        }

        return (string.Join("; ", names), [.. data]);
    }

    internal sealed record Outcome(string Kind, Exception? Unexpected);

    /// <summary>Reads the bytes and uses the result as a caller would; classifies the outcome.</summary>
    internal static Outcome Exercise(byte[] bytes)
    {
        DicomFile file;
        try
        {
            file = DicomFile.Read(new MemoryStream(bytes, writable: false), DicomReadOptions.Default, "fuzz-case");
        }
        catch (DicomFormatException)
        {
            return new Outcome("rejected", null);
        }
        catch (Exception ex)
        {
            return new Outcome("crash", ex);
        }

        try
        {
            Touch(file.FileMetaInformation);
            Touch(file.Dataset);
            using (var writer = new Utf8JsonWriter(Stream.Null))
            {
                DicomJsonWriter.Write(writer, file);
            }

            try
            {
                file.Write(Stream.Null, DicomWriteOptions.Default);
            }
            catch (UnsupportedTransferSyntaxException)
            {
                // Encapsulated Pixel Data read from a native syntax cannot be written back without transcoding.
            }
        }
        catch (Exception ex) when (ex is not DicomFormatException)
        {
            return new Outcome("crash", ex);
        }
        catch (DicomFormatException)
        {
            return new Outcome("rejected after read", null);
        }

        try
        {
            if (!file.Dataset.Contains(new DicomTag(0x7FE0, 0x0010)))
            {
                return new Outcome("read", null);
            }

            var pixels = DicomPixelData.Create(file);
            if (pixels.FrameCount > 0 && (long)pixels.Format.Rows * pixels.Format.Columns <= 4_000_000)
            {
                pixels.DecodeFrame(0);
            }

            return new Outcome("read+decoded", null);
        }
        catch (Exception ex) when (ex is DicomFormatException or UnsupportedTransferSyntaxException)
        {
            return new Outcome("pixels rejected", null);
        }
        catch (Exception ex)
        {
            return new Outcome("crash", ex);
        }
    }

    private static void Touch(DicomDataset dataset)
    {
        foreach (var element in dataset)
        {
            switch (element)
            {
                case DicomSequence sequence:
                    foreach (var item in sequence.Items)
                    {
                        Touch(item);
                    }

                    break;
                case DicomValueElement value:
                    if (value.VR.IsString || value.VR.IsBinaryNumber || value.VR.Code == "AT")
                    {
                        _ = dataset.GetStrings(element.Tag);
                        _ = dataset.TryGetDouble(element.Tag, out _);
                    }

                    break;
            }
        }
    }

    internal static string Save(byte[] bytes, int run)
    {
        var dir = Path.Combine(Path.GetTempPath(), "covidfn-fuzz");
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, $"case-{run}-{Convert.ToHexStringLower(System.Security.Cryptography.SHA1.HashData(bytes))[..12]}.dcm");
        File.WriteAllBytes(path, bytes);
        return "saved " + path;
    }
}
