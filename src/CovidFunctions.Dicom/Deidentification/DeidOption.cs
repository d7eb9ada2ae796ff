namespace CovidFunctions.Dicom.Deidentification;

/// <summary>
/// The PS3.15 profile and options, valued by their CID 7050 code (the code written to (0012,0064)).
/// Names follow fo-dicom's <c>SecurityProfileOptions</c>.
/// </summary>
public enum DeidOption
{
    /// <summary>113100 Basic Application Confidentiality Profile (always applied).</summary>
    BasicProfile = 113100,

    /// <summary>113101 Clean Pixel Data Option (not supported: such instances are rejected instead).</summary>
    CleanPixelData = 113101,

    /// <summary>113102 Clean Recognizable Visual Features Option (not supported).</summary>
    CleanRecognizableVisualFeatures = 113102,

    /// <summary>113103 Clean Graphics Option (not supported: graphics and overlays are removed).</summary>
    CleanGraphics = 113103,

    /// <summary>113104 Clean Structured Content Option (not supported: SR content is removed).</summary>
    CleanStructuredContent = 113104,

    /// <summary>113105 Clean Descriptors Option.</summary>
    CleanDescriptors = 113105,

    /// <summary>113106 Retain Longitudinal Temporal Information Full Dates Option (not supported).</summary>
    RetainLongitudinalFullDates = 113106,

    /// <summary>113107 Retain Longitudinal Temporal Information Modified Dates Option.</summary>
    RetainLongitudinalModifiedDates = 113107,

    /// <summary>113108 Retain Patient Characteristics Option.</summary>
    RetainPatientCharacteristics = 113108,

    /// <summary>113109 Retain Device Identity Option.</summary>
    RetainDeviceIdentity = 113109,

    /// <summary>113110 Retain UIDs Option (not supported).</summary>
    RetainUids = 113110,

    /// <summary>113111 Retain Safe Private Option (PS3.15 Table E.3.10-1 safe private attributes kept).</summary>
    RetainSafePrivate = 113111,

    /// <summary>113112 Retain Institution Identity Option.</summary>
    RetainInstitutionIdentity = 113112,
}

/// <summary>Meanings of the CID 7050 codes, as written in (0012,0064) Code Meaning.</summary>
public static class DeidOptionMeanings
{
    /// <summary>The CID 7050 code meaning of an option.</summary>
    public static string Of(DeidOption option) => option switch
    {
        DeidOption.BasicProfile => "Basic Application Confidentiality Profile",
        DeidOption.CleanPixelData => "Clean Pixel Data Option",
        DeidOption.CleanRecognizableVisualFeatures => "Clean Recognizable Visual Features Option",
        DeidOption.CleanGraphics => "Clean Graphics Option",
        DeidOption.CleanStructuredContent => "Clean Structured Content Option",
        DeidOption.CleanDescriptors => "Clean Descriptors Option",
        DeidOption.RetainLongitudinalFullDates => "Retain Longitudinal Temporal Information Full Dates Option",
        DeidOption.RetainLongitudinalModifiedDates => "Retain Longitudinal Temporal Information Modified Dates Option",
        DeidOption.RetainPatientCharacteristics => "Retain Patient Characteristics Option",
        DeidOption.RetainDeviceIdentity => "Retain Device Identity Option",
        DeidOption.RetainUids => "Retain UIDs Option",
        DeidOption.RetainSafePrivate => "Retain Safe Private Option",
        DeidOption.RetainInstitutionIdentity => "Retain Institution Identity Option",
        _ => throw new ArgumentOutOfRangeException(nameof(option), option, null),
    };
}
