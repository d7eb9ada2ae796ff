using System.Diagnostics;
using System.Globalization;
using CovidFunctions.Dicom;
using CovidFunctions.Dicom.Imaging;

// Usage: CodecBench <min-seconds> <label> <folder of .dcm> [<folder of the same files uncompressed>]
// Loads every encapsulated frame of the folder into memory, checks each decode against the uncompressed twin when
// given, then decodes all frames round after round on one thread for at least <min-seconds>.
// Prints: label, transfer syntax, frames, decodes, decoded MB/s, ms per frame, compression ratio, mismatches.
if (args.Length < 3)
{
    Console.Error.WriteLine("usage: CodecBench <min-seconds> <label> <folder> [<uncompressed folder>]");
    return 2;
}

var seconds = double.Parse(args[0], CultureInfo.InvariantCulture);
var work = new List<(byte[] Frame, PixelFormat Format, IPixelCodec Codec, byte[]? Expected)>();
var syntax = string.Empty;
foreach (var path in Directory.GetFiles(args[2], "*.dcm").Order(StringComparer.Ordinal))
{
    var pixels = DicomPixelData.Create(DicomFile.Open(path));
    syntax = pixels.TransferSyntax.Uid;
    var codec = PixelCodecs.Get(syntax);
    var twin = args.Length > 3 ? DicomPixelData.Create(DicomFile.Open(Path.Combine(args[3], Path.GetFileName(path)))) : null;
    for (var i = 0; i < pixels.FrameCount; i++)
    {
        work.Add((pixels.GetEncodedFrame(i).ToArray(), pixels.Format, codec, twin?.DecodeFrame(i).Data));
    }
}

var mismatches = work.Count(w => w.Expected is not null && !w.Codec.Decode(w.Frame, w.Format).Data.AsSpan().SequenceEqual(w.Expected));
long decodedBytes = 0, encodedBytes = 0;
var decodes = 0;
var clock = Stopwatch.StartNew();
while (clock.Elapsed.TotalSeconds < seconds)
{
    foreach (var (frame, format, codec, _) in work)
    {
        decodedBytes += codec.Decode(frame, format).Data.Length;
        encodedBytes += frame.Length;
        decodes++;
    }
}

clock.Stop();
Console.WriteLine(string.Join('\t',
    args[1], syntax, work.Count, decodes,
    (decodedBytes / clock.Elapsed.TotalSeconds / 1e6).ToString("F1", CultureInfo.InvariantCulture),
    (clock.Elapsed.TotalMilliseconds / decodes).ToString("F2", CultureInfo.InvariantCulture),
    ((double)decodedBytes / encodedBytes).ToString("F2", CultureInfo.InvariantCulture),
    args.Length > 3 ? mismatches.ToString(CultureInfo.InvariantCulture) : "-"));
return mismatches == 0 ? 0 : 1;
