using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace CovidFunctions.Dicom.Imaging.Codecs;

/// <summary>
/// JPEG 2000 (lossless-only and lossy, J2K codestream or JP2 file) through the system OpenJPEG library, read from
/// memory with the stream API. The decoded image's size, component count and precision are checked against the
/// DICOM header before a sample is copied. OpenJPEG applies the inverse multi-component transform itself, so
/// YBR_ICT / YBR_RCT frames come back as RGB. High-Throughput (Part 15) codestreams are refused before OpenJPEG
/// sees them (<see cref="J2kCodestreamHeader"/>).
/// </summary>
public sealed unsafe class Jpeg2000Codec : IPixelCodec
{
    private const int DecoderParametersBytes = 16 * 1024; // opj_dparameters_t is about 8.3 KB in 2.x
    private const nuint StreamChunkBytes = 1 << 20;

    private static readonly string[] Uids = [TransferSyntaxNames.Jpeg2000Lossless, TransferSyntaxNames.Jpeg2000];

    private readonly string[] _uids;

    /// <summary>One codec for both JPEG 2000 syntaxes.</summary>
    public Jpeg2000Codec()
        : this(Uids)
    {
    }

    private Jpeg2000Codec(string[] uids) => _uids = uids;

    /// <summary>The JPEG 2000 syntaxes this codec decodes.</summary>
    public static IReadOnlyList<string> SupportedUids => Uids;

    public IReadOnlyCollection<string> TransferSyntaxUids => _uids;

    /// <summary>Whether libopenjp2 loads here; <paramref name="reason"/> says why not.</summary>
    public static bool IsAvailable(out string reason) => OpenJpegNative.TryGet(out reason) is not null;

    /// <summary>A codec registered for one syntax, so that its error messages name the syntax the frame came in.</summary>
    public static Jpeg2000Codec ForSyntax(string transferSyntaxUid) =>
        Uids.Contains(transferSyntaxUid, StringComparer.Ordinal)
            ? new([transferSyntaxUid])
            : throw new ArgumentException($"{transferSyntaxUid} is not a JPEG 2000 transfer syntax", nameof(transferSyntaxUid));

    public DecodedFrame Decode(ReadOnlySpan<byte> encodedFrame, PixelFormat format)
    {
        var uid = _uids[0];
        var geometry = FrameGeometry.From(format, uid);
        var api = OpenJpegNative.TryGet(out var loadError) ?? throw CodecErrors.Unsupported(uid, loadError);
        var codecFormat = DetectFormat(encodedFrame, uid);

        // OpenJPEG 2.5.0 decodes HT code-blocks in any J2K stream and can abort() the process on corrupt ones.
        J2kCodestreamHeader.EnsurePart1(encodedFrame, codecFormat == OpenJpegNative.CodecJP2, uid);

        var output = new byte[geometry.FrameBytes];
        var errors = new StringBuilder();
        var errorsHandle = GCHandle.Alloc(errors);
        var parameters = NativeMemory.AllocZeroed(DecoderParametersBytes);
        nint codec = 0, stream = 0;
        OpenJpegNative.OpjImage* image = null;
        try
        {
            fixed (byte* data = encodedFrame)
            {
                var source = new MemorySource { Data = data, Length = encodedFrame.Length, Position = 0 };
                stream = api.StreamCreate(StreamChunkBytes, 1);
                codec = api.CreateDecompress(codecFormat);
                if (stream == 0 || codec == 0)
                {
                    throw CodecErrors.Corrupt(uid, "OpenJPEG could not create a decoder");
                }

                api.StreamSetReadFunction(stream, (nint)(delegate* unmanaged[Cdecl]<void*, nuint, void*, nuint>)&Read);
                api.StreamSetSkipFunction(stream, (nint)(delegate* unmanaged[Cdecl]<long, void*, long>)&Skip);
                api.StreamSetSeekFunction(stream, (nint)(delegate* unmanaged[Cdecl]<long, void*, int>)&Seek);
                api.StreamSetUserData(stream, &source, 0);
                api.StreamSetUserDataLength(stream, (ulong)encodedFrame.Length);
                api.SetErrorHandler(codec, (nint)(delegate* unmanaged[Cdecl]<byte*, void*, void>)&OnError, (void*)GCHandle.ToIntPtr(errorsHandle));

                api.SetDefaultDecoderParameters(parameters);
                if (api.SetupDecoder(codec, parameters) == 0)
                {
                    throw CodecErrors.Corrupt(uid, "OpenJPEG rejected the decoder parameters" + Describe(errors));
                }

                // A truncated lossless frame must fail, not come back blurred (OpenJPEG decodes what it has otherwise).
                if (api.DecoderSetStrictMode is not null)
                {
                    api.DecoderSetStrictMode(codec, 1);
                }

                if (api.ReadHeader(stream, codec, &image) == 0 || image is null)
                {
                    throw CodecErrors.Corrupt(uid, "OpenJPEG could not read the JPEG 2000 header" + Describe(errors));
                }

                ValidateImage(image, format, uid);
                if (api.DecodeImage(codec, stream, image) == 0 || api.EndDecompress(codec, stream) == 0)
                {
                    throw CodecErrors.Corrupt(uid, "OpenJPEG failed to decode the JPEG 2000 data" + Describe(errors));
                }

                CopyComponents(image, output, geometry, uid);
            }
        }
        finally
        {
            if (image is not null)
            {
                api.ImageDestroy(image);
            }

            if (codec != 0)
            {
                api.DestroyCodec(codec);
            }

            if (stream != 0)
            {
                api.StreamDestroy(stream);
            }

            NativeMemory.Free(parameters);
            errorsHandle.Free();
        }

        var photometric = format.PhotometricInterpretation is "YBR_ICT" or "YBR_RCT" ? "RGB" : format.PhotometricInterpretation;
        return new DecodedFrame(output, photometric, 0);
    }

    private static int DetectFormat(ReadOnlySpan<byte> data, string uid)
    {
        if (data.Length >= 4 && data[0] == 0xFF && data[1] == 0x4F && data[2] == 0xFF && data[3] == 0x51)
        {
            return OpenJpegNative.CodecJ2K;
        }

        if (data.Length >= 12 && BinaryPrimitives.ReadUInt32BigEndian(data) == 12 && data.Slice(4, 4).SequenceEqual("jP  "u8))
        {
            return OpenJpegNative.CodecJP2;
        }

        throw CodecErrors.Corrupt(uid, "neither a J2K codestream (FF4F FF51) nor a JP2 file signature");
    }

    /// <summary>Refuses images that do not match the DICOM header before OpenJPEG spends time decoding them.</summary>
    private static void ValidateImage(OpenJpegNative.OpjImage* image, PixelFormat format, string uid)
    {
        if (image->NumComps != format.SamplesPerPixel || image->Comps is null)
        {
            throw CodecErrors.Corrupt(uid, $"JPEG 2000 image has {image->NumComps} components, Samples per Pixel is {format.SamplesPerPixel}");
        }

        var width = (long)image->X1 - image->X0;
        var height = (long)image->Y1 - image->Y0;
        if (width != format.Columns || height != format.Rows)
        {
            throw CodecErrors.Corrupt(uid, $"JPEG 2000 image is {width}x{height}, the DICOM header says {format.Columns}x{format.Rows}");
        }

        for (var c = 0; c < image->NumComps; c++)
        {
            var comp = &image->Comps[c];
            if (comp->Dx != 1 || comp->Dy != 1)
            {
                throw CodecErrors.Unsupported(uid, $"JPEG 2000 component {c} is subsampled ({comp->Dx}x{comp->Dy})");
            }

            if (comp->Prec == 0 || comp->Prec > format.BitsAllocated)
            {
                throw CodecErrors.Corrupt(uid, $"JPEG 2000 component {c} precision {comp->Prec} does not fit Bits Allocated {format.BitsAllocated}");
            }
        }
    }

    /// <summary>Copies the 32-bit component samples into native layout, keeping their low bits (two's complement when signed).</summary>
    private static void CopyComponents(OpenJpegNative.OpjImage* image, byte[] output, FrameGeometry geometry, string uid)
    {
        var pixels = geometry.PixelCount;
        var components = geometry.SamplesPerPixel;
        for (var c = 0; c < components; c++)
        {
            var comp = &image->Comps[c];
            if (comp->Data is null || comp->W != geometry.Columns || comp->H != geometry.Rows)
            {
                throw CodecErrors.Corrupt(uid, $"JPEG 2000 component {c} decoded to {comp->W}x{comp->H}, expected {geometry.Columns}x{geometry.Rows}");
            }

            var source = new ReadOnlySpan<int>(comp->Data, pixels);
            switch (geometry.BytesPerSample)
            {
                case 0:
                    for (var p = 0; p < pixels; p++)
                    {
                        if ((source[p] & 1) != 0)
                        {
                            output[p >> 3] |= (byte)(1 << (p & 7));
                        }
                    }

                    break;
                case 1:
                    for (int p = 0, o = c; p < pixels; p++, o += components)
                    {
                        output[o] = (byte)source[p];
                    }

                    break;
                case 2:
                    for (int p = 0, o = 2 * c; p < pixels; p++, o += 2 * components)
                    {
                        BinaryPrimitives.WriteUInt16LittleEndian(output.AsSpan(o), (ushort)source[p]);
                    }

                    break;
                default:
                    for (int p = 0, o = 4 * c; p < pixels; p++, o += 4 * components)
                    {
                        BinaryPrimitives.WriteInt32LittleEndian(output.AsSpan(o), source[p]);
                    }

                    break;
            }
        }
    }

    private static string Describe(StringBuilder errors) => errors.Length == 0 ? string.Empty : ": " + errors;

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static nuint Read(void* buffer, nuint count, void* userData)
    {
        var source = (MemorySource*)userData;
        var remaining = source->Length - source->Position;
        if (remaining <= 0)
        {
            return unchecked((nuint)(-1)); // end of stream
        }

        var n = (int)Math.Min((long)count, remaining);
        Buffer.MemoryCopy(source->Data + source->Position, buffer, n, n);
        source->Position += n;
        return (nuint)n;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static long Skip(long count, void* userData)
    {
        var source = (MemorySource*)userData;
        var target = Math.Clamp(source->Position + count, 0, source->Length);
        var skipped = target - source->Position;
        source->Position = target;
        return skipped;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Seek(long offset, void* userData)
    {
        var source = (MemorySource*)userData;
        if (offset < 0 || offset > source->Length)
        {
            return 0;
        }

        source->Position = offset;
        return 1;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnError(byte* message, void* clientData)
    {
        if (GCHandle.FromIntPtr((nint)clientData).Target is StringBuilder errors && errors.Length < 1024)
        {
            var text = Marshal.PtrToStringUTF8((nint)message)?.Trim();
            if (!string.IsNullOrEmpty(text))
            {
                errors.Append(errors.Length == 0 ? string.Empty : "; ").Append(text.ReplaceLineEndings(" "));
            }
        }
    }

    /// <summary>The stream's user data: a pinned view of the frame bytes.</summary>
    private struct MemorySource
    {
        public byte* Data;
        public long Length;
        public long Position;
    }
}
