using CovidFunctions.Imaging.Volumes;

namespace CovidFunctions.Imaging.Nifti;

/// <summary>How a NIfTI volume's voxel axes were mapped onto the axial output.</summary>
/// <param name="SourceAxisForOutput">For output axes (column, row, slice), the NIfTI axis (0 = i, 1 = j, 2 = k) it comes from.</param>
/// <param name="Flipped">For output axes, whether the source axis is read backwards.</param>
/// <param name="ObliquityDegrees">The largest angle between a voxel axis and the patient axis it was assigned to (0 for an orthogonal volume).</param>
/// <param name="Source">Which NIfTI transform gave the orientation: <c>sform</c>, <c>qform</c> or <c>pixdim</c>.</param>
public sealed record NiftiReorientation(int[] SourceAxisForOutput, bool[] Flipped, double ObliquityDegrees, string Source);

/// <summary>
/// The voxel grid of a NIfTI input (its header, voxels not kept) and how it was brought to the axial output, so a
/// result computed on the axial volume can be written back onto that grid (<see cref="NiftiOrientation.ToSourceGrid"/>).
/// </summary>
public sealed record NiftiSourceGrid(NiftiHeader Header, NiftiReorientation Reorientation);

/// <summary>
/// Brings NIfTI volumes to the axial convention used across CovidFunctions and converts back.
/// </summary>
/// <remarks>
/// Output convention (the same as a DICOM axial CT stack, patient frame LPS): columns run towards the patient's
/// left (+x LPS), rows towards posterior (+y LPS), slices from feet to head (+z). NIfTI world coordinates are RAS;
/// they are converted with <c>(x, y, z)_LPS = (−x, −y, z)_RAS</c>. Each voxel axis is assigned to the patient axis it
/// is nearest to (largest absolute direction cosine, greedily), then permuted and flipped; voxels are never
/// resampled, so an oblique volume keeps its voxels and reports <see cref="NiftiReorientation.ObliquityDegrees"/>.
/// Scaling (<c>scl_slope</c>/<c>scl_inter</c>) is applied. Only the first 3-D volume of a 4-D image is used.
/// </remarks>
public static class NiftiOrientation
{
    /// <summary>Reads the image as an axial LPS volume (values scaled by scl_slope/scl_inter).</summary>
    public static AxialVolume ToAxialVolume(NiftiImage image, out NiftiReorientation reorientation)
    {
        ArgumentNullException.ThrowIfNull(image);
        var h = image.Header;
        h.RequireUsableGeometry(image.SourcePath);
        var source = h.SformCode > 0 ? "sform" : h.QformCode > 0 ? "qform" : "pixdim";
        var ras = h.Affine();

        // Direction (scaled) of each voxel axis, in LPS.
        var axes = new Vec3[3];
        for (var a = 0; a < 3; a++)
        {
            axes[a] = new Vec3(-ras[a], -ras[4 + a], ras[8 + a]);
        }

        var originLps = new Vec3(-ras[3], -ras[7], ras[11]);

        // Greedy assignment: voxel axis ↔ patient axis by the largest |cosine|.
        var patientOfVoxel = new int[3];
        var usedVoxel = new bool[3];
        var usedPatient = new bool[3];
        for (var round = 0; round < 3; round++)
        {
            double best = -1;
            int bv = 0, bp = 0;
            for (var v = 0; v < 3; v++)
            {
                if (usedVoxel[v])
                {
                    continue;
                }

                var dir = axes[v].Normalized();
                for (var p = 0; p < 3; p++)
                {
                    if (!usedPatient[p] && Math.Abs(dir[p]) > best)
                    {
                        best = Math.Abs(dir[p]);
                        bv = v;
                        bp = p;
                    }
                }
            }

            usedVoxel[bv] = true;
            usedPatient[bp] = true;
            patientOfVoxel[bv] = bp;
        }

        var sourceAxis = new int[3];
        var flipped = new bool[3];
        double obliquity = 0;
        for (var v = 0; v < 3; v++)
        {
            var p = patientOfVoxel[v];
            sourceAxis[p] = v;
            flipped[p] = axes[v][p] < 0;
            obliquity = Math.Max(obliquity, axes[v].AngleTo(Vec3.Unit(p) * (flipped[p] ? -1 : 1)));
        }

        long[] n = [h.Width, h.Height, h.Depth];
        var columns = checked((int)n[sourceAxis[0]]);
        var rows = checked((int)n[sourceAxis[1]]);
        var slices = checked((int)n[sourceAxis[2]]);
        var values = image.ToSingle();
        var output = new float[(long)columns * rows * slices];
        var (start, step) = Walk(n, sourceAxis, flipped);
        long dst = 0;
        for (var s = 0; s < slices; s++)
        {
            for (var r = 0; r < rows; r++)
            {
                var src = start + (s * step[2]) + (r * step[1]);
                for (var c = 0; c < columns; c++)
                {
                    output[dst++] = values[src];
                    src += step[0];
                }
            }
        }

        // Geometry of the output: origin is the position of source voxel at output (0,0,0).
        var origin = originLps;
        var dirs = new Vec3[3];
        var spacing = new double[3];
        for (var o = 0; o < 3; o++)
        {
            var a = sourceAxis[o];
            var axis = flipped[o] ? -axes[a] : axes[a];
            if (flipped[o])
            {
                origin += axes[a] * (n[a] - 1);
            }

            dirs[o] = axis.Normalized();
            spacing[o] = axis.Length;
        }

        var positions = Enumerable.Range(0, slices).Select(k => origin.Dot(dirs[2]) + (k * spacing[2])).ToArray();
        var geometry = new VolumeGeometry(columns, rows, slices, spacing[0], spacing[1], origin, dirs[0], dirs[1], positions);
        reorientation = new NiftiReorientation(sourceAxis, flipped, obliquity, source);
        return new AxialVolume(geometry, output);
    }

    /// <summary>Reads the image as an axial LPS volume.</summary>
    public static AxialVolume ToAxialVolume(NiftiImage image) => ToAxialVolume(image, out _);

    /// <summary>
    /// The inverse of <see cref="ToAxialVolume(NiftiImage, out NiftiReorientation)"/>: stores an axial volume (a mask
    /// computed on it) on the voxel grid of the NIfTI image it came from, so the result overlays the source voxel for
    /// voxel. The header is the source's spatial part unchanged (dim, pixdim with qfac, qform and sform codes and
    /// parameters, units, NIfTI version); the data type is <paramref name="dataType"/> (int16 or uint8, values rounded),
    /// with no scaling (scl_slope 1, scl_inter 0). A source with several volumes (t &gt; 1) gives a 3-D image: only its
    /// first volume was read. A 4-D source with t = 1 keeps dim[0] = 4, so both have the same shape.
    /// </summary>
    public static NiftiImage ToSourceGrid(AxialVolume volume, NiftiHeader source, NiftiReorientation reorientation, NiftiDataType dataType = NiftiDataType.Int16)
    {
        ArgumentNullException.ThrowIfNull(volume);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(reorientation);
        long[] n = [source.Width, source.Height, source.Depth];
        var g = volume.Geometry;
        var (columns, rows, slices) = ((int)n[reorientation.SourceAxisForOutput[0]], (int)n[reorientation.SourceAxisForOutput[1]], (int)n[reorientation.SourceAxisForOutput[2]]);
        if ((g.Columns, g.Rows, g.Slices) != (columns, rows, slices))
        {
            throw new ArgumentException(FormattableString.Invariant($"The volume is {g.Columns}×{g.Rows}×{g.Slices}; the source grid reoriented is {columns}×{rows}×{slices}."), nameof(volume));
        }

        var header = source.Clone();
        header.DataType = dataType;
        header.SclSlope = 1;
        header.SclInter = 0;
        header.CalMin = 0;
        header.CalMax = 0;
        header.IntentCode = 0;
        header.Description = string.Empty;
        header.VoxOffset = 0;
        var dims = (int)Math.Clamp(header.Dim[0], 1, 7);
        if (dims > 3 && header.Dim.AsSpan(4, dims - 3).ContainsAnyExcept(1L))
        {
            header.Dim[0] = 3;
        }

        header.Dim.AsSpan(4).Fill(1);
        if (dataType is not (NiftiDataType.Int16 or NiftiDataType.UInt8))
        {
            throw new ArgumentOutOfRangeException(nameof(dataType), dataType, "Write int16 or uint8.");
        }

        var shorts = dataType == NiftiDataType.Int16 ? new short[n[0] * n[1] * n[2]] : [];
        var bytes = dataType == NiftiDataType.UInt8 ? new byte[n[0] * n[1] * n[2]] : [];
        var voxels = volume.Voxels;
        var (start, step) = Walk(n, reorientation.SourceAxisForOutput, reorientation.Flipped);
        long dst = 0;
        for (var s = 0; s < slices; s++)
        {
            for (var r = 0; r < rows; r++)
            {
                var src = start + (s * step[2]) + (r * step[1]);
                for (var c = 0; c < columns; c++)
                {
                    var value = Math.Round(voxels[dst++], MidpointRounding.AwayFromZero);
                    if (dataType == NiftiDataType.Int16)
                    {
                        shorts[src] = (short)Math.Clamp(value, short.MinValue, short.MaxValue);
                    }
                    else
                    {
                        bytes[src] = (byte)Math.Clamp(value, byte.MinValue, byte.MaxValue);
                    }

                    src += step[0];
                }
            }
        }

        if (dataType == NiftiDataType.Int16)
        {
            bytes = new byte[shorts.Length * 2];
            Buffer.BlockCopy(shorts, 0, bytes, 0, bytes.Length);
        }

        return new NiftiImage(header, bytes);
    }

    /// <summary>
    /// How output voxel (c, r, s) maps into the first 3-D volume of a source of size <paramref name="n"/>: source index
    /// <c>start + c·step[0] + r·step[1] + s·step[2]</c>.
    /// </summary>
    private static (long Start, long[] Step) Walk(long[] n, int[] sourceAxisForOutput, bool[] flipped)
    {
        long[] stride = [1, n[0], n[0] * n[1]];
        var step = new long[3];
        long start = 0;
        for (var o = 0; o < 3; o++)
        {
            var a = sourceAxisForOutput[o];
            step[o] = flipped[o] ? -stride[a] : stride[a];
            if (flipped[o])
            {
                start += (n[a] - 1) * stride[a];
            }
        }

        return (start, step);
    }

    /// <summary>
    /// Builds a NIfTI image (float32 or int16, rounded) of an axial volume, with sform and qform (code 1, scanner)
    /// set to its geometry converted to RAS. The slice axis is <paramref name="sliceStep"/> (LPS, mm: the displacement
    /// from one slice to the next, sheared for a gantry-tilted stack; <see cref="SliceGrid.Step"/>) or, when null, the
    /// normal times the median slice spacing. The sform holds it exactly; the qform, which cannot shear, holds its
    /// component along the normal.
    /// </summary>
    public static NiftiImage FromAxialVolume(AxialVolume volume, NiftiDataType dataType = NiftiDataType.Float32, int version = 1, Vec3? sliceStep = null)
    {
        ArgumentNullException.ThrowIfNull(volume);
        var g = volume.Geometry;
        var cx = g.RowDirection * g.ColumnSpacing;
        var cy = g.ColumnDirection * g.RowSpacing;
        var cz = sliceStep ?? (g.Normal * (g.SliceSpacing > 0 ? g.SliceSpacing : 1));
        static Vec3 ToRas(Vec3 v) => new(-v.X, -v.Y, v.Z);
        Vec3[] cols = [ToRas(cx), ToRas(cy), ToRas(cz)];
        var alongNormal = g.Normal * cz.Dot(g.Normal);
        Vec3[] orthogonal = [cols[0], cols[1], ToRas(alongNormal.Length > 0 ? alongNormal : cz)];
        var o = ToRas(g.Origin);
        var header = new NiftiHeader
        {
            Version = version,
            Dim = [3, g.Columns, g.Rows, g.Slices, 1, 1, 1, 1],
            DataType = dataType,
            SformCode = 1,
            QformCode = 1,
            SRow =
            [
                cols[0].X, cols[1].X, cols[2].X, o.X,
                cols[0].Y, cols[1].Y, cols[2].Y, o.Y,
                cols[0].Z, cols[1].Z, cols[2].Z, o.Z,
            ],
            XyztUnits = 2,
        };
        SetQuaternion(header, orthogonal, o);
        byte[] data;
        switch (dataType)
        {
            case NiftiDataType.Float32:
                data = new byte[volume.Voxels.Length * 4];
                Buffer.BlockCopy(volume.Voxels, 0, data, 0, data.Length);
                break;
            case NiftiDataType.Int16:
                var shorts = new short[volume.Voxels.Length];
                for (var i = 0; i < shorts.Length; i++)
                {
                    shorts[i] = (short)Math.Clamp(Math.Round(volume.Voxels[i], MidpointRounding.AwayFromZero), short.MinValue, short.MaxValue);
                }

                data = new byte[shorts.Length * 2];
                Buffer.BlockCopy(shorts, 0, data, 0, data.Length);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dataType), dataType, "Write float32 or int16.");
        }

        return new NiftiImage(header, data);
    }

    /// <summary>Sets pixdim, qfac and the quaternion from a (near-)orthogonal affine's columns (nifti_mat44_to_quatern).</summary>
    private static void SetQuaternion(NiftiHeader h, Vec3[] cols, Vec3 origin)
    {
        double dx = cols[0].Length, dy = cols[1].Length, dz = cols[2].Length;
        var c0 = cols[0].Normalized();
        var c1 = cols[1].Normalized();
        var c2 = cols[2].Normalized();
        var det = c0.Dot(c1.Cross(c2));
        var qfac = 1.0;
        if (det < 0)
        {
            qfac = -1;
            c2 = -c2;
        }

        double r11 = c0.X, r12 = c1.X, r13 = c2.X;
        double r21 = c0.Y, r22 = c1.Y, r23 = c2.Y;
        double r31 = c0.Z, r32 = c1.Z, r33 = c2.Z;
        double a = r11 + r22 + r33 + 1, b, c, d;
        if (a > 0.5)
        {
            a = 0.5 * Math.Sqrt(a);
            b = 0.25 * (r32 - r23) / a;
            c = 0.25 * (r13 - r31) / a;
            d = 0.25 * (r21 - r12) / a;
        }
        else
        {
            var xd = 1.0 + r11 - (r22 + r33);
            var yd = 1.0 + r22 - (r11 + r33);
            var zd = 1.0 + r33 - (r11 + r22);
            if (xd > 1.0)
            {
                b = 0.5 * Math.Sqrt(xd);
                c = 0.25 * (r12 + r21) / b;
                d = 0.25 * (r13 + r31) / b;
                a = 0.25 * (r32 - r23) / b;
            }
            else if (yd > 1.0)
            {
                c = 0.5 * Math.Sqrt(yd);
                b = 0.25 * (r12 + r21) / c;
                d = 0.25 * (r23 + r32) / c;
                a = 0.25 * (r13 - r31) / c;
            }
            else
            {
                d = 0.5 * Math.Sqrt(zd);
                b = 0.25 * (r13 + r31) / d;
                c = 0.25 * (r23 + r32) / d;
                a = 0.25 * (r21 - r12) / d;
            }

            if (a < 0)
            {
                b = -b;
                c = -c;
                d = -d;
            }
        }

        h.QuaternB = b;
        h.QuaternC = c;
        h.QuaternD = d;
        h.QOffsetX = origin.X;
        h.QOffsetY = origin.Y;
        h.QOffsetZ = origin.Z;
        h.PixDim[0] = qfac;
        h.PixDim[1] = dx;
        h.PixDim[2] = dy;
        h.PixDim[3] = dz;
    }
}
