using System.CommandLine;
using System.Diagnostics.CodeAnalysis;
using CovidFunctions.Imaging;
using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.Imaging.Series;
using CovidFunctions.Inference;
using CovidFunctions.Pipeline.Scoring;

namespace CovidFunctions.Cli.Commands;

/// <summary>Shared by <c>segment</c> and <c>classify</c>: input discovery, model loading, batching and mask PNGs.</summary>
public static class ScreeningInputs
{
    /// <summary>Images per inference batch (memory: 8 × 352² floats in, the same out).</summary>
    public const int Batch = 8;

    /// <summary>2-D images under <paramref name="input"/>: the file itself or every image file below the folder
    /// (recursive, ordinal order); null and a message when the input is missing, has no 2-D images, or is a
    /// volume / DICOM input (see <see cref="IsSeriesInput"/>). Files skipped in a folder are not reported.</summary>
    public static IReadOnlyList<string>? Find2DImages(string input, out string? problem) =>
        Find2DImages(input, "covidfn", TextWriter.Null, [], out problem);

    /// <summary>
    /// 2-D images under <paramref name="input"/> as <see cref="Find2DImages(string, out string?)"/>; in a folder,
    /// files that are not PNG/JPG/TIFF by name, hidden files and folders (a name starting with '.', e.g. .DS_Store and
    /// macOS' <c>._x.png</c> AppleDouble files), <c>__MACOSX</c> folders and anything below
    /// <paramref name="outputFolders"/> (a mask folder inside INPUT) are skipped, named in one warning line on
    /// <paramref name="warnings"/>; they do not change the exit status.
    /// </summary>
    public static IReadOnlyList<string>? Find2DImages(string input, string commandName, TextWriter warnings, IReadOnlyList<string> outputFolders, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(warnings);
        ArgumentNullException.ThrowIfNull(outputFolders);
        problem = null;
        if (File.Exists(input))
        {
            if (IsSeriesInput(input))
            {
                problem = $"{input}: a NIfTI / DICOM / zip input is a series, not a 2-D image.";
                return null;
            }

            return [input];
        }

        if (!Directory.Exists(input))
        {
            problem = $"{input}: no such file or folder.";
            return null;
        }

        var scan = ScanFolder(input, outputFolders);
        if (scan.Skipped.Count > 0)
        {
            const int Named = 5;
            var names = string.Join(", ", scan.Skipped.Take(Named).Select(p => Path.GetRelativePath(input, Path.TrimEndingDirectorySeparator(p)).Replace('\\', '/') + (p.EndsWith('/') ? "/" : string.Empty)));
            var more = scan.Skipped.Count > Named ? $" and {scan.Skipped.Count - Named} more" : string.Empty;
            warnings.WriteLine($"{commandName}: warning: skipped {scan.Skipped.Count} entr{(scan.Skipped.Count == 1 ? "y" : "ies")} in {input} (not PNG/JPG/TIFF by name, hidden, or an output folder): {names}{more}");
        }

        if (scan.Images.Count == 0)
        {
            problem = $"{input}: no PNG/JPG/TIFF images found (searched recursively).";
            return null;
        }

        return scan.Images;
    }

    /// <summary>Image files below a folder and the entries skipped (files, and folders with a trailing '/'), both in
    /// ordinal order (see <see cref="Find2DImages(string, string, TextWriter, IReadOnlyList{string}, out string?)"/>).
    /// Linked folders are followed once (a link loop ends there); unreadable subfolders are passed over.</summary>
    private static (List<string> Images, List<string> Skipped) ScanFolder(string folder, IReadOnlyList<string> outputFolders)
    {
        var excluded = outputFolders.Select(f => Path.TrimEndingDirectorySeparator(Path.GetFullPath(f))).ToHashSet(StringComparer.Ordinal);
        var visited = new HashSet<string>(StringComparer.Ordinal);
        var images = new List<string>();
        var skipped = new List<string>();
        var options = new EnumerationOptions { RecurseSubdirectories = false, IgnoreInaccessible = true, AttributesToSkip = 0 };
        var pending = new Stack<string>();
        pending.Push(folder);
        while (pending.Count > 0)
        {
            var dir = pending.Pop();
            var info = new DirectoryInfo(dir);
            if (!visited.Add((info.LinkTarget is null ? info : info.ResolveLinkTarget(returnFinalTarget: true) ?? info).FullName))
            {
                continue;
            }

            foreach (var file in Directory.EnumerateFiles(dir, "*", options))
            {
                (IsHiddenName(Path.GetFileName(file)) || !ImageLoader.HasImageExtension(file) ? skipped : images).Add(file);
            }

            foreach (var sub in Directory.EnumerateDirectories(dir, "*", options))
            {
                var name = Path.GetFileName(sub);
                if (IsHiddenName(name) || name.Equals("__MACOSX", StringComparison.OrdinalIgnoreCase) || excluded.Contains(Path.GetFullPath(sub)))
                {
                    skipped.Add(sub + "/");
                    continue;
                }

                pending.Push(sub);
            }
        }

        images.Sort(StringComparer.Ordinal);
        skipped.Sort(StringComparer.Ordinal);
        return (images, skipped);
    }

    /// <summary>Hidden by convention: .DS_Store, ._x.png (AppleDouble), .git and the like.</summary>
    private static bool IsHiddenName(string name) => name.StartsWith('.');

    /// <summary>
    /// Whether <paramref name="input"/> is screened as one 3-D series (<c>SeriesAssembler.Assemble</c>): a
    /// NIfTI file, a DICOM file, a zip, or a folder holding no PNG/JPG/TIFF image (a DICOM folder). Anything else is
    /// 2-D input (a folder with images is always 2-D, as before).
    /// </summary>
    public static bool IsSeriesInput(string input)
    {
        if (Directory.Exists(input))
        {
            var scan = ScanFolder(input, []);
            return scan.Images.Count == 0 && scan.Skipped.Count > 0;
        }

        if (!File.Exists(input))
        {
            return false;
        }

        var name = Path.GetFileName(input).ToUpperInvariant();
        if (name.EndsWith(".NII", StringComparison.Ordinal) || name.EndsWith(".NII.GZ", StringComparison.Ordinal) ||
            name.EndsWith(".DCM", StringComparison.Ordinal) || name.EndsWith(".ZIP", StringComparison.Ordinal))
        {
            return true;
        }

        return !ImageLoader.HasImageExtension(input) && HasDicomPreamble(input);
    }

    /// <summary>
    /// The NIfTI volumes (<c>.nii</c>, <c>.nii.gz</c>) of a folder screened one by one, in ordinal order of their
    /// paths: a folder (recursive; hidden entries and <c>__MACOSX</c> passed over) holding at least one NIfTI file and
    /// no DICOM file (by <c>.dcm</c> name or the DICM preamble; a DICOM folder is one series for
    /// <see cref="SeriesAssembler"/>, and NIfTI files beside it are not read). Masks this command wrote
    /// (<c>*_lesion.nii.gz</c> below <paramref name="outputFolders"/>, e.g. an out-dir inside INPUT) are not inputs.
    /// Null when <paramref name="input"/> is not such a folder.
    /// </summary>
    public static IReadOnlyList<string>? FindVolumes(string input, IReadOnlyList<string> outputFolders)
    {
        ArgumentNullException.ThrowIfNull(outputFolders);
        if (!Directory.Exists(input))
        {
            return null;
        }

        var outputs = outputFolders.Select(f => Path.TrimEndingDirectorySeparator(Path.GetFullPath(f)) + Path.DirectorySeparatorChar).ToList();
        var volumes = new List<string>();
        var scan = ScanFolder(input, []);
        foreach (var file in scan.Skipped.Where(p => !p.EndsWith('/')))
        {
            var name = Path.GetFileName(file);
            if (IsHiddenName(name))
            {
                continue;
            }

            if (Imaging.Nifti.NiftiFile.HasNiftiExtension(name))
            {
                var full = Path.GetFullPath(file);
                if (!(name.EndsWith("_lesion.nii.gz", StringComparison.OrdinalIgnoreCase) && outputs.Any(o => full.StartsWith(o, StringComparison.Ordinal))))
                {
                    volumes.Add(file);
                }
            }
            else if (name.EndsWith(".dcm", StringComparison.OrdinalIgnoreCase) || HasDicomPreamble(file))
            {
                return null;
            }
        }

        volumes.Sort(StringComparer.Ordinal);
        return volumes.Count > 0 ? volumes : null;
    }

    /// <summary>
    /// The series name of each volume (<see cref="SeriesName"/>), or null when two would write the same mask (compared
    /// ignoring case, as on Windows and macOS file systems: <c>a/ct.nii.gz</c> and <c>b/ct.nii</c>); each clash is
    /// named on <paramref name="error"/>. Refusing beats one mask silently replacing another.
    /// </summary>
    public static IReadOnlyList<string>? VolumeNames(string commandName, string input, IReadOnlyList<string> volumes, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        ArgumentNullException.ThrowIfNull(error);
        var names = volumes.Select(SeriesName).ToList();
        var refused = false;
        foreach (var clash in volumes.Zip(names).GroupBy(p => p.Second, StringComparer.OrdinalIgnoreCase).Where(g => g.Count() > 1))
        {
            var sources = string.Join(" and ", clash.Select(p => RelativeTo(input, p.First)));
            error.WriteLine($"{commandName}: {input}: {sources} would both be written as {clash.Key}_lesion.nii.gz (masks are named <volume name>_lesion.nii.gz, flat in the out-dir); rename one or run the folders separately");
            refused = true;
        }

        return refused ? null : names;
    }

    /// <summary>A path below the folder <paramref name="root"/> relative to it, with '/'.</summary>
    public static string RelativeTo(string root, string path) =>
        Path.GetRelativePath(Path.GetFullPath(root), Path.GetFullPath(path)).Replace('\\', '/');

    /// <summary>The file name of a series input without its volume extension (<c>ct.nii.gz</c> → <c>ct</c>;
    /// a folder → its name); <c>covidfn segment</c> writes <c>&lt;name&gt;_lesion.nii.gz</c>.</summary>
    public static string SeriesName(string input)
    {
        var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(input)));
        foreach (var ext in (string[])[".nii.gz", ".nii", ".dcm", ".zip"])
        {
            if (name.Length > ext.Length && name.EndsWith(ext, StringComparison.OrdinalIgnoreCase))
            {
                return name[..^ext.Length];
            }
        }

        return string.IsNullOrEmpty(name) ? "series" : name;
    }

    private static bool HasDicomPreamble(string path)
    {
        try
        {
            using var f = File.OpenRead(path);
            Span<byte> head = stackalloc byte[132];
            return f.ReadAtLeast(head, 132, throwOnEndOfStream: false) == 132 && head[128..].SequenceEqual("DICM"u8);
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>
    /// Assembles a series input with <paramref name="assembly"/> (the <c>Imaging__*</c> settings, as the pipeline's
    /// ingest assembles uploads: <see cref="ImagingSettings"/>); on failure writes one line prefixed with
    /// <paramref name="commandName"/> to <paramref name="error"/> and returns null.
    /// </summary>
    public static AssembledSeries? TryAssemble(string commandName, string input, SeriesAssemblyOptions assembly, TextWriter error)
    {
        try
        {
            var series = SeriesAssembler.Assemble(input, assembly);
            if (series.SliceCount == 0)
            {
                series.Dispose();
                error.WriteLine($"{commandName}: {input}: the series has no slices.");
                return null;
            }

            // The networks answer for any CT; a study without lungs (a head CT, an abdomen) is refused instead.
            if (ChestCoverage.Measure(series) is { ShowsLungs: false } coverage)
            {
                series.Dispose();
                error.WriteLine($"{commandName}: {input}: not screened: {coverage.Reason}");
                return null;
            }

            WriteNotes(commandName, input, series.Report, error);
            return series;
        }
        catch (Exception ex) when (ex is ImagingException or Dicom.DicomException or IOException or InvalidDataException or UnauthorizedAccessException)
        {
            error.WriteLine($"{commandName}: {input}: cannot read it as a CT series: {ex.Message}");
            return null;
        }
    }

    /// <summary>
    /// What the user of a series should know, on <paramref name="error"/> (it does not change the exit status): which
    /// series was screened and why when the input held others (each named with why it was not), files left out, and
    /// each geometry finding (gap, tilt, variable spacing, obliquity, duplicate positions, a 4-D NIfTI's later volumes).
    /// </summary>
    public static void WriteNotes(string commandName, string input, AssemblyReport report, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(report);
        ArgumentNullException.ThrowIfNull(error);
        if (report.Others.Count > 0)
        {
            error.WriteLine($"{commandName}: note: {input}: screened {report.SelectionReason}");
            foreach (var other in report.Others)
            {
                var label = other.SeriesNumber is { } n ? n.ToString(System.Globalization.CultureInfo.InvariantCulture) : other.SeriesInstanceUid;
                error.WriteLine($"{commandName}: note: {input}: series {label}{(string.IsNullOrWhiteSpace(other.Description) ? string.Empty : $" ({other.Description})")}, {other.SliceCount} slice(s), not screened: {other.ExclusionReason ?? "ranked lower"}");
            }
        }

        if (report.SkippedSources.Count > 0)
        {
            const int Named = 3;
            var more = report.SkippedSources.Count > Named ? $"; and {report.SkippedSources.Count - Named} more" : string.Empty;
            error.WriteLine($"{commandName}: note: {input}: {report.SkippedSources.Count} file(s) not used: {string.Join("; ", report.SkippedSources.Take(Named))}{more}");
        }

        foreach (var issue in report.Issues.Where(i => i.Kind != "no-geometry"))
        {
            // An in-plane flip to the standard display is routine (prone scans, some vendors); the rest may matter.
            var level = issue.Kind == "flipped-in-plane" ? "note" : "warning";
            error.WriteLine($"{commandName}: {level}: {input}: {issue.Kind}: {issue.Message}");
        }
    }

    /// <summary>Writes the bytes to <paramref name="path"/>, creating its folder.</summary>
    public static void WriteFile(string path, byte[] bytes)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
        }

        File.WriteAllBytes(path, bytes);
    }

    /// <summary>The <c>--models</c> option both commands take.</summary>
    public static Option<string?> ModelsOption() =>
        new("--models") { Description = "Models folder (default: COVIDFN_MODELS_DIR or models/ next to covidfn)." };

    /// <summary>The <c>--threads</c> option both commands take; not given: <c>Inference__IntraOpThreads</c>, else 0.</summary>
    public static Option<int?> ThreadsOption() =>
        new("--threads") { Description = "ONNX Runtime intra-op threads (0: one per core; default: Inference__IntraOpThreads, else 0)." };

    /// <summary>The common start of <c>segment</c> and <c>classify</c>: reads the <c>Inference__*</c> and
    /// <c>Imaging__*</c> settings (<paramref name="assembly"/>: how a series input is assembled), decides between 2-D
    /// images and one series (<see cref="IsSeriesInput"/>), finds the images and loads the models. On failure writes one
    /// line prefixed with <paramref name="commandName"/> to <paramref name="error"/> and returns false. For a series
    /// <paramref name="files"/> is empty and <paramref name="isSeries"/> true (assemble it with <see cref="TryAssemble"/>).
    /// Files below <paramref name="outputFolders"/> are not inputs (a mask folder inside INPUT on a second run).</summary>
    public static bool TryStart(
        string commandName,
        string input,
        string? modelsDir,
        int? threads,
        IReadOnlyList<string> outputFolders,
        TextWriter error,
        out bool isSeries,
        [NotNullWhen(true)] out IReadOnlyList<string>? files,
        [NotNullWhen(true)] out ScreeningModels? models,
        [NotNullWhen(true)] out SeriesAssemblyOptions? assembly)
    {
        models = null;
        assembly = null;
        string? problem = null;
        InferenceOptions inference;
        SeriesAssemblyOptions settings;
        try
        {
            // Both checked before the input is read: a bad setting stops the command naming it.
            inference = InferenceSettings.Load(modelsDir, threads);
            settings = ImagingSettings.Load();
        }
        catch (InvalidOperationException ex)
        {
            isSeries = false;
            files = null;
            error.WriteLine(commandName + ": " + ex.Message);
            return false;
        }

        isSeries = IsSeriesInput(input);
        files = isSeries ? [] : Find2DImages(input, commandName, error, outputFolders, out problem);
        if (files is null)
        {
            error.WriteLine(commandName + ": " + problem);
            return false;
        }

        try
        {
            models = ScreeningModels.Load(inference);
            assembly = settings;
            return true;
        }
        catch (Exception ex) when (ex is InferenceException or ArgumentException)
        {
            error.WriteLine(commandName + ": cannot load the models: " + ex.Message);
            files = null;
            return false;
        }
    }

    /// <summary>Loads the images in batches of <see cref="Batch"/>. An image that cannot be read is reported on
    /// <paramref name="error"/> as <c>command: path: reason</c>, counted in <paramref name="failures"/> (and added to
    /// <paramref name="unreadable"/> when given) and skipped; empty batches are not returned.</summary>
    public static IEnumerable<List<(string Path, GreyImage Image)>> LoadInBatches(
        IReadOnlyList<string> files, string commandName, TextWriter error, System.Runtime.CompilerServices.StrongBox<int> failures,
        List<(string Path, string Reason)>? unreadable = null)
    {
        foreach (var chunk in files.Chunk(Batch))
        {
            var images = new List<(string Path, GreyImage Image)>(chunk.Length);
            foreach (var path in chunk)
            {
                try
                {
                    if (new FileInfo(path).Length == 0)
                    {
                        // Said plainly: "unrecognised signature" for a 0-byte file (a failed copy) misleads.
                        error.WriteLine($"{commandName}: {path}: the file is empty (0 bytes)");
                        unreadable?.Add((path, "the file is empty (0 bytes)"));
                        failures.Value++;
                        continue;
                    }

                    images.Add((path, ImageLoader.Load(path)));
                }
                catch (Exception ex) when (ex is ImagingException or IOException or UnauthorizedAccessException)
                {
                    // ImageFormatException's message already starts with the path; print the path once.
                    var reason = ex is ImageFormatException { Reason: { } r } ? r : ex.Message;
                    error.WriteLine($"{commandName}: {path}: {reason}");
                    unreadable?.Add((path, reason));
                    failures.Value++;
                }
            }

            if (images.Count > 0)
            {
                yield return images;
            }
        }
    }

    /// <summary>Writes an 8-bit greyscale PNG: the encoder the pipeline stores its lesion masks with
    /// (<see cref="MaskPng"/>), so <c>covidfn segment</c> and the results container write the same kind of file.</summary>
    public static void WriteGreyPng(string path, ReadOnlySpan<byte> pixels, int width, int height) =>
        File.WriteAllBytes(path, MaskPng.Encode(pixels, width, height));
}
