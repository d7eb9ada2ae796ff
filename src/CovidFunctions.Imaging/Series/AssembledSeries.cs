using System.Collections.Concurrent;
using CovidFunctions.Dicom;
using CovidFunctions.Dicom.Imaging;
using CovidFunctions.Imaging.Nifti;
using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.Imaging.Volumes;

namespace CovidFunctions.Imaging.Series;

/// <summary>
/// The chosen series, ordered feet to head, with its geometry and the assembly report. Pixels are decoded one slice
/// at a time (<see cref="ReadHu"/>), so a study never needs to be in memory whole. Dispose to close an archive input.
/// Slices may be read from several threads.
/// </summary>
/// <remarks>
/// A series of 2-D images (<see cref="ValueKind"/> <see cref="Tiles.TileKinds.Unit"/>, <see cref="AssemblyReport.InputKind"/>
/// <c>images</c>) holds already-windowed values in [0, 1] and no Hounsfield units: read it with <see cref="ReadUnit"/>
/// or <see cref="ReadWindowed"/> (which then ignores the window); <see cref="ReadHu"/> refuses it. Its slices are in
/// natural file-name order and its <see cref="Geometry"/> is in pixel and slice-index units (spacing 1, positions
/// 0, 1, 2, ...), not millimetres.
/// </remarks>
public sealed class AssembledSeries : IDisposable
{
    private readonly SliceSources? _sources;
    private readonly AxialVolume? _volume;
    private readonly bool _flipRows;
    private readonly bool _flipColumns;
    private readonly short _paddingHu;
    private readonly ConcurrentDictionary<int, DicomFile> _multiFrameCache = new();
    private readonly HashSet<int> _multiFrameSources = [];
    private readonly bool _unitImages;

    internal AssembledSeries(SliceSources sources, IReadOnlyList<SliceInfo> slices, VolumeGeometry geometry, AssemblyReport report, bool flipRows, bool flipColumns, SeriesAssemblyOptions options)
    {
        _sources = sources;
        Slices = slices;
        Geometry = geometry;
        Report = report;
        _flipRows = flipRows;
        _flipColumns = flipColumns;
        _paddingHu = options.PaddingHu;
        _multiFrameSources = slices.GroupBy(s => s.SourceIndex).Where(g => g.Count() > 1).Select(g => g.Key).ToHashSet();
    }

    private AssembledSeries(AxialVolume volume, AssemblyReport report, NiftiSourceGrid niftiSource)
    {
        _volume = volume;
        Geometry = volume.Geometry;
        Report = report;
        Slices = [];
        NiftiSource = niftiSource;
    }

    private AssembledSeries(SliceSources sources, IReadOnlyList<SliceInfo> slices, VolumeGeometry geometry, AssemblyReport report)
    {
        _sources = sources;
        _unitImages = true;
        Slices = slices;
        Geometry = geometry;
        Report = report;
    }

    public VolumeGeometry Geometry { get; }

    /// <summary>
    /// What a slice holds: <see cref="Tiles.TileKinds.Hu"/> (CT in Hounsfield units: DICOM, NIfTI) or
    /// <see cref="Tiles.TileKinds.Unit"/> (2-D images already in [0, 1]); the tiles are written with this kind.
    /// </summary>
    public string ValueKind => _unitImages ? Tiles.TileKinds.Unit : Tiles.TileKinds.Hu;

    public AssemblyReport Report { get; }

    /// <summary>
    /// For a NIfTI input, its voxel grid and how it was reoriented to <see cref="Geometry"/>: write results that must
    /// overlay the input voxel for voxel with <see cref="NiftiOrientation.ToSourceGrid"/>. Null for DICOM and 2-D images.
    /// </summary>
    public NiftiSourceGrid? NiftiSource { get; }

    /// <summary>The slices in output order (empty for a NIfTI input; for 2-D images one per file, UIDs empty).</summary>
    public IReadOnlyList<SliceInfo> Slices { get; }

    public int SliceCount => Geometry.Slices;

    public int Rows => Geometry.Rows;

    public int Columns => Geometry.Columns;

    /// <summary>Slice <paramref name="index"/> (feet to head) in HU as float32, row-major in the output orientation.</summary>
    public float[] ReadHu(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, SliceCount);
        if (_unitImages)
        {
            throw new InvalidOperationException("This series is made of 2-D images that are already windowed to [0, 1]; they hold no Hounsfield units (use ReadUnit or ReadWindowed).");
        }

        if (_volume is not null)
        {
            return _volume.Slice(index).ToArray();
        }

        var slice = Slices[index];
        var plane = Rows * Columns;
        var hu = new float[plane];
        try
        {
            var pixels = DicomPixelData.Create(LoadFile(slice));
            var f = pixels.Format;
            if (f.SamplesPerPixel == 1 && f.BitsAllocated == 16 && f.BitsStored <= 16 && !pixels.IsFloat)
            {
                // Fast path (nearly every CT): 16-bit samples straight from the frame bytes.
                ReadOnlyMemory<byte> bytes = pixels.IsEncapsulated ? pixels.DecodeFrame(slice.FrameIndex).Data : pixels.GetEncodedFrame(slice.FrameIndex);
                var raw = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(bytes.Span);
                if (raw.Length < plane)
                {
                    throw ImageFormatException.For(slice.SourceName, $"frame holds {raw.Length} samples, expected {plane}");
                }

                var stored = new int[plane];
                var shift = f.HighBit + 1 - f.BitsStored;
                var mask = (1 << f.BitsStored) - 1;
                var signBit = 1 << (f.BitsStored - 1);
                for (var i = 0; i < plane; i++)
                {
                    var v = (raw[i] >> shift) & mask;
                    stored[i] = f.IsSigned && (v & signBit) != 0 ? v - (mask + 1) : v;
                }

                Convert(slice, stored, hu);
            }
            else
            {
                var samples = pixels.GetFrameSamples(slice.FrameIndex);
                if (samples.Length < plane)
                {
                    throw ImageFormatException.For(slice.SourceName, $"frame holds {samples.Length} samples, expected {plane}");
                }

                Convert(slice, samples, hu);
            }
        }
        catch (DicomException ex)
        {
            throw ImageFormatException.For(slice.SourceName, "pixel data cannot be decoded: " + ex.Message, ex);
        }

        return hu;
    }

    /// <summary>Slice <paramref name="index"/> in HU rounded (half away from zero) and clamped to int16.</summary>
    public short[] ReadHuInt16(int index)
    {
        var hu = ReadHu(index);
        var result = new short[hu.Length];
        for (var i = 0; i < hu.Length; i++)
        {
            result[i] = (short)Math.Clamp(MathF.Round(hu[i], MidpointRounding.AwayFromZero), short.MinValue, short.MaxValue);
        }

        return result;
    }

    /// <summary>
    /// Slice <paramref name="index"/> windowed to [0, 1] (step 1 of lung2d-v1). For 2-D images the stored values are
    /// returned as they are and <paramref name="window"/> is not used (they were windowed before they were saved).
    /// </summary>
    public GreyImage ReadWindowed(int index, WindowSettings? window = null) =>
        _unitImages ? ReadUnit(index) : LungPreprocessor.WindowHu(ReadHu(index), Columns, Rows, window);

    /// <summary>
    /// Slice <paramref name="index"/> of a 2-D image series, decoded by <see cref="ImageLoader"/> into [0, 1] (grey
    /// <c>g/255</c>, colour as luma). Throws <see cref="InvalidOperationException"/> for a CT series.
    /// </summary>
    public GreyImage ReadUnit(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, SliceCount);
        if (!_unitImages)
        {
            throw new InvalidOperationException("This series holds Hounsfield units, not [0, 1] images (use ReadHu or ReadWindowed).");
        }

        var slice = Slices[index];
        byte[] bytes;
        try
        {
            bytes = _sources!.ReadAllBytes(slice.SourceIndex);
        }
        catch (IOException ex)
        {
            throw ImageFormatException.For(slice.SourceName, "cannot read the file: " + ex.Message, ex);
        }

        var image = ImageLoader.Decode(bytes, slice.SourceName);
        if (image.Width != Columns || image.Height != Rows)
        {
            throw ImageFormatException.For(slice.SourceName, $"image is {image.Width}×{image.Height}, but the series is {Columns}×{Rows} (did the file change?)");
        }

        return image;
    }

    public void Dispose() => _sources?.Dispose();

    /// <summary>HU below which a voxel is air or aerated lung.</summary>
    internal const float AirOrLungHu = -500f;

    /// <summary>
    /// The least share of voxels at or below <see cref="AirOrLungHu"/> a NIfTI volume must have to be taken as CT in
    /// Hounsfield units. A chest CT has 20–60 % (air around the body, the lungs); a label mask, an MR or PET volume,
    /// or CT stored with an offset but no scl_slope/scl_inter has none.
    /// </summary>
    internal const double MinAirOrLungShare = 0.005;

    internal static AssembledSeries FromNifti(string path)
    {
        var image = NiftiFile.Read(path);
        var volume = NiftiOrientation.ToAxialVolume(image, out var how);
        RequireHounsfieldUnits(volume, path);
        var g = volume.Geometry;
        var issues = new List<GeometryIssue>();
        var dims = (int)Math.Clamp(image.Header.Dim[0], 1, 7);
        var volumes = image.Header.Dim.Skip(4).Take(Math.Max(0, dims - 3)).Aggregate(1L, (a, b) => a * Math.Max(1, b));
        if (volumes > 1)
        {
            issues.Add(new GeometryIssue("4-d", FormattableString.Invariant($"the image holds {volumes} volumes (dim {string.Join('×', image.Header.Dim.Skip(1).Take(dims))}); only the first is screened")));
        }

        if (how.ObliquityDegrees > 1)
        {
            issues.Add(new GeometryIssue("oblique", FormattableString.Invariant($"volume axes are oblique by {how.ObliquityDegrees:0.0}° (not resampled)")));
        }

        var summary = new SeriesSummary(string.Empty, string.Empty, null, Path.GetFileName(path), "CT", "NIFTI", null, g.SliceSpacing, g.Slices, "axial", true, null);
        var reason = $"NIfTI volume {Path.GetFileName(path)}: orientation from the {how.Source}, axes (i, j, k) → (column, row, slice) = ({string.Join(", ", how.SourceAxisForOutput.Select((a, o) => "ijk"[a] + (how.Flipped[o] ? " flipped" : string.Empty)))})";
        return new AssembledSeries(volume, new AssemblyReport(summary, reason, [], issues, []) { InputKind = AssemblyInputKinds.Nifti }, new NiftiSourceGrid(image.Header.Clone(), how));
    }

    /// <summary>
    /// NIfTI says nothing about modality or units, so a volume is screened only if it looks like CT in HU: enough air
    /// or lung (see <see cref="MinAirOrLungShare"/>). Anything else would be screened as if it were CT and get a
    /// meaningless diagnosis; it is refused with the evidence instead.
    /// </summary>
    private static void RequireHounsfieldUnits(AxialVolume volume, string path)
    {
        var voxels = volume.Voxels;
        long low = 0, nonFinite = 0, firstNonFinite = -1;
        float min = float.PositiveInfinity, max = float.NegativeInfinity;
        for (var i = 0; i < voxels.Length; i++)
        {
            var v = voxels[i];
            if (!float.IsFinite(v))
            {
                nonFinite++;
                firstNonFinite = firstNonFinite < 0 ? i : firstNonFinite;
                continue;
            }

            if (v <= AirOrLungHu)
            {
                low++;
            }

            min = Math.Min(min, v);
            max = Math.Max(max, v);
        }

        // A float volume can hold NaN or ±Inf (some tools fill outside the field of view with NaN). A CT holds finite HU:
        // windowing keeps NaN, a cast to int16 tiles turns it into 0 HU (water), so it is refused here, for the CLI and
        // ingest alike, before anything is screened.
        if (nonFinite > 0)
        {
            var plane = (long)volume.Geometry.Rows * volume.Geometry.Columns;
            var slice = firstNonFinite / plane;
            var within = firstNonFinite % plane;
            throw new SeriesAssemblyException(FormattableString.Invariant(
                $"NIfTI volume {Path.GetFileName(path)} holds {nonFinite} non-finite voxel(s) (NaN or ±Inf), the first on slice {slice + 1} of {volume.Geometry.Slices} (feet to head), row {within / volume.Geometry.Columns}, column {within % volume.Geometry.Columns}; a CT volume holds finite Hounsfield units"))
            {
                FilePath = path,
                Reason = "non-finite",
            };
        }

        var share = voxels.Length == 0 ? 0 : (double)low / voxels.Length;
        if (share < MinAirOrLungShare)
        {
            throw new SeriesAssemblyException(FormattableString.Invariant(
                $"NIfTI volume {Path.GetFileName(path)} does not hold CT in Hounsfield units: its values run from {min:0.###} to {max:0.###} and {share:0.##%} of the voxels are at or below {AirOrLungHu:0} HU, where a chest CT has air and lung in {MinAirOrLungShare:0.#%} or more. A label mask, an MR or PET volume, or CT stored with an offset but without scl_slope/scl_inter looks like this."))
            {
                FilePath = path,
                Reason = "not-hounsfield",
            };
        }
    }

    internal static AssembledSeries FromImages(SliceSources sources, IReadOnlyList<SliceInfo> slices, AssemblyReport report)
    {
        var first = slices[0];
        var geometry = new VolumeGeometry(first.Columns, first.Rows, slices.Count, 1, 1, new Vec3(0, 0, 0), new Vec3(1, 0, 0), new Vec3(0, 1, 0), Enumerable.Range(0, slices.Count).Select(k => (double)k).ToArray());
        return new AssembledSeries(sources, slices, geometry, report);
    }

    /// <summary>
    /// Stored value → HU (padding → air) with the in-plane flips, into <paramref name="hu"/>. A Rescale Slope or
    /// Intercept that is not a finite number (DS text "NaN", "1e400") gives non-finite HU: refused here, where every HU
    /// of a DICOM series is made (the CLI and ingest tiling alike), as NIfTI volumes are refused when assembled.
    /// </summary>
    private void Convert(SliceInfo slice, int[] stored, float[] hu)
    {
        var slope = slice.RescaleSlope;
        var intercept = slice.RescaleIntercept;
        var hasPadding = slice.PaddingValue is not null;
        var padLow = slice.PaddingValue ?? 0;
        var padHigh = slice.PaddingRangeLimit ?? padLow;
        if (padHigh < padLow)
        {
            (padLow, padHigh) = (padHigh, padLow);
        }

        var finite = true;
        for (var r = 0; r < Rows; r++)
        {
            var srcRow = _flipRows ? Rows - 1 - r : r;
            for (var c = 0; c < Columns; c++)
            {
                var srcCol = _flipColumns ? Columns - 1 - c : c;
                var value = stored[(srcRow * Columns) + srcCol];
                var v = hasPadding && value >= padLow && value <= padHigh
                    ? _paddingHu
                    : (float)((value * slope) + intercept);
                finite &= float.IsFinite(v);
                hu[(r * Columns) + c] = v;
            }
        }

        if (!finite)
        {
            throw ImageFormatException.For(slice.SourceName, FormattableString.Invariant(
                $"Rescale Slope {slice.RescaleSlope} and Intercept {slice.RescaleIntercept} give non-finite values (NaN or ±Inf); a CT slice holds finite Hounsfield units"));
        }
    }

    private DicomFile LoadFile(SliceInfo slice)
    {
        var sources = _sources!;
        if (!_multiFrameSources.Contains(slice.SourceIndex))
        {
            return sources.ReadFull(slice.SourceIndex);
        }

        // A multi-frame file: read once, keep while its frames are read.
        return _multiFrameCache.GetOrAdd(slice.SourceIndex, sources.ReadFull);
    }
}
