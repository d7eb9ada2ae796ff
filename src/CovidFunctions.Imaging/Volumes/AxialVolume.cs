namespace CovidFunctions.Imaging.Volumes;

/// <summary>
/// Geometry of an axial stack in the DICOM patient frame (LPS: +x to the patient's left, +y posterior, +z head).
/// Voxel (column c, row r, slice k) lies at <c>Origin + RowDirection·c·ColumnSpacing + ColumnDirection·r·RowSpacing
/// + Normal·(SlicePositions[k] − SlicePositions[0])</c>, DICOM's convention: <see cref="RowDirection"/> is the direction
/// along a row (increasing column), <see cref="ColumnDirection"/> along a column (increasing row).
/// </summary>
public sealed record VolumeGeometry(
    int Columns,
    int Rows,
    int Slices,
    double ColumnSpacing,
    double RowSpacing,
    Vec3 Origin,
    Vec3 RowDirection,
    Vec3 ColumnDirection,
    IReadOnlyList<double> SlicePositions)
{
    /// <summary>The slice normal, <c>RowDirection × ColumnDirection</c>.</summary>
    public Vec3 Normal => RowDirection.Cross(ColumnDirection).Normalized();

    /// <summary>The median distance between neighbouring slice positions (0 for one slice).</summary>
    public double SliceSpacing
    {
        get
        {
            if (SlicePositions.Count < 2)
            {
                return 0;
            }

            var gaps = SlicePositions.Zip(SlicePositions.Skip(1), (a, b) => Math.Abs(b - a)).Order().ToArray();
            return gaps[gaps.Length / 2];
        }
    }

    /// <summary>The patient-frame position (LPS, mm) of a voxel.</summary>
    public Vec3 PositionOf(double column, double row, int slice) =>
        Origin + (RowDirection * (column * ColumnSpacing)) + (ColumnDirection * (row * RowSpacing)) + (Normal * (SlicePositions[slice] - SlicePositions[0]));
}

/// <summary>A voxel volume held in memory, slices contiguous (<c>Voxels[(k·Rows + r)·Columns + c]</c>).</summary>
public sealed class AxialVolume
{
    public AxialVolume(VolumeGeometry geometry, float[] voxels)
    {
        ArgumentNullException.ThrowIfNull(geometry);
        ArgumentNullException.ThrowIfNull(voxels);
        if (voxels.LongLength != (long)geometry.Columns * geometry.Rows * geometry.Slices)
        {
            throw new ArgumentException("Voxel count does not match the geometry.", nameof(voxels));
        }

        Geometry = geometry;
        Voxels = voxels;
    }

    public VolumeGeometry Geometry { get; }

    public float[] Voxels { get; }

    public int SliceLength => Geometry.Columns * Geometry.Rows;

    public Span<float> Slice(int k) => Voxels.AsSpan(k * SliceLength, SliceLength);

    public float this[int slice, int row, int column] => Voxels[(((slice * Geometry.Rows) + row) * Geometry.Columns) + column];
}
