namespace CovidFunctions.Pipeline.Ingest;

/// <summary>How an upload arrived.</summary>
public enum UploadUnitKind
{
    /// <summary>One blob directly under <c>{tenant}/</c> (a zip, a DICOM file, a NIfTI volume, or anything else).</summary>
    SingleBlob,

    /// <summary>The blobs under <c>{tenant}/{folder}/</c>, closed by a <c>.complete</c> marker or by the stable age.</summary>
    Folder,
}

/// <summary>
/// One upload that is ready to ingest: what <see cref="UploadUnitPlanner"/> hands to <see cref="IngestHandler"/>.
/// <see cref="UploadPath"/> is the blob path (single blob) or the folder prefix ending in '/' (folder);
/// <see cref="Blobs"/> are the upload's blobs without the marker, in path order; <see cref="MarkerPath"/> is the
/// folder's <c>.complete</c> blob when it exists (deleted with the upload).
/// </summary>
/// <remarks>
/// A unit whose tenant is not valid (<see cref="StudyIds.IsValidTenant"/>) carries <see cref="Rejection"/>: ingest
/// quarantines it under <see cref="UploadUnitPlanner.InvalidTenantQuarantine"/> instead of ignoring it. Its
/// <see cref="StudyId"/> is <see cref="StudyIds.ForUploadUnchecked"/> (keyed like every study id; the tenant is not validated).
/// </remarks>
public sealed record UploadUnit(
    string Tenant,
    string StudyId,
    string UploadPath,
    UploadUnitKind Kind,
    IReadOnlyList<UploadBlob> Blobs,
    string? MarkerPath,
    string? Rejection = null)
{
    /// <summary>The upload's blob paths (without the marker).</summary>
    public IReadOnlyList<string> BlobPaths => [.. Blobs.Select(b => b.Path)];

    /// <summary>The name of a blob inside the upload: the file name of a single blob, the path below the folder prefix otherwise.</summary>
    public string RelativeName(string blobPath)
    {
        ArgumentNullException.ThrowIfNull(blobPath);
        if (Kind == UploadUnitKind.Folder && blobPath.StartsWith(UploadPath, StringComparison.Ordinal))
        {
            return blobPath[UploadPath.Length..];
        }

        var slash = blobPath.LastIndexOf('/');
        return slash >= 0 ? blobPath[(slash + 1)..] : blobPath;
    }
}
