using System.Runtime.InteropServices;

namespace CovidFunctions.Dicom.Imaging.Codecs;

/// <summary>
/// The subset of the CharLS 2.x C API (libcharls.so.2, Debian libcharls2) the JPEG-LS codec calls, bound through
/// function pointers resolved at first use.
/// </summary>
internal sealed unsafe class CharLsNative
{
    private static readonly string[] Candidates = ["libcharls.so.2", "libcharls.so", "charls", "libcharls.2.dylib"];

    private static readonly Lazy<(CharLsNative? Api, string Error)> Instance = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    private CharLsNative(nint[] e, nint errorMessage)
    {
        DecoderCreate = (delegate* unmanaged[Cdecl]<nint>)e[0];
        DecoderDestroy = (delegate* unmanaged[Cdecl]<nint, void>)e[1];
        SetSourceBuffer = (delegate* unmanaged[Cdecl]<nint, void*, nuint, int>)e[2];
        ReadHeader = (delegate* unmanaged[Cdecl]<nint, int>)e[3];
        GetFrameInfo = (delegate* unmanaged[Cdecl]<nint, FrameInfo*, int>)e[4];
        GetDestinationSize = (delegate* unmanaged[Cdecl]<nint, uint, nuint*, int>)e[5];
        DecodeToBuffer = (delegate* unmanaged[Cdecl]<nint, void*, nuint, uint, int>)e[6];
        GetInterleaveMode = (delegate* unmanaged[Cdecl]<nint, int*, int>)e[7];
        _errorMessage = (delegate* unmanaged[Cdecl]<int, byte*>)errorMessage;
    }

    private readonly delegate* unmanaged[Cdecl]<int, byte*> _errorMessage;

    public delegate* unmanaged[Cdecl]<nint> DecoderCreate { get; }

    public delegate* unmanaged[Cdecl]<nint, void> DecoderDestroy { get; }

    public delegate* unmanaged[Cdecl]<nint, void*, nuint, int> SetSourceBuffer { get; }

    public delegate* unmanaged[Cdecl]<nint, int> ReadHeader { get; }

    public delegate* unmanaged[Cdecl]<nint, FrameInfo*, int> GetFrameInfo { get; }

    public delegate* unmanaged[Cdecl]<nint, uint, nuint*, int> GetDestinationSize { get; }

    public delegate* unmanaged[Cdecl]<nint, void*, nuint, uint, int> DecodeToBuffer { get; }

    public delegate* unmanaged[Cdecl]<nint, int*, int> GetInterleaveMode { get; }

    /// <summary>The bound API, or null with the reason (library or export missing).</summary>
    public static CharLsNative? TryGet(out string error)
    {
        var (api, loadError) = Instance.Value;
        error = loadError;
        return api;
    }

    /// <summary>CharLS's text for an error code (charls_get_error_message), or the number.</summary>
    public string Message(int errorCode)
    {
        if (_errorMessage is not null)
        {
            var text = Marshal.PtrToStringUTF8((nint)_errorMessage(errorCode));
            if (!string.IsNullOrEmpty(text))
            {
                return $"{text} (CharLS error {errorCode})";
            }
        }

        return $"CharLS error {errorCode}";
    }

    private static (CharLsNative? Api, string Error) Load()
    {
        if (!NativeLibraryLoader.TryLoad(Candidates, out var handle, out var error))
        {
            return (null, $"libcharls (CharLS 2.x, Debian package libcharls2): {error}");
        }

        string[] names =
        [
            "charls_jpegls_decoder_create", "charls_jpegls_decoder_destroy", "charls_jpegls_decoder_set_source_buffer",
            "charls_jpegls_decoder_read_header", "charls_jpegls_decoder_get_frame_info", "charls_jpegls_decoder_get_destination_size",
            "charls_jpegls_decoder_decode_to_buffer", "charls_jpegls_decoder_get_interleave_mode",
        ];
        if (!NativeLibraryLoader.TryGetExports(handle, names, out var exports, out error))
        {
            return (null, $"libcharls: {error}");
        }

        NativeLibrary.TryGetExport(handle, "charls_get_error_message", out var errorMessage);
        return (new CharLsNative(exports, errorMessage), string.Empty);
    }

    /// <summary>charls_frame_info.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct FrameInfo
    {
        public uint Width;
        public uint Height;
        public int BitsPerSample;
        public int ComponentCount;
    }
}
