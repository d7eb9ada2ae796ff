using System.CommandLine;
using System.Text.Json;
using CovidFunctions.Imaging;
using CovidFunctions.Imaging.Preprocessing;
using CovidFunctions.Inference;

namespace CovidFunctions.Cli.Commands;

/// <summary>
/// <c>covidfn classify INPUT --json F</c>: scores each 2-D image below INPUT (recursively) on its own with DTCN and
/// writes <c>{"items":[{"path":"&lt;relative to INPUT&gt;","probabilities":{"covid":p,"cap":p,"normal":p},"label":"…"}]}</c>.
/// Exit 0 on success; 2 with a message on stderr on bad input.
/// </summary>
public static class ClassifyCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = "A 2-D image (PNG/JPG/TIFF) or a folder of them (recursive)." };
        var json = new Option<string>("--json") { Description = "Output JSON file.", Required = true };
        var models = new Option<string?>("--models") { Description = "Models folder (default: COVIDFN_MODELS_DIR or models/ next to covidfn)." };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime intra-op threads (0: one per core).", DefaultValueFactory = _ => 0 };
        var command = new Command("classify", "Per-image covid / cap / normal probabilities for 2-D CT images, as JSON.");
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
    public static int Run(string input, string jsonPath, string? modelsDir, int threads, TextWriter output, TextWriter error)
    {
        var files = ScreeningInputs.Find2DImages(input, out var problem);
        if (files is null)
        {
            error.WriteLine("classify: " + problem);
            return ExitCodes.BadInput;
        }

        ScreeningModels models;
        try
        {
            models = ScreeningInputs.LoadModels(modelsDir, threads);
        }
        catch (Exception ex) when (ex is InferenceException or ArgumentException)
        {
            error.WriteLine("classify: cannot load the models: " + ex.Message);
            return ExitCodes.BadInput;
        }

        var root = Directory.Exists(input) ? Path.GetFullPath(input) : Path.GetDirectoryName(Path.GetFullPath(input))!;
        var failures = 0;
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteStartArray("items");
            foreach (var chunk in files.Chunk(ScreeningInputs.Batch))
            {
                var images = new List<(string Path, GreyImage Image)>();
                foreach (var path in chunk)
                {
                    try
                    {
                        images.Add((path, ImageLoader.Load(path)));
                    }
                    catch (ImagingException ex)
                    {
                        error.WriteLine($"classify: {path}: {ex.Message}");
                        failures++;
                    }
                }

                if (images.Count == 0)
                {
                    continue;
                }

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
                    w.WriteString("path", Path.GetRelativePath(root, Path.GetFullPath(images[n].Path)).Replace('\\', '/'));
                    w.WriteStartObject("probabilities");
                    for (var k = 0; k < models.Classes.Count; k++)
                    {
                        w.WriteNumber(models.Classes[k], Math.Round(predictions[n].ClassProbabilities[k], 6));
                    }

                    w.WriteEndObject();
                    w.WriteString("label", predictions[n].Label);
                    w.WriteEndObject();
                }
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        var dir = Path.GetDirectoryName(Path.GetFullPath(jsonPath));
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
        }

        File.WriteAllBytes(jsonPath, stream.ToArray());
        output.WriteLine($"classify: {files.Count - failures} image(s) scored into {jsonPath} ({models.Provider})");
        return failures == 0 ? ExitCodes.Success : ExitCodes.BadInput;
    }
}
