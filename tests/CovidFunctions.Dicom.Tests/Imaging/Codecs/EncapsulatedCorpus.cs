using System.Globalization;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Dicom.Tests.Imaging.Codecs;

/// <summary>
/// tests/data/codecs/encapsulated-corpus.csv: every file with encapsulated pixel data in shared/data/dicom, its
/// transfer syntax, what decoding it must give (decode, unsupported, corrupt; unreadable: the reader already refuses
/// the file), the peer that decodes it independently
/// (tests/peers/pixel_reference.py) and the largest and mean absolute difference measured against that peer.
/// </summary>
internal static class EncapsulatedCorpus
{
    private static readonly Lazy<IReadOnlyList<Entry>> EntriesLazy = new(Load);

    public static IReadOnlyList<Entry> Entries => EntriesLazy.Value;

    public static IEnumerable<object[]> Rows(string outcome) =>
        Entries.Where(e => e.Outcome == outcome).Select(e => new object[] { e.Path });

    public static Entry Get(string path) => Entries.Single(e => e.Path == path);

    private static IReadOnlyList<Entry> Load()
    {
        var lines = File.ReadAllLines(TestData.Local("codecs", "encapsulated-corpus.csv"));
        var header = lines[0].Split(',');
        var entries = new List<Entry>();
        foreach (var line in lines.Skip(1).Where(l => l.Length > 0))
        {
            var cells = line.Split(',', header.Length);
            string Cell(string name) => cells[Array.IndexOf(header, name)];
            entries.Add(new Entry(
                Cell("path"),
                Cell("transfer_syntax"),
                Cell("frames").Length > 0 ? int.Parse(Cell("frames"), CultureInfo.InvariantCulture) : null,
                Cell("outcome"),
                Cell("peer"),
                Cell("max_abs").Length > 0 ? long.Parse(Cell("max_abs"), CultureInfo.InvariantCulture) : null,
                Cell("mean_abs").Length > 0 ? double.Parse(Cell("mean_abs"), CultureInfo.InvariantCulture) : null));
        }

        return entries;
    }

    /// <summary>One corpus file. <see cref="MaxAbs"/> / <see cref="MeanAbs"/> are null where no peer decodes it.</summary>
    internal sealed record Entry(string Path, string TransferSyntax, int? Frames, string Outcome, string Peer, long? MaxAbs, double? MeanAbs);
}
