namespace CovidFunctions.Dicom.Deidentification;

/// <summary>
/// Why an instance is refused (quarantined) rather than de-identified. The de-identifier cleans attributes, not pixels, so
/// anything that may carry burned-in text is refused. Listed in docs/compliance/deid-conformance.md.
/// </summary>
public enum DeidRejectReason
{
    /// <summary>No SOP Class UID in the dataset or file meta.</summary>
    MissingSopClass,

    /// <summary>Not CT Image Storage or Enhanced CT Image Storage (secondary captures, dose reports, SR, presentation states, ...).</summary>
    UnsupportedSopClass,

    /// <summary>Image Type is not ORIGINAL\PRIMARY (derived, secondary, screen saves, dose screens).</summary>
    NotOriginalPrimary,

    /// <summary>Burned In Annotation (0028,0301) is YES.</summary>
    BurnedInAnnotation,

    /// <summary>
    /// Encapsulated Pixel Data that cannot be decoded (no codec, corrupt frames, an unknown transfer syntax): its fragments
    /// cannot be rewritten as pixels only, and copied as they are they could carry anything. The engine refuses the file
    /// like any other rejection (covidfn deid reports pixel-data-unreadable; ingest keeps it as not screened, or rejects
    /// the study as unreadable when it belongs to the screened series or is all there is).
    /// </summary>
    PixelDataUnreadable,
}

/// <summary>A refusal with a message that carries no PHI (only the reason and, where useful, the SOP class UID or image type).</summary>
public sealed record DeidRejection(DeidRejectReason Reason, string Message);
