using System.Buffers.Binary;

namespace CovidFunctions.Dicom.Imaging.Codecs;

/// <summary>
/// JPEG-LS lossless and near-lossless through the system CharLS 2.x library. CharLS writes 8-bit samples as bytes and
/// 9–16-bit samples as 16-bit words; frames coded without interleave come back planar and are interleaved here, so the
/// result is always Planar Configuration 0.
/// </summary>
public sealed unsafe class JpegLsCodec : IPixelCodec
{
    private const int InterleaveNone = 0;

    private static readonly string[] Uids = [TransferSyntaxNames.JpegLsLossless, TransferSyntaxNames.JpegLsNearLossless];

    private readonly string[] _uids;

    /// <summary>One codec for both JPEG-LS syntaxes.</summary>
    public JpegLsCodec()
        : this(Uids)
    {
    }

    private JpegLsCodec(string[] uids) => _uids = uids;

    /// <summary>The JPEG-LS syntaxes this codec decodes.</summary>
    public static IReadOnlyList<string> SupportedUids => Uids;

    public IReadOnlyCollection<string> TransferSyntaxUids => _uids;

    /// <summary>Whether libcharls loads here; <paramref name="reason"/> says why not.</summary>
    public static bool IsAvailable(out string reason) => CharLsNative.TryGet(out reason) is not null;

    /// <summary>A codec registered for one syntax, so that its error messages name the syntax the frame came in.</summary>
    public static JpegLsCodec ForSyntax(string transferSyntaxUid) =>
        Uids.Contains(transferSyntaxUid, StringComparer.Ordinal)
            ? new([transferSyntaxUid])
            : throw new ArgumentException($"{transferSyntaxUid} is not a JPEG-LS transfer syntax", nameof(transferSyntaxUid));

    public DecodedFrame Decode(ReadOnlySpan<byte> encodedFrame, PixelFormat format)
    {
        var uid = _uids[0];
        var geometry = FrameGeometry.From(format, uid);
        if (geometry.BytesPerSample is 0 or > 2)
        {
            throw CodecErrors.Corrupt(uid, $"Bits Allocated {format.BitsAllocated}: JPEG-LS samples are 8 or 16 bits wide");
        }

        var api = CharLsNative.TryGet(out var loadError) ?? throw CodecErrors.Unsupported(uid, loadError);
        RequireEndOfImage(encodedFrame, uid);
        var decoder = api.DecoderCreate();
        if (decoder == 0)
        {
            throw CodecErrors.Corrupt(uid, "CharLS could not create a decoder");
        }

        try
        {
            fixed (byte* source = encodedFrame)
            {
                Check(api, api.SetSourceBuffer(decoder, source, (nuint)encodedFrame.Length), "set the source", uid);
                Check(api, api.ReadHeader(decoder), "read the JPEG-LS header", uid);
                CharLsNative.FrameInfo info;
                Check(api, api.GetFrameInfo(decoder, &info), "read the frame info", uid);
                int interleave;
                Check(api, api.GetInterleaveMode(decoder, &interleave), "read the interleave mode", uid);

                if (info.Width != format.Columns || info.Height != format.Rows)
                {
                    throw CodecErrors.Corrupt(uid, $"JPEG-LS frame is {info.Width}x{info.Height}, the DICOM header says {format.Columns}x{format.Rows}");
                }

                if (info.ComponentCount != format.SamplesPerPixel)
                {
                    throw CodecErrors.Corrupt(uid, $"JPEG-LS frame has {info.ComponentCount} components, Samples per Pixel is {format.SamplesPerPixel}");
                }

                if (info.BitsPerSample < 2 || info.BitsPerSample > 16 || info.BitsPerSample > format.BitsAllocated)
                {
                    throw CodecErrors.Corrupt(uid, $"JPEG-LS precision {info.BitsPerSample} does not fit Bits Allocated {format.BitsAllocated}");
                }

                var decodedBytesPerSample = info.BitsPerSample <= 8 ? 1 : 2;
                var expected = (nuint)geometry.PixelCount * (nuint)geometry.SamplesPerPixel * (nuint)decodedBytesPerSample;
                nuint size;
                Check(api, api.GetDestinationSize(decoder, 0, &size), "compute the destination size", uid);
                if (size != expected)
                {
                    throw CodecErrors.Corrupt(uid, $"CharLS needs {size} bytes, the DICOM header gives {expected}");
                }

                var decoded = decodedBytesPerSample == geometry.BytesPerSample && (interleave != InterleaveNone || geometry.SamplesPerPixel == 1)
                    ? new byte[geometry.FrameBytes]
                    : new byte[(int)size];
                fixed (byte* destination = decoded)
                {
                    Check(api, api.DecodeToBuffer(decoder, destination, size, 0), "decode the JPEG-LS data", uid);
                }

                if (decoded.Length == geometry.FrameBytes && decodedBytesPerSample == geometry.BytesPerSample
                    && (interleave != InterleaveNone || geometry.SamplesPerPixel == 1))
                {
                    return new DecodedFrame(decoded, format.PhotometricInterpretation, 0);
                }

                var output = new byte[geometry.FrameBytes];
                Relayout(decoded, output, geometry, decodedBytesPerSample, planar: interleave == InterleaveNone);
                return new DecodedFrame(output, format.PhotometricInterpretation, 0);
            }
        }
        finally
        {
            api.DecoderDestroy(decoder);
        }
    }

    /// <summary>
    /// Refuses a frame that does not end with the EOI marker (FFD9, then at most a few padding bytes). CharLS 2.4.1 (Debian
    /// 12) can loop forever on some truncated streams (fixed upstream in team-charls/charls#334, 2024), so truncated
    /// frames, the common corruption, never reach it.
    /// </summary>
    private static void RequireEndOfImage(ReadOnlySpan<byte> data, string uid)
    {
        var end = data.Length;
        while (end > 0 && data.Length - end < 8 && data[end - 1] == 0)
        {
            end--;
        }

        if (end < 4 || data[0] != 0xFF || data[1] != 0xD8 || data[end - 2] != 0xFF || data[end - 1] != 0xD9)
        {
            throw CodecErrors.Corrupt(uid, "JPEG-LS frame does not start with SOI (FFD8) and end with EOI (FFD9): truncated or not JPEG-LS");
        }
    }

    private static void Check(CharLsNative api, int errorCode, string step, string uid)
    {
        if (errorCode != 0)
        {
            throw CodecErrors.Corrupt(uid, $"CharLS could not {step}: {api.Message(errorCode)}");
        }
    }

    /// <summary>Widens 8-bit samples into 16-bit words and/or interleaves planar output.</summary>
    private static void Relayout(byte[] decoded, byte[] output, FrameGeometry geometry, int decodedBytesPerSample, bool planar)
    {
        var pixels = geometry.PixelCount;
        var components = geometry.SamplesPerPixel;
        for (var c = 0; c < components; c++)
        {
            for (var p = 0; p < pixels; p++)
            {
                var index = planar ? (c * pixels) + p : (p * components) + c;
                var value = decodedBytesPerSample == 1 ? decoded[index] : BinaryPrimitives.ReadUInt16LittleEndian(decoded.AsSpan(2 * index));
                var o = ((p * components) + c) * geometry.BytesPerSample;
                if (geometry.BytesPerSample == 1)
                {
                    output[o] = (byte)value;
                }
                else
                {
                    BinaryPrimitives.WriteUInt16LittleEndian(output.AsSpan(o), value);
                }
            }
        }
    }
}
