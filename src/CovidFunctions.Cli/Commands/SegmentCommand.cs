using System.CommandLine;
using System.Runtime.CompilerServices;
using CovidFunctions.Imaging;
using CovidFunctions.Imaging.Nifti;
using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.Imaging.Rendering;
using CovidFunctions.Imaging.Series;
using CovidFunctions.Imaging.Volumes;
using CovidFunctions.Inference;

namespace CovidFunctions.Cli.Commands;

/// <summary>
/// <c>covidfn segment INPUT --out-dir D</c>: for each 2-D image (a file, or every PNG/JPG/TIFF below a folder) writes
/// <c>D/&lt;file name stem&gt;.png</c>, a binary lesion mask (0/255) of the input's width and height (DFSN, lung2d-v1,
/// threshold from the model manifest). For a series (a NIfTI volume, a DICOM file/folder/zip; see
/// <see cref="ScreeningInputs.IsSeriesInput"/>) writes <c>D/&lt;name&gt;_lesion.nii.gz</c>: the lesion mask volume
/// (int16 0/1; a NIfTI input's on its own voxel grid and header geometry, a DICOM series' on the series grid placed by
/// ImagePositionPatient, see <see cref="MaskImage"/>), and prints the per-slice lesion shares and the study result; a
/// folder of NIfTI volumes (<see cref="ScreeningInputs.FindVolumes"/>) gets one mask per volume.
/// Options: <c>--overlays DIR</c> (a PNG per slice with lesion, mask drawn over the lung-windowed image),
/// <c>--montage F.png</c> (the most affected slices of a series with their lesion percentages), <c>--mask-out F</c>
/// (a second copy of the mask volume at F). Exit 0 on success; 2 with a message on stderr on bad input (any image
/// that cannot be read is reported and the others are still written). Masks are flat in D whatever subfolder an image
/// was in; two images with the same stem (<c>x/a.png</c> and <c>y/a.png</c>, or <c>a.png</c> and <c>a.jpg</c>) each get
/// their path relative to INPUT + <c>.png</c> instead (<c>D/x/a.png.png</c>, <c>D/y/a.png.png</c>), as does an image
/// whose mask would replace an input image; each is named on stderr and the exit is 2 (<see cref="MaskNames"/>): no
/// mask is overwritten or left out. In a folder, files that are
/// not PNG/JPG/TIFF by name, hidden files (.DS_Store, ._x.png) and D itself are skipped with one warning line, and
/// images below mask or label folders (masks/, edges/, gt/, ...: <see cref="ImagingSettings.ImagesOutsideMaskFolders"/>)
/// with another.
/// </summary>
public static class SegmentCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = "A 2-D image (PNG/JPG/TIFF) or a folder of them (recursive), a NIfTI volume or a folder of them, or a DICOM file/folder/zip (one series)." };
        var outDir = new Option<string>("--out-dir") { Description = "Folder for the masks, created when missing: <file name stem>.png (0/255, the image's width and height) for 2-D images, flat whatever subfolder the image is in; images sharing a stem (a/x.png + b/x.png, x.png + x.jpg) get <path relative to INPUT>.png instead (a/x.png.png), named on stderr, exit 2. <name>_lesion.nii.gz for a series.", Required = true };
        var models = ScreeningInputs.ModelsOption();
        var threads = ScreeningInputs.ThreadsOption();
        var overlays = new Option<string?>("--overlays") { Description = "Folder for overlay PNGs (one per image or slice with lesion)." };
        var montage = new Option<string?>("--montage") { Description = "Series only: PNG montage of the most affected slices with lesion percentages." };
        var maskOut = new Option<string?>("--mask-out") { Description = "Series only: also write the lesion mask volume (NIfTI, .nii or .nii.gz) here." };
        var command = new Command("segment", "Lesion masks: 0/255 PNG of input size for 2-D CT images, a NIfTI mask volume for a series. A series is assembled with the Imaging__* settings of the environment, as `covidfn up` does (docs/imaging.md).");
        command.Arguments.Add(input);
        command.Options.Add(outDir);
        command.Options.Add(models);
        command.Options.Add(threads);
        command.Options.Add(overlays);
        command.Options.Add(montage);
        command.Options.Add(maskOut);
        command.SetAction(parseResult => Run(
            parseResult.GetValue(input) ?? string.Empty,
            parseResult.GetValue(outDir) ?? string.Empty,
            parseResult.GetValue(models),
            parseResult.GetValue(threads),
            new SegmentExtras(parseResult.GetValue(overlays), parseResult.GetValue(montage), parseResult.GetValue(maskOut)),
            parseResult.InvocationConfiguration.Output,
            parseResult.InvocationConfiguration.Error));
        return command;
    }

    /// <summary>Runs the command without the optional outputs; separated from the parser so tests can call it directly.</summary>
    public static int Run(string input, string outDir, string? modelsDir, int? threads, TextWriter output, TextWriter error) =>
        Run(input, outDir, modelsDir, threads, SegmentExtras.None, output, error);

    /// <summary>Runs the command; separated from the parser so tests can call it directly.</summary>
    public static int Run(string input, string outDir, string? modelsDir, int? threads, SegmentExtras extras, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(extras);
        ArgumentNullException.ThrowIfNull(error);
        string[] outputFolders = extras.OverlaysDir is null ? [outDir] : [outDir, extras.OverlaysDir];
        if (outputFolders.FirstOrDefault(File.Exists) is { } notAFolder)
        {
            error.WriteLine($"segment: {notAFolder}: is a file; --out-dir and --overlays need a folder (it is created when missing).");
            return ExitCodes.BadInput;
        }

        if (!ScreeningInputs.TryStart("segment", input, modelsDir, threads, outputFolders, error, out var isSeries, out var found, out var models, out var assembly))
        {
            return ExitCodes.BadInput;
        }

        if ((isSeries ? found : ImagingSettings.ImagesOutsideMaskFolders("segment", input, found, assembly, error)) is not { } files)
        {
            return ExitCodes.BadInput;
        }

        try
        {
            return isSeries ? RunVolumes(input, outDir, models, assembly, extras, output, error) : RunImages(input, files, outDir, models, extras, output, error);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // An output that cannot be written (the out-dir is a file, no permission, disk full) is an unusable argument.
            error.WriteLine($"segment: cannot write the output: {ex.Message}");
            return ExitCodes.BadInput;
        }
    }

    /// <summary>
    /// Where each 2-D image's mask goes, relative to the out-dir: its file name stem + <c>.png</c>, flat whatever
    /// subfolder the image was in. When that name cannot be used because two images share it (the same stem in two
    /// folders, or <c>x.png</c> and <c>x.jpg</c>; compared ignoring case, as on Windows and macOS file systems) or
    /// because the mask (or overlay) would replace an input image (<c>segment a.png --out-dir .</c>), each such image
    /// gets its path relative to INPUT + <c>.png</c> instead (<c>x/a.png</c> → <c>x/a.png.png</c>): no image is given
    /// the flat name over another, no mask replaces another or an input, and none is left out. Each renaming is named
    /// on <paramref name="error"/> and sets <paramref name="renamed"/> (the command then exits 2). A name that still
    /// clashes (e.g. <c>a.jpg</c> clashing with <c>a.png</c> while <c>a.jpg.png</c> is itself an input) is null: that
    /// image is named on <paramref name="error"/> and not segmented.
    /// </summary>
    public static IReadOnlyList<string?> MaskNames(string input, IReadOnlyList<string> files, IReadOnlyList<string> outputFolders, TextWriter error, out bool renamed)
    {
        ArgumentNullException.ThrowIfNull(files);
        ArgumentNullException.ThrowIfNull(outputFolders);
        ArgumentNullException.ThrowIfNull(error);
        var root = Directory.Exists(input) ? Path.GetFullPath(input) : Path.GetDirectoryName(Path.GetFullPath(input))!;
        string Relative(string file) => ScreeningInputs.RelativeTo(root, file);
        var inputs = files.Select(Path.GetFullPath).ToHashSet(StringComparer.OrdinalIgnoreCase);
        string? ReplacedInput(string name) => outputFolders
            .Select(folder => Path.GetFullPath(Path.Combine(folder, name)))
            .FirstOrDefault(inputs.Contains);

        var flat = files.Select(f => Path.GetFileNameWithoutExtension(f) + ".png").ToList();
        var sharing = flat.GroupBy(n => n, StringComparer.OrdinalIgnoreCase).Where(g => g.Count() > 1).Select(g => g.Key).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var names = new string?[files.Count];
        var why = new string?[files.Count];
        for (var i = 0; i < files.Count; i++)
        {
            if (sharing.Contains(flat[i]))
            {
                var others = files.Where((f, j) => j != i && string.Equals(flat[j], flat[i], StringComparison.OrdinalIgnoreCase)).Select(Relative);
                why[i] = $"{string.Join(" and ", others)} has the same name stem";
            }
            else if (ReplacedInput(flat[i]) is { } replaced)
            {
                why[i] = $"{flat[i]} would replace the input image {replaced}";
            }

            names[i] = why[i] is null ? flat[i] : Relative(files[i]) + ".png";
        }

        renamed = why.Any(w => w is not null);
        var stillClashing = names.GroupBy(n => n!, StringComparer.OrdinalIgnoreCase).Where(g => g.Count() > 1).Select(g => g.Key).ToHashSet(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < files.Count; i++)
        {
            if (stillClashing.Contains(names[i]!) || (why[i] is not null && ReplacedInput(names[i]!) is not null))
            {
                error.WriteLine($"segment: {files[i]}: not segmented: its mask name {flat[i]}{(why[i] is null ? string.Empty : $" (and {names[i]})")} is taken by another image or an input image; rename it or segment it separately");
                names[i] = null;
            }
            else if (why[i] is not null)
            {
                error.WriteLine($"segment: {files[i]}: mask written as {names[i]}, not {flat[i]}: {why[i]} (masks are <file name stem>.png, flat in the out-dir, unless the name is shared)");
            }
        }

        return names;
    }

    private static int RunImages(string input, IReadOnlyList<string> files, string outDir, ScreeningModels models, SegmentExtras extras, TextWriter output, TextWriter error)
    {
        if (extras.MontagePath is not null || extras.MaskOutPath is not null)
        {
            error.WriteLine("segment: --montage and --mask-out need a series input (NIfTI volume or DICOM file/folder/zip).");
            return ExitCodes.BadInput;
        }

        if (extras.OverlaysDir is not null &&
            string.Equals(Path.TrimEndingDirectorySeparator(Path.GetFullPath(extras.OverlaysDir)), Path.TrimEndingDirectorySeparator(Path.GetFullPath(outDir)), StringComparison.OrdinalIgnoreCase))
        {
            // 2-D overlays carry the masks' names; in one folder each overlay would replace its mask (a series' do not).
            error.WriteLine($"segment: --overlays {extras.OverlaysDir} is the --out-dir; give the overlays their own folder.");
            return ExitCodes.BadInput;
        }

        var maskNames = MaskNames(input, files, extras.OverlaysDir is null ? [outDir] : [outDir, extras.OverlaysDir], error, out var renamed);
        var maskNameOf = files.Zip(maskNames).Where(p => p.Second is not null).ToDictionary(p => p.First, p => p.Second!, StringComparer.Ordinal);
        var notSegmented = files.Count - maskNameOf.Count;
        files = [.. files.Where(maskNameOf.ContainsKey)];
        if (extras.OverlaysDir is not null)
        {
            Directory.CreateDirectory(extras.OverlaysDir);
        }

        Directory.CreateDirectory(outDir);
        var failures = new StrongBox<int>(0);
        var written = 0;
        foreach (var images in ScreeningInputs.LoadInBatches(files, "segment", error, failures))
        {
            var batch = LungPreprocessor.ToTensor(images.Select(i => i.Image).ToList());
            float[] lesion;
            try
            {
                lesion = models.Segment(batch.Tensor, batch.Count);
            }
            catch (InferenceException ex)
            {
                error.WriteLine("segment: inference failed: " + ex.Message);
                return ExitCodes.InternalError;
            }

            for (var n = 0; n < images.Count; n++)
            {
                var (path, image) = images[n];
                var mask = LungPreprocessor.MaskToImage(lesion.AsSpan(n * OnnxModel.Plane, OnnxModel.Plane), batch.Boxes[n], image.Height, image.Width, models.LesionThreshold);
                var name = maskNameOf[path];
                var maskPath = Path.Combine(outDir, name);
                Directory.CreateDirectory(Path.GetDirectoryName(maskPath)!);
                ScreeningInputs.WriteGreyPng(maskPath, mask, image.Width, image.Height);
                written++;
                if (extras.OverlaysDir is not null && mask.AsSpan().ContainsAnyExcept((byte)0))
                {
                    ScreeningInputs.WriteFile(Path.Combine(extras.OverlaysDir, name), OverlayRenderer.RenderOverlayPng(image, mask));
                }
            }
        }

        output.WriteLine($"segment: {written} mask(s) written to {outDir} ({models.Provider})");
        return failures.Value == 0 && notSegmented == 0 && !renamed ? ExitCodes.Success : ExitCodes.BadInput;
    }

    /// <summary>
    /// One series (a NIfTI file, a DICOM file/folder/zip), or each NIfTI volume of a folder of volumes
    /// (<see cref="ScreeningInputs.FindVolumes"/>) in turn: a volume that cannot be screened is reported and the others
    /// are still written (exit 2 then).
    /// </summary>
    private static int RunVolumes(string input, string outDir, ScreeningModels models, SeriesAssemblyOptions assembly, SegmentExtras extras, TextWriter output, TextWriter error)
    {
        string[] outputFolders = extras.OverlaysDir is null ? [outDir] : [outDir, extras.OverlaysDir];
        if (ScreeningInputs.FindVolumes(input, outputFolders) is not { } volumes)
        {
            return RunSeries(input, ScreeningInputs.SeriesName(input), outDir, models, assembly, extras, output, error);
        }

        if (volumes.Count > 1 && (extras.MontagePath is not null || extras.MaskOutPath is not null))
        {
            error.WriteLine($"segment: {input} holds {volumes.Count} NIfTI volumes; --montage and --mask-out name one file, so they need a single volume.");
            return ExitCodes.BadInput;
        }

        if (ScreeningInputs.VolumeNames("segment", input, volumes, error) is not { } names)
        {
            return ExitCodes.BadInput;
        }

        var status = ExitCodes.Success;
        foreach (var (volume, name) in volumes.Zip(names))
        {
            var rc = RunSeries(volume, name, outDir, models, assembly, extras, output, error);
            if (rc == ExitCodes.InternalError)
            {
                return rc;
            }

            status = rc == ExitCodes.Success ? status : rc;
        }

        return status;
    }

    private static int RunSeries(string input, string name, string outDir, ScreeningModels models, SeriesAssemblyOptions assembly, SegmentExtras extras, TextWriter output, TextWriter error)
    {
        using var series = ScreeningInputs.TryAssemble("segment", input, assembly, error);
        if (series is null)
        {
            return ExitCodes.BadInput;
        }

        Directory.CreateDirectory(outDir);
        if (extras.OverlaysDir is not null)
        {
            Directory.CreateDirectory(extras.OverlaysDir);
        }

        ScreenedSeries result;
        var overlays = 0;
        try
        {
            result = SeriesScreening.Screen(series, models, ScreeningInputs.Batch, (slice, image) =>
            {
                if (extras.OverlaysDir is not null && slice.Mask.AsSpan().ContainsAnyExcept((byte)0))
                {
                    // 0-based like the summary line below, so "slice 28/30" is <name>_slice0028.png.
                    var file = Path.Combine(extras.OverlaysDir, FormattableString.Invariant($"{name}_slice{slice.Index:D4}.png"));
                    File.WriteAllBytes(file, OverlayRenderer.RenderOverlayPng(image, slice.Mask));
                    overlays++;
                }
            });
        }
        catch (ImagingException ex)
        {
            error.WriteLine($"segment: {input}: a slice cannot be read: {ex.Message}");
            return ExitCodes.BadInput;
        }
        catch (InferenceException ex)
        {
            error.WriteLine("segment: inference failed: " + ex.Message);
            return ExitCodes.InternalError;
        }

        var nifti = MaskImage(series, result, error, input);
        nifti.Header.Description = "covidfn segment: lesion mask (1 = lesion)";
        var maskPath = Path.Combine(outDir, name + "_lesion.nii.gz");
        NiftiFile.Write(maskPath, nifti);
        if (extras.MaskOutPath is not null)
        {
            var dir = Path.GetDirectoryName(Path.GetFullPath(extras.MaskOutPath));
            if (!string.IsNullOrEmpty(dir))
            {
                Directory.CreateDirectory(dir);
            }

            NiftiFile.Write(extras.MaskOutPath, nifti);
        }

        var percents = result.Slices.Select(s => s.LesionPercent).ToList();
        if (extras.MontagePath is not null)
        {
            var tiles = OverlayRenderer.MostAffected(percents, MontageSlices)
                .Select(i => new MontageTile(series.ReadWindowed(i), result.Slices[i].Mask, i, percents[i]))
                .ToList();
            var title = FormattableString.Invariant($"{name}: {result.Study.Label}, mean lesion fraction {100 * result.Study.LesionFraction:0.0} % of the model input ({result.Slices.Count} slices)");
            ScreeningInputs.WriteFile(extras.MontagePath, OverlayRenderer.RenderMontagePng(tiles, title: title));
        }

        foreach (var slice in result.Slices.Where(s => s.LesionPercent > 0))
        {
            // 0-based, feet to head, as screen, status, the API, the report and classify's "slice" number them.
            output.WriteLine(FormattableString.Invariant($"segment: {name}: slice {slice.Index}/{result.Slices.Count}: lesion {slice.LesionPercent:0.00} % of its lung estimate"));
        }

        // Two measures, named apart (walkthrough audit: "% of the slice area" here and "lesion burden % of the lung
        // estimate" in up/status read as one): the study's lesion fraction is the study rule's (StudyAggregator), the mean
        // over slices of the share of the model's input at or above the lesion threshold, which classify writes as
        // "lesion_fraction"; up, status, screen and the API report the lesion burden, all slices' lesion pixels over all
        // slices' lung estimate, which segment does not compute. The per-slice lines are of the slice's lung estimate, as
        // status's and the report's most affected slices.
        output.WriteLine(FormattableString.Invariant(
            $"segment: {name}: {result.Slices.Count} slices, {percents.Count(p => p > 0)} with lesion, study {result.Study.Label} (lesion fraction {100 * result.Study.LesionFraction:0.00} %: the mean over slices of the model input's share at lesion probability ≥ {models.LesionThreshold:0.##}, classify's lesion_fraction; not the lesion burden of up and status); mask {maskPath}{(overlays > 0 ? $", {overlays} overlay(s)" : string.Empty)} ({models.Provider})"));
        return ExitCodes.Success;
    }

    /// <summary>
    /// The lesion mask volume (int16 0/1). A NIfTI input gets it on its own voxel grid and header geometry (the axial
    /// volume the model saw is only a reorientation of it), so viewers and evaluation code overlay the two voxel for
    /// voxel. A DICOM series gets the series grid with an affine from ImagePositionPatient, ImageOrientationPatient and
    /// PixelSpacing (<see cref="SliceGrid"/>): NIfTI stores one slice step, so missing slices become empty mask slices
    /// at their positions and a gantry tilt becomes a sheared sform; each slice then lies where its DICOM slice lies.
    /// </summary>
    private static NiftiImage MaskImage(AssembledSeries series, ScreenedSeries result, TextWriter error, string input)
    {
        var plane = result.Rows * result.Columns;
        if (series.NiftiSource is { } source)
        {
            var voxels = new float[(long)plane * result.Slices.Count];
            foreach (var slice in result.Slices)
            {
                CopyMask(slice.Mask, voxels.AsSpan((int)((long)slice.Index * plane), plane));
            }

            return NiftiOrientation.ToSourceGrid(new AxialVolume(series.Geometry, voxels), source.Header, source.Reorientation, NiftiDataType.Int16);
        }

        var positions = series.Slices.Count == series.SliceCount && series.Slices.All(s => s.Position is not null)
            ? series.Slices.Select(s => s.Position!.Value).ToList()
            : null;
        var grid = SliceGrid.Plan(series.Geometry, positions, series.Slices.Count > 0 ? series.Slices[0].SliceThickness : null);
        if (grid.Note is not null)
        {
            error.WriteLine($"segment: note: {input}: mask: {grid.Note}");
        }

        var gridVoxels = new float[(long)plane * grid.GridSlices];
        foreach (var slice in result.Slices)
        {
            CopyMask(slice.Mask, gridVoxels.AsSpan((int)((long)grid.GridIndex[slice.Index] * plane), plane));
        }

        var g = series.Geometry;
        var step = grid.Step.Dot(g.Normal);
        var gridGeometry = g with { Slices = grid.GridSlices, SlicePositions = Enumerable.Range(0, grid.GridSlices).Select(k => g.SlicePositions[0] + (k * step)).ToArray() };
        return NiftiOrientation.FromAxialVolume(new AxialVolume(gridGeometry, gridVoxels), NiftiDataType.Int16, sliceStep: grid.Step);

        static void CopyMask(byte[] mask, Span<float> destination)
        {
            for (var i = 0; i < destination.Length; i++)
            {
                destination[i] = mask[i] != 0 ? 1f : 0f;
            }
        }
    }

    /// <summary>Slices shown in a montage (the most affected ones).</summary>
    public const int MontageSlices = 8;
}

/// <summary>The optional outputs of <c>covidfn segment</c>.</summary>
public sealed record SegmentExtras(string? OverlaysDir, string? MontagePath, string? MaskOutPath)
{
    /// <summary>No optional output.</summary>
    public static SegmentExtras None { get; } = new(null, null, null);
}
