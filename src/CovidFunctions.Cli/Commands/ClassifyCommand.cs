using System.CommandLine;
using System.Runtime.CompilerServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using CovidFunctions.Imaging;
using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.Imaging.Series;
using CovidFunctions.Inference;

namespace CovidFunctions.Cli.Commands;

/// <summary>
/// <c>covidfn classify INPUT --json F</c>: scores each 2-D image below INPUT (recursively) on its own with DTCN and
/// writes <c>{"items":[{"path":"&lt;relative to INPUT&gt;","probabilities":{"covid":p,"cap":p,"normal":p},"label":"…"}]}</c>.
/// For a series (NIfTI volume, DICOM file/folder/zip) <c>items</c> holds the slices (feet to head; each also has
/// <c>"slice"</c>, its 0-based index, and <c>"lesion_percent"</c>; a NIfTI slice also <c>"voxel_axis"</c> and
/// <c>"voxel_index"</c>, where it is in the file, e.g. <c>data[:, :, 12]</c> for k and 12) and a <c>"study"</c> object
/// holds the patient-level probabilities and label of <see cref="StudyAggregator"/>. <c>path</c> is the slice's DICOM
/// file relative to INPUT (the entry name in a zip; the file name for one file), or the NIfTI file's name. A folder
/// of NIfTI volumes: see <see cref="RunSeries"/>.
/// Images below mask or label folders (masks/, labels/, gt/, ...: <see cref="ImagingSettings.ImagesOutsideMaskFolders"/>)
/// are not scored (one warning line). 2-D images that cannot be decoded are named on stderr and listed in <c>"unreadable"</c> (<c>path</c>, <c>reason</c>;
/// present only when there are any), so every image found is in the file once; the others are still scored.
/// Exit 0 on success; 2 with a message on stderr on bad input (an unreadable image included).
/// </summary>
public static class ClassifyCommand
{
    /// <summary>Indented; names as they are (ü, 影, +, &amp;, ') rather than \u escapes, so a <c>path</c> reads, and
    /// greps, like the file name; quotes, backslashes and control characters are still escaped. The file is not
    /// meant for embedding in HTML.</summary>
    private static readonly JsonWriterOptions JsonOptions = new() { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = "A 2-D image (PNG/JPG/TIFF) or a folder of them (recursive), a NIfTI volume or a folder of them, or a DICOM file/folder/zip (one series)." };
        var json = new Option<string>("--json") { Description = "Output JSON file.", Required = true };
        var models = ScreeningInputs.ModelsOption();
        var threads = ScreeningInputs.ThreadsOption();
        var command = new Command("classify", "covid / cap / normal probabilities as JSON: per image for 2-D CT images; per slice and for the study for a series. A series is assembled with the Imaging__* settings of the environment, as `covidfn up` does (docs/imaging.md).");
        command.Arguments.Add(input);
        command.Options.Add(json);
        command.Options.Add(models);
        command.Options.Add(threads);
        command.SetAction(parseResult => Run(
            parseResult.GetValue(input) ?? string.Empty,
            parseResult.GetValue(json) ?? string.Empty,
            parseResult.GetValue(models),
            parseResult.GetValue(threads),
            parseResult.InvocationConfiguration.Output,
            parseResult.InvocationConfiguration.Error));
        return command;
    }

    /// <summary>Runs the command; separated from the parser so tests can call it directly.</summary>
    public static int Run(string input, string jsonPath, string? modelsDir, int? threads, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(error);
        if (Directory.Exists(jsonPath))
        {
            error.WriteLine($"classify: {jsonPath}: is a folder; --json needs a file name.");
            return ExitCodes.BadInput;
        }

        if (!ScreeningInputs.TryStart("classify", input, modelsDir, threads, [], error, out var isSeries, out var found, out var models, out var assembly))
        {
            return ExitCodes.BadInput;
        }

        if ((isSeries ? found : ImagingSettings.ImagesOutsideMaskFolders("classify", input, found, assembly, error)) is not { } files)
        {
            return ExitCodes.BadInput;
        }

        try
        {
            return isSeries ? RunSeries(input, jsonPath, models, assembly, output, error) : RunImages(input, files, jsonPath, models, output, error);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The JSON cannot be written (its folder is a file, no permission, disk full): an unusable argument.
            error.WriteLine($"classify: cannot write {jsonPath}: {ex.Message}");
            return ExitCodes.BadInput;
        }
    }

    private static int RunImages(string input, IReadOnlyList<string> files, string jsonPath, ScreeningModels models, TextWriter output, TextWriter error)
    {
        var root = Directory.Exists(input) ? Path.GetFullPath(input) : Path.GetDirectoryName(Path.GetFullPath(input))!;
        var failures = new StrongBox<int>(0);
        var unreadable = new List<(string Path, string Reason)>();
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, JsonOptions))
        {
            w.WriteStartObject();
            w.WriteStartArray("items");
            foreach (var images in ScreeningInputs.LoadInBatches(files, "classify", error, failures, unreadable))
            {
                var batch = LungPreprocessor.ToTensor(images.Select(i => i.Image).ToList());
                IReadOnlyList<SlicePrediction> predictions;
                try
                {
                    predictions = models.Predict(batch.Tensor, batch.Count);
                }
                catch (InferenceException ex)
                {
                    error.WriteLine("classify: inference failed: " + ex.Message);
                    return ExitCodes.InternalError;
                }

                for (var n = 0; n < images.Count; n++)
                {
                    w.WriteStartObject();
                    w.WriteString("path", ScreeningInputs.RelativeTo(root, images[n].Path));
                    WriteProbabilities(w, models.Classes, predictions[n].ClassProbabilities);
                    w.WriteString("label", predictions[n].Label);
                    w.WriteEndObject();
                }
            }

            w.WriteEndArray();
            if (unreadable.Count > 0)
            {
                // Every image found is in the file once: scored in items, or here with why it was not.
                w.WriteStartArray("unreadable");
                foreach (var (path, reason) in unreadable)
                {
                    w.WriteStartObject();
                    w.WriteString("path", ScreeningInputs.RelativeTo(root, path));
                    w.WriteString("reason", reason);
                    w.WriteEndObject();
                }

                w.WriteEndArray();
            }

            w.WriteEndObject();
        }

        ScreeningInputs.WriteFile(jsonPath, stream.ToArray());
        output.WriteLine($"classify: {files.Count - failures.Value} image(s) scored into {jsonPath}{(unreadable.Count > 0 ? $", {unreadable.Count} unreadable (listed there)" : string.Empty)} ({models.Provider})");
        return failures.Value == 0 ? ExitCodes.Success : ExitCodes.BadInput;
    }

    /// <summary>
    /// One series (a NIfTI file, a DICOM file/folder/zip): its slices in <c>items</c> and its result in <c>study</c>.
    /// A folder of NIfTI volumes (<see cref="ScreeningInputs.FindVolumes"/>): every volume's slices in <c>items</c>
    /// (<c>path</c> = the volume relative to INPUT), one result per volume in <c>studies</c> (each with its
    /// <c>path</c>), and <c>study</c> as well when there is one volume. A volume that cannot be screened is reported and
    /// left out (exit 2); nothing is written when none can be.
    /// </summary>
    private static int RunSeries(string input, string jsonPath, ScreeningModels models, SeriesAssemblyOptions assembly, TextWriter output, TextWriter error)
    {
        var volumes = ScreeningInputs.FindVolumes(input, []);
        var root = Directory.Exists(input) ? Path.GetFullPath(input) : Path.GetDirectoryName(Path.GetFullPath(input))!;
        var studies = new List<(string Path, ScreenedSeries Result)>();
        var status = ExitCodes.Success;
        var slices = 0;
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, JsonOptions))
        {
            w.WriteStartObject();
            w.WriteStartArray("items");
            foreach (var source in volumes ?? [input])
            {
                using var series = ScreeningInputs.TryAssemble("classify", source, assembly, error);
                if (series is null)
                {
                    status = ExitCodes.BadInput;
                    continue;
                }

                ScreenedSeries result;
                try
                {
                    result = SeriesScreening.Screen(series, models, ScreeningInputs.Batch);
                }
                catch (ImagingException ex)
                {
                    error.WriteLine($"classify: {source}: a slice cannot be read: {ex.Message}");
                    status = ExitCodes.BadInput;
                    continue;
                }
                catch (InferenceException ex)
                {
                    error.WriteLine("classify: inference failed: " + ex.Message);
                    return ExitCodes.InternalError;
                }

                var volumePath = volumes is null ? Path.GetFileName(Path.TrimEndingDirectorySeparator(input)) : ScreeningInputs.RelativeTo(root, source);
                foreach (var slice in result.Slices)
                {
                    w.WriteStartObject();
                    w.WriteString("path", volumes is null ? SlicePath(input, root, series, slice.Index) : volumePath);
                    w.WriteNumber("slice", slice.Index);
                    if (series.NiftiSource is { } grid)
                    {
                        // Where the slice is in the file: slices run feet to head, a NIfTI's own axis may not.
                        var axis = grid.Reorientation.SourceAxisForOutput[2];
                        var size = axis switch { 0 => grid.Header.Width, 1 => grid.Header.Height, _ => grid.Header.Depth };
                        w.WriteString("voxel_axis", "ijk"[axis].ToString());
                        w.WriteNumber("voxel_index", grid.Reorientation.Flipped[2] ? size - 1 - slice.Index : slice.Index);
                    }

                    WriteProbabilities(w, models.Classes, slice.Summary.ClassProbabilities);
                    w.WriteString("label", slice.Label);
                    w.WriteNumber("lesion_percent", Math.Round(slice.LesionPercent, 4));
                    w.WriteEndObject();
                }

                studies.Add((volumePath, result));
                slices += result.Slices.Count;
            }

            w.WriteEndArray();
            if (studies.Count == 1)
            {
                w.WritePropertyName("study");
                WriteStudy(w, models, studies[0].Result, volumes is null ? null : studies[0].Path);
            }

            if (volumes is not null)
            {
                w.WriteStartArray("studies");
                foreach (var (path, result) in studies)
                {
                    WriteStudy(w, models, result, path);
                }

                w.WriteEndArray();
            }

            w.WriteEndObject();
        }

        if (studies.Count == 0)
        {
            return ExitCodes.BadInput;
        }

        ScreeningInputs.WriteFile(jsonPath, stream.ToArray());
        var summary = studies.Count == 1
            ? FormattableString.Invariant($"study {studies[0].Result.Study.Label} (covid {studies[0].Result.Study.ClassProbabilities[0]:0.000})")
            : $"{studies.Count} studies";
        output.WriteLine($"classify: {slices} slice(s) scored into {jsonPath}; {summary} ({models.Provider})");
        return status;
    }

    private static void WriteStudy(Utf8JsonWriter w, ScreeningModels models, ScreenedSeries result, string? path)
    {
        w.WriteStartObject();
        if (path is not null)
        {
            w.WriteString("path", path);
        }

        WriteProbabilities(w, models.Classes, result.Study.ClassProbabilities);
        w.WriteString("label", result.Study.Label);
        w.WriteNumber("lesion_fraction", Math.Round(result.Study.LesionFraction, 6));
        w.WriteNumber("slices", result.Slices.Count);
        w.WriteNumber("slices_used", result.Study.SlicesUsed);
        w.WriteString("rule", StudyAggregator.RuleDescription);
        w.WriteEndObject();
    }

    private static void WriteProbabilities(Utf8JsonWriter w, IReadOnlyList<string> classes, IReadOnlyList<float> probabilities)
    {
        w.WriteStartObject("probabilities");
        var rounded = RoundedToSumOne(probabilities);
        for (var k = 0; k < classes.Count; k++)
        {
            w.WriteNumber(classes[k], rounded[k]);
        }

        w.WriteEndObject();
    }

    /// <summary>
    /// The probabilities to 6 decimals, the largest one written as 1 minus the others, so the numbers in the file sum
    /// to exactly 1 (as decimals; as doubles within 1e-15) and the largest stays the largest. Rounding each on its own
    /// left sums of 0.999999 or 1.000001 (7 of 18 images in a probe folder), which a check such as Python's
    /// <c>math.isclose(sum, 1)</c> rejects. Values that are not a distribution (outside [0, 1]) are only rounded; a
    /// non-finite one throws (an internal error: the model is broken).
    /// </summary>
    public static IReadOnlyList<decimal> RoundedToSumOne(IReadOnlyList<float> probabilities)
    {
        ArgumentNullException.ThrowIfNull(probabilities);
        var rounded = probabilities.Select(p => Math.Round((decimal)p, 6)).ToArray();
        if (probabilities.Any(p => p is < 0f or > 1f))
        {
            return rounded;
        }

        var top = 0;
        for (var k = 1; k < probabilities.Count; k++)
        {
            top = probabilities[k] > probabilities[top] ? k : top;
        }

        rounded[top] = 1m - (rounded.Sum() - rounded[top]);
        return rounded;
    }

    /// <summary>A slice's source relative to INPUT: the DICOM file under the folder, the zip entry, or the file name
    /// (a NIfTI volume: every slice has the volume's file name; <c>"slice"</c> tells them apart).</summary>
    private static string SlicePath(string input, string root, AssembledSeries series, int index)
    {
        if (series.Slices.Count == 0)
        {
            return Path.GetFileName(input);
        }

        var source = series.Slices[index].SourceName;
        var bang = source.LastIndexOf('!');
        if (bang >= 0 && !File.Exists(source))
        {
            return source[(bang + 1)..];
        }

        return Path.GetRelativePath(root, Path.GetFullPath(source)).Replace('\\', '/');
    }
}
