using System.Text.Json;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Ingest;

/// <summary>
/// The raw upload of a study once the study is settled, found again from the Studies row's <c>UploadPath</c> (a blob,
/// or a folder prefix ending in '/'): deleted when its results are stored, or moved to quarantine with the reason when
/// the study failed after ingest. Shared by ingest (a re-delivery of a settled study) and the orchestration's
/// activities. Both are safe to repeat: blobs already gone are skipped.
/// </summary>
internal static class UploadArchive
{
    /// <summary>
    /// Settles a study's raw upload, then forgets its path: deletes the upload (<paramref name="quarantineWith"/> null:
    /// the study's results are stored) or moves it to quarantine with that reason (the study failed), and only then
    /// clears the Studies row's <c>UploadPath</c> (<see cref="UploadNames.ForgetUploadPathAsync"/>), which is how every
    /// later step finds the upload: forgotten first, a crash in between would leave the upload behind for good. Used by
    /// the AggregateStudy and FailStudy activities and the retention sweep; safe to repeat. Returns the blobs deleted
    /// or moved.
    /// </summary>
    public static async Task<int> SettleAsync(
        IBlobContainers containers,
        IStudyStore studies,
        string tenant,
        string studyId,
        string uploadPath,
        QuarantineReason? quarantineWith,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(containers);
        ArgumentNullException.ThrowIfNull(studies);
        if (quarantineWith is not null && (quarantineWith.Tenant != tenant || quarantineWith.StudyId != studyId || quarantineWith.UploadPath != uploadPath))
        {
            throw new ArgumentException("the quarantine reason names another study or upload", nameof(quarantineWith));
        }

        var blobs = quarantineWith is null
            ? await DeleteReadAsync(containers, tenant, studyId, uploadPath, cancellationToken).ConfigureAwait(false)
            : await QuarantineAsync(containers, quarantineWith, cancellationToken).ConfigureAwait(false);
        await UploadNames.ForgetUploadPathAsync(studies, tenant, studyId, cancellationToken).ConfigureAwait(false);
        return blobs;
    }

    /// <summary>Where ingest records the blobs it read of a folder upload (in <c>slices</c>, next to the study's tiles).</summary>
    public static string ReadListPath(string tenant, string studyId) => $"{tenant}/{studyId}/upload-read.json";

    /// <summary>Records the blobs of <paramref name="unit"/> that ingest read (folder units; a single blob is its path).</summary>
    public static async Task WriteReadListAsync(IBlobContainers containers, UploadUnit unit, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(containers);
        ArgumentNullException.ThrowIfNull(unit);
        if (unit.Kind != UploadUnitKind.Folder)
        {
            return;
        }

        using var json = new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(new UploadReadList(NameHash(unit.UploadPath), [.. unit.BlobPaths.Select(NameHash)]), PipelineJson.Options));
        await containers.Get(PipelineNames.SlicesContainer).WriteAsync(ReadListPath(unit.Tenant, unit.StudyId), json, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The blobs ingest read of the study's folder upload, as <see cref="NameHash"/>es; null when none were recorded (a single blob, or a study ingested before the list existed).</summary>
    public static async Task<HashSet<string>?> ReadListAsync(IBlobContainers containers, string tenant, string studyId, string uploadPath, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(containers);
        Stream stream;
        try
        {
            stream = await containers.Get(PipelineNames.SlicesContainer).OpenReadAsync(ReadListPath(tenant, studyId), cancellationToken).ConfigureAwait(false);
        }
        catch (FileNotFoundException)
        {
            return null;
        }

        await using (stream.ConfigureAwait(false))
        {
            var list = await JsonSerializer.DeserializeAsync<UploadReadList>(stream, PipelineJson.Options, cancellationToken).ConfigureAwait(false);
            return list is not null && list.UploadPath == NameHash(uploadPath) ? [.. list.Blobs] : null;
        }
    }

    /// <summary>
    /// Deletes the study's upload once its results are stored: of a folder, only the blobs ingest read (its read list)
    /// and the marker; any other blob under the prefix is a late file, never screened, and goes to
    /// <c>quarantine/{tenant}/{study}/reupload-{time}/</c> with <c>reason.json</c> (<c>reupload-after-ingest</c>, each
    /// file named) before anything is deleted. Without a read list, the whole upload is deleted (<see cref="DeleteAsync"/>).
    /// </summary>
    public static async Task<int> DeleteReadAsync(IBlobContainers containers, string tenant, string studyId, string uploadPath, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(containers);
        var read = uploadPath.EndsWith('/') ? await ReadListAsync(containers, tenant, studyId, uploadPath, cancellationToken).ConfigureAwait(false) : null;
        if (read is null)
        {
            return await DeleteAsync(containers, uploadPath, cancellationToken).ConfigureAwait(false);
        }

        var uploads = containers.Get(PipelineNames.UploadsContainer);
        var paths = await ListAsync(uploads, uploadPath, cancellationToken).ConfigureAwait(false);
        var late = paths.Where(p => !IsMarker(uploadPath, p) && !read.Contains(NameHash(p))).ToList();
        if (late.Count > 0)
        {
            var now = DateTimeOffset.UtcNow;
            var prefix = $"{tenant}/{studyId}/reupload-{now.UtcDateTime:yyyyMMddTHHmmssZ}";
            var copied = await CopyToQuarantineAsync(containers, uploadPath, late, prefix, cancellationToken).ConfigureAwait(false);
            var kept = copied.Select(path => new QuarantinedFile(RelativeName(uploadPath, path), "written to the folder after ingest read it: not screened")).ToList();
            var detail = $"upload {uploadPath}: {kept.Count} file(s) written to it after its study was ingested were not screened ({string.Join(", ", kept.Take(5).Select(k => k.Name))}{(kept.Count > 5 ? $" and {kept.Count - 5} more" : string.Empty)}); upload under a new name to screen them";
            await WriteReasonAsync(containers, prefix, new QuarantineReason(tenant, studyId, uploadPath, "reupload-after-ingest", detail, now) { Files = kept }, cancellationToken).ConfigureAwait(false);
        }

        // The late files (copied above), the read ones, then the marker last.
        await DeleteBlobsAsync(uploads, paths, cancellationToken).ConfigureAwait(false);
        return paths.Count;
    }

    /// <summary>Deletes the upload's blobs (a folder's <c>.complete</c> marker last, so a half-deleted folder stays one closed unit).</summary>
    public static async Task<int> DeleteAsync(IBlobContainers containers, string uploadPath, CancellationToken cancellationToken)
    {
        var uploads = containers.Get(PipelineNames.UploadsContainer);
        var paths = await ListAsync(uploads, uploadPath, cancellationToken).ConfigureAwait(false);
        await DeleteBlobsAsync(uploads, paths, cancellationToken).ConfigureAwait(false);
        return paths.Count;
    }

    /// <summary>
    /// Deletes <paramref name="paths"/> one after the other, in the order given (callers put a folder's marker last).
    /// The one blob-deleting loop of ingest and the upload lifecycle: <see cref="IBlobStore.DeleteAsync"/> treats a
    /// missing blob as deleted, so there is no existence check (one storage call per blob) and no exception to catch.
    /// </summary>
    public static async Task DeleteBlobsAsync(IBlobStore store, IEnumerable<string> paths, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(paths);
        foreach (var path in paths)
        {
            await store.DeleteAsync(path, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Deletes every blob under <paramref name="prefix"/> (listed first, then deleted); returns how many were listed.</summary>
    public static async Task<int> DeletePrefixAsync(IBlobStore store, string prefix, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        var paths = new List<string>();
        await foreach (var path in store.ListAsync(prefix, cancellationToken).ConfigureAwait(false))
        {
            paths.Add(path);
        }

        await DeleteBlobsAsync(store, paths, cancellationToken).ConfigureAwait(false);
        return paths.Count;
    }

    /// <summary>
    /// Copies the upload's blobs to <c>quarantine/{tenant}/{studyId}/original/</c> and writes <c>reason.json</c>, THEN
    /// deletes the upload. Returns the blobs moved (0 when the upload is already gone: nothing is rewritten then).
    /// </summary>
    public static async Task<int> QuarantineAsync(IBlobContainers containers, QuarantineReason reason, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(reason);
        var uploads = containers.Get(PipelineNames.UploadsContainer);
        var prefix = $"{reason.Tenant}/{reason.StudyId}";
        var paths = await ListAsync(uploads, reason.UploadPath, cancellationToken).ConfigureAwait(false);
        var moved = await CopyToQuarantineAsync(containers, reason.UploadPath, paths.Where(p => !IsMarker(reason.UploadPath, p)), prefix, cancellationToken).ConfigureAwait(false);
        if (paths.Count == 0)
        {
            return 0;
        }

        await WriteReasonAsync(containers, prefix, reason, cancellationToken).ConfigureAwait(false);
        await DeleteBlobsAsync(uploads, paths, cancellationToken).ConfigureAwait(false);
        return moved.Count;
    }

    /// <summary>
    /// Copies upload blobs to <c>quarantine/{prefix}/original/</c> under their names in the upload, skipping a blob
    /// already gone (moved by a concurrent or earlier settlement of the same study); returns the paths copied.
    /// </summary>
    private static async Task<List<string>> CopyToQuarantineAsync(IBlobContainers containers, string uploadPath, IEnumerable<string> paths, string prefix, CancellationToken cancellationToken)
    {
        var uploads = containers.Get(PipelineNames.UploadsContainer);
        var quarantine = containers.Get(PipelineNames.QuarantineContainer);
        var copied = new List<string>();
        foreach (var path in paths)
        {
            Stream source;
            try
            {
                source = await uploads.OpenReadAsync(path, cancellationToken).ConfigureAwait(false);
            }
            catch (FileNotFoundException)
            {
                continue;
            }

            await using (source.ConfigureAwait(false))
            {
                await quarantine.WriteAsync($"{prefix}/original/{IngestHandler.SafeRelativePath(RelativeName(uploadPath, path))}", source, cancellationToken).ConfigureAwait(false);
            }

            copied.Add(path);
        }

        return copied;
    }

    /// <summary>Writes <paramref name="reason"/> as <c>quarantine/{prefix}/reason.json</c> (replacing an earlier one: settling is repeatable).</summary>
    public static async Task WriteReasonAsync(IBlobContainers containers, string prefix, QuarantineReason reason, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(containers);
        using var json = new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(reason, PipelineJson.Options));
        await containers.Get(PipelineNames.QuarantineContainer).WriteAsync(prefix + "/reason.json", json, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The upload's blobs that exist now: the blob itself, or every blob under the folder prefix with the marker last.</summary>
    private static async Task<List<string>> ListAsync(IBlobStore uploads, string uploadPath, CancellationToken cancellationToken)
    {
        var paths = new List<string>();
        if (uploadPath.EndsWith('/'))
        {
            await foreach (var path in uploads.ListAsync(uploadPath, cancellationToken).ConfigureAwait(false))
            {
                paths.Add(path);
            }

            return [.. paths.Order(StringComparer.Ordinal).OrderBy(p => IsMarker(uploadPath, p))];
        }

        if (await uploads.ExistsAsync(uploadPath, cancellationToken).ConfigureAwait(false))
        {
            paths.Add(uploadPath);
        }

        return paths;
    }

    /// <summary>
    /// The blobs ingest read of a folder upload (<see cref="ReadListPath"/>), by the SHA-256 of their names: upload names
    /// can carry patient names, and <c>slices</c> holds de-identified data only.
    /// </summary>
    private sealed record UploadReadList(string UploadPath, IReadOnlyList<string> Blobs);

    /// <summary>The SHA-256 (hex) of an upload blob name, as the read list keeps it.</summary>
    public static string NameHash(string name) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(name)));

    private static bool IsMarker(string uploadPath, string path) =>
        uploadPath.EndsWith('/') && path.Length == uploadPath.Length + PipelineNames.CompleteMarker.Length && path.EndsWith(PipelineNames.CompleteMarker, StringComparison.Ordinal);

    /// <summary>The same name ingest gives a blob in quarantine (<see cref="UploadUnit.RelativeName"/>).</summary>
    private static string RelativeName(string uploadPath, string path)
    {
        if (uploadPath.EndsWith('/') && path.StartsWith(uploadPath, StringComparison.Ordinal))
        {
            return path[uploadPath.Length..];
        }

        var slash = path.LastIndexOf('/');
        return slash >= 0 ? path[(slash + 1)..] : path;
    }
}
