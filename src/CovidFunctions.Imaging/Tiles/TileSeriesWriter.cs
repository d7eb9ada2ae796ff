using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;

namespace CovidFunctions.Imaging.Tiles;

/// <summary>
/// Writes a series as tiles: slices are added one at a time and flushed in chunks of <see cref="ChunkSize"/>
/// slices (<c>{prefix}/hu-00000.npy</c>, ...), so memory holds one chunk; <see cref="CompleteAsync"/> writes
/// <c>{prefix}/manifest.json</c> last, so a manifest means a complete series.
/// </summary>
public sealed class TileSeriesWriter
{
    private readonly IBlobStore _store;
    private readonly string _prefix;
    private readonly TileManifest _template;
    private readonly List<TileChunk> _chunks = [];
    private readonly int _sliceLength;
    private short[]? _huBuffer;
    private float[]? _unitBuffer;
    private int _buffered;
    private int _written;

    /// <param name="store">Where to write.</param>
    /// <param name="prefix">The series folder, e.g. <c>studies/&lt;hash&gt;/series/&lt;uid&gt;</c> (no trailing slash).</param>
    /// <param name="template">Manifest fields (geometry, UIDs, kind); chunks and slice count are filled in.</param>
    /// <param name="chunkSize">Slices per chunk file (default 16: 8 MiB of 512×512 int16).</param>
    public TileSeriesWriter(IBlobStore store, string prefix, TileManifest template, int chunkSize = 16)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(prefix);
        ArgumentNullException.ThrowIfNull(template);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(template.Rows, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(template.Columns, 1);
        _store = store;
        _prefix = prefix.TrimEnd('/');
        _template = template;
        ChunkSize = chunkSize;
        _sliceLength = template.Rows * template.Columns;
    }

    public int ChunkSize { get; }

    public int SlicesWritten => _written + _buffered;

    /// <summary>Adds the next slice of HU values (kind <c>hu</c>).</summary>
    public async Task AddSliceAsync(ReadOnlyMemory<short> hu, CancellationToken cancellationToken)
    {
        EnsureKind(TileKinds.Hu, hu.Length);
        _huBuffer ??= new short[ChunkSize * _sliceLength];
        hu.Span.CopyTo(_huBuffer.AsSpan(_buffered * _sliceLength));
        if (++_buffered == ChunkSize)
        {
            await FlushAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Adds the next slice of [0, 1] values (kind <c>unit</c>).</summary>
    public async Task AddSliceAsync(ReadOnlyMemory<float> unit, CancellationToken cancellationToken)
    {
        EnsureKind(TileKinds.Unit, unit.Length);
        _unitBuffer ??= new float[ChunkSize * _sliceLength];
        unit.Span.CopyTo(_unitBuffer.AsSpan(_buffered * _sliceLength));
        if (++_buffered == ChunkSize)
        {
            await FlushAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Flushes the last chunk and writes the manifest; returns it.</summary>
    public async Task<TileManifest> CompleteAsync(CancellationToken cancellationToken)
    {
        await FlushAsync(cancellationToken).ConfigureAwait(false);
        var manifest = _template with { SliceCount = _written, Chunks = _chunks.ToArray() };
        if (manifest.SlicePositions is { } positions && positions.Length != _written)
        {
            throw new InvalidOperationException($"The manifest lists {positions.Length} slice positions but {_written} slices were written.");
        }

        using var json = new MemoryStream();
        await JsonSerializer.SerializeAsync(json, manifest, TileManifest.JsonOptions, cancellationToken).ConfigureAwait(false);
        json.Position = 0;
        await _store.WriteAsync($"{_prefix}/{TileManifest.ManifestFileName}", json, cancellationToken).ConfigureAwait(false);
        return manifest;
    }

    private void EnsureKind(string kind, int length)
    {
        if (_template.Kind != kind)
        {
            throw new InvalidOperationException($"This series is of kind '{_template.Kind}', not '{kind}'.");
        }

        if (length != _sliceLength)
        {
            throw new ArgumentException($"A slice must hold {_template.Rows}×{_template.Columns} values, got {length}.");
        }
    }

    private async Task FlushAsync(CancellationToken cancellationToken)
    {
        if (_buffered == 0)
        {
            return;
        }

        var name = $"{(_template.Kind == TileKinds.Hu ? "hu" : "unit")}-{_written:00000}.npy";
        using var npy = new MemoryStream();
        string dtype;
        if (_template.Kind == TileKinds.Hu)
        {
            NpyFormat.Write<short>(npy, _huBuffer.AsSpan(0, _buffered * _sliceLength), _buffered, _template.Rows, _template.Columns);
            dtype = NpyFormat.DescrOf<short>();
        }
        else
        {
            NpyFormat.Write<float>(npy, _unitBuffer.AsSpan(0, _buffered * _sliceLength), _buffered, _template.Rows, _template.Columns);
            dtype = NpyFormat.DescrOf<float>();
        }

        var hash = Convert.ToHexStringLower(SHA256.HashData(npy.GetBuffer().AsSpan(0, (int)npy.Length)));
        npy.Position = 0;
        await _store.WriteAsync($"{_prefix}/{name}", npy, cancellationToken).ConfigureAwait(false);
        _chunks.Add(new TileChunk(name, _written, _buffered, dtype, hash));
        _written += _buffered;
        _buffered = 0;
    }
}

/// <summary>Reads a tiled series written by <see cref="TileSeriesWriter"/>.</summary>
public sealed class TileSeriesReader
{
    private readonly IBlobStore _store;
    private readonly string _prefix;

    private TileSeriesReader(IBlobStore store, string prefix, TileManifest manifest)
    {
        _store = store;
        _prefix = prefix;
        Manifest = manifest;
    }

    public TileManifest Manifest { get; }

    public static async Task<TileSeriesReader> OpenAsync(IBlobStore store, string prefix, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(prefix);
        prefix = prefix.TrimEnd('/');
        var path = $"{prefix}/{TileManifest.ManifestFileName}";
        TileManifest? manifest;
        await using (var stream = await store.OpenReadAsync(path, cancellationToken).ConfigureAwait(false))
        {
            try
            {
                manifest = await JsonSerializer.DeserializeAsync<TileManifest>(stream, TileManifest.JsonOptions, cancellationToken).ConfigureAwait(false);
            }
            catch (JsonException ex)
            {
                throw ImageFormatException.For(path, "tile manifest is not valid JSON: " + ex.Message, ex);
            }
        }

        if (manifest is null || manifest.Format != TileManifest.FormatName)
        {
            throw ImageFormatException.For(path, "not a covidfn-tiles manifest");
        }

        if (manifest.FormatVersion > TileManifest.CurrentFormatVersion)
        {
            throw ImageFormatException.For(path, $"tile format version {manifest.FormatVersion} is newer than this reader ({TileManifest.CurrentFormatVersion})");
        }

        return new TileSeriesReader(store, prefix, manifest);
    }

    /// <summary>Reads one chunk and checks its hash and shape; returns the array (n, rows, columns).</summary>
    public async Task<NpyArray> ReadChunkAsync(TileChunk chunk, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(chunk);
        var path = $"{_prefix}/{chunk.Path}";
        using var buffer = new MemoryStream();
        await using (var stream = await _store.OpenReadAsync(path, cancellationToken).ConfigureAwait(false))
        {
            await stream.CopyToAsync(buffer, cancellationToken).ConfigureAwait(false);
        }

        var hash = Convert.ToHexStringLower(SHA256.HashData(buffer.GetBuffer().AsSpan(0, (int)buffer.Length)));
        if (!string.Equals(hash, chunk.Sha256, StringComparison.Ordinal))
        {
            throw ImageFormatException.For(path, "tile chunk hash does not match the manifest");
        }

        buffer.Position = 0;
        var array = NpyFormat.Read(buffer, path);
        if (array.Shape is not [var n, var rows, var columns] || n != chunk.SliceCount || rows != Manifest.Rows || columns != Manifest.Columns || array.Descr != chunk.Dtype)
        {
            throw ImageFormatException.For(path, $"tile chunk shape ({string.Join(", ", array.Shape)}) {array.Descr} does not match the manifest");
        }

        return array;
    }

    /// <summary>Reads every slice as a [0, 1] image (windowed per the manifest for kind <c>hu</c>), in order.</summary>
    public async IAsyncEnumerable<Preprocessing.GreyImage> ReadImagesAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var window = new Preprocessing.WindowSettings(Manifest.WindowLevel, Manifest.WindowWidth);
        var plane = Manifest.Rows * Manifest.Columns;
        foreach (var chunk in Manifest.Chunks)
        {
            var array = await ReadChunkAsync(chunk, cancellationToken).ConfigureAwait(false);
            for (var i = 0; i < chunk.SliceCount; i++)
            {
                if (Manifest.Kind == TileKinds.Hu)
                {
                    var hu = MemoryMarshal.Cast<byte, short>(array.Data.AsSpan()).Slice(i * plane, plane);
                    yield return Preprocessing.LungPreprocessor.WindowHu(hu, Manifest.Columns, Manifest.Rows, window);
                }
                else
                {
                    var unit = MemoryMarshal.Cast<byte, float>(array.Data.AsSpan()).Slice(i * plane, plane).ToArray();
                    yield return new Preprocessing.GreyImage(Manifest.Columns, Manifest.Rows, unit);
                }
            }
        }
    }
}
