using System.Collections.Frozen;

namespace CovidFunctions.Dicom.Deidentification;

/// <summary>
/// Image Type (0008,0008) and Frame Type (0008,9007) are on the keep-list because the policy and the series selection read
/// them (ORIGINAL\PRIMARY, AXIAL, LOCALIZER, SECONDARY), and the series report repeats them. They are CS, so any upper-case
/// word fits: a value that is not a defined term of PS3.3 (C.7.6.1.1.2, C.8.2.1.1.1, C.8.15.1.1, C.8.16.1) or a common
/// CT vendor term is emptied, its position kept so value 3 and 4 keep their meaning.
/// </summary>
public static class ImageTypeValues
{
    private static readonly FrozenSet<string> Terms = new[]
    {
        // Values 1 and 2.
        "ORIGINAL", "DERIVED", "PRIMARY", "SECONDARY", "MIXED",

        // Value 3: CT Image, Enhanced CT (image flavor) and what CT scanners write there.
        "AXIAL", "LOCALIZER", "VOLUME", "REFORMATTED", "PROJECTION IMAGE", "OTHER", "ANGIO", "CARDIAC", "CARDIAC_GATED",
        "CARDIAC_CASCORE", "CARDIAC_CTA", "DYNAMIC", "FLUOROSCOPY", "MOTION", "PERFUSION", "PRE_CONTRAST", "POST_CONTRAST",
        "REST", "STATIONARY", "STRESS", "ATTENUATION", "WHOLE BODY", "HELIX", "HELICAL", "SPIRAL", "SEQUENCE", "SCOUT",
        "MPR", "MIP", "MINIP", "VRT", "CSA MPR", "SCREEN SAVE",

        // Value 4: derived pixel contrast, and Siemens' acquisition descriptors.
        "NONE", "ADDITION", "DIVISION", "MASKED", "MAXIMUM", "MEAN", "MINIMUM", "MULTIPLICATION", "RESAMPLED", "STD_DEVIATION",
        "SUBTRACTION", "QUANTITY", "FILTERED", "MEDIAN", "AVERAGE", "ENERGY_PROP_WT", "MAT_SPECIFIC", "MAT_REMOVED",
        "MAT_FRACTIONAL", "MAT_VALUE_BASED", "MAT_MODIFIED", "VMI", "EFF_ATOMIC_NUM", "ELECTRON_DENSITY",
        "CT_SOM5 SPI", "CT_SOM5 SEQ", "CT_SOM7 SPI", "CT_SOM7 SEQ", "CT_SOM7 SPI DUAL", "CT_SOM5 TOP", "CT_SOM7 TOP",
    }.ToFrozenSet(StringComparer.Ordinal);

    /// <summary>The value with every component that is not a known term emptied (components separated by <c>\</c>).</summary>
    public static string Clean(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var parts = value.Split('\\');
        for (var i = 0; i < parts.Length; i++)
        {
            var term = parts[i].Trim(' ', '\0');
            parts[i] = Terms.Contains(term) ? term : string.Empty;
        }

        return string.Join('\\', parts).TrimEnd('\\');
    }
}
