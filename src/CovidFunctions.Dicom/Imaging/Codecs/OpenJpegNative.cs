using System.Runtime.InteropServices;

namespace CovidFunctions.Dicom.Imaging.Codecs;

/// <summary>
/// The subset of the OpenJPEG 2.x C API (libopenjp2.so.7, Debian libopenjp2-7) the JPEG 2000 codec calls, bound
/// through function pointers resolved at first use. Struct layouts follow openjpeg.h 2.x (unchanged from 2.1 to 2.5).
/// </summary>
internal sealed unsafe class OpenJpegNative
{
    public const int CodecJ2K = 0;
    public const int CodecJP2 = 2;

    private static readonly string[] Candidates = ["libopenjp2.so.7", "libopenjp2.so", "openjp2", "libopenjp2.7.dylib"];

    private static readonly Lazy<(OpenJpegNative? Api, string Error)> Instance = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    private OpenJpegNative(nint[] e, string version, nint strictMode)
    {
        DecoderSetStrictMode = (delegate* unmanaged[Cdecl]<nint, int, int>)strictMode;
        StreamCreate = (delegate* unmanaged[Cdecl]<nuint, int, nint>)e[0];
        StreamSetReadFunction = (delegate* unmanaged[Cdecl]<nint, nint, void>)e[1];
        StreamSetSkipFunction = (delegate* unmanaged[Cdecl]<nint, nint, void>)e[2];
        StreamSetSeekFunction = (delegate* unmanaged[Cdecl]<nint, nint, void>)e[3];
        StreamSetUserData = (delegate* unmanaged[Cdecl]<nint, void*, nint, void>)e[4];
        StreamSetUserDataLength = (delegate* unmanaged[Cdecl]<nint, ulong, void>)e[5];
        StreamDestroy = (delegate* unmanaged[Cdecl]<nint, void>)e[6];
        CreateDecompress = (delegate* unmanaged[Cdecl]<int, nint>)e[7];
        SetDefaultDecoderParameters = (delegate* unmanaged[Cdecl]<void*, void>)e[8];
        SetupDecoder = (delegate* unmanaged[Cdecl]<nint, void*, int>)e[9];
        SetErrorHandler = (delegate* unmanaged[Cdecl]<nint, nint, void*, int>)e[10];
        ReadHeader = (delegate* unmanaged[Cdecl]<nint, nint, OpjImage**, int>)e[11];
        DecodeImage = (delegate* unmanaged[Cdecl]<nint, nint, OpjImage*, int>)e[12];
        EndDecompress = (delegate* unmanaged[Cdecl]<nint, nint, int>)e[13];
        ImageDestroy = (delegate* unmanaged[Cdecl]<OpjImage*, void>)e[14];
        DestroyCodec = (delegate* unmanaged[Cdecl]<nint, void>)e[15];
        Version = version;
    }

    public string Version { get; }

    /// <summary>opj_decoder_set_strict_mode (OpenJPEG 2.5+): truncated codestreams fail instead of decoding partially. Null before 2.5.</summary>
    public delegate* unmanaged[Cdecl]<nint, int, int> DecoderSetStrictMode { get; }

    public delegate* unmanaged[Cdecl]<nuint, int, nint> StreamCreate { get; }

    public delegate* unmanaged[Cdecl]<nint, nint, void> StreamSetReadFunction { get; }

    public delegate* unmanaged[Cdecl]<nint, nint, void> StreamSetSkipFunction { get; }

    public delegate* unmanaged[Cdecl]<nint, nint, void> StreamSetSeekFunction { get; }

    public delegate* unmanaged[Cdecl]<nint, void*, nint, void> StreamSetUserData { get; }

    public delegate* unmanaged[Cdecl]<nint, ulong, void> StreamSetUserDataLength { get; }

    public delegate* unmanaged[Cdecl]<nint, void> StreamDestroy { get; }

    public delegate* unmanaged[Cdecl]<int, nint> CreateDecompress { get; }

    public delegate* unmanaged[Cdecl]<void*, void> SetDefaultDecoderParameters { get; }

    public delegate* unmanaged[Cdecl]<nint, void*, int> SetupDecoder { get; }

    public delegate* unmanaged[Cdecl]<nint, nint, void*, int> SetErrorHandler { get; }

    public delegate* unmanaged[Cdecl]<nint, nint, OpjImage**, int> ReadHeader { get; }

    public delegate* unmanaged[Cdecl]<nint, nint, OpjImage*, int> DecodeImage { get; }

    public delegate* unmanaged[Cdecl]<nint, nint, int> EndDecompress { get; }

    public delegate* unmanaged[Cdecl]<OpjImage*, void> ImageDestroy { get; }

    public delegate* unmanaged[Cdecl]<nint, void> DestroyCodec { get; }

    /// <summary>The bound API, or null with the reason (library or export missing).</summary>
    public static OpenJpegNative? TryGet(out string error)
    {
        var (api, loadError) = Instance.Value;
        error = loadError;
        return api;
    }

    private static (OpenJpegNative? Api, string Error) Load()
    {
        if (!NativeLibraryLoader.TryLoad(Candidates, out var handle, out var error))
        {
            return (null, $"libopenjp2 (OpenJPEG 2.x, Debian package libopenjp2-7): {error}");
        }

        string[] names =
        [
            "opj_stream_create", "opj_stream_set_read_function", "opj_stream_set_skip_function", "opj_stream_set_seek_function",
            "opj_stream_set_user_data", "opj_stream_set_user_data_length", "opj_stream_destroy", "opj_create_decompress",
            "opj_set_default_decoder_parameters", "opj_setup_decoder", "opj_set_error_handler", "opj_read_header", "opj_decode",
            "opj_end_decompress", "opj_image_destroy", "opj_destroy_codec",
        ];
        if (!NativeLibraryLoader.TryGetExports(handle, names, out var exports, out error))
        {
            return (null, $"libopenjp2: {error}");
        }

        var version = "unknown";
        if (NativeLibrary.TryGetExport(handle, "opj_version", out var versionExport))
        {
            version = Marshal.PtrToStringUTF8((nint)((delegate* unmanaged[Cdecl]<byte*>)versionExport)()) ?? version;
        }

        NativeLibrary.TryGetExport(handle, "opj_decoder_set_strict_mode", out var strictMode);
        return (new OpenJpegNative(exports, version, strictMode), string.Empty);
    }

    /// <summary>opj_image_t.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct OpjImage
    {
        public uint X0;
        public uint Y0;
        public uint X1;
        public uint Y1;
        public uint NumComps;
        public int ColorSpace;
        public OpjImageComp* Comps;
        public byte* IccProfileBuf;
        public uint IccProfileLen;
    }

    /// <summary>opj_image_comp_t.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct OpjImageComp
    {
        public uint Dx;
        public uint Dy;
        public uint W;
        public uint H;
        public uint X0;
        public uint Y0;
        public uint Prec;
        public uint Bpp;
        public uint Sgnd;
        public uint ResnoDecoded;
        public uint Factor;
        public int* Data;
        public ushort Alpha;
    }
}
