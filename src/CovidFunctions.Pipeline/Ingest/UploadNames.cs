using System.Collections.Frozen;
using System.Text.RegularExpressions;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Ingest;

/// <summary>
/// Masks the uploader's own names in a message before it goes anywhere but the quarantine. Research groups name uploads
/// after patients (<c>Smith_John_CT.zip</c>, an MRN as folder name, zip entries under the patient's name), so the
/// upload path, its blob, folder and file names and zip entry paths must not reach logs (they leave the tenant) or the
/// Studies row (and what is built from it: API, HTML report, <c>covidfn status</c>). The quarantine's
/// <c>reason.json</c> keeps the unmasked message next to the originals, which carry the same names anyway
/// (docs/compliance/phi-flow.md).
/// </summary>
public static partial class UploadNames
{
    /// <summary>What a masked name reads as.</summary>
    public const string Masked = "[name]";

    /// <summary>Path segments shorter than this are not masked on their own (a folder <c>CT</c> would mask the word).</summary>
    private const int MinSegmentLength = 3;

    /// <summary>
    /// The fixed words with a '/' that our own reasons and skip notes use (not-hounsfield, no Rows/Columns, unordered
    /// slices, not an image, the HTJ2K refusal). The path rule below masks every other token holding a '/', so without
    /// this list a reason read "... CT stored with an offset but without [name] looks like this" in the Studies row and
    /// the API. Exact tokens only: "scl_slope/Smith_John" is still a path. A name the unit lists is masked before this
    /// rule runs, so an upload folder called "Rows" still reads as [name].
    /// </summary>
    private static readonly FrozenSet<string> OwnSlashTerms = new[]
    {
        "scl_slope/scl_inter",
        "Rows/Columns",
        "Study/Series",
        "PNG/JPEG/TIFF",
        "ImagePositionPatient/ImageOrientationPatient",
        "docs/pixel-codecs.md",
        "uclouvain/openjpeg#1500",
    }.ToFrozenSet(StringComparer.Ordinal);

    /// <summary>
    /// <paramref name="text"/> with every name of <paramref name="unit"/> (the upload path, each blob's path and
    /// relative name; each of their path segments of 3 or more characters but a valid tenant, where it stands as a
    /// word of its own) replaced by <see cref="Masked"/>, and then every remaining token that holds a '/' (zip entry
    /// paths, temporary file paths, which the unit does not list) but our own fixed words (<see cref="OwnSlashTerms"/>).
    /// </summary>
    public static string Mask(string text, UploadUnit unit)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(unit);
        var names = new HashSet<string>(StringComparer.Ordinal);
        var segments = new HashSet<string>(StringComparer.Ordinal);
        Add(unit.UploadPath);
        foreach (var blob in unit.Blobs)
        {
            Add(blob.Path);
            Add(unit.RelativeName(blob.Path));
        }

        var masked = text;
        foreach (var name in names.OrderByDescending(n => n.Length).ThenBy(n => n, StringComparer.Ordinal))
        {
            masked = masked.Replace(name, Masked, StringComparison.Ordinal);
        }

        if (segments.Count > 0)
        {
            // One pass for all segments (a folder upload has thousands), longest first so a segment inside another loses.
            var alternatives = string.Join('|', segments.OrderByDescending(n => n.Length).ThenBy(n => n, StringComparer.Ordinal).Select(Regex.Escape));
            masked = Regex.Replace(masked, $"(?<![A-Za-z0-9_.-])(?:{alternatives})(?![A-Za-z0-9_.-])", Masked, RegexOptions.CultureInvariant);
        }

        // A token of our own vocabulary (OwnSlashTerms) is no upload name, wherever it came from: it stays readable.
        return PathToken().Replace(masked, m => OwnSlashTerms.Contains(m.Value.TrimEnd('.')) ? m.Value : Masked);

        void Add(string path)
        {
            var trimmed = path.Trim('/');
            if (trimmed.Length == 0)
            {
                return;
            }

            names.Add(trimmed);
            foreach (var segment in trimmed.Split('/'))
            {
                // A valid tenant is the customer's own short name, not the uploader's file name: it stays readable.
                if (segment.Length >= MinSegmentLength && !(segment == unit.Tenant && StudyIds.IsValidTenant(unit.Tenant)))
                {
                    segments.Add(segment);
                }
            }
        }
    }

    /// <summary>
    /// Clears the Studies row's <c>UploadPath</c> once the raw upload is deleted or quarantined. The upload lifecycle finds
    /// the upload by it; afterwards it would only keep a name the uploader chose for the life of the row (quarantine's
    /// <c>reason.json</c> keeps it where the upload was moved there). Nothing to do when the row has none.
    /// </summary>
    public static async Task ForgetUploadPathAsync(IStudyStore studies, string tenant, string studyId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(studies);
        var current = await studies.GetAsync(tenant, studyId, cancellationToken).ConfigureAwait(false);
        if (current?.UploadPath is null)
        {
            return;
        }

        await studies.UpdateAsync(tenant, studyId, row => (row ?? current) with { UploadPath = null }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The tenant of <paramref name="unit"/> as logs may name it: an invalid "tenant" is only the first folder of a
    /// blob path (it may be a patient's name), so it reads as <see cref="UploadUnitPlanner.InvalidTenantQuarantine"/>.
    /// </summary>
    public static string LoggableTenant(UploadUnit unit)
    {
        ArgumentNullException.ThrowIfNull(unit);
        return StudyIds.IsValidTenant(unit.Tenant) ? unit.Tenant : UploadUnitPlanner.InvalidTenantQuarantine;
    }

    // A whitespace-delimited run holding a '/', stopped by quotes, parentheses, colons, commas and semicolons around it.
    [GeneratedRegex(@"[^\s'""(),;:]*/[^\s'""(),;:]*")]
    private static partial Regex PathToken();
}
