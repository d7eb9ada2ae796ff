using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CovidFunctions.Pipeline.Reports;

/// <summary>
/// The study's HTML report: one self-contained page (images embedded as <c>data:</c> URIs, no scripts, no external
/// resources) with the diagnosis, class probabilities, the slices screened and how many set the label, how far the
/// probabilities can be trusted, the lesion burden, the montage and the overlays of the most affected slices, the stage
/// timings, a model card summary and the research-use notice; times in UTC.
/// </summary>
public static partial class StudyReportRenderer
{
    public const string ResearchNotice = "Research use only — not a medical device";

    /// <summary>The overlays embedded (the most affected first); the rest are linked.</summary>
    public const int EmbeddedOverlays = 6;

    /// <summary>
    /// Renders the report; <paramref name="results"/> is the results container (overlay and montage PNGs are read from
    /// it; a missing image is noted, not fatal).
    /// </summary>
    public static Task<string> RenderAsync(StudyRecord study, IBlobStore results, Uri? apiBaseUrl, CancellationToken cancellationToken) =>
        RenderAsync(study, results, apiBaseUrl, NullLogger.Instance, cancellationToken);

    /// <summary>
    /// As <see cref="RenderAsync(StudyRecord, IBlobStore, Uri?, CancellationToken)"/>; an image path of the record outside
    /// the study's own results (see <see cref="OwnImagePath"/>) is not read, the page says the image is not shown, and
    /// <paramref name="logger"/> is told which path and why.
    /// </summary>
    public static async Task<string> RenderAsync(StudyRecord study, IBlobStore results, Uri? apiBaseUrl, ILogger logger, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(study);
        ArgumentNullException.ThrowIfNull(results);
        ArgumentNullException.ThrowIfNull(logger);
        var diagnosis = StudyViews.Diagnosis(study);
        var top = StudyViews.TopSlices(study);
        var links = StudyViews.Links(study, apiBaseUrl);
        var html = new StringBuilder(64 * 1024);
        html.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
            .Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
            .Append("<title>CovidFunctions report ").Append(E(study.StudyId)).Append("</title>")
            .Append("<style>").Append(Css).Append("</style></head><body>\n")
            .Append("<div class=\"notice\" id=\"notice\">").Append(E(ResearchNotice)).Append(". Not for diagnosis or treatment decisions.</div>\n")
            .Append("<h1>CT screening report</h1>\n")
            .Append("<table class=\"meta\">")
            .Append(Row("Study", study.StudyId))
            .Append(Row("Study pseudonym", study.StudyPseudonym ?? "—"))
            .Append(Row("Tenant", study.Tenant))
            .Append(Row("Status", study.Status))
            .Append(Row("Received", Utc(study.CreatedAt)))
            .Append(Row("Completed", study.CompletedAt is { } completed ? Utc(completed) : "—"))
            .Append(Row("Model", study.ModelVersion is null ? "—" : study.ModelVersion + ModelVersionNote))
            .Append("</table>\n");

        html.Append("<section id=\"diagnosis\"><h2>Diagnosis</h2>\n");
        if (diagnosis is null)
        {
            html.Append("<p class=\"label\">No diagnosis</p>");
            if (study.Reason is not null && study.Status is StudyStatus.Failed or StudyStatus.Rejected)
            {
                html.Append("<p>").Append(E(study.Status)).Append(": ").Append(E(study.Reason)).Append("</p>");
            }
        }
        else
        {
            html.Append("<p class=\"label label-").Append(E(diagnosis.Label)).Append("\" id=\"diagnosis-label\">")
                .Append(E(DisplayLabel(diagnosis.Label))).Append(" <span class=\"code\">(").Append(E(diagnosis.Label)).Append(")</span></p>\n")
                .Append("<table class=\"probs\"><tr><th>Class</th><th>Probability</th><th></th></tr>");
            foreach (var (name, p) in diagnosis.Probabilities.OrderByDescending(kv => kv.Value))
            {
                html.Append("<tr><td>").Append(E(DisplayLabel(name))).Append("</td><td>")
                    .Append(p.ToString("0.000", CultureInfo.InvariantCulture)).Append("</td><td><div class=\"bar\" style=\"width:")
                    .Append((Math.Clamp(p, 0, 1) * 200).ToString("0", CultureInfo.InvariantCulture)).Append("px\"></div></td></tr>");
            }

            // What the model saw and what set the label: the aggregator's k slices, ranked by mean lesion probability. The
            // montage and overlays are ranked by lesion share of the lung estimate instead, so they are not the same slices
            // by construction; before, the page did not say so, and a reader took the pictured slices for the evidence.
            var slices = diagnosis.Slices.ToString(CultureInfo.InvariantCulture);
            var used = LabelSlices(diagnosis.Slices).ToString(CultureInfo.InvariantCulture);
            html.Append("</table>\n<p id=\"slices\">Slices screened: <b>").Append(slices).Append("</b> (the selected axial series). The label is set by the ")
                .Append(used).Append(" of ").Append(slices).Append(" slices with the highest mean lesion probability: the most probable class of the mean of their class probabilities.")
                .Append(top.Count > 0 || study.MontagePath is not null
                    ? " The montage and overlays below show the slices with the largest lesion share of their lung estimate, a different ranking: not necessarily the slices that set the label."
                    : string.Empty)
                .Append("</p>\n<p id=\"calibration\">How far to trust the probabilities: they are the model's scores, used as they are (no fitted threshold); on the UCSD validation slices their calibration error is ECE ")
                .Append(E(ModelCardEce)).Append(" (docs/model-card.md). They describe images like the model's training sources, not the chance that this patient has the disease; see the known limitation below.</p>\n")
                .Append("<p id=\"lesion-burden\">Lesion burden: <b>")
                .Append(diagnosis.LesionBurden is { } burden ? (burden * 100).ToString("0.0", CultureInfo.InvariantCulture) + " %" : "—")
                .Append("</b> of the lung estimate (lesion pixels / lung-estimate pixels, summed over the ").Append(slices).Append(" slices).</p>\n");
        }

        html.Append("</section>\n");

        if (study.MontagePath is not null)
        {
            html.Append("<section id=\"montage\"><h2>Most affected slices</h2>\n");
            var montagePath = OwnImagePath(study, study.MontagePath, "montage", logger);
            var montage = montagePath is null ? null : await ImageAsync(results, montagePath, cancellationToken).ConfigureAwait(false);
            html.Append(montage is not null
                ? $"<img class=\"montage\" alt=\"montage of the most affected slices\" src=\"{montage}\">"
                : montagePath is null
                    ? "<p class=\"missing\">The montage image is not shown: its stored path is outside this study's results.</p>"
                    : "<p class=\"missing\">The montage image is not available.</p>");
            html.Append("</section>\n");
        }

        if (top.Count > 0)
        {
            html.Append("<section id=\"overlays\"><h2>Lesion overlays</h2><div class=\"grid\">\n");
            var embedded = 0;
            foreach (var slice in top)
            {
                var caption = string.Create(CultureInfo.InvariantCulture, $"slice {slice.SliceIndex} · lesion {slice.LesionPercent:0.0} % of its lung estimate");
                string? uri = null;
                var overlayPath = slice.OverlayPath is null ? null : OwnImagePath(study, slice.OverlayPath, $"overlay of slice {slice.SliceIndex}", logger);
                if (overlayPath is not null && embedded < EmbeddedOverlays)
                {
                    uri = await ImageAsync(results, overlayPath, cancellationToken).ConfigureAwait(false);
                }

                html.Append("<figure>");
                if (uri is not null)
                {
                    embedded++;
                    html.Append("<img class=\"overlay\" alt=\"").Append(E(caption)).Append("\" src=\"").Append(uri).Append("\">");
                }
                else if (overlayPath is not null && StudyViews.StudyRelativePath(study, overlayPath) is { } relative)
                {
                    html.Append("<a href=\"").Append(E(links.Study + "/files/" + relative)).Append("\">overlay</a>");
                }
                else if (slice.OverlayPath is not null && overlayPath is null)
                {
                    html.Append("<p class=\"missing\">Overlay not shown: its stored path is outside this study's results.</p>");
                }

                html.Append("<figcaption>").Append(E(caption)).Append("</figcaption></figure>\n");
            }

            html.Append("</div></section>\n");
        }

        if (StudyViews.ParseColumn(study.TimingsJson) is { ValueKind: JsonValueKind.Object } timings)
        {
            html.Append("<section id=\"timings\"><h2>Stage timings</h2><table>");
            foreach (var property in timings.EnumerateObject())
            {
                html.Append(Row(property.Name, property.Value.ValueKind == JsonValueKind.Number
                    ? property.Value.GetDouble().ToString("0.00", CultureInfo.InvariantCulture) + " s"
                    : property.Value.ToString()));
            }

            html.Append("</table></section>\n");
        }

        html.Append("<section id=\"model-card\"><h2>Model card summary</h2>\n").Append(ModelCardSummary).Append("</section>\n")
            .Append("<p class=\"links\">Machine-readable: <a href=\"").Append(E(links.Study)).Append("\">JSON</a> · <a href=\"")
            .Append(E(links.Fhir)).Append("\">FHIR R4 DiagnosticReport</a></p>\n")
            .Append("<footer>").Append(E(ResearchNotice)).Append(".</footer>\n</body></html>\n");
        return html.ToString();
    }

    /// <summary>
    /// How many slices set the label: the k of <see cref="CovidFunctions.Inference.StudyAggregator"/>'s rule, max(3, ⌈10 % of slices⌉), all slices
    /// when fewer (the study row keeps the slice count, not k; ConsumerOutputTests ties this to the aggregator).
    /// </summary>
    public static int LabelSlices(int slices) => Math.Min(slices, Math.Max(3, (int)Math.Ceiling(0.1 * slices)));

    public static string DisplayLabel(string label) => label switch
    {
        "covid" => "COVID-19 pneumonia pattern",
        "cap" => "Community-acquired pneumonia pattern",
        "normal" => "No pneumonia pattern",
        _ => label,
    };

    /// <summary>The shipped graph's slice-level expected calibration error (docs/model-card.md; ConsumerOutputTests ties it).</summary>
    private const string ModelCardEce = "0.050";

    /// <summary>What the model version is (ScoringHandler.ModelVersionOf).</summary>
    private const string ModelVersionNote = " (graph name @ the first 12 hex digits of the sha256 of the graph file in models/manifest.json)";

    // The shipped graph's figures (models/manifest.json "validation", docs/model-card.md). Text, not read from the
    // manifest at render time: the Function app that renders reports has no models folder. ReportModelCardTests ties
    // them to the manifest, so a new graph cannot ship with the previous one's figures in every report.
    private const string ModelCardSummary =
        "<ul>" +
        "<li><b>Models:</b> DFSN (per-slice lesion segmentation) and DTCN (per-slice covid / CAP / normal classification) in one ONNX graph, the mean of 2 fine-tuned members; the patient-level label is the most probable class of the top slices by lesion burden (the documented StudyAggregator rule, calibrated on the UCSD validation patients, no fitted threshold).</li>" +
        "<li><b>Validation (ours, not a held-out test set):</b> UCSD val covid-vs-rest accuracy 0.87, F1 0.88, AUC 0.93 on the split the checkpoints were chosen on, so optimistic (the same recipe with nothing chosen on it: 0.81 / 0.83 / 0.88); segmentation Dice about 0.79 on 10 doctor-labelled slices. AUC is below the published target (0.94).</li>" +
        "<li><b>Known limitation:</b> features identify the data source almost perfectly, so accuracy on mixed sources overstates clinical performance.</li>" +
        "<li><b>Intended use:</b> research and pipeline testing only; trained on research-only, non-commercial data. See docs/model-card.md.</li>" +
        "</ul>";

    private const string Css =
        "body{font-family:system-ui,sans-serif;margin:24px;color:#111;max-width:1100px}" +
        ".notice{background:#b00020;color:#fff;padding:10px 14px;font-weight:700;border-radius:4px}" +
        "h1{margin-top:18px}table{border-collapse:collapse}td,th{padding:3px 10px;text-align:left;border-bottom:1px solid #ddd}" +
        ".label{font-size:28px;font-weight:700;margin:8px 0}.label-covid{color:#b00020}.label-cap{color:#a15c00}.label-normal{color:#1b6e1b}" +
        ".code{font-size:14px;color:#555;font-weight:400}.bar{height:12px;background:#3367d6}" +
        ".montage{max-width:100%;border:1px solid #ccc}.grid{display:flex;flex-wrap:wrap;gap:12px}" +
        "figure{margin:0}figure img{width:240px;height:auto;border:1px solid #ccc;display:block}figcaption{font-size:13px;color:#333}" +
        ".missing{color:#a15c00}footer{margin-top:24px;font-size:13px;color:#b00020;font-weight:700}";

    /// <summary>
    /// <paramref name="path"/> when it names a blob of this study's own results: under <c>{tenant}/{studyId}/</c> (the
    /// rule of the report's links, <see cref="StudyViews.StudyRelativePath"/>) with no empty, <c>.</c> or <c>..</c>
    /// segment and no backslash (the rule of the files endpoint); otherwise null, logged with the reason.
    /// </summary>
    /// <remarks>
    /// The report embeds the bytes it reads, and the results container holds every tenant's studies: a record naming
    /// another study's image (a corrupted row, a faulty scorer's overlay path copied into the top slices) would put
    /// that study's pixels into this tenant's report. The links already refused such paths; the embedded images did
    /// not. A dot segment is refused too: blob clients normalise <c>a/b/../c</c> into <c>a/c</c>, out of the prefix.
    /// </remarks>
    internal static string? OwnImagePath(StudyRecord study, string? path, string what, ILogger logger)
    {
        if (string.IsNullOrEmpty(path))
        {
            return null;
        }

        var prefix = $"{study.Tenant}/{study.StudyId}/";
        var relative = StudyViews.StudyRelativePath(study, path);
        var reason = relative is null ? $"it is not under {prefix}"
            : !StudyViews.IsPlainRelativePath(relative) ? "it has an empty, '.' or '..' segment or a backslash"
            : null;
        if (reason is null)
        {
            return path;
        }

        Log.ForeignImageRefused(logger, study.Tenant, study.StudyId, what, path, reason);
        return null;
    }

    private static string Utc(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture);

    private static string Row(string name, string value) => $"<tr><th>{E(name)}</th><td>{E(value)}</td></tr>";

    private static string E(string value) => WebUtility.HtmlEncode(value);

    private static async Task<string?> ImageAsync(IBlobStore results, string path, CancellationToken cancellationToken)
    {
        try
        {
            if (!await results.ExistsAsync(path, cancellationToken).ConfigureAwait(false))
            {
                return null;
            }

            using var buffer = new MemoryStream();
            await using (var stream = await results.OpenReadAsync(path, cancellationToken).ConfigureAwait(false))
            {
                await stream.CopyToAsync(buffer, cancellationToken).ConfigureAwait(false);
            }

            var mime = path.EndsWith(".jpg", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".jpeg", StringComparison.OrdinalIgnoreCase) ? "image/jpeg" : "image/png";
            return $"data:{mime};base64,{Convert.ToBase64String(buffer.GetBuffer(), 0, (int)buffer.Length)}";
        }
        catch (FileNotFoundException)
        {
            return null;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2601, Level = LogLevel.Warning, Message = "Report of study {Tenant}/{StudyId}: the {Image} is not shown, its stored path '{Path}' is refused: {Reason}")]
        public static partial void ForeignImageRefused(ILogger logger, string tenant, string studyId, string image, string path, string reason);
    }
}
