using System.Globalization;
using System.Text;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Cli.LocalHost;

/// <summary>What <see cref="StudySubmitter"/> did: the study id, the upload path in ct-uploads and the blobs written.</summary>
public sealed record SubmittedStudy(string Tenant, string StudyId, string UploadPath, int Blobs, long Bytes);

/// <summary>
/// Uploads a study to <c>ct-uploads</c> the way a research group would: a file (DICOM, zip, NIfTI) as one blob
/// <c>{tenant}/{stamp}-{name}</c>; a folder as <c>{tenant}/{stamp}-{folder}/{relative path}</c> for each file, then the
/// folder's <c>.complete</c> marker last so the watcher never ingests a half-uploaded folder. The stamp makes each
/// submission its own study (the study id is derived from the upload path under the pipeline's key,
/// <see cref="StudyIds.ForUpload"/>: <paramref name="studyIdKey"/> must be the key of the pipeline that ingests the
/// upload, e.g. <see cref="LocalPipelineHost.StudyIdKey"/>, or ingest names the study differently). The Studies row is
/// created (queued) before the first byte is uploaded so <c>status</c> knows the study at once.
/// </summary>
public sealed class StudySubmitter(IBlobContainers containers, IStudyStore studies, StudyIdKey studyIdKey, TimeProvider? timeProvider = null)
{
    private readonly TimeProvider _time = timeProvider ?? TimeProvider.System;

    public async Task<SubmittedStudy> SubmitAsync(string input, string tenant, CancellationToken cancellationToken)
    {
        StudyIds.RequireTenant(tenant);
        var full = Path.GetFullPath(input);
        var isFolder = Directory.Exists(full);
        if (!isFolder && !File.Exists(full))
        {
            throw new FileNotFoundException($"no such file or folder: {input}", input);
        }

        var now = _time.GetUtcNow();
        var name = SafeName(Path.GetFileName(full.TrimEnd(Path.DirectorySeparatorChar)));
        var stamp = now.UtcDateTime.ToString("yyyyMMdd'T'HHmmssfff", CultureInfo.InvariantCulture);
        var basePath = $"{tenant}/{stamp}-{name}";
        var files = isFolder ? ListFolder(full) : [full];
        if (files.Count == 0)
        {
            throw new InvalidDataException($"the folder {input} holds no files");
        }

        var uploadPath = isFolder ? basePath + "/" : basePath;
        var studyId = StudyIds.ForUpload(studyIdKey, tenant, uploadPath);
        await studies.TryCreateAsync(new StudyRecord
        {
            Tenant = tenant,
            StudyId = studyId,
            Status = StudyStatus.Queued,
            UploadPath = uploadPath,
            CreatedAt = now,
        }, cancellationToken).ConfigureAwait(false);

        var uploads = containers.Get(PipelineNames.UploadsContainer);
        long bytes = 0;
        foreach (var file in files)
        {
            var blobPath = isFolder
                ? basePath + "/" + Path.GetRelativePath(full, file).Replace(Path.DirectorySeparatorChar, '/')
                : basePath;
            await using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);
            bytes += stream.Length;
            await uploads.WriteAsync(blobPath, stream, cancellationToken).ConfigureAwait(false);
        }

        if (isFolder)
        {
            await uploads.WriteAsync(basePath + "/" + PipelineNames.CompleteMarker, new MemoryStream(Encoding.UTF8.GetBytes(files.Count.ToString(CultureInfo.InvariantCulture))), cancellationToken).ConfigureAwait(false);
        }

        return new SubmittedStudy(tenant, studyId, uploadPath, files.Count + (isFolder ? 1 : 0), bytes);
    }

    private static List<string> ListFolder(string folder) =>
        [.. Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Where(f => !string.Equals(Path.GetFileName(f), PipelineNames.CompleteMarker, StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)];

    /// <summary>Blob-name-safe: letters, digits, '.', '-' and '_' kept, anything else becomes '_'.</summary>
    private static string SafeName(string name)
    {
        var chars = name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' ? c : '_').ToArray();
        var safe = new string(chars).Trim('.');
        return safe.Length == 0 ? "study" : safe;
    }
}
