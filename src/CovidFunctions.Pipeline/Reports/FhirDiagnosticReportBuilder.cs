using System.Globalization;
using System.Text.Json;
using CovidFunctions.Inference;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Storage;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;

namespace CovidFunctions.Pipeline.Reports;

/// <summary>
/// The study as an HL7 FHIR R4 <c>DiagnosticReport</c> (Hl7.Fhir.R4): contained <c>Observation</c>s for each class
/// probability and for the lesion burden (with the slices screened as a component), referenced from <c>result</c>, each
/// naming the model version (<c>device</c>, a logical reference) and how it was computed (<c>method</c>); the label as
/// <c>conclusion</c> and a <c>conclusionCode</c> in the pipeline's own label system; the HTML report as
/// <c>presentedForm</c>; research use only as a security label and a tag. No subject: the pipeline holds no patient identity, only the de-identified study pseudonym as
/// an identifier.
/// </summary>
public static class FhirDiagnosticReportBuilder
{
    /// <summary>The code system of the pipeline's own observation codes.</summary>
    public const string ObservationSystem = "urn:covidfunctions:observation";

    public const string StudyIdSystem = "urn:covidfunctions:study";
    public const string StudyPseudonymSystem = "urn:covidfunctions:study-pseudonym";

    /// <summary>The pipeline's tag system for the intended use (<c>research-use-only</c>).</summary>
    public const string IntendedUseSystem = "urn:covidfunctions:intended-use";

    /// <summary>The pipeline's label system: the model's classes (<c>covid</c>, <c>cap</c>, <c>normal</c>).</summary>
    public const string LabelSystem = "urn:covidfunctions:label";

    /// <summary>HL7 v3 ActReason (purpose of use), code <c>HRESCH</c> "healthcare research".</summary>
    public const string PurposeOfUseSystem = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

    /// <summary>What the conclusion is, in words, wherever it is coded.</summary>
    public const string NotADiagnosis = "research model output, not a diagnosis";

    /// <summary>The identifier system of the model version (<c>name@</c> the first 12 hex digits of the graph's sha256).</summary>
    public const string ModelVersionSystem = "urn:covidfunctions:model-version";

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

            // Research use only, machine-readable: the HL7 purpose-of-use security label "healthcare research" (a system
            // that enforces security labels keeps the document to that use) and the pipeline's own tag; the text says
            // it in conclusion and in the HTML report. Before, only the text said it.
            Meta = new Meta
            {
                Security = [new Coding(PurposeOfUseSystem, "HRESCH", "healthcare research")],
                Tag = [new Coding(IntendedUseSystem, "research-use-only", StudyReportRenderer.ResearchNotice + "; not for diagnosis or treatment decisions")],
            },
            Status = study.Status switch
            {
                StudyStatus.Completed => DiagnosticReport.DiagnosticReportStatus.Final,
                StudyStatus.Failed or StudyStatus.Rejected => DiagnosticReport.DiagnosticReportStatus.Cancelled,
                StudyStatus.Processing => DiagnosticReport.DiagnosticReportStatus.Partial,
                _ => DiagnosticReport.DiagnosticReportStatus.Registered,
            },
            Category = [new CodeableConcept("http://terminology.hl7.org/CodeSystem/v2-0074", "RAD", "Radiology")],
            Code = new CodeableConcept("http://loinc.org", "24627-2", "CT Chest", "CT chest screening (research)"),
            Identifier = [new Identifier(StudyIdSystem, study.StudyId) { Type = new CodeableConcept { Text = "CovidFunctions study id (keyed hash of tenant and upload path; the id the upload was answered with)" } }],
            Performer = [new ResourceReference { Display = $"CovidFunctions screening pipeline, model {study.ModelVersion ?? "unknown"}" }],
        };
        if (study.StudyPseudonym is not null)
        {
            report.Identifier.Add(new Identifier(StudyPseudonymSystem, study.StudyPseudonym) { Type = new CodeableConcept { Text = "de-identified Study Instance UID (keyed pseudonym of the uploaded study's UID)" } });
        }

        if (study.CompletedAt is { } completed)
        {
            // The screening's time: the acquisition time is not known here (de-identification shifts dates).
            report.Effective = new FhirDateTime(completed);
            report.Issued = completed;
        }

        if (diagnosis is not null)
        {
            var model = study.ModelVersion ?? "unknown";
            var used = StudyReportRenderer.LabelSlices(diagnosis.Slices);
            var rule = string.Create(
                CultureInfo.InvariantCulture,
                $"Mean of the per-slice class probabilities of the {used} of {diagnosis.Slices} slices with the highest mean lesion probability ({StudyAggregator.RuleDescription}); used as they are, no fitted threshold");
            foreach (var (name, probability) in diagnosis.Probabilities)
            {
                AddObservation(report, $"probability-{name}", $"Probability: {StudyReportRenderer.DisplayLabel(name)}", Quantity(probability, "1"), rule, model);
            }

            if (diagnosis.LesionBurden is { } burden)
            {
                AddObservation(report, "lesion-burden", "Lesion burden, % of the lung estimate", Quantity(Math.Round(burden * 100, 4), "%"),
                    string.Create(CultureInfo.InvariantCulture, $"Lesion pixels / lung-estimate pixels, summed over the {diagnosis.Slices} slices screened"), model);
            }

            if (report.Contained.OfType<Observation>().FirstOrDefault(o => o.Id == "lesion-burden") is { } lesion)
            {
                // What the model saw, as data: the slice count the burden (and the label's k) is taken over.
                lesion.Component.Add(new Observation.ComponentComponent
                {
                    Code = new CodeableConcept(ObservationSystem, "slices-screened", "Slices screened", "Slices screened"),
                    Value = new Integer(diagnosis.Slices),
                });
            }

            report.Conclusion = string.Create(
                CultureInfo.InvariantCulture,
                $"{StudyReportRenderer.DisplayLabel(diagnosis.Label)} ({diagnosis.Label}; {NotADiagnosis}); lesion burden {(diagnosis.LesionBurden ?? 0) * 100:0.0} % of the lung estimate over {diagnosis.Slices} slices. {StudyReportRenderer.ResearchNotice}.");

            // The label in the pipeline's own system. Not SNOMED CT: its concepts for these (840539006 "Disease caused by
            // SARS-CoV-2", 385093006 "Community acquired pneumonia", both disorders; 17621005 "Normal", a qualifier) state
            // a diagnosis, and a receiving system may file a coded conclusion as one; the model sees a CT pattern.
            report.ConclusionCode = [new CodeableConcept(LabelSystem, diagnosis.Label, StudyReportRenderer.DisplayLabel(diagnosis.Label), diagnosis.Label)];
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

    /// <summary>
    /// The model as a logical reference (Reference.identifier; no Device resource to resolve): the model version as data,
    /// not only in performer's text, so a receiver can tell results of different graphs apart.
    /// </summary>
    private static ResourceReference ModelReference(string modelVersion) =>
        new() { Type = "Device", Identifier = new Identifier(ModelVersionSystem, modelVersion), Display = $"CovidFunctions model {modelVersion}" };

    private static Quantity Quantity(double value, string ucum) =>
        new((decimal)Math.Round(value, 6), ucum) { System = "http://unitsofmeasure.org", Code = ucum };

    private static void AddObservation(DiagnosticReport report, string code, string text, DataType value, string method, string modelVersion)
    {
        var observation = new Observation
        {
            Id = code,
            Status = report.Status == DiagnosticReport.DiagnosticReportStatus.Final ? ObservationStatus.Final : ObservationStatus.Preliminary,
            Code = new CodeableConcept(ObservationSystem, code, text, text),
            Value = value,
            Method = new CodeableConcept { Text = method },
            Device = ModelReference(modelVersion),
            Effective = report.Effective,
            Issued = report.Issued,
        };
        report.Contained.Add(observation);
        report.Result.Add(new ResourceReference("#" + code, text));
    }
}
