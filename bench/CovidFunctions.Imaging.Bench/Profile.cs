using System.Diagnostics;
using CovidFunctions.Dicom;
using CovidFunctions.Dicom.Imaging;
using CovidFunctions.Imaging.Archives;

/// <summary>Phase timings of the pixel path (diagnostics for the benchmark notes).</summary>
internal static class Profile
{
    public static void Run(string zipPath)
    {
        using var zip = SafeZipArchive.Open(zipPath);
        var entries = zip.Entries.Take(100).ToList();
        var sw = Stopwatch.StartNew();
        var raw = entries.Select(zip.ReadAllBytes).ToList();
        var tInflate = sw.Elapsed;
        sw.Restart();
        var files = raw.Select(b => DicomFile.Read(new MemoryStream(b), null, "x")).ToList();
        var tParseMem = sw.Elapsed;
        sw.Restart();
        foreach (var e in entries)
        {
            using var s = zip.OpenEntry(e);
            DicomFile.Read(s, null, "x");
        }

        var tParseStream = sw.Elapsed;
        sw.Restart();
        var samples = files.Select(f => DicomPixelData.Create(f).GetFrameSamples(0)).ToList();
        var tSamples = sw.Elapsed;
        Console.WriteLine($"100 slices: inflate+crc {tInflate.TotalMilliseconds:0} ms, parse(mem) {tParseMem.TotalMilliseconds:0} ms, inflate+parse(stream) {tParseStream.TotalMilliseconds:0} ms, samples {tSamples.TotalMilliseconds:0} ms ({samples.Count})");
    }
}
