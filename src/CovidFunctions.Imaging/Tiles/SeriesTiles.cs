using CovidFunctions.Imaging.Diagnostics;
using CovidFunctions.Imaging.Series;

namespace CovidFunctions.Imaging.Tiles;

/// <summary>Writes an assembled series as tiles (the pipeline's "assemble" stage output).</summary>
public static class SeriesTiles
{
    /// <summary>
    /// Decodes the series slice by slice (<paramref name="parallelism"/> slices at a time) and writes int16 HU chunks
    /// and the manifest under <paramref name="prefix"/>. <paramref name="mapUid"/> de-identifies UIDs before they are
    /// written (the manifest must never carry source UIDs in production); when null, UIDs are left out.
    /// </summary>
    /// <remarks>
    /// A series of 2-D images (<see cref="AssembledSeries.ValueKind"/> <see cref="TileKinds.Unit"/>) is written as
    /// float32 [0, 1] chunks of kind <c>unit</c>, without spacing, origin, directions or slice positions (the images
    /// carry none); its <c>sliceIds</c> are <paramref name="mapUid"/> of each file's name within the upload, so no
    /// file name reaches the manifest.
    /// </remarks>
    public static Task<TileManifest> WriteAsync(
        AssembledSeries series,
        IBlobStore store,
        string prefix,
        Func<string, string>? mapUid,
        int parallelism,
        CancellationToken cancellationToken) =>
        WriteAsync(series, store, prefix, mapUid, parallelism, cpu: null, cancellationToken);

    /// <summary>
    /// As <see cref="WriteAsync(AssembledSeries, IBlobStore, string, Func{string, string}?, int, CancellationToken)"/>,
    /// adding the CPU time of decoding the slices (the tiling's compute) to <paramref name="cpu"/> when given.
    /// </summary>
    public static async Task<TileManifest> WriteAsync(
        AssembledSeries series,
        IBlobStore store,
        string prefix,
        Func<string, string>? mapUid,
        int parallelism,
        CpuTimeAccount? cpu,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(series);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentOutOfRangeException.ThrowIfLessThan(parallelism, 1);
        var g = series.Geometry;
        var report = series.Report;
        string? Map(string? uid) => uid is { Length: > 0 } && mapUid is not null ? mapUid(uid) : null;
        if (series.ValueKind == TileKinds.Unit)
        {
            return await WriteUnitAsync(series, store, prefix, mapUid, parallelism, cpu, cancellationToken).ConfigureAwait(false);
        }

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
            StudyInstanceUid = Map(report.Selected.StudyInstanceUid),
            SeriesInstanceUid = Map(report.Selected.SeriesInstanceUid),
            SliceIds = mapUid is null || series.Slices.Count == 0 ? null : series.Slices.Select(s => Map(s.SopInstanceUid) ?? string.Empty).ToArray(),
            Notes = [report.SelectionReason, .. report.Issues.Select(i => $"{i.Kind}: {i.Message}")],
        };
        var writer = new TileSeriesWriter(store, prefix, template);
        var window = Math.Max(parallelism, writer.ChunkSize);
        for (var start = 0; start < series.SliceCount; start += window)
        {
            var count = Math.Min(window, series.SliceCount - start);
            var decoded = new short[count][];
            await Parallel.ForAsync(0, count, new ParallelOptions { MaxDegreeOfParallelism = parallelism, CancellationToken = cancellationToken }, (i, _) =>
            {
                var index = start + i;
                decoded[i] = cpu is null ? series.ReadHuInt16(index) : cpu.Measure(() => series.ReadHuInt16(index));
                return ValueTask.CompletedTask;
            }).ConfigureAwait(false);
            foreach (var slice in decoded)
            {
                await writer.AddSliceAsync(slice, cancellationToken).ConfigureAwait(false);
            }
        }

        return await writer.CompleteAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task<TileManifest> WriteUnitAsync(AssembledSeries series, IBlobStore store, string prefix, Func<string, string>? mapUid, int parallelism, CpuTimeAccount? cpu, CancellationToken cancellationToken)
    {
        var report = series.Report;
        var template = new TileManifest
        {
            Kind = TileKinds.Unit,
            Rows = series.Rows,
            Columns = series.Columns,
            SliceIds = mapUid is null ? null : series.Slices.Select(s => mapUid(Path.GetFileName(s.SourceName.Replace('\\', '/')))).ToArray(),
            Notes = [report.SelectionReason, .. report.Issues.Select(i => $"{i.Kind}: {i.Message}")],
        };
        var writer = new TileSeriesWriter(store, prefix, template);
        var window = Math.Max(parallelism, writer.ChunkSize);
        for (var start = 0; start < series.SliceCount; start += window)
        {
            var count = Math.Min(window, series.SliceCount - start);
            var decoded = new float[count][];
            await Parallel.ForAsync(0, count, new ParallelOptions { MaxDegreeOfParallelism = parallelism, CancellationToken = cancellationToken }, (i, _) =>
            {
                var index = start + i;
                decoded[i] = cpu is null ? series.ReadUnit(index).Pixels : cpu.Measure(() => series.ReadUnit(index).Pixels);
                return ValueTask.CompletedTask;
            }).ConfigureAwait(false);
            foreach (var slice in decoded)
            {
                await writer.AddSliceAsync(slice, cancellationToken).ConfigureAwait(false);
            }
        }

        return await writer.CompleteAsync(cancellationToken).ConfigureAwait(false);
    }
}
