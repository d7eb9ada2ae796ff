namespace CovidFunctions.Pipeline.Ingest;

/// <summary>
/// Decides, from a listing of <c>ct-uploads</c> and the time, which uploads are ready (pure: no I/O). A blob directly
/// under <c>{tenant}/</c> is a unit on its own; the blobs under <c>{tenant}/{folder}/</c> (any depth) form one unit,
/// ready when <c>{tenant}/{folder}/.complete</c> exists or when the newest blob in it is at least
/// <see cref="PipelineOptions.FolderStableAge"/> old. A tenant segment that is not a valid tenant (or a blob at the
/// container root, which has none) still yields units, marked rejected, so nothing uploaded is silently ignored.
/// Each unit's study id is keyed (<see cref="StudyIds.ForUpload"/> under the caller's <see cref="StudyIdKey"/>).
/// </summary>
public static class UploadUnitPlanner
{
    /// <summary>The quarantine "tenant" folder for uploads whose tenant is not valid ('_' cannot start a real tenant).</summary>
    public const string InvalidTenantQuarantine = "_invalid-tenant";

    /// <summary>The reason code of a unit refused for its tenant.</summary>
    public const string InvalidTenantReason = "invalid-tenant";

    /// <summary>The units ready at <paramref name="now"/>, in upload path order.</summary>
    public static IReadOnlyList<UploadUnit> Plan(IEnumerable<UploadBlob> blobs, DateTimeOffset now, PipelineOptions options, StudyIdKey studyIdKey)
    {
        ArgumentNullException.ThrowIfNull(blobs);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(studyIdKey);
        var singles = new List<UploadUnit>();
        var folders = new SortedDictionary<string, (string Tenant, List<UploadBlob> Blobs, UploadBlob? Marker)>(StringComparer.Ordinal);
        foreach (var blob in blobs.DistinctBy(b => b.Path).OrderBy(b => b.Path, StringComparer.Ordinal))
        {
            var path = blob.Path.TrimStart('/');
            var first = path.IndexOf('/', StringComparison.Ordinal);
            if (first < 0)
            {
                // At the container root: no tenant segment at all.
                singles.Add(Unit(studyIdKey, string.Empty, path, UploadUnitKind.SingleBlob, [blob with { Path = path }], null));
                continue;
            }

            var tenant = path[..first];
            var second = path.IndexOf('/', first + 1);
            if (second < 0)
            {
                singles.Add(Unit(studyIdKey, tenant, path, UploadUnitKind.SingleBlob, [blob with { Path = path }], null));
                continue;
            }

            var prefix = path[..(second + 1)];
            if (!folders.TryGetValue(prefix, out var folder))
            {
                folder = (tenant, [], null);
            }

            if (path.Length == prefix.Length + PipelineNames.CompleteMarker.Length && path.EndsWith(PipelineNames.CompleteMarker, StringComparison.Ordinal))
            {
                folder.Marker = blob with { Path = path };
            }
            else
            {
                folder.Blobs.Add(blob with { Path = path });
            }

            folders[prefix] = folder;
        }

        var ready = new List<UploadUnit>(singles);
        foreach (var (prefix, folder) in folders)
        {
            if (folder.Marker is not null || IsStable(folder.Blobs, now, options.FolderStableAge))
            {
                ready.Add(Unit(studyIdKey, folder.Tenant, prefix, UploadUnitKind.Folder, folder.Blobs, folder.Marker?.Path));
            }
        }

        return [.. ready.OrderBy(u => u.UploadPath, StringComparer.Ordinal)];
    }

    /// <summary>
    /// The units the Function app's minute sweep hands to ingest at <paramref name="now"/>: the folders <see cref="Plan"/>
    /// closes, and the single blobs written at least <see cref="PipelineOptions.SingleUploadSweepAge"/> before (their
    /// Event Grid trigger had that long; <see cref="IngestHandler.SweepMustIngestAsync"/> then skips those ingest has
    /// recorded). The local watcher plans with <see cref="Plan"/> alone: it ingests single blobs at once.
    /// </summary>
    public static IReadOnlyList<UploadUnit> PlanSweep(IEnumerable<UploadBlob> blobs, DateTimeOffset now, PipelineOptions options, StudyIdKey studyIdKey)
    {
        ArgumentNullException.ThrowIfNull(options);
        return [.. Plan(blobs, now, options, studyIdKey).Where(u => u.Kind == UploadUnitKind.Folder || now - u.Blobs.Max(b => b.LastModified) >= options.SingleUploadSweepAge)];
    }

    /// <summary>
    /// The unit of one blob the caller was told about (the Azure blob trigger): a unit when the blob lies directly under
    /// a tenant (or at the container root), null when it is inside a folder (folders are closed by <see cref="Plan"/>).
    /// </summary>
    public static UploadUnit? ForSingleBlob(UploadBlob blob, StudyIdKey studyIdKey)
    {
        ArgumentNullException.ThrowIfNull(blob);
        ArgumentNullException.ThrowIfNull(studyIdKey);
        var path = blob.Path.TrimStart('/');
        var first = path.IndexOf('/', StringComparison.Ordinal);
        if (first >= 0 && path.IndexOf('/', first + 1) >= 0)
        {
            return null;
        }

        return Unit(studyIdKey, first < 0 ? string.Empty : path[..first], path, UploadUnitKind.SingleBlob, [blob with { Path = path }], null);
    }

    private static bool IsStable(List<UploadBlob> blobs, DateTimeOffset now, TimeSpan stableAge) =>
        blobs.Count > 0 && now - blobs.Max(b => b.LastModified) >= stableAge;

    private static UploadUnit Unit(StudyIdKey studyIdKey, string tenant, string uploadPath, UploadUnitKind kind, List<UploadBlob> blobs, string? markerPath)
    {
        if (StudyIds.IsValidTenant(tenant))
        {
            return new UploadUnit(tenant, StudyIds.ForUpload(studyIdKey, tenant, uploadPath), uploadPath, kind, blobs, markerPath);
        }

        // The same keyed formula without the tenant check: a stable id for quarantining an upload with a bad tenant.
        return new UploadUnit(tenant, StudyIds.ForUploadUnchecked(studyIdKey, tenant, uploadPath), uploadPath, kind, blobs, markerPath, InvalidTenantReason);
    }
}
