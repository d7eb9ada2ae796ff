using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace CovidFunctions.Inference;

/// <summary><c>models/manifest.json</c>: which graphs exist, their hashes, the preprocessing id, class order and
/// thresholds (written by <c>src/training/covidfn_train/export_onnx.py</c>).</summary>
public sealed record ModelManifest
{
    /// <summary>The file name inside the models directory.</summary>
    public const string FileName = "manifest.json";

    [JsonPropertyName("preprocessing")]
    public string Preprocessing { get; init; } = "";

    [JsonPropertyName("classes")]
    public IReadOnlyList<string> Classes { get; init; } = [];

    [JsonPropertyName("lesion_threshold")]
    public float LesionThreshold { get; init; } = 0.5f;

    [JsonPropertyName("training_commit")]
    public string? TrainingCommit { get; init; }

    [JsonPropertyName("models")]
    public IReadOnlyDictionary<string, ModelEntry> Models { get; init; } = new Dictionary<string, ModelEntry>();

    [JsonPropertyName("default_models")]
    public IReadOnlyDictionary<string, string>? DefaultModels { get; init; }

    /// <summary>The folder the manifest was read from.</summary>
    [JsonIgnore]
    public string Directory { get; init; } = "";

    /// <summary>Reads and checks the manifest of <paramref name="directory"/>.</summary>
    public static ModelManifest Load(string directory)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
        {
            throw new InferenceException($"Model manifest not found: {path}. Set {InferenceOptions.ModelsDirectoryVariable} or InferenceOptions.ModelsDirectory to the folder holding manifest.json and the .onnx files.") { ModelPath = path };
        }

        ModelManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<ModelManifest>(File.ReadAllText(path));
        }
        catch (JsonException ex)
        {
            throw new InferenceException($"Model manifest {path} is not valid JSON: {ex.Message}", ex) { ModelPath = path };
        }

        if (manifest is null || manifest.Models.Count == 0)
        {
            throw new InferenceException($"Model manifest {path} lists no models.") { ModelPath = path };
        }

        if (manifest.Preprocessing != Imaging.Preprocessing.LungPreprocessor.PreprocessingId)
        {
            throw new InferenceException($"Model manifest {path} expects preprocessing '{manifest.Preprocessing}', this build implements '{Imaging.Preprocessing.LungPreprocessor.PreprocessingId}'.") { ModelPath = path };
        }

        return manifest with { Directory = directory };
    }

    /// <summary>Full path of a model by manifest name; checks existence and (when <paramref name="verifyHash"/>) sha256.</summary>
    public string PathOf(string name, bool verifyHash = true)
    {
        if (!Models.TryGetValue(name, out var entry))
        {
            throw new InferenceException($"Model '{name}' is not in {Path.Combine(Directory, FileName)} (has: {string.Join(", ", Models.Keys)}).");
        }

        var path = Path.Combine(Directory, entry.File);
        if (!File.Exists(path))
        {
            throw new InferenceException($"Model file missing: {path}") { ModelPath = path };
        }

        if (verifyHash && !string.IsNullOrEmpty(entry.Sha256))
        {
            using var stream = File.OpenRead(path);
            var actual = Convert.ToHexStringLower(SHA256.HashData(stream));
            if (!string.Equals(actual, entry.Sha256, StringComparison.OrdinalIgnoreCase))
            {
                throw new InferenceException($"Model file {path} has sha256 {actual}, the manifest says {entry.Sha256}.") { ModelPath = path };
            }
        }

        return path;
    }

    /// <summary>Resolves the models directory: explicit option, else <c>COVIDFN_MODELS_DIR</c>, else <c>models/</c> next to the executable.</summary>
    public static string ResolveDirectory(InferenceOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!string.IsNullOrWhiteSpace(options.ModelsDirectory))
        {
            return Path.GetFullPath(options.ModelsDirectory);
        }

        var env = Environment.GetEnvironmentVariable(InferenceOptions.ModelsDirectoryVariable);
        return !string.IsNullOrWhiteSpace(env) ? Path.GetFullPath(env) : Path.Combine(AppContext.BaseDirectory, "models");
    }
}

/// <summary>One graph of the manifest.</summary>
public sealed record ModelEntry
{
    [JsonPropertyName("file")]
    public string File { get; init; } = "";

    [JsonPropertyName("sha256")]
    public string? Sha256 { get; init; }

    [JsonPropertyName("bytes")]
    public long Bytes { get; init; }

    [JsonPropertyName("outputs")]
    public IReadOnlyList<string> Outputs { get; init; } = [];
}
