namespace CovidFunctions.Dicom.Deidentification;

/// <summary>
/// Options of the de-identifier. Each supported PS3.15 option is one switch; the defaults below are the project defaults
/// and are listed in docs/compliance/deid-conformance.md. They are not deployment settings: ingest (the Function app,
/// <c>covidfn up</c>) always uses the defaults and refuses these names in its <see cref="SectionName"/> section at start
/// (IngestSettings.RejectDeidentificationOptions), so that no one believes an option in force that is not.
/// </summary>
public sealed record DeidentificationOptions
{
    /// <summary>The configuration section whose option names the ingest hosts refuse (it also holds the Function app's key settings).</summary>
    public const string SectionName = "Deidentification";

    /// <summary>113107: shift every date of a patient by one keyed offset (intervals and ages stay true). Default on.</summary>
    public bool RetainLongitudinalModifiedDates { get; init; } = true;

    /// <summary>113108: keep sex, age, size, weight and similar characteristics. Default on.</summary>
    public bool RetainPatientCharacteristics { get; init; } = true;

    /// <summary>113105: keep descriptions, reduced to an allow-listed vocabulary, instead of removing them. Default on.</summary>
    public bool CleanDescriptors { get; init; } = true;

    /// <summary>113109: keep station, device serial numbers and similar. Default off.</summary>
    public bool RetainDeviceIdentity { get; init; }

    /// <summary>
    /// 113111: keep the private elements listed in PS3.15 Table E.3.10-1 (matched by group, private creator and element
    /// offset), and their private creator elements; every other private element is still removed. Default off.
    /// </summary>
    public bool RetainSafePrivate { get; init; }

    /// <summary>113112: keep institution name, address and department. Default off.</summary>
    public bool RetainInstitutionIdentity { get; init; }

    /// <summary>Number of base32 characters in the patient pseudonym after <c>ANON-</c> (5 bits each). Default 16 (80 bits).</summary>
    public int PseudonymLength { get; init; } = 16;

    /// <summary>The options in force, including the Basic Profile, in CID 7050 code order.</summary>
    public IReadOnlyList<DeidOption> EnabledOptions
    {
        get
        {
            var list = new List<DeidOption> { DeidOption.BasicProfile };
            if (CleanDescriptors)
            {
                list.Add(DeidOption.CleanDescriptors);
            }

            if (RetainLongitudinalModifiedDates)
            {
                list.Add(DeidOption.RetainLongitudinalModifiedDates);
            }

            if (RetainPatientCharacteristics)
            {
                list.Add(DeidOption.RetainPatientCharacteristics);
            }

            if (RetainDeviceIdentity)
            {
                list.Add(DeidOption.RetainDeviceIdentity);
            }

            if (RetainSafePrivate)
            {
                list.Add(DeidOption.RetainSafePrivate);
            }

            if (RetainInstitutionIdentity)
            {
                list.Add(DeidOption.RetainInstitutionIdentity);
            }

            return list;
        }
    }

    /// <summary>Throws when a setting is out of range (called by the engine's constructor).</summary>
    public void Validate()
    {
        if (PseudonymLength is < 8 or > 51)
        {
            throw new ArgumentOutOfRangeException(
                nameof(PseudonymLength), PseudonymLength, SectionName + ":PseudonymLength must be between 8 and 51 base32 characters.");
        }
    }
}
