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
var g = series.Geometry;
var template = new TileManifest
{
    Rows = g.Rows,
    Columns = g.Columns,
    PixelSpacing = [g.RowSpacing, g.ColumnSpacing],
    SliceSpacing = g.SliceSpacing,
    Origin = [g.Origin.X, g.Origin.Y, g.Origin.Z],
    RowDirection = [g.RowDirection.X, g.RowDirection.Y, g.RowDirection.Z],
    ColumnDirection = [g.ColumnDirection.X, g.ColumnDirection.Y, g.ColumnDirection.Z],
    SlicePositions = g.SlicePositions.ToArray(),
    Notes = [series.Report.SelectionReason, .. series.Report.Issues.Select(i => i.Message)],
};
var writer = new TileSeriesWriter(store, "series", template);
const int Window = 16;
for (var start = 0; start < series.SliceCount; start += Window)
{
    var count = Math.Min(Window, series.SliceCount - start);
    var decoded = new short[count][];
    Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = parallel }, i => decoded[i] = series.ReadHuInt16(start + i));
    foreach (var slice in decoded)
    {
        await writer.AddSliceAsync(slice, CancellationToken.None);
    }
}

var manifest = await writer.CompleteAsync(CancellationToken.None);
Console.WriteLine(FormattableString.Invariant(
    $"dotnet: {manifest.SliceCount} slices, {clock.Elapsed.TotalSeconds:0.00} s (assembly {assembled.TotalSeconds:0.00} s), peak working set {Process.GetCurrentProcess().PeakWorkingSet64 / 1048576} MiB"));
Console.WriteLine(series.Report.SelectionReason);
return 0;
