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
    /// Settles the raw upload of a study that failed, then forgets its path: moves it to quarantine with
    /// <paramref name="quarantineWith"/> (<see cref="QuarantineAsync"/>), and only then clears the Studies row's
    /// <c>UploadPath</c> (<see cref="UploadNames.ForgetUploadPathAsync"/>), which is how every later step finds the
    /// upload: forgotten first, a crash in between would leave the upload behind for good. Used by the FailStudy
    /// activity; safe to repeat. Returns the blobs moved.
    /// </summary>
    public static async Task<int> SettleAsync(
        IBlobContainers containers,
        IStudyStore studies,
        string tenant,
        string studyId,
        string uploadPath,
        QuarantineReason quarantineWith,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(containers);
        ArgumentNullException.ThrowIfNull(studies);
        ArgumentNullException.ThrowIfNull(quarantineWith);
        if (quarantineWith.Tenant != tenant || quarantineWith.StudyId != studyId || quarantineWith.UploadPath != uploadPath)
        {
            throw new ArgumentException("the quarantine reason names another study or upload", nameof(quarantineWith));
        }

        var blobs = await QuarantineAsync(containers, quarantineWith, cancellationToken).ConfigureAwait(false);
        await UploadNames.ForgetUploadPathAsync(studies, tenant, studyId, cancellationToken).ConfigureAwait(false);
        return blobs;
    }

    /// <summary>
    /// Settles the raw upload of a study whose results are stored, then forgets its path (as <see cref="SettleAsync"/>):
    /// deletes what ingest read of it, unchanged, and keeps in quarantine anything else (<see cref="DeleteReadAsync(IBlobContainers, UploadReadKey, string, string, string, CancellationToken)"/>).
    /// Used by the AggregateStudy activity and the retention sweep; safe to repeat. Returns the blobs deleted or moved.
    /// </summary>
    public static async Task<int> SettleCompletedAsync(
        IBlobContainers containers,
        IStudyStore studies,
        UploadReadKey readKey,
        string tenant,
        string studyId,
        string uploadPath,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(containers);
        ArgumentNullException.ThrowIfNull(studies);
        var blobs = await DeleteReadAsync(containers, readKey, tenant, studyId, uploadPath, cancellationToken).ConfigureAwait(false);
        await UploadNames.ForgetUploadPathAsync(studies, tenant, studyId, cancellationToken).ConfigureAwait(false);
        return blobs;
    }

    /// <summary>Where ingest records the blobs it read of an upload (in <c>slices</c>, next to the study's tiles).</summary>
    public static string ReadListPath(string tenant, string studyId) => $"{tenant}/{studyId}/upload-read.json";

    /// <summary>
    /// Records the blobs of <paramref name="unit"/> that ingest read, each with the version it read
    /// (<paramref name="versions"/>, by blob path; <see cref="IBlobStore.OpenReadVersionedAsync"/>), names keyed with
    /// <paramref name="readKey"/> (<see cref="UploadReadList"/>).
    /// </summary>
    public static async Task WriteReadListAsync(IBlobContainers containers, UploadReadKey readKey, UploadUnit unit, IReadOnlyDictionary<string, string> versions, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(containers);
        ArgumentNullException.ThrowIfNull(readKey);
        ArgumentNullException.ThrowIfNull(unit);
        ArgumentNullException.ThrowIfNull(versions);
        var list = new UploadReadList(UploadReadList.Keyed, readKey.Mac(UploadReadList.KeyCheckText), readKey.Mac(unit.UploadPath), null, [.. unit.BlobPaths.Select(p => new ReadBlob(readKey.Mac(p), versions[p]))]);
        using var json = new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(list, PipelineJson.Options));
        await containers.Get(PipelineNames.SlicesContainer).WriteAsync(ReadListPath(unit.Tenant, unit.StudyId), json, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The blobs ingest read of the study's upload; null when none were recorded (a study ingested before the list
    /// existed, a single blob ingested before it was kept for single blobs too, or the list of another upload of the
    /// same study id: <c>lab/scan</c> and <c>lab/scan/</c>). Reads both formats: the keyed one, and the first one
    /// (SHA-256 of the names, no versions) of studies ingested before. A keyed list written under another key is an
    /// error, not "no list": without it, completion would delete every blob under the folder.
    /// </summary>
    public static async Task<UploadReadSet?> ReadListAsync(IBlobContainers containers, UploadReadKey readKey, string tenant, string studyId, string uploadPath, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(containers);
        ArgumentNullException.ThrowIfNull(readKey);
        Stream stream;
        try
        {
            stream = await containers.Get(PipelineNames.SlicesContainer).OpenReadAsync(ReadListPath(tenant, studyId), cancellationToken).ConfigureAwait(false);
        }
        catch (FileNotFoundException)
        {
            return null;
        }

        UploadReadList? list;
        await using (stream.ConfigureAwait(false))
        {
            list = await JsonSerializer.DeserializeAsync<UploadReadList>(stream, PipelineJson.Options, cancellationToken).ConfigureAwait(false);
        }

        if (list is null)
        {
            return null;
        }

        if (list.Format == UploadReadList.Keyed)
        {
            if (list.KeyCheck != readKey.Mac(UploadReadList.KeyCheckText))
            {
                throw new InvalidOperationException($"{PipelineNames.SlicesContainer}/{ReadListPath(tenant, studyId)} was written under another de-identification key than this host's: the blobs ingest read cannot be told from late files, so nothing of the upload is deleted");
            }

            return list.UploadPath == readKey.Mac(uploadPath)
                ? new UploadReadSet(readKey.Mac, (list.Read ?? []).ToDictionary(b => b.Name, b => (string?)b.Version, StringComparer.Ordinal))
                : null;
        }

        return list.UploadPath == Sha256Name(uploadPath)
            ? new UploadReadSet(Sha256Name, (list.Blobs ?? []).Distinct(StringComparer.Ordinal).ToDictionary(b => b, _ => (string?)null, StringComparer.Ordinal))
            : null;
    }

    /// <summary>
    /// Deletes the study's upload once its results are stored: only the blobs ingest read (its read list), each only
    /// while it holds the version ingest read (<see cref="IBlobStore.DeleteIfVersionAsync"/>), and the marker last.
    /// Nothing else is deleted unseen: any other blob under a folder is a late file, never screened, copied first to
    /// <c>quarantine/{tenant}/{study}/reupload-{time}/</c> (<c>reupload-after-ingest</c>); a read blob written again
    /// under its name since (its version changed) is not deleted but copied to <c>…/changed-{time}/</c>
    /// (<c>changed-after-ingest</c>); each with <c>reason.json</c> naming each file and why, and each deleted from the
    /// upload only while it holds the version copied. A blob written again during that stays where it is (the next look
    /// at the upload keeps it). Without a read list, the whole upload is deleted (<see cref="DeleteAsync"/>); with a list
    /// from before versions were kept, read blobs are deleted by name.
    /// </summary>
    public static async Task<int> DeleteReadAsync(IBlobContainers containers, UploadReadKey readKey, string tenant, string studyId, string uploadPath, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(containers);
        var read = await ReadListAsync(containers, readKey, tenant, studyId, uploadPath, cancellationToken).ConfigureAwait(false);
        return read is null
            ? await DeleteAsync(containers, uploadPath, cancellationToken).ConfigureAwait(false)
            : await DeleteReadAsync(containers, read, tenant, studyId, uploadPath, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// <see cref="DeleteReadAsync(IBlobContainers, UploadReadKey, string, string, string, CancellationToken)"/> with the
    /// read list <paramref name="read"/> already in hand (<see cref="ReadListAsync"/>), so a caller that had to read it
    /// first does not read it again.
    /// </summary>
    public static async Task<int> DeleteReadAsync(IBlobContainers containers, UploadReadSet read, string tenant, string studyId, string uploadPath, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(containers);
        ArgumentNullException.ThrowIfNull(read);
        var uploads = containers.Get(PipelineNames.UploadsContainer);
        var paths = await ListAsync(uploads, uploadPath, cancellationToken).ConfigureAwait(false);
        var now = DateTimeOffset.UtcNow;
        var kept = new List<(string Path, string Version)>();
        var late = paths.Where(p => !IsMarker(uploadPath, p) && !read.Contains(p)).ToList();
        if (late.Count > 0)
        {
            kept.AddRange(await KeepAsync(containers, tenant, studyId, uploadPath, late, $"reupload-{now.UtcDateTime:yyyyMMddTHHmmssZ}", IngestHandler.ReuploadAfterIngestReason, now, cancellationToken).ConfigureAwait(false));
        }

        var changed = new List<string>();
        foreach (var path in paths.Where(p => !IsMarker(uploadPath, p) && read.Contains(p)))
        {
            if (read.VersionOf(path) is not { } version)
            {
                await uploads.DeleteAsync(path, cancellationToken).ConfigureAwait(false);
            }
            else if (await uploads.DeleteIfVersionAsync(path, version, cancellationToken).ConfigureAwait(false) == ConditionalDelete.Changed)
            {
                changed.Add(path);
            }
        }

        if (changed.Count > 0)
        {
            kept.AddRange(await KeepAsync(containers, tenant, studyId, uploadPath, changed, $"changed-{now.UtcDateTime:yyyyMMddTHHmmssZ}", IngestHandler.ChangedAfterIngestReason, now, cancellationToken).ConfigureAwait(false));
        }

        // The kept files (copied above), each only as copied, then the marker last.
        await DeleteCopiedAsync(uploads, kept, cancellationToken).ConfigureAwait(false);
        await DeleteBlobsAsync(uploads, paths.Where(p => IsMarker(uploadPath, p)), cancellationToken).ConfigureAwait(false);
        return paths.Count;
    }

    /// <summary>Copies late or changed blobs to <c>quarantine/{tenant}/{study}/{folder}/original/</c> and writes its <c>reason.json</c>; returns what was copied, with the versions.</summary>
    private static async Task<List<(string Path, string Version)>> KeepAsync(
        IBlobContainers containers, string tenant, string studyId, string uploadPath, List<string> paths, string folder, string code, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var prefix = $"{tenant}/{studyId}/{folder}";
        var copied = await CopyToQuarantineAsync(containers, uploadPath, paths, prefix, RelativeName, cancellationToken).ConfigureAwait(false);
        if (copied.Count == 0)
        {
            return copied;
        }

        var (why, what) = code == IngestHandler.ChangedAfterIngestReason
            ? ("written again under the same name after ingest read it: this content was not screened", "written again under their names after its study was ingested (the content screened was an earlier one)")
            : ("written to the folder after ingest read it: not screened", "written to it after its study was ingested");
        var files = copied.Select(c => new QuarantinedFile(RelativeName(uploadPath, c.Path), why)).ToList();
        var detail = $"upload {uploadPath}: {files.Count} file(s) {what} were not screened ({string.Join(", ", files.Take(5).Select(k => k.Name))}{(files.Count > 5 ? $" and {files.Count - 5} more" : string.Empty)}); upload under a new name to screen them";
        await WriteReasonAsync(containers, prefix, new QuarantineReason(tenant, studyId, uploadPath, code, detail, now) { Files = files }, cancellationToken).ConfigureAwait(false);
        return copied;
    }

    /// <summary>
    /// Deletes each copied blob only while it still holds the version copied: a blob written again after its copy keeps
    /// its new content in the upload (the next look at it keeps it apart). Returns the blobs left so.
    /// </summary>
    public static async Task<List<string>> DeleteCopiedAsync(IBlobStore uploads, IEnumerable<(string Path, string Version)> copied, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(uploads);
        ArgumentNullException.ThrowIfNull(copied);
        var left = new List<string>();
        foreach (var (path, version) in copied)
        {
            if (await uploads.DeleteIfVersionAsync(path, version, cancellationToken).ConfigureAwait(false) == ConditionalDelete.Changed)
            {
                left.Add(path);
            }
        }

        return left;
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
        var moved = await CopyToQuarantineAsync(containers, reason.UploadPath, paths.Where(p => !IsMarker(reason.UploadPath, p)), prefix, RelativeName, cancellationToken).ConfigureAwait(false);
        if (paths.Count == 0)
        {
            return 0;
        }

        await WriteReasonAsync(containers, prefix, reason, cancellationToken).ConfigureAwait(false);

        // Each blob only as copied (one written again meanwhile stays, for the next look), the marker last.
        await DeleteCopiedAsync(uploads, moved, cancellationToken).ConfigureAwait(false);
        await DeleteBlobsAsync(uploads, paths.Where(p => IsMarker(reason.UploadPath, p)), cancellationToken).ConfigureAwait(false);
        return moved.Count;
    }

    /// <summary>
    /// Copies upload blobs to <c>quarantine/{prefix}/original/</c> under <paramref name="nameOf"/> their path (the name
    /// inside the upload, made safe), skipping a blob already gone (moved by a concurrent or earlier settlement of the
    /// same study); returns the paths copied with the version each copy read (for <see cref="DeleteCopiedAsync"/>).
    /// </summary>
    public static async Task<List<(string Path, string Version)>> CopyToQuarantineAsync(IBlobContainers containers, string uploadPath, IEnumerable<string> paths, string prefix, Func<string, string, string> nameOf, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(containers);
        ArgumentNullException.ThrowIfNull(paths);
        ArgumentNullException.ThrowIfNull(nameOf);
        var uploads = containers.Get(PipelineNames.UploadsContainer);
        var quarantine = containers.Get(PipelineNames.QuarantineContainer);
        var copied = new List<(string Path, string Version)>();
        foreach (var path in paths)
        {
            VersionedStream source;
            try
            {
                source = await uploads.OpenReadVersionedAsync(path, cancellationToken).ConfigureAwait(false);
            }
            catch (FileNotFoundException)
            {
                continue;
            }

            await using (source.ConfigureAwait(false))
            {
                await quarantine.WriteAsync($"{prefix}/original/{IngestHandler.SafeRelativePath(nameOf(uploadPath, path))}", source.Content, cancellationToken).ConfigureAwait(false);
            }

            copied.Add((path, source.Version));
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
    /// The blobs ingest read of an upload (<see cref="ReadListPath"/>). Upload names can carry patient names, and
    /// <c>slices</c> holds de-identified data only: format 2 (<see cref="Keyed"/>) keeps each name as its HMAC-SHA256
    /// under the <see cref="UploadReadKey"/> with the version ingest read (<see cref="Read"/>), and <see cref="KeyCheck"/>
    /// (the HMAC of a fixed text) to tell a list of another key from the list of another upload. Format 1 (no
    /// <see cref="Format"/>; lists written before) kept the plain SHA-256 of each name in <see cref="Blobs"/>, no versions:
    /// read still, never written.
    /// </summary>
    private sealed record UploadReadList(int Format, string? KeyCheck, string UploadPath, IReadOnlyList<string>? Blobs, IReadOnlyList<ReadBlob>? Read)
    {
        public const int Keyed = 2;

        public const string KeyCheckText = "covidfn/upload-read/key-check";
    }

    /// <summary>A blob of the read list: its keyed name and the version ingest read.</summary>
    private sealed record ReadBlob(string Name, string Version);

    /// <summary>The SHA-256 (hex) of an upload blob name, as the first read-list format kept it (read only).</summary>
    private static string Sha256Name(string name) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(name)));

    private static bool IsMarker(string uploadPath, string path) =>
        uploadPath.EndsWith('/') && path.Length == uploadPath.Length + PipelineNames.CompleteMarker.Length && path.EndsWith(PipelineNames.CompleteMarker, StringComparison.Ordinal);

    /// <summary>The same name ingest gives a blob in quarantine (<see cref="UploadUnit.RelativeName"/>).</summary>
    public static string RelativeName(string uploadPath, string path)
    {
        if (uploadPath.EndsWith('/') && path.StartsWith(uploadPath, StringComparison.Ordinal))
        {
            return path[uploadPath.Length..];
        }

        var slash = path.LastIndexOf('/');
        return slash >= 0 ? path[(slash + 1)..] : path;
    }
}

/// <summary>
/// The blobs ingest read of an upload, as its read list holds them (<see cref="UploadArchive.ReadListAsync"/>): asked
/// by blob path, whatever the list's format.
/// </summary>
public sealed class UploadReadSet
{
    private readonly Func<string, string> _nameOf;
    private readonly Dictionary<string, string?> _versions;

    internal UploadReadSet(Func<string, string> nameOf, Dictionary<string, string?> versions) => (_nameOf, _versions) = (nameOf, versions);

    /// <summary>Whether ingest read the blob at <paramref name="path"/>.</summary>
    public bool Contains(string path) => _versions.ContainsKey(_nameOf(path));

    /// <summary>The version ingest read of the blob at <paramref name="path"/>; null when it read none or the list kept none (the first format).</summary>
    public string? VersionOf(string path) => _versions.TryGetValue(_nameOf(path), out var version) ? version : null;
}
