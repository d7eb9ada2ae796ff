using System.Text.Json.Nodes;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Dicom.Tests.Imaging.Codecs;

/// <summary>
/// Runs tests/peers/pixel_reference.py once over the corpus files that have a peer, and deletes its output folder
/// at the end. About 35 s for the 110 files on this machine.
/// </summary>
public sealed class PixelReferenceFixture : IDisposable
{
    private readonly Lazy<Dictionary<string, JsonObject>> _references;

    public PixelReferenceFixture() =>
        _references = new Lazy<Dictionary<string, JsonObject>>(() => PixelReferencePeer.Run(
            EncapsulatedCorpus.Entries.Where(e => e.Peer.Length > 0).Select(e => TestData.Shared(e.Path)),
            TimeSpan.FromMinutes(10)));

    /// <summary>The peer's decode of every frame (native layout), or throws with the peer's error.</summary>
    public byte[] Reference(string sharedPath)
    {
        var result = _references.Value[TestData.Shared(sharedPath)];
        if (result["ok"]?.GetValue<bool>() != true)
        {
            throw new InvalidOperationException($"pixel_reference.py failed for {sharedPath}: {result["error"]}");
        }

        return File.ReadAllBytes(result["raw"]!.GetValue<string>());
    }

    public void Dispose()
    {
        if (!_references.IsValueCreated)
        {
            return;
        }

        foreach (var dir in _references.Value.Values.Select(r => r["dir"]?.GetValue<string>()).Distinct())
        {
            if (dir is not null && Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }
}
