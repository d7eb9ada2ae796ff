using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace CovidFunctions.Dicom.IO;

/// <summary>Byte swapping of value words between little and big endian.</summary>
internal static class ByteSwap
{
    /// <summary>Reverses each <paramref name="unitSize"/>-byte word in place (a trailing partial word is left alone).</summary>
    public static void InPlace(Span<byte> data, int unitSize)
    {
        switch (unitSize)
        {
            case 2:
                var u16 = MemoryMarshal.Cast<byte, ushort>(data);
                BinaryPrimitives.ReverseEndianness(u16, u16);
                break;
            case 4:
                var u32 = MemoryMarshal.Cast<byte, uint>(data);
                BinaryPrimitives.ReverseEndianness(u32, u32);
                break;
            case 8:
                var u64 = MemoryMarshal.Cast<byte, ulong>(data);
                BinaryPrimitives.ReverseEndianness(u64, u64);
                break;
        }
    }

    /// <summary>Copies <paramref name="source"/> into <paramref name="destination"/> reversing each word.</summary>
    public static void Copy(ReadOnlySpan<byte> source, Span<byte> destination, int unitSize)
    {
        source.CopyTo(destination);
        InPlace(destination[..source.Length], unitSize);
    }
}
