using System.Text.Json.Nodes;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Dicom.Tests.Peers;

/// <summary>
/// Runs everything once per test run: our reader over the corpus, pydicom and dcmdump over the corpus (one python
/// process each), our writer's explicit VR little endian re-encoding of every file we read, and both peers again over
/// those re-encoded files.
/// </summary>
public sealed class PeerFixture : IDisposable
{
    private static readonly TimeSpan PeerTimeout = TimeSpan.FromMinutes(4);
    private readonly TempDirectory _temp = TestData.CreateTempDirectory();

    public PeerFixture()
    {
        foreach (var path in PeerCorpus.Files)
        {
            Ours[path] = ReadOurs(path);
        }

        Pydicom = PeerCorpus.RunScript("pydicom_elements.py", PeerCorpus.Files, PeerTimeout);
        Dcmdump = PeerCorpus.RunScript("dcmdump_elements.py", PeerCorpus.Files, PeerTimeout);

        var index = 0;
        foreach (var (path, ours) in Ours)
        {
            if (ours.File is null)
            {
                continue;
            }

            var target = Path.Combine(_temp.Path, $"{index++:D4}.dcm");
            try
            {
                var syntax = ours.File.TransferSyntax.IsEncapsulated ? ours.File.TransferSyntax : TransferSyntax.ExplicitVRLittleEndian;
                ours.File.Save(target, new DicomWriteOptions { TransferSyntax = syntax });
                Reencoded[path] = target;
            }
            catch (Exception ex) when (ex is DicomException or IOException or InvalidOperationException or NotSupportedException or ArgumentException)
            {
                WriteErrors[path] = ex;
            }
        }

        ReencodedPydicom = PeerCorpus.RunScript("pydicom_elements.py", Reencoded.Values, PeerTimeout);
        ReencodedDcmdump = PeerCorpus.RunScript("dcmdump_elements.py", Reencoded.Values, PeerTimeout);
        foreach (var (source, target) in Reencoded)
        {
            ReencodedOurs[source] = ReadOurs(target);
        }
    }

    /// <summary>Our reading of each corpus file (absolute path).</summary>
    public Dictionary<string, OurResult> Ours { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, JsonObject> Pydicom { get; }

    public Dictionary<string, JsonObject> Dcmdump { get; }

    /// <summary>Corpus path → our re-encoded copy.</summary>
    public Dictionary<string, string> Reencoded { get; } = new(StringComparer.Ordinal);

    /// <summary>Corpus path → the writer's failure.</summary>
    public Dictionary<string, Exception> WriteErrors { get; } = new(StringComparer.Ordinal);

    /// <summary>Keyed by the re-encoded path.</summary>
    public Dictionary<string, JsonObject> ReencodedPydicom { get; }

    /// <summary>Keyed by the re-encoded path.</summary>
    public Dictionary<string, JsonObject> ReencodedDcmdump { get; }

    /// <summary>Corpus path → our reading of our re-encoded copy.</summary>
    public Dictionary<string, OurResult> ReencodedOurs { get; } = new(StringComparer.Ordinal);

    public void Dispose() => _temp.Dispose();

    private static OurResult ReadOurs(string path)
    {
        try
        {
            // Everything in memory: the re-encoded copy must not depend on the source file staying readable.
            var file = DicomFile.Open(path, new DicomReadOptions { BulkDataThreshold = long.MaxValue });
            return new OurResult(file, null, PeerNormalizer.ForPydicom(file), PeerNormalizer.ForDcmdump(file));
        }
        catch (Exception ex)
        {
            return new OurResult(null, ex, null, null);
        }
    }
}

/// <summary>Our reader's outcome for one file: the file and both normalized shapes, or the exception.</summary>
public sealed record OurResult(DicomFile? File, Exception? Error, JsonArray? PydicomShape, JsonArray? DcmdumpShape);
