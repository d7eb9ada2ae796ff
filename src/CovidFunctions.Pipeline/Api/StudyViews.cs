using System.Text.Json;
using System.Text.Json.Serialization;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Api;

/// <summary>The patient-level diagnosis as every output shows it (API, webhook payload, report, FHIR).</summary>
public sealed record DiagnosisView(
    string Label,
    IReadOnlyDictionary<string, double> Probabilities,
    double? LesionBurden,
    int Slices);

/// <summary>One of the most affected slices (the shape of <c>StudyRecord.TopSlicesJson</c> elements).</summary>
public sealed record TopSliceView(int SliceIndex, double LesionPercent, string? OverlayPath);

/// <summary>Links to a study's resources under the results API.</summary>
public sealed record StudyLinks(
    string Study,
    string Report,
    string Fhir,
    string? Montage,
    IReadOnlyList<string> Overlays);

/// <summary>Reads the display values out of a <see cref="StudyRecord"/> (the Studies row is the one source).</summary>
public static class StudyViews
{
    public static DiagnosisView? Diagnosis(StudyRecord study)
    {
        ArgumentNullException.ThrowIfNull(study);
        if (study.Label is null)
        {
            return null;
        }

        var probabilities = new Dictionary<string, double>(StringComparer.Ordinal);
        Add("covid", study.ProbabilityCovid);
        Add("cap", study.ProbabilityCap);
        Add("normal", study.ProbabilityNormal);
        return new DiagnosisView(study.Label, probabilities, study.LesionBurden, study.SliceCount);

        void Add(string name, double? value)
        {
            if (value is { } v)
            {
                probabilities[name] = Math.Round(v, 6);
            }
        }
    }

    /// <summary>The most affected slices, most affected first (empty when none were recorded or the JSON is unreadable).</summary>
    public static IReadOnlyList<TopSliceView> TopSlices(StudyRecord study)
    {
        ArgumentNullException.ThrowIfNull(study);
        if (string.IsNullOrEmpty(study.TopSlicesJson))
        {
            return [];
        }

        try
        {
            return PipelineJson.Deserialize<List<TopSliceView>>(study.TopSlicesJson);
        }
        catch (JsonException)
        {
            return [];
        }
    }

    /// <summary>A JSON column parsed to an element (null when empty or unreadable).</summary>
    public static JsonElement? ParseColumn(string? json)
    {
        if (string.IsNullOrEmpty(json))
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(json);
            return document.RootElement.Clone();
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// Whether <paramref name="relative"/> is '/'-separated names only: no empty, <c>.</c> or <c>..</c> segment and no
    /// backslash. A path below the study's folder must be one to stay there: blob clients normalise <c>a/b/../c</c> into
    /// <c>a/c</c>. The rule of the <c>files/{path}</c> endpoint and of the images the report embeds.
    /// </summary>
    public static bool IsPlainRelativePath(string? relative) =>
        !string.IsNullOrEmpty(relative)
        && relative.Split('/').All(s => s.Length > 0 && s is not ("." or "..") && !s.Contains('\\', StringComparison.Ordinal));

    /// <summary>
    /// The part of a results-container path below the study's own folder (<c>{tenant}/{studyId}/</c>), which is what
    /// the <c>files/{path}</c> endpoint serves; null for a path outside that folder.
    /// </summary>
    public static string? StudyRelativePath(StudyRecord study, string? resultsPath)
    {
        ArgumentNullException.ThrowIfNull(study);
        if (string.IsNullOrEmpty(resultsPath))
        {
            return null;
        }

        var prefix = $"{study.Tenant}/{study.StudyId}/";
        return resultsPath.StartsWith(prefix, StringComparison.Ordinal) ? resultsPath[prefix.Length..] : null;
    }

    /// <summary>Links under <paramref name="baseUrl"/> (relative links when null).</summary>
    public static StudyLinks Links(StudyRecord study, Uri? baseUrl)
    {
        ArgumentNullException.ThrowIfNull(study);
        var root = (baseUrl?.ToString().TrimEnd('/') ?? "") + "/api/studies/" + Uri.EscapeDataString(study.StudyId);
        var montage = StudyRelativePath(study, study.MontagePath);
        var overlays = TopSlices(study)
            .Select(s => StudyRelativePath(study, s.OverlayPath))
            .OfType<string>()
            .Select(p => root + "/files/" + p)
            .ToList();
        return new StudyLinks(root, root + "/report", root + "/fhir", montage is null ? null : root + "/files/" + montage, overlays);
    }
}

/// <summary>The JSON shapes of the API and of webhook payloads (camelCase, nulls omitted).</summary>
public static class ApiJson
{
    public static JsonSerializerOptions Options { get; } = new(PipelineJson.Options)
    {
        WriteIndented = false,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };
}
