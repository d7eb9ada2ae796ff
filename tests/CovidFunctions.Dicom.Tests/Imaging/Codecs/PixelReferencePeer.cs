using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Dicom.Tests.Imaging.Codecs;

/// <summary>Runs tests/peers/pixel_reference.py and lists the DICOM files of shared/data/dicom.</summary>
internal static class PixelReferencePeer
{
    private static readonly string[] SkippedExtensions =
        [".txt", ".md", ".xml", ".json", ".csv", ".gz", ".zip", ".dump", ".dat", ".icc", ".nrrd", ".upstream", ".py", ".png", ".jpg"];

    /// <summary>The shared DICOM folder.</summary>
    public static string Root => TestData.Shared("dicom");

    /// <summary>Every file under <see cref="Root"/> that may be DICOM (documentation and image side files skipped), sorted.</summary>
    public static IEnumerable<string> CandidateFiles() =>
        Directory.EnumerateFiles(Root, "*", SearchOption.AllDirectories)
            .Where(p => !SkippedExtensions.Contains(Path.GetExtension(p).ToLowerInvariant()))
            .Where(p => !Path.GetFileName(p).StartsWith("LICENSE", StringComparison.Ordinal) && !Path.GetFileName(p).StartsWith("README", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal);

    /// <summary>"dicom/..." path of a file under <see cref="Root"/>, as the corpus csv names it.</summary>
    public static string Relative(string path) => "dicom/" + Path.GetRelativePath(Root, path).Replace('\\', '/');

    /// <summary>Runs the peer script with /usr/bin/python3 over <paramref name="paths"/>; its JSON lines keyed by "file".</summary>
    public static Dictionary<string, JsonObject> Run(IEnumerable<string> paths, TimeSpan timeout)
    {
        var start = new ProcessStartInfo("/usr/bin/python3")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
        };
        start.ArgumentList.Add(Path.Combine(TestData.RepoRoot, "tests", "peers", "pixel_reference.py"));
        using var process = Process.Start(start) ?? throw new InvalidOperationException("python3 did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        foreach (var path in paths)
        {
            process.StandardInput.WriteLine(path);
        }

        process.StandardInput.Close();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"pixel_reference.py did not finish in {timeout}");
        }

        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"pixel_reference.py exited {process.ExitCode}: {stderr.GetAwaiter().GetResult()}");
        }

        var results = new Dictionary<string, JsonObject>(StringComparer.Ordinal);
        foreach (var line in stdout.GetAwaiter().GetResult().Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var node = JsonNode.Parse(line)!.AsObject();
            results[node["file"]!.GetValue<string>()] = node;
        }

        return results;
    }
}
