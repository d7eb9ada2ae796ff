using System.Text.Json;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Pipeline.Notifications;

/// <summary>
/// The body of a webhook delivery. Built only from the Studies row's de-identified values: the study id (a hash of
/// tenant and upload path), the de-identified study pseudonym, the diagnosis and links. Never the upload path (a
/// caller's file name may carry a patient name), never a failure reason text, never pixels.
/// </summary>
public sealed record WebhookPayload(
    string Id,
    string Type,
    string Tenant,
    string Study,
    string? StudyPseudonym,
    string Status,
    DateTimeOffset OccurredAt,
    DiagnosisView? Diagnosis,
    string? ModelVersion,
    StudyLinks Links,
    bool Test = false)
{
    public static WebhookPayload For(string deliveryId, string eventType, StudyRecord study, Uri? apiBaseUrl, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(study);
        return new WebhookPayload(
            deliveryId,
            eventType,
            study.Tenant,
            study.StudyId,
            study.StudyPseudonym,
            study.Status,
            study.CompletedAt ?? now,
            StudyViews.Diagnosis(study),
            study.ModelVersion,
            StudyViews.Links(study, apiBaseUrl));
    }

    public string ToJson() => JsonSerializer.Serialize(this, ApiJson.Options);
}
