using System.Text.Json;
using System.Text.Json.Serialization;

namespace CovidFunctions.Imaging.Tiles;

/// <summary>
/// The JSON manifest of one tiled series (docs/tiles.md): geometry, window, preprocessing id, de-identified source
/// UIDs and the list of chunk files. WARNING: this is a stored format read by later pipeline stages and by
/// in-flight orchestrations; add fields, never rename or re-purpose them, and bump <see cref="FormatVersion"/> on a
/// breaking change.
/// </summary>
public sealed record TileManifest
{
    public const string FormatName = "covidfn-tiles";
    public const int CurrentFormatVersion = 1;
    public const string ManifestFileName = "manifest.json";

    public string Format { get; init; } = FormatName;

    public int FormatVersion { get; init; } = CurrentFormatVersion;

    /// <summary>The preprocessing the consumer must apply, <c>lung2d-v1</c>.</summary>
    public string PreprocessingId { get; init; } = Preprocessing.LungPreprocessor.PreprocessingId;

    /// <summary><c>hu</c>: int16 Hounsfield units; <c>unit</c>: float32 values already in [0, 1] (2-D research images).</summary>
    public string Kind { get; init; } = TileKinds.Hu;

    public double WindowLevel { get; init; } = Preprocessing.WindowSettings.Lung.Level;

    public double WindowWidth { get; init; } = Preprocessing.WindowSettings.Lung.Width;

    public int InputSize { get; init; } = Preprocessing.LungPreprocessor.InputSize;

    public int Rows { get; init; }

    public int Columns { get; init; }

    public int SliceCount { get; init; }

    /// <summary>Row spacing then column spacing (mm), as DICOM PixelSpacing; null when unknown.</summary>
    public double[]? PixelSpacing { get; init; }

    public double? SliceSpacing { get; init; }

    /// <summary>The patient frame of the vectors below: <c>LPS</c>.</summary>
    public string Frame { get; init; } = "LPS";

    public double[]? Origin { get; init; }

    public double[]? RowDirection { get; init; }

    public double[]? ColumnDirection { get; init; }

    /// <summary>Slice positions (mm) along the normal, one per slice, ascending.</summary>
    public double[]? SlicePositions { get; init; }

    /// <summary>Study UID after de-identification (the caller's responsibility), or null.</summary>
    public string? StudyInstanceUid { get; init; }

    public string? SeriesInstanceUid { get; init; }

    /// <summary>Per-slice SOP Instance UIDs after de-identification; for kind <c>unit</c> the caller's mapping of each file name.</summary>
    public string[]? SliceIds { get; init; }

    /// <summary>Free-form notes from assembly: selection reason, geometry warnings.</summary>
    public string[]? Notes { get; init; }

    public IReadOnlyList<TileChunk> Chunks { get; init; } = [];

    public static JsonSerializerOptions JsonOptions { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        WriteIndented = true,
    };
}

/// <summary>One chunk file: slices <c>[FirstSlice, FirstSlice + SliceCount)</c> as an npy array (n, rows, columns).</summary>
public sealed record TileChunk(string Path, int FirstSlice, int SliceCount, string Dtype, string Sha256);

/// <summary>Values of <see cref="TileManifest.Kind"/>.</summary>
public static class TileKinds
{
    public const string Hu = "hu";
    public const string Unit = "unit";
}
