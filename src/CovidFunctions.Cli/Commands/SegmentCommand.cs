using System.CommandLine;
using System.Runtime.CompilerServices;
using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.Inference;

namespace CovidFunctions.Cli.Commands;

/// <summary>
/// <c>covidfn segment INPUT --out-dir D</c>: for each 2-D image (a file, or every PNG/JPG/TIFF below a folder) writes
/// <c>D/&lt;file name stem&gt;.png</c>, a binary lesion mask (0/255) of the input's width and height (DFSN, lung2d-v1,
/// threshold from the model manifest). Exit 0 on success; 2 with a message on stderr on bad input (any image that
/// cannot be read is reported and the others are still written).
/// </summary>
public static class SegmentCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = "A 2-D image (PNG/JPG/TIFF) or a folder of them (recursive)." };
        var outDir = new Option<string>("--out-dir") { Description = "Folder for the masks (<stem>.png).", Required = true };
        var models = ScreeningInputs.ModelsOption();
        var threads = ScreeningInputs.ThreadsOption();
        var command = new Command("segment", "Lesion masks (0/255 PNG, input size) for 2-D CT images.");
        command.Arguments.Add(input);
        command.Options.Add(outDir);
        command.Options.Add(models);
        command.Options.Add(threads);
        command.SetAction(parseResult => Run(
            parseResult.GetValue(input) ?? string.Empty,
            parseResult.GetValue(outDir) ?? string.Empty,
            parseResult.GetValue(models),
            parseResult.GetValue(threads),
            parseResult.InvocationConfiguration.Output,
            parseResult.InvocationConfiguration.Error));
        return command;
    }

    /// <summary>Runs the command; separated from the parser so tests can call it directly.</summary>
    public static int Run(string input, string outDir, string? modelsDir, int threads, TextWriter output, TextWriter error)
    {
        if (!ScreeningInputs.TryStart("segment", input, modelsDir, threads, error, out var files, out var models))
        {
            return ExitCodes.BadInput;
        }

        Directory.CreateDirectory(outDir);
        var failures = new StrongBox<int>(0);
        var written = new HashSet<string>(StringComparer.Ordinal);
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
                var name = Path.GetFileNameWithoutExtension(path) + ".png";
                if (!written.Add(name))
                {
                    error.WriteLine($"segment: warning: {name} written twice (same file name stem in two folders); the later one wins");
                }

                ScreeningInputs.WriteGreyPng(Path.Combine(outDir, name), mask, image.Width, image.Height);
            }
        }

        output.WriteLine($"segment: {written.Count} mask(s) written to {outDir} ({models.Provider})");
        return failures.Value == 0 ? ExitCodes.Success : ExitCodes.BadInput;
    }
}
