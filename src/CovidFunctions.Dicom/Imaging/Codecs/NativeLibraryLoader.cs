using System.Reflection;
using System.Runtime.InteropServices;

namespace CovidFunctions.Dicom.Imaging.Codecs;

/// <summary>
/// Loads a system codec library by its candidate file names and resolves exports. Nothing is loaded until a frame of
/// that syntax is decoded; when the library or an export is missing the caller gets the reason, not a crash.
/// </summary>
internal static class NativeLibraryLoader
{
    /// <summary>Loads the first candidate that resolves; the error lists every name tried.</summary>
    public static bool TryLoad(string[] candidates, out nint handle, out string error)
    {
        foreach (var name in candidates)
        {
            if (NativeLibrary.TryLoad(name, Assembly.GetExecutingAssembly(), null, out handle))
            {
                error = string.Empty;
                return true;
            }
        }

        handle = 0;
        error = $"native library not found (tried {string.Join(", ", candidates)})";
        return false;
    }

    /// <summary>Resolves the named exports; returns false with the first missing name.</summary>
    public static bool TryGetExports(nint handle, string[] names, out nint[] exports, out string error)
    {
        exports = new nint[names.Length];
        for (var i = 0; i < names.Length; i++)
        {
            if (!NativeLibrary.TryGetExport(handle, names[i], out exports[i]))
            {
                error = $"export {names[i]} missing from the native library";
                return false;
            }
        }

        error = string.Empty;
        return true;
    }
}
