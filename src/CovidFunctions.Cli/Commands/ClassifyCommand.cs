using System.CommandLine;
using System.Runtime.CompilerServices;
using System.Text.Json;
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
        var models = ScreeningInputs.ModelsOption();
        var threads = ScreeningInputs.ThreadsOption();
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
        if (!ScreeningInputs.TryStart("classify", input, modelsDir, threads, error, out var files, out var models))
        {
            return ExitCodes.BadInput;
        }

        var root = Directory.Exists(input) ? Path.GetFullPath(input) : Path.GetDirectoryName(Path.GetFullPath(input))!;
        var failures = new StrongBox<int>(0);
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteStartArray("items");
            foreach (var images in ScreeningInputs.LoadInBatches(files, "classify", error, failures))
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
        output.WriteLine($"classify: {files.Count - failures.Value} image(s) scored into {jsonPath} ({models.Provider})");
        return failures.Value == 0 ? ExitCodes.Success : ExitCodes.BadInput;
    }
}
