using static CovidFunctions.Dicom.Deidentification.AnnexECode;

namespace CovidFunctions.Dicom.Deidentification;

/// <summary>
/// Hand-written rows from PS3.15 editions newer than the generated one (2017c). A supplement row either adds an attribute
/// or replaces a generated row of the same tag; the conformance test still checks that every 2017c row is handled at least
/// as strictly. Keep each row commented with why it is here.
/// </summary>
internal static class AnnexESupplement
{
    public static IEnumerable<AnnexERow> Rows(IReadOnlyList<AnnexERow> standard)
    {
        // The Retain Institution Identity Option (CID 7050 113112) has no column in 2017c; later editions add the column
        // with K for the institution attributes. The Basic Profile action of those rows is unchanged.
        foreach (var tag in new[] { "(0008,0080)", "(0008,0081)", "(0008,0082)", "(0008,1040)" })
        {
            var row = standard.Single(r => r.Tag == tag);
            yield return row with { RetainInstitutionIdentity = K };
        }

        // Newer attributes (later editions of Table E.1-1). Unlisted attributes are removed anyway (allowlist); these rows
        // matter where the newer edition keeps or remaps instead.
        yield return New(0x00081041, "(0008,1041)", "Institutional Department Type Code Sequence", X, institution: K);
        yield return New(0x00080017, "(0008,0017)", "Acquisition UID", U);
        yield return New(0x00080019, "(0008,0019)", "Pyramid UID", U);
        yield return New(0x00100033, "(0010,0033)", "Patient's Birth Date in Alternative Calendar", X);
        yield return New(0x00100034, "(0010,0034)", "Patient's Death Date in Alternative Calendar", X);
        yield return New(0x00100035, "(0010,0035)", "Patient's Alternative Calendar", X);
        yield return New(0x00181020, "(0018,1020)", "Software Versions", X, device: K);
    }

    private static AnnexERow New(uint tag, string text, string name, AnnexECode basic, AnnexECode device = None, AnnexECode institution = None) =>
        new(tag, 0xFFFFFFFF, text, name, Retired: false, InStandardIod: true, basic, None, None, device, None, None, None, None, None, None, institution);
}
