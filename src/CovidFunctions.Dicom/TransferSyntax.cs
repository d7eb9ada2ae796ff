using System.Collections.Frozen;

namespace CovidFunctions.Dicom;

/// <summary>
/// A transfer syntax (PS3.5 10, PS3.6 Table A-1): the closed set of the standard's UIDs, plus <see cref="Unknown"/>
/// for anything else, which is read as explicit VR little endian with encapsulated pixel data.
/// </summary>
public sealed class TransferSyntax
{
    private TransferSyntax(string uid, string keyword, string name, bool explicitVR = true, bool bigEndian = false,
        bool deflated = false, bool encapsulated = false, bool lossy = false, bool retired = false, bool known = true)
    {
        Uid = uid;
        Keyword = keyword;
        Name = name;
        IsExplicitVR = explicitVR;
        IsBigEndian = bigEndian;
        IsDeflated = deflated;
        IsEncapsulated = encapsulated;
        IsLossy = lossy;
        IsRetired = retired;
        IsKnown = known;
    }

    public static TransferSyntax ImplicitVRLittleEndian { get; } = new("1.2.840.10008.1.2", "ImplicitVRLittleEndian", "Implicit VR Little Endian", explicitVR: false);
    public static TransferSyntax ExplicitVRLittleEndian { get; } = new("1.2.840.10008.1.2.1", "ExplicitVRLittleEndian", "Explicit VR Little Endian");
    public static TransferSyntax EncapsulatedUncompressedExplicitVRLittleEndian { get; } = new("1.2.840.10008.1.2.1.98", "EncapsulatedUncompressedExplicitVRLittleEndian", "Encapsulated Uncompressed Explicit VR Little Endian", encapsulated: true);
    public static TransferSyntax DeflatedExplicitVRLittleEndian { get; } = new("1.2.840.10008.1.2.1.99", "DeflatedExplicitVRLittleEndian", "Deflated Explicit VR Little Endian", deflated: true);
    public static TransferSyntax ExplicitVRBigEndian { get; } = new("1.2.840.10008.1.2.2", "ExplicitVRBigEndian", "Explicit VR Big Endian", bigEndian: true, retired: true);
    public static TransferSyntax JPEGBaseline8Bit { get; } = new("1.2.840.10008.1.2.4.50", "JPEGBaseline8Bit", "JPEG Baseline (Process 1)", encapsulated: true, lossy: true);
    public static TransferSyntax JPEGExtended12Bit { get; } = new("1.2.840.10008.1.2.4.51", "JPEGExtended12Bit", "JPEG Extended (Process 2 & 4)", encapsulated: true, lossy: true);
    public static TransferSyntax JPEGExtended35 { get; } = new("1.2.840.10008.1.2.4.52", "JPEGExtended35", "JPEG Extended (Process 3 & 5)", encapsulated: true, lossy: true, retired: true);
    public static TransferSyntax JPEGSpectralSelectionNonHierarchical68 { get; } = new("1.2.840.10008.1.2.4.53", "JPEGSpectralSelectionNonHierarchical68", "JPEG Spectral Selection, Non-Hierarchical (Process 6 & 8)", encapsulated: true, lossy: true, retired: true);
    public static TransferSyntax JPEGSpectralSelectionNonHierarchical79 { get; } = new("1.2.840.10008.1.2.4.54", "JPEGSpectralSelectionNonHierarchical79", "JPEG Spectral Selection, Non-Hierarchical (Process 7 & 9)", encapsulated: true, lossy: true, retired: true);
    public static TransferSyntax JPEGFullProgressionNonHierarchical1012 { get; } = new("1.2.840.10008.1.2.4.55", "JPEGFullProgressionNonHierarchical1012", "JPEG Full Progression, Non-Hierarchical (Process 10 & 12)", encapsulated: true, lossy: true, retired: true);
    public static TransferSyntax JPEGFullProgressionNonHierarchical1113 { get; } = new("1.2.840.10008.1.2.4.56", "JPEGFullProgressionNonHierarchical1113", "JPEG Full Progression, Non-Hierarchical (Process 11 & 13)", encapsulated: true, lossy: true, retired: true);
    public static TransferSyntax JPEGLossless { get; } = new("1.2.840.10008.1.2.4.57", "JPEGLossless", "JPEG Lossless, Non-Hierarchical (Process 14)", encapsulated: true);
    public static TransferSyntax JPEGLosslessNonHierarchical15 { get; } = new("1.2.840.10008.1.2.4.58", "JPEGLosslessNonHierarchical15", "JPEG Lossless, Non-Hierarchical (Process 15)", encapsulated: true, retired: true);
    public static TransferSyntax JPEGExtendedHierarchical1618 { get; } = new("1.2.840.10008.1.2.4.59", "JPEGExtendedHierarchical1618", "JPEG Extended, Hierarchical (Process 16 & 18)", encapsulated: true, lossy: true, retired: true);
    public static TransferSyntax JPEGExtendedHierarchical1719 { get; } = new("1.2.840.10008.1.2.4.60", "JPEGExtendedHierarchical1719", "JPEG Extended, Hierarchical (Process 17 & 19)", encapsulated: true, lossy: true, retired: true);
    public static TransferSyntax JPEGSpectralSelectionHierarchical2022 { get; } = new("1.2.840.10008.1.2.4.61", "JPEGSpectralSelectionHierarchical2022", "JPEG Spectral Selection, Hierarchical (Process 20 & 22)", encapsulated: true, lossy: true, retired: true);
    public static TransferSyntax JPEGSpectralSelectionHierarchical2123 { get; } = new("1.2.840.10008.1.2.4.62", "JPEGSpectralSelectionHierarchical2123", "JPEG Spectral Selection, Hierarchical (Process 21 & 23)", encapsulated: true, lossy: true, retired: true);
    public static TransferSyntax JPEGFullProgressionHierarchical2426 { get; } = new("1.2.840.10008.1.2.4.63", "JPEGFullProgressionHierarchical2426", "JPEG Full Progression, Hierarchical (Process 24 & 26)", encapsulated: true, lossy: true, retired: true);
    public static TransferSyntax JPEGFullProgressionHierarchical2527 { get; } = new("1.2.840.10008.1.2.4.64", "JPEGFullProgressionHierarchical2527", "JPEG Full Progression, Hierarchical (Process 25 & 27)", encapsulated: true, lossy: true, retired: true);
    public static TransferSyntax JPEGLosslessHierarchical28 { get; } = new("1.2.840.10008.1.2.4.65", "JPEGLosslessHierarchical28", "JPEG Lossless, Hierarchical (Process 28)", encapsulated: true, retired: true);
    public static TransferSyntax JPEGLosslessHierarchical29 { get; } = new("1.2.840.10008.1.2.4.66", "JPEGLosslessHierarchical29", "JPEG Lossless, Hierarchical (Process 29)", encapsulated: true, retired: true);
    public static TransferSyntax JPEGLosslessSV1 { get; } = new("1.2.840.10008.1.2.4.70", "JPEGLosslessSV1", "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])", encapsulated: true);
    public static TransferSyntax JPEGLSLossless { get; } = new("1.2.840.10008.1.2.4.80", "JPEGLSLossless", "JPEG-LS Lossless Image Compression", encapsulated: true);
    public static TransferSyntax JPEGLSNearLossless { get; } = new("1.2.840.10008.1.2.4.81", "JPEGLSNearLossless", "JPEG-LS Lossy (Near-Lossless) Image Compression", encapsulated: true, lossy: true);
    public static TransferSyntax JPEG2000Lossless { get; } = new("1.2.840.10008.1.2.4.90", "JPEG2000Lossless", "JPEG 2000 Image Compression (Lossless Only)", encapsulated: true);
    public static TransferSyntax JPEG2000 { get; } = new("1.2.840.10008.1.2.4.91", "JPEG2000", "JPEG 2000 Image Compression", encapsulated: true, lossy: true);
    public static TransferSyntax JPEG2000MCLossless { get; } = new("1.2.840.10008.1.2.4.92", "JPEG2000MCLossless", "JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)", encapsulated: true);
    public static TransferSyntax JPEG2000MC { get; } = new("1.2.840.10008.1.2.4.93", "JPEG2000MC", "JPEG 2000 Part 2 Multi-component Image Compression", encapsulated: true, lossy: true);
    public static TransferSyntax JPIPReferenced { get; } = new("1.2.840.10008.1.2.4.94", "JPIPReferenced", "JPIP Referenced");
    public static TransferSyntax JPIPReferencedDeflate { get; } = new("1.2.840.10008.1.2.4.95", "JPIPReferencedDeflate", "JPIP Referenced Deflate", deflated: true);
    public static TransferSyntax MPEG2MPML { get; } = new("1.2.840.10008.1.2.4.100", "MPEG2MPML", "MPEG2 Main Profile / Main Level", encapsulated: true, lossy: true);
    public static TransferSyntax MPEG2MPMLF { get; } = new("1.2.840.10008.1.2.4.100.1", "MPEG2MPMLF", "Fragmentable MPEG2 Main Profile / Main Level", encapsulated: true, lossy: true);
    public static TransferSyntax MPEG2MPHL { get; } = new("1.2.840.10008.1.2.4.101", "MPEG2MPHL", "MPEG2 Main Profile / High Level", encapsulated: true, lossy: true);
    public static TransferSyntax MPEG2MPHLF { get; } = new("1.2.840.10008.1.2.4.101.1", "MPEG2MPHLF", "Fragmentable MPEG2 Main Profile / High Level", encapsulated: true, lossy: true);
    public static TransferSyntax MPEG4HP41 { get; } = new("1.2.840.10008.1.2.4.102", "MPEG4HP41", "MPEG-4 AVC/H.264 High Profile / Level 4.1", encapsulated: true, lossy: true);
    public static TransferSyntax MPEG4HP41F { get; } = new("1.2.840.10008.1.2.4.102.1", "MPEG4HP41F", "Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.1", encapsulated: true, lossy: true);
    public static TransferSyntax MPEG4HP41BD { get; } = new("1.2.840.10008.1.2.4.103", "MPEG4HP41BD", "MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1", encapsulated: true, lossy: true);
    public static TransferSyntax MPEG4HP41BDF { get; } = new("1.2.840.10008.1.2.4.103.1", "MPEG4HP41BDF", "Fragmentable MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1", encapsulated: true, lossy: true);
    public static TransferSyntax MPEG4HP422D { get; } = new("1.2.840.10008.1.2.4.104", "MPEG4HP422D", "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video", encapsulated: true, lossy: true);
    public static TransferSyntax MPEG4HP422DF { get; } = new("1.2.840.10008.1.2.4.104.1", "MPEG4HP422DF", "Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video", encapsulated: true, lossy: true);
    public static TransferSyntax MPEG4HP423D { get; } = new("1.2.840.10008.1.2.4.105", "MPEG4HP423D", "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video", encapsulated: true, lossy: true);
    public static TransferSyntax MPEG4HP423DF { get; } = new("1.2.840.10008.1.2.4.105.1", "MPEG4HP423DF", "Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video", encapsulated: true, lossy: true);
    public static TransferSyntax MPEG4HP42STEREO { get; } = new("1.2.840.10008.1.2.4.106", "MPEG4HP42STEREO", "MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2", encapsulated: true, lossy: true);
    public static TransferSyntax MPEG4HP42STEREOF { get; } = new("1.2.840.10008.1.2.4.106.1", "MPEG4HP42STEREOF", "Fragmentable MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2", encapsulated: true, lossy: true);
    public static TransferSyntax HEVCMP51 { get; } = new("1.2.840.10008.1.2.4.107", "HEVCMP51", "HEVC/H.265 Main Profile / Level 5.1", encapsulated: true, lossy: true);
    public static TransferSyntax HEVCM10P51 { get; } = new("1.2.840.10008.1.2.4.108", "HEVCM10P51", "HEVC/H.265 Main 10 Profile / Level 5.1", encapsulated: true, lossy: true);
    public static TransferSyntax JPEGXLLossless { get; } = new("1.2.840.10008.1.2.4.110", "JPEGXLLossless", "JPEG XL Lossless", encapsulated: true);
    public static TransferSyntax JPEGXLJPEGRecompression { get; } = new("1.2.840.10008.1.2.4.111", "JPEGXLJPEGRecompression", "JPEG XL JPEG Recompression", encapsulated: true, lossy: true);
    public static TransferSyntax JPEGXL { get; } = new("1.2.840.10008.1.2.4.112", "JPEGXL", "JPEG XL", encapsulated: true, lossy: true);
    public static TransferSyntax HTJ2KLossless { get; } = new("1.2.840.10008.1.2.4.201", "HTJ2KLossless", "High-Throughput JPEG 2000 Image Compression (Lossless Only)", encapsulated: true);
    public static TransferSyntax HTJ2KLosslessRPCL { get; } = new("1.2.840.10008.1.2.4.202", "HTJ2KLosslessRPCL", "High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)", encapsulated: true);
    public static TransferSyntax HTJ2K { get; } = new("1.2.840.10008.1.2.4.203", "HTJ2K", "High-Throughput JPEG 2000 Image Compression", encapsulated: true, lossy: true);
    public static TransferSyntax JPIPHTJ2KReferenced { get; } = new("1.2.840.10008.1.2.4.204", "JPIPHTJ2KReferenced", "JPIP HTJ2K Referenced");
    public static TransferSyntax JPIPHTJ2KReferencedDeflate { get; } = new("1.2.840.10008.1.2.4.205", "JPIPHTJ2KReferencedDeflate", "JPIP HTJ2K Referenced Deflate", deflated: true);
    public static TransferSyntax RLELossless { get; } = new("1.2.840.10008.1.2.5", "RLELossless", "RLE Lossless", encapsulated: true);
    public static TransferSyntax RFC2557MIMEEncapsulation { get; } = new("1.2.840.10008.1.2.6.1", "RFC2557MIMEEncapsulation", "RFC 2557 MIME encapsulation", retired: true);
    public static TransferSyntax XMLEncoding { get; } = new("1.2.840.10008.1.2.6.2", "XMLEncoding", "XML Encoding", retired: true);
    public static TransferSyntax SMPTEST211020UncompressedProgressiveActiveVideo { get; } = new("1.2.840.10008.1.2.7.1", "SMPTEST211020UncompressedProgressiveActiveVideo", "SMPTE ST 2110-20 Uncompressed Progressive Active Video");
    public static TransferSyntax SMPTEST211020UncompressedInterlacedActiveVideo { get; } = new("1.2.840.10008.1.2.7.2", "SMPTEST211020UncompressedInterlacedActiveVideo", "SMPTE ST 2110-20 Uncompressed Interlaced Active Video");
    public static TransferSyntax SMPTEST211030PCMDigitalAudio { get; } = new("1.2.840.10008.1.2.7.3", "SMPTEST211030PCMDigitalAudio", "SMPTE ST 2110-30 PCM Digital Audio");
    public static TransferSyntax DeflatedImageFrameCompression { get; } = new("1.2.840.10008.1.2.8.1", "DeflatedImageFrameCompression", "Deflated Image Frame Compression", encapsulated: true);
    public static TransferSyntax Papyrus3ImplicitVRLittleEndian { get; } = new("1.2.840.10008.1.20", "Papyrus3ImplicitVRLittleEndian", "Papyrus 3 Implicit VR Little Endian", explicitVR: false, retired: true);

    /// <summary>Every transfer syntax of the standard known to this build.</summary>
    public static IReadOnlyList<TransferSyntax> All { get; } =
    [
        ImplicitVRLittleEndian, ExplicitVRLittleEndian, EncapsulatedUncompressedExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
        ExplicitVRBigEndian, JPEGBaseline8Bit, JPEGExtended12Bit, JPEGExtended35, JPEGSpectralSelectionNonHierarchical68,
        JPEGSpectralSelectionNonHierarchical79, JPEGFullProgressionNonHierarchical1012, JPEGFullProgressionNonHierarchical1113,
        JPEGLossless, JPEGLosslessNonHierarchical15, JPEGExtendedHierarchical1618, JPEGExtendedHierarchical1719,
        JPEGSpectralSelectionHierarchical2022, JPEGSpectralSelectionHierarchical2123, JPEGFullProgressionHierarchical2426,
        JPEGFullProgressionHierarchical2527, JPEGLosslessHierarchical28, JPEGLosslessHierarchical29, JPEGLosslessSV1,
        JPEGLSLossless, JPEGLSNearLossless, JPEG2000Lossless, JPEG2000, JPEG2000MCLossless, JPEG2000MC, JPIPReferenced,
        JPIPReferencedDeflate, MPEG2MPML, MPEG2MPMLF, MPEG2MPHL, MPEG2MPHLF, MPEG4HP41, MPEG4HP41F, MPEG4HP41BD, MPEG4HP41BDF,
        MPEG4HP422D, MPEG4HP422DF, MPEG4HP423D, MPEG4HP423DF, MPEG4HP42STEREO, MPEG4HP42STEREOF, HEVCMP51, HEVCM10P51,
        JPEGXLLossless, JPEGXLJPEGRecompression, JPEGXL, HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K, JPIPHTJ2KReferenced,
        JPIPHTJ2KReferencedDeflate, RLELossless, RFC2557MIMEEncapsulation, XMLEncoding,
        SMPTEST211020UncompressedProgressiveActiveVideo, SMPTEST211020UncompressedInterlacedActiveVideo,
        SMPTEST211030PCMDigitalAudio, DeflatedImageFrameCompression, Papyrus3ImplicitVRLittleEndian,
    ];

    // Declared after All: static initializers run in text order.
    private static readonly FrozenDictionary<string, TransferSyntax> ByUid = All.ToFrozenDictionary(ts => ts.Uid, StringComparer.Ordinal);

    /// <summary>The UID, e.g. <c>1.2.840.10008.1.2.1</c>.</summary>
    public string Uid { get; }

    /// <summary>The PS3.6 keyword, e.g. <c>ExplicitVRLittleEndian</c>; for an unknown UID, the UID itself.</summary>
    public string Keyword { get; }

    /// <summary>The PS3.6 name, e.g. <c>Explicit VR Little Endian</c>.</summary>
    public string Name { get; }

    /// <summary>True when each data element carries its VR.</summary>
    public bool IsExplicitVR { get; }

    /// <summary>True for explicit VR big endian (retired).</summary>
    public bool IsBigEndian { get; }

    /// <summary>True when the dataset after the file meta information is a raw deflate stream.</summary>
    public bool IsDeflated { get; }

    /// <summary>True when Pixel Data is encapsulated (a sequence of fragments).</summary>
    public bool IsEncapsulated { get; }

    /// <summary>True when the compression may lose information.</summary>
    public bool IsLossy { get; }

    /// <summary>True for syntaxes the standard has retired.</summary>
    public bool IsRetired { get; }

    /// <summary>False for <see cref="Unknown"/> syntaxes created for UIDs not in the standard.</summary>
    public bool IsKnown { get; }

    /// <summary>
    /// The well-known syntax for <paramref name="uid"/> (trailing NUL/space padding ignored), or an unknown one
    /// treated as explicit VR little endian encapsulated.
    /// </summary>
    public static TransferSyntax Lookup(string uid)
    {
        ArgumentNullException.ThrowIfNull(uid);
        if (ByUid.TryGetValue(uid, out var ts))
        {
            return ts;
        }

        var trimmed = uid.Trim(' ', '\0');
        return ByUid.TryGetValue(trimmed, out ts) ? ts : Unknown(trimmed);
    }

    /// <summary>True when <paramref name="uid"/> is a syntax of the standard known to this build.</summary>
    public static bool IsKnownUid(string uid) => ByUid.ContainsKey(uid.Trim(' ', '\0'));

    /// <summary>A syntax for a UID outside the standard: explicit VR little endian, encapsulated pixel data.</summary>
    public static TransferSyntax Unknown(string uid) =>
        new(uid, uid, "Unknown transfer syntax " + uid, encapsulated: true, known: false);

    /// <summary>The name and UID.</summary>
    public override string ToString() => $"{Name} ({Uid})";

    /// <summary>Equal when the UIDs are equal (unknown syntaxes are created per lookup).</summary>
    public override bool Equals(object? obj) => obj is TransferSyntax other && other.Uid == Uid;

    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(Uid);
}
