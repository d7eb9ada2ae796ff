namespace CovidFunctions.Dicom.Deidentification;

/// <summary>
/// One row of PS3.15 Table E.1-1: a tag or tag pattern (<c>(tag &amp; PatternMask) == PatternValue</c>) and its action code per
/// profile/option column. <see cref="RetainInstitutionIdentity"/> has no column in 2017c; supplement rows fill it.
/// </summary>
public sealed record AnnexERow(
    uint PatternValue,
    uint PatternMask,
    string Tag,
    string Name,
    bool Retired,
    bool InStandardIod,
    AnnexECode Basic,
    AnnexECode RetainSafePrivate,
    AnnexECode RetainUids,
    AnnexECode RetainDeviceIdentity,
    AnnexECode RetainPatientCharacteristics,
    AnnexECode RetainLongitudinalFullDates,
    AnnexECode RetainLongitudinalModifiedDates,
    AnnexECode CleanDescriptors,
    AnnexECode CleanStructuredContent,
    AnnexECode CleanGraphics,
    AnnexECode RetainInstitutionIdentity = AnnexECode.None)
{
    /// <summary>True when the row names one tag exactly (no xx wildcards, not the private-group pattern).</summary>
    public bool IsExactTag => PatternMask == 0xFFFFFFFF;

    /// <summary>True when <paramref name="tag"/> (group &lt;&lt; 16 | element) matches this row.</summary>
    public bool Matches(uint tag) => (tag & PatternMask) == PatternValue;

    /// <summary>The code of the column that belongs to <paramref name="option"/>.</summary>
    public AnnexECode ColumnFor(DeidOption option) => option switch
    {
        DeidOption.RetainSafePrivate => RetainSafePrivate,
        DeidOption.RetainUids => RetainUids,
        DeidOption.RetainDeviceIdentity => RetainDeviceIdentity,
        DeidOption.RetainInstitutionIdentity => RetainInstitutionIdentity,
        DeidOption.RetainPatientCharacteristics => RetainPatientCharacteristics,
        DeidOption.RetainLongitudinalFullDates => RetainLongitudinalFullDates,
        DeidOption.RetainLongitudinalModifiedDates => RetainLongitudinalModifiedDates,
        DeidOption.CleanDescriptors => CleanDescriptors,
        DeidOption.CleanStructuredContent => CleanStructuredContent,
        DeidOption.CleanGraphics => CleanGraphics,
        _ => AnnexECode.None,
    };
}
