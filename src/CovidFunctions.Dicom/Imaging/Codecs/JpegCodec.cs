using System.Buffers.Binary;
using JpegLibrary;

namespace CovidFunctions.Dicom.Imaging.Codecs;

/// <summary>
/// The ISO 10918 (JPEG) family: baseline 8-bit (process 1), extended 12-bit (processes 2 and 4), the retired
/// non-hierarchical progressive processes, and lossless processes 14 / SV1. DCT processes decode through JpegLibrary
/// (MIT); lossless frames decode through <see cref="JpegLosslessDecoder"/>, which keeps predictions modulo 2^P.
/// Colour frames that the DICOM header or an Adobe APP14 marker says are YCbCr come back as RGB.
/// </summary>
public sealed class JpegCodec : IPixelCodec
{
    private static readonly string[] Uids =
    [
        TransferSyntaxNames.JpegBaseline8Bit,
        TransferSyntaxNames.JpegExtended12Bit,
        TransferSyntaxNames.JpegExtended35Retired,
        TransferSyntaxNames.JpegSpectralSelection68Retired,
        TransferSyntaxNames.JpegSpectralSelection79Retired,
        TransferSyntaxNames.JpegFullProgression1012Retired,
        TransferSyntaxNames.JpegFullProgression1113Retired,
        TransferSyntaxNames.JpegLossless,
        TransferSyntaxNames.JpegLossless15Retired,
        TransferSyntaxNames.JpegLosslessSV1,
    ];

    private readonly string[] _uids;

    /// <summary>One codec for every JPEG syntax; errors name the baseline syntax.</summary>
    public JpegCodec()
        : this(Uids)
    {
    }

    private JpegCodec(string[] uids) => _uids = uids;

    /// <summary>The JPEG syntaxes this codec decodes.</summary>
    public static IReadOnlyList<string> SupportedUids => Uids;

    public IReadOnlyCollection<string> TransferSyntaxUids => _uids;

    /// <summary>A codec registered for one syntax, so that its error messages name the syntax the frame came in.</summary>
    public static JpegCodec ForSyntax(string transferSyntaxUid)
    {
        if (!Uids.Contains(transferSyntaxUid, StringComparer.Ordinal))
        {
            throw new ArgumentException($"{transferSyntaxUid} is not a JPEG transfer syntax", nameof(transferSyntaxUid));
        }

        return new([transferSyntaxUid]);
    }

    public DecodedFrame Decode(ReadOnlySpan<byte> encodedFrame, PixelFormat format)
    {
        var uid = _uids[0];
        var geometry = FrameGeometry.From(format, uid);
        if (geometry.BytesPerSample is 0 or > 2)
        {
            throw CodecErrors.Corrupt(uid, $"Bits Allocated {format.BitsAllocated}: JPEG samples are 8 or 16 bits wide");
        }

        var info = JpegStreamInfo.Parse(encodedFrame, uid);
        Validate(info, format, uid);
        if (info.IsLossless)
        {
            return JpegLosslessDecoder.Decode(encodedFrame, info, format, geometry, uid);
        }

        return DecodeDct(encodedFrame, info, format, geometry, uid);
    }

    private static void Validate(JpegStreamInfo info, PixelFormat format, string uid)
    {
        if (info.StartOfFrame is 5 or 6 or 7 or 13 or 14 or 15)
        {
            throw CodecErrors.Unsupported(uid, $"hierarchical JPEG (SOF{info.StartOfFrame}) is not supported");
        }

        if (info.StartOfFrame == 11)
        {
            throw CodecErrors.Unsupported(uid, "arithmetic-coded lossless JPEG (SOF11) is not supported");
        }

        if (info.Width != format.Columns || info.Height != format.Rows)
        {
            throw CodecErrors.Corrupt(uid, $"JPEG frame is {info.Width}x{info.Height}, the DICOM header says {format.Columns}x{format.Rows}");
        }

        if (info.ComponentCount != format.SamplesPerPixel)
        {
            throw CodecErrors.Corrupt(uid, $"JPEG frame has {info.ComponentCount} components, Samples per Pixel is {format.SamplesPerPixel}");
        }

        if (info.Precision < 2 || info.Precision > 16 || info.Precision > format.BitsAllocated)
        {
            throw CodecErrors.Corrupt(uid, $"JPEG precision {info.Precision} does not fit Bits Allocated {format.BitsAllocated}");
        }
    }

    private static DecodedFrame DecodeDct(ReadOnlySpan<byte> encodedFrame, JpegStreamInfo info, PixelFormat format, FrameGeometry geometry, string uid)
    {
        var planes = new short[info.ComponentCount][];
        for (var c = 0; c < planes.Length; c++)
        {
            planes[c] = new short[geometry.PixelCount];
        }

        try
        {
            var decoder = new JpegDecoder();
            decoder.SetInput(encodedFrame.ToArray());
            decoder.Identify();
            decoder.SetOutputWriter(new PlaneWriter(planes, info.Width, info.Height));
            decoder.Decode();
        }
        catch (Exception ex) when (ex is InvalidDataException or InvalidOperationException or ArgumentException or IndexOutOfRangeException
            or NotSupportedException or DivideByZeroException or OverflowException or EndOfStreamException)
        {
            throw CodecErrors.Corrupt(uid, "JPEG decode failed", ex);
        }

        // JpegLibrary upsamples subsampled chroma by replication; redo 2x1 and 2x2 with libjpeg's triangle filter
        // ("fancy upsampling", the IJG default that dcmtk, GDCM and Pillow decode with).
        for (var c = 0; c < planes.Length; c++)
        {
            var (sx, sy) = info.SubsamplingOf(c);
            if (sx == 2 && sy is 1 or 2)
            {
                FancyUpsample(planes[c], info.Width, info.Height, sy);
            }
        }

        var toRgb = info.ComponentCount == 3 && IsYCbCr(info, format.PhotometricInterpretation);
        var maxValue = (1 << info.Precision) - 1;
        var output = new byte[geometry.FrameBytes];
        if (toRgb)
        {
            YCbCrToRgb(planes, info.Precision);
        }

        Interleave(planes, output, geometry, maxValue);
        return new DecodedFrame(output, toRgb ? "RGB" : format.PhotometricInterpretation, 0);
    }

    /// <summary>
    /// A three-component DCT frame holds YCbCr when the DICOM header says YBR_FULL / YBR_FULL_422 (the usual case) or an
    /// Adobe APP14 marker declares transform 1; an APP14 transform 0 or an RGB header leaves the samples as they are.
    /// </summary>
    private static bool IsYCbCr(JpegStreamInfo info, string photometric) => info.AdobeTransform switch
    {
        0 => false,
        1 => true,
        _ => photometric.StartsWith("YBR_FULL", StringComparison.Ordinal),
    };

    /// <summary>JFIF YCbCr to RGB in libjpeg's 16-bit fixed point (jdcolor.c), so results match IJG decoders exactly.</summary>
    private static void YCbCrToRgb(short[][] planes, int precision)
    {
        const int scaleBits = 16;
        const int half = 1 << (scaleBits - 1);
        const int crToR = 91881;  // FIX(1.40200)
        const int cbToB = 116130; // FIX(1.77200)
        const int crToG = 46802;  // FIX(0.71414)
        const int cbToG = 22554;  // FIX(0.34414)
        var center = 1 << (precision - 1);
        var max = (1 << precision) - 1;
        short[] y = planes[0], cb = planes[1], cr = planes[2];
        for (var i = 0; i < y.Length; i++)
        {
            int luma = y[i], blue = cb[i] - center, red = cr[i] - center;
            y[i] = (short)Math.Clamp(luma + (((crToR * red) + half) >> scaleBits), 0, max);
            cb[i] = (short)Math.Clamp(luma + (((-cbToG * blue) + half - (crToG * red)) >> scaleBits), 0, max);
            cr[i] = (short)Math.Clamp(luma + (((cbToB * blue) + half) >> scaleBits), 0, max);
        }
    }

    /// <summary>
    /// libjpeg's h2v1 / h2v2 triangle upsampling (jdsample.c) of a chroma plane that arrives replicated at full size:
    /// the subsampled plane is read back from every second sample, then each output sample weighs its nearer input
    /// 3:1 against the neighbour (and 3:1 vertically for 2x2), edges clamped.
    /// </summary>
    private static void FancyUpsample(short[] plane, int width, int height, int factorY)
    {
        var subWidth = (width + 1) / 2;
        var subHeight = (height + factorY - 1) / factorY;
        var sub = new int[subWidth * subHeight];
        for (var y = 0; y < subHeight; y++)
        {
            for (var x = 0; x < subWidth; x++)
            {
                sub[(y * subWidth) + x] = plane[(y * factorY * width) + (2 * x)];
            }
        }

        for (var outY = 0; outY < height; outY++)
        {
            var y = outY / factorY;
            var row = y * subWidth;
            var outRow = outY * width;
            if (factorY == 1)
            {
                for (var x = 0; x < subWidth; x++)
                {
                    var three = 3 * sub[row + x];
                    var left = sub[row + Math.Max(x - 1, 0)];
                    var right = sub[row + Math.Min(x + 1, subWidth - 1)];
                    plane[outRow + (2 * x)] = (short)((three + left + 1) >> 2);
                    if ((2 * x) + 1 < width)
                    {
                        plane[outRow + (2 * x) + 1] = (short)((three + right + 2) >> 2);
                    }
                }

                continue;
            }

            // 2x2: the nearer input row counts 3, the farther (above for even output rows, below for odd) counts 1.
            var otherRow = (outY % 2 == 0 ? Math.Max(y - 1, 0) : Math.Min(y + 1, subHeight - 1)) * subWidth;
            int ColumnSum(int x) => (3 * sub[row + x]) + sub[otherRow + x];
            for (var x = 0; x < subWidth; x++)
            {
                var current = ColumnSum(x);
                var previous = ColumnSum(Math.Max(x - 1, 0));
                var next = ColumnSum(Math.Min(x + 1, subWidth - 1));
                plane[outRow + (2 * x)] = (short)(((3 * current) + previous + 8) >> 4);
                if ((2 * x) + 1 < width)
                {
                    plane[outRow + (2 * x) + 1] = (short)(((3 * current) + next + 7) >> 4);
                }
            }
        }
    }

    private static void Interleave(short[][] planes, byte[] output, FrameGeometry geometry, int maxValue)
    {
        var components = planes.Length;
        for (var c = 0; c < components; c++)
        {
            var plane = planes[c];
            if (geometry.BytesPerSample == 1)
            {
                for (int p = 0, o = c; p < plane.Length; p++, o += components)
                {
                    output[o] = (byte)Math.Clamp((int)plane[p], 0, maxValue);
                }
            }
            else
            {
                for (int p = 0, o = 2 * c; p < plane.Length; p++, o += 2 * components)
                {
                    BinaryPrimitives.WriteUInt16LittleEndian(output.AsSpan(o), (ushort)Math.Clamp((int)plane[p], 0, maxValue));
                }
            }
        }
    }

    /// <summary>Receives JpegLibrary's 8x8 output blocks (already level-shifted and upsampled) into full-size planes.</summary>
    private sealed class PlaneWriter(short[][] planes, int width, int height) : JpegBlockOutputWriter
    {
        public override void WriteBlock(ref short blockRef, int componentIndex, int x, int y)
        {
            if ((uint)componentIndex >= (uint)planes.Length || x >= width || y >= height)
            {
                return;
            }

            var plane = planes[componentIndex];
            var block = System.Runtime.InteropServices.MemoryMarshal.CreateReadOnlySpan(ref blockRef, 64);
            var writeWidth = Math.Min(width - x, 8);
            var writeHeight = Math.Min(height - y, 8);
            for (var row = 0; row < writeHeight; row++)
            {
                block.Slice(row * 8, writeWidth).CopyTo(plane.AsSpan(((y + row) * width) + x, writeWidth));
            }
        }
    }
}
