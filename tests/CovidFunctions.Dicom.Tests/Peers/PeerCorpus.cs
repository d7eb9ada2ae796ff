using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Dicom.Tests.Peers;

/// <summary>The DICOM files under shared/data/dicom and the peer tools (pydicom, dcmdump) run over them.</summary>
internal static class PeerCorpus
{
    private static readonly string[] NonDicomExtensions =
        [".txt", ".md", ".xml", ".json", ".csv", ".gz", ".zip", ".dump", ".dat", ".icc", ".nrrd", ".upstream", ".repo-apache2", ".py", ".png", ".jpg"];

    private static readonly Lazy<IReadOnlyList<string>> FilesLazy = new(FindFiles);

    /// <summary>The shared DICOM folder.</summary>
    public static string Root => TestData.Shared("dicom");

    /// <summary>Absolute paths of every DICOM file of the corpus, sorted ordinally.</summary>
    public static IReadOnlyList<string> Files => FilesLazy.Value;

    /// <summary>A path relative to <see cref="Root"/>, with '/' separators (test case names).</summary>
    public static string Relative(string path) => Path.GetRelativePath(Root, path).Replace('\\', '/');

    /// <summary>xunit member data: one row per corpus file, as its relative path.</summary>
    public static IEnumerable<object[]> FileRows() => Files.Select(f => new object[] { Relative(f) });

    /// <summary>
    /// A file is DICOM when it ends in .dcm, has "DICM" at byte 128, or has no extension and starts with a group 0002,
    /// 0008 or 0018 tag (bare datasets such as dcm4che's OT-PAL-8-face).
    /// </summary>
    private static IReadOnlyList<string> FindFiles()
    {
        var files = new List<string>();
        var head = new byte[132];
        foreach (var path in Directory.EnumerateFiles(Root, "*", SearchOption.AllDirectories))
        {
            var ext = Path.GetExtension(path).ToLowerInvariant();
            if (ext == ".dcm")
            {
                files.Add(path);
                continue;
            }

            if (NonDicomExtensions.Contains(ext) || Path.GetFileName(path).StartsWith("LICENSE", StringComparison.Ordinal)
                || Path.GetFileName(path).StartsWith("README", StringComparison.Ordinal) || Path.GetFileName(path) == "SOURCE")
            {
                continue;
            }

            int read;
            using (var stream = File.OpenRead(path))
            {
                read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
            }

            var magic = read >= 132 && head.AsSpan(128, 4).SequenceEqual("DICM"u8);
            var bareDataset = ext.Length == 0 && read >= 4 && head[1] == 0 && head[0] is 0x02 or 0x08 or 0x18;
            if (magic || bareDataset)
            {
                files.Add(path);
            }
        }

        files.Sort(StringComparer.Ordinal);
        return files;
    }

    /// <summary>
    /// Runs a peer script (tests/peers/*.py) with /usr/bin/python3 over <paramref name="paths"/> (one per stdin line)
    /// and returns its JSON lines keyed by the "file" member.
    /// </summary>
    public static Dictionary<string, JsonObject> RunScript(string script, IEnumerable<string> paths, TimeSpan timeout)
    {
        var scriptPath = Path.Combine(TestData.RepoRoot, "tests", "peers", script);
        var start = new ProcessStartInfo("/usr/bin/python3")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
        };
        start.ArgumentList.Add(scriptPath);
        start.Environment["PYTHONIOENCODING"] = "utf-8";
        using var process = Process.Start(start) ?? throw new InvalidOperationException("python3 did not start");
        var stdoutTask = process.StandardOutput.ReadToEndAsync();
        var stderrTask = process.StandardError.ReadToEndAsync();
        foreach (var path in paths)
        {
            process.StandardInput.WriteLine(path);
        }

        process.StandardInput.Close();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{script} did not finish in {timeout}");
        }

        var stdout = stdoutTask.GetAwaiter().GetResult();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{script} exited {process.ExitCode}: {stderrTask.GetAwaiter().GetResult()}");
        }

        var results = new Dictionary<string, JsonObject>(StringComparer.Ordinal);
        foreach (var line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var node = JsonNode.Parse(line)!.AsObject();
            results[node["file"]!.GetValue<string>()] = node;
        }

        return results;
    }
}
