using System.Diagnostics;
using System.Globalization;
using CovidFunctions.Imaging.Series;
using CovidFunctions.Imaging.Tiles;

// Imaging benchmark (docs/benchmarks.md, "Imaging"): zip → series assembly → int16 HU tiles, one run, wall clock.
// Usage: CovidFunctions.Imaging.Bench zip-to-tiles IN.zip OUT_DIR [--parallel N]
if (args.Length == 2 && args[0] == "profile")
{
    Profile.Run(args[1]);
    return 0;
}

if (args.Length < 3 || args[0] != "zip-to-tiles")
{
    Console.Error.WriteLine("usage: zip-to-tiles IN.zip OUT_DIR [--parallel N]");
    return 2;
}

var parallel = args.Length >= 5 && args[3] == "--parallel" ? int.Parse(args[4], CultureInfo.InvariantCulture) : 1;
var clock = Stopwatch.StartNew();
using var series = SeriesAssembler.Assemble(args[1]);
var assembled = clock.Elapsed;
var store = new FileSystemBlobStore(args[2]);
var manifest = await SeriesTiles.WriteAsync(series, store, "series", uid => "2.25.0", parallel, CancellationToken.None);
Console.WriteLine(FormattableString.Invariant(
    $"dotnet: {manifest.SliceCount} slices, {clock.Elapsed.TotalSeconds:0.00} s (assembly {assembled.TotalSeconds:0.00} s), peak working set {Process.GetCurrentProcess().PeakWorkingSet64 / 1048576} MiB"));
Console.WriteLine(series.Report.SelectionReason);
return 0;
