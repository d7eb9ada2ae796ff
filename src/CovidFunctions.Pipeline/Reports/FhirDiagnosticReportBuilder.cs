using System.Globalization;
using System.Text.Json;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Storage;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;

namespace CovidFunctions.Pipeline.Reports;

/// <summary>
/// The study as an HL7 FHIR R4 <c>DiagnosticReport</c> (Hl7.Fhir.R4): contained <c>Observation</c>s for each class
/// probability and for the lesion burden, referenced from <c>result</c>; the label as <c>conclusion</c> and a SNOMED CT
/// <c>conclusionCode</c>; the HTML report as <c>presentedForm</c>. No subject: the pipeline holds no patient
/// identity, only the de-identified study pseudonym as an identifier.
/// </summary>
public static class FhirDiagnosticReportBuilder
{
    /// <summary>The code system of the pipeline's own observation codes.</summary>
    public const string ObservationSystem = "urn:covidfunctions:observation";

    public const string StudyIdSystem = "urn:covidfunctions:study";
    public const string StudyPseudonymSystem = "urn:covidfunctions:study-pseudonym";

    private static readonly Lazy<JsonSerializerOptions> SerializerOptions = new(() => new JsonSerializerOptions { WriteIndented = true }.ForFhir());

    /// <summary>Serializer options for R4 POCOs (strict parsing: a document that does not validate throws).</summary>
    public static JsonSerializerOptions JsonOptions => SerializerOptions.Value;

    public static DiagnosticReport Build(StudyRecord study, Uri? apiBaseUrl)
    {
        ArgumentNullException.ThrowIfNull(study);
        var diagnosis = StudyViews.Diagnosis(study);
        var links = StudyViews.Links(study, apiBaseUrl);
        var report = new DiagnosticReport
        {
            Id = study.StudyId,
            Status = study.Status switch
            {
                StudyStatus.Completed => DiagnosticReport.DiagnosticReportStatus.Final,
                StudyStatus.Failed or StudyStatus.Rejected => DiagnosticReport.DiagnosticReportStatus.Cancelled,
                StudyStatus.Processing => DiagnosticReport.DiagnosticReportStatus.Partial,
                _ => DiagnosticReport.DiagnosticReportStatus.Registered,
            },
            Category = [new CodeableConcept("http://terminology.hl7.org/CodeSystem/v2-0074", "RAD", "Radiology")],
            Code = new CodeableConcept("http://loinc.org", "24627-2", "CT Chest", "CT chest screening (research)"),
            Identifier = [new Identifier(StudyIdSystem, study.StudyId)],
            Performer = [new ResourceReference { Display = $"CovidFunctions screening pipeline, model {study.ModelVersion ?? "unknown"}" }],
        };
        if (study.StudyPseudonym is not null)
        {
            report.Identifier.Add(new Identifier(StudyPseudonymSystem, study.StudyPseudonym));
        }

        if (study.CompletedAt is { } completed)
        {
            report.Effective = new FhirDateTime(completed);
            report.Issued = completed;
        }

        if (diagnosis is not null)
        {
            foreach (var (name, probability) in diagnosis.Probabilities)
            {
                AddObservation(report, $"probability-{name}", $"Probability of the {StudyReportRenderer.DisplayLabel(name)}", probability, "1", "1");
            }

            if (diagnosis.LesionBurden is { } burden)
            {
                AddObservation(report, "lesion-burden", "Lesion burden (lesion volume / estimated lung volume)", Math.Round(burden * 100, 4), "%", "%");
            }

            report.Conclusion = string.Create(
                CultureInfo.InvariantCulture,
                $"{StudyReportRenderer.DisplayLabel(diagnosis.Label)} ({diagnosis.Label}); lesion burden {(diagnosis.LesionBurden ?? 0) * 100:0.0} % over {diagnosis.Slices} slices. {StudyReportRenderer.ResearchNotice}.");
            if (ConclusionCode(diagnosis.Label) is { } code)
            {
                report.ConclusionCode = [code];
            }
        }
        else if (study.Status is StudyStatus.Failed or StudyStatus.Rejected)
        {
            report.Conclusion = $"No diagnosis: the study was {study.Status}. {StudyReportRenderer.ResearchNotice}.";
        }

        report.PresentedForm = [new Attachment { ContentType = "text/html", Url = links.Report, Title = "Screening report (HTML)" }];
        return report;
    }

    public static string ToJson(DiagnosticReport report) => JsonSerializer.Serialize(report, JsonOptions);

    /// <summary>Parses a DiagnosticReport (strict: throws on a document that is not valid R4).</summary>
    public static DiagnosticReport Parse(string json) =>
        JsonSerializer.Deserialize<DiagnosticReport>(json, JsonOptions) ?? throw new JsonException("empty FHIR document");

    private static void AddObservation(DiagnosticReport report, string code, string text, double value, string unit, string ucum)
    {
        var observation = new Observation
        {
            Id = code,
            Status = report.Status == DiagnosticReport.DiagnosticReportStatus.Final ? ObservationStatus.Final : ObservationStatus.Preliminary,
            Code = new CodeableConcept(ObservationSystem, code, text, text),
            Value = new Quantity((decimal)Math.Round(value, 6), unit) { System = "http://unitsofmeasure.org", Code = ucum },
            Effective = report.Effective,
            Issued = report.Issued,
        };
        report.Contained.Add(observation);
        report.Result.Add(new ResourceReference("#" + code, text));
    }

    private static CodeableConcept? ConclusionCode(string label) => label switch
    {
        "covid" => new CodeableConcept("http://snomed.info/sct", "840539006", "Disease caused by severe acute respiratory syndrome coronavirus 2", label),
        "cap" => new CodeableConcept("http://snomed.info/sct", "385093006", "Community acquired pneumonia", label),
        "normal" => new CodeableConcept("http://snomed.info/sct", "17621005", "Normal", label),
        _ => null,
    };
}
