using System.Text.Json.Nodes;
using CovidFunctions.Dicom.Tests.Peers;
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

    /// <summary>Runs tests/peers/pixel_reference.py over <paramref name="paths"/>; its JSON lines keyed by "file".</summary>
    public static Dictionary<string, JsonObject> Run(IEnumerable<string> paths, TimeSpan timeout) =>
        PeerCorpus.RunScript("pixel_reference.py", paths, timeout);
}
