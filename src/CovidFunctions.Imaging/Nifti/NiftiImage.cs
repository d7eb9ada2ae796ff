using System.Runtime.InteropServices;

namespace CovidFunctions.Imaging.Nifti;

/// <summary>A NIfTI image: its header and its voxels as raw little-endian bytes in file order (i fastest).</summary>
public sealed class NiftiImage
{
    public NiftiImage(NiftiHeader header, byte[] data)
    {
        ArgumentNullException.ThrowIfNull(header);
        ArgumentNullException.ThrowIfNull(data);
        if (data.LongLength != header.VoxelCount * NiftiHeader.BytesPerVoxel(header.DataType))
        {
            throw new ArgumentException("Data length does not match the header's dimensions and data type.", nameof(data));
        }

        Header = header;
        Data = data;
    }

    public NiftiHeader Header { get; }

    public byte[] Data { get; }

    /// <summary>Where the image was read from, for messages.</summary>
    public string? SourcePath { get; init; }

    /// <summary>The stored values as float32, with <c>scl_slope</c>/<c>scl_inter</c> applied when present and asked for.</summary>
    public float[] ToSingle(bool applyScaling = true)
    {
        var n = checked((int)Header.VoxelCount);
        var result = new float[n];
        var bytes = Data.AsSpan();
        switch (Header.DataType)
        {
            case NiftiDataType.UInt8:
                for (var i = 0; i < n; i++)
                {
                    result[i] = bytes[i];
                }

                break;
            case NiftiDataType.Int8:
                for (var i = 0; i < n; i++)
                {
                    result[i] = (sbyte)bytes[i];
                }

                break;
            case NiftiDataType.Int16:
                Convert(MemoryMarshal.Cast<byte, short>(bytes), result);
                break;
            case NiftiDataType.UInt16:
                Convert(MemoryMarshal.Cast<byte, ushort>(bytes), result);
                break;
            case NiftiDataType.Int32:
                Convert(MemoryMarshal.Cast<byte, int>(bytes), result);
                break;
            case NiftiDataType.UInt32:
                Convert(MemoryMarshal.Cast<byte, uint>(bytes), result);
                break;
            case NiftiDataType.Float32:
                MemoryMarshal.Cast<byte, float>(bytes).CopyTo(result);
                break;
            case NiftiDataType.Float64:
                var doubles = MemoryMarshal.Cast<byte, double>(bytes);
                for (var i = 0; i < n; i++)
                {
                    result[i] = (float)doubles[i];
                }

                break;
            default:
                throw new ImageFormatException($"NIfTI data type {Header.DataType} cannot be converted") { FilePath = SourcePath, Reason = "nifti-datatype" };
        }

        if (applyScaling && Header.HasScaling)
        {
            var slope = Header.SclSlope;
            var inter = Header.SclInter;
            for (var i = 0; i < n; i++)
            {
                result[i] = (float)((result[i] * slope) + inter);
            }
        }

        return result;
    }

    private static void Convert<T>(ReadOnlySpan<T> source, Span<float> destination)
        where T : unmanaged, System.Numerics.INumberBase<T>
    {
        for (var i = 0; i < destination.Length; i++)
        {
            destination[i] = float.CreateTruncating(source[i]);
        }
    }
}
