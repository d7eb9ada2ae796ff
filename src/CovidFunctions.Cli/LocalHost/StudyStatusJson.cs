using System.Text;
using System.Text.Json;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Cli.LocalHost;

/// <summary>
/// The <c>covidfn status STUDY --json</c> document (also written by <c>covidfn screen --json</c>), exactly:
/// <c>{"study":"&lt;id&gt;","tenant":"&lt;t&gt;","status":"queued|processing|completed|failed|rejected","reason":null|"…",
/// "diagnosis":null|{"label":"covid|cap|normal","probabilities":{"covid":p,"cap":p,"normal":p},"lesionBurden":x,"slices":n}}</c>.
/// The diagnosis is present only for a completed study.
/// </summary>
public static class StudyStatusJson
{
    public static string Serialize(StudyRecord study)
    {
        ArgumentNullException.ThrowIfNull(study);
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteString("study", study.StudyId);
            w.WriteString("tenant", study.Tenant);
            w.WriteString("status", study.Status);
            if (study.Reason is null)
            {
                w.WriteNull("reason");
            }
            else
            {
                w.WriteString("reason", study.Reason);
            }

            if (study.Status == StudyStatus.Completed && study.Label is { } label)
            {
                w.WriteStartObject("diagnosis");
                w.WriteString("label", label);
                w.WriteStartObject("probabilities");
                w.WriteNumber("covid", Math.Round(study.ProbabilityCovid ?? 0, 6));
                w.WriteNumber("cap", Math.Round(study.ProbabilityCap ?? 0, 6));
                w.WriteNumber("normal", Math.Round(study.ProbabilityNormal ?? 0, 6));
                w.WriteEndObject();
                w.WriteNumber("lesionBurden", Math.Round(study.LesionBurden ?? 0, 6));
                w.WriteNumber("slices", study.SliceCount);
                w.WriteEndObject();
            }
            else
            {
                w.WriteNull("diagnosis");
            }

            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }
}
