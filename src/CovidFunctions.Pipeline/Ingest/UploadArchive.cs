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
    /// <summary>Deletes the upload's blobs (a folder's <c>.complete</c> marker last, so a half-deleted folder stays one closed unit).</summary>
    public static async Task<int> DeleteAsync(IBlobContainers containers, string uploadPath, CancellationToken cancellationToken)
    {
        var uploads = containers.Get(PipelineNames.UploadsContainer);
        var deleted = 0;
        foreach (var path in await ListAsync(uploads, uploadPath, cancellationToken).ConfigureAwait(false))
        {
            deleted += await TryDeleteAsync(uploads, path, cancellationToken).ConfigureAwait(false) ? 1 : 0;
        }

        return deleted;
    }

    /// <summary>
    /// Copies the upload's blobs to <c>quarantine/{tenant}/{studyId}/original/</c> and writes <c>reason.json</c>, THEN
    /// deletes the upload. Returns the blobs moved (0 when the upload is already gone: nothing is rewritten then).
    /// </summary>
    public static async Task<int> QuarantineAsync(IBlobContainers containers, QuarantineReason reason, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(reason);
        var uploads = containers.Get(PipelineNames.UploadsContainer);
        var quarantine = containers.Get(PipelineNames.QuarantineContainer);
        var prefix = $"{reason.Tenant}/{reason.StudyId}";
        var paths = await ListAsync(uploads, reason.UploadPath, cancellationToken).ConfigureAwait(false);
        var moved = new List<string>(paths.Count);
        foreach (var path in paths)
        {
            if (IsMarker(reason.UploadPath, path))
            {
                continue;
            }

            Stream source;
            try
            {
                source = await uploads.OpenReadAsync(path, cancellationToken).ConfigureAwait(false);
            }
            catch (FileNotFoundException)
            {
                continue; // moved by a concurrent settlement of the same study
            }

            await using (source.ConfigureAwait(false))
            {
                await quarantine.WriteAsync($"{prefix}/original/{IngestHandler.SafeRelativePath(RelativeName(reason.UploadPath, path))}", source, cancellationToken).ConfigureAwait(false);
            }

            moved.Add(path);
        }

        if (paths.Count == 0)
        {
            return 0;
        }

        using (var json = new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(reason, PipelineJson.Options)))
        {
            await quarantine.WriteAsync(prefix + "/reason.json", json, cancellationToken).ConfigureAwait(false);
        }

        foreach (var path in paths)
        {
            await TryDeleteAsync(uploads, path, cancellationToken).ConfigureAwait(false);
        }

        return moved.Count;
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

    private static async Task<bool> TryDeleteAsync(IBlobStore store, string path, CancellationToken cancellationToken)
    {
        try
        {
            await store.DeleteAsync(path, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (FileNotFoundException)
        {
            return false;
        }
    }
}
