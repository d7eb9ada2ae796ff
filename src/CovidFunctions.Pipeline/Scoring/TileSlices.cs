using System.Runtime.InteropServices;
using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.Imaging.Tiles;

namespace CovidFunctions.Pipeline.Scoring;

/// <summary>One slice read back from the tiles: its windowed [0, 1] image and, for kind <c>hu</c>, its HU values.</summary>
public sealed record TileSlice(int SliceIndex, GreyImage Image, short[]? Hu);

/// <summary>Reads selected slices of a tiled series, touching only the tile chunk files that hold them.</summary>
public static class TileSlices
{
    /// <summary>
    /// Reads the slices of <paramref name="sliceIndexes"/> (any order, each once) in ascending order. Throws
    /// <see cref="ArgumentOutOfRangeException"/> when an index is outside the series.
    /// </summary>
    public static async Task<IReadOnlyList<TileSlice>> ReadAsync(TileSeriesReader reader, IEnumerable<int> sliceIndexes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(sliceIndexes);
        var manifest = reader.Manifest;
        var wanted = sliceIndexes.Distinct().Order().ToList();
        foreach (var index in wanted)
        {
            if (index < 0 || index >= manifest.SliceCount)
            {
                throw new ArgumentOutOfRangeException(nameof(sliceIndexes), index, $"slice {index} is outside the series of {manifest.SliceCount} slices");
            }
        }

        var window = new WindowSettings(manifest.WindowLevel, manifest.WindowWidth);
        var plane = manifest.Rows * manifest.Columns;
        var slices = new List<TileSlice>(wanted.Count);
        foreach (var chunk in manifest.Chunks.OrderBy(c => c.FirstSlice))
        {
            var inChunk = wanted.Where(i => i >= chunk.FirstSlice && i < chunk.FirstSlice + chunk.SliceCount).ToList();
            if (inChunk.Count == 0)
            {
                continue;
            }

            var array = await reader.ReadChunkAsync(chunk, cancellationToken).ConfigureAwait(false);
            foreach (var index in inChunk)
            {
                var offset = (index - chunk.FirstSlice) * plane;
                if (manifest.Kind == TileKinds.Hu)
                {
                    var hu = MemoryMarshal.Cast<byte, short>(array.Data.AsSpan()).Slice(offset, plane).ToArray();
                    slices.Add(new TileSlice(index, LungPreprocessor.WindowHu(hu, manifest.Columns, manifest.Rows, window), hu));
                }
                else
                {
                    var unit = MemoryMarshal.Cast<byte, float>(array.Data.AsSpan()).Slice(offset, plane).ToArray();
                    slices.Add(new TileSlice(index, new GreyImage(manifest.Columns, manifest.Rows, unit), null));
                }
            }
        }

        if (slices.Count != wanted.Count)
        {
            throw new Imaging.ImageFormatException($"the tile manifest under {manifest.SeriesInstanceUid ?? "the prefix"} lists chunks that do not cover slices {string.Join(", ", wanted.Except(slices.Select(s => s.SliceIndex)))}");
        }

        return slices;
    }
}
