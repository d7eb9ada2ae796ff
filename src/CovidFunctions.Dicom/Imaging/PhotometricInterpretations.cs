using System.Collections.Frozen;

namespace CovidFunctions.Dicom.Imaging;

/// <summary>
/// The defined terms of Photometric Interpretation (0028,0004), retired ones included (PS3.3 C.7.6.3.1.2: HSV, ARGB,
/// CMYK), each with the Samples per Pixel (0028,0002) it has. One list for what reads the terms: the de-identifier keeps
/// a value only when it is one of them (<see cref="Deidentification.KeptValueForms"/>), and the series scan says whether
/// an image's term fits its samples. Which of them the codecs decode is theirs to say, not this list's.
/// </summary>
public static class PhotometricInterpretations
{
    /// <summary>Each defined term and its Samples per Pixel.</summary>
    public static FrozenDictionary<string, int> SamplesPerPixel { get; } = new Dictionary<string, int>(StringComparer.Ordinal)
    {
        ["MONOCHROME1"] = 1,
        ["MONOCHROME2"] = 1,
        ["PALETTE COLOR"] = 1,
        ["RGB"] = 3,
        ["HSV"] = 3,
        ["ARGB"] = 4,
        ["CMYK"] = 4,
        ["YBR_FULL"] = 3,
        ["YBR_FULL_422"] = 3,
        ["YBR_PARTIAL_422"] = 3,
        ["YBR_PARTIAL_420"] = 3,
        ["YBR_ICT"] = 3,
        ["YBR_RCT"] = 3,
    }.ToFrozenDictionary(StringComparer.Ordinal);
}
