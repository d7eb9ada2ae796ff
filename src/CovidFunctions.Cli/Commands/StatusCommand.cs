using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Azure;
using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.Pipeline.Storage;
using Spectre.Console;

namespace CovidFunctions.Cli.Commands;

/// <summary>
/// <c>covidfn status [STUDY] [--tenant T] [--json]</c>: with STUDY, its stages, timings, diagnosis and links (or with
/// <c>--json</c> exactly the <see cref="StudyStatusJson"/> document); without STUDY, the latest studies. Exit 0; 1 for
/// an unknown study or unreachable storage.
/// </summary>
public static class StatusCommand
{
    private const int ListLimit = 50;

    /// <summary>Skipped-file notes shown in the table (a folder upload can have thousands; the row keeps up to 100).</summary>
    private const int MaxSkippedNotesShown = 20;

    public static Command Create()
    {
        var study = new Argument<string?>("study") { Description = "The study id `covidfn submit` printed (omit to list studies).", Arity = ArgumentArity.ZeroOrOne };
        var tenant = new Option<string?>("--tenant") { Description = "Tenant (default: the study's own, searched across tenants; for the list, all tenants)." };
        var json = new Option<bool>("--json") { Description = "Print the study as one JSON document (the status contract)." };
        var storage = StorageCommandOptions.Create();
        var command = new Command("status", "Show a study's stages and diagnosis, or list the studies of the local pipeline.");
        command.Arguments.Add(study);
        command.Options.Add(tenant);
        command.Options.Add(json);
        storage.AddTo(command);
        command.SetAction((parseResult, cancellationToken) => RunAsync(
            parseResult.GetValue(study),
            parseResult.GetValue(tenant),
            parseResult.GetValue(json),
            parseResult.GetValue(storage.Storage),
            parseResult.GetValue(storage.DataDir),
            parseResult.InvocationConfiguration.Output,
            parseResult.InvocationConfiguration.Error,
            cancellationToken));
        return command;
    }

    public static async Task<int> RunAsync(string? studyId, string? tenant, bool json, string? connection, string? dataDir, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        if (!StorageCommandOptions.IsValidTenant("status", tenant, error))
        {
            return ExitCodes.BadInput;
        }

        var storage = await LocalStorageConnection.OpenAsync("status", connection, dataDir, error, cancellationToken).ConfigureAwait(false);
        if (storage is null)
        {
            return ExitCodes.InternalError;
        }

        try
        {
            if (string.IsNullOrEmpty(studyId))
            {
                // The results API's list (newest first): on the table store one page of its list index, not every study.
                var studies = new List<StudyRecord>(ListLimit);
                await foreach (var record in storage.Studies.ListAsync(new StudyListRequest(tenant is null ? null : [tenant], PageSize: ListLimit), cancellationToken).ConfigureAwait(false))
                {
                    studies.Add(record);
                    if (studies.Count == ListLimit)
                    {
                        break;
                    }
                }

                if (json)
                {
                    output.WriteLine("[" + string.Join(",", studies.Select(StudyStatusJson.Serialize)) + "]");
                }
                else
                {
                    var settled = new Dictionary<string, DateTimeOffset>(StringComparer.Ordinal);
                    foreach (var s in studies)
                    {
                        if (await SettledAtFromQuarantineAsync(s, storage.BlobContainers, cancellationToken).ConfigureAwait(false) is { } at)
                        {
                            settled[s.StudyId] = at;
                        }
                    }

                    WriteList(studies, output, settled);
                }

                return ExitCodes.Success;
            }

            var found = await FindAsync(storage.Studies, studyId, tenant, cancellationToken).ConfigureAwait(false);
            if (found is null)
            {
                error.WriteLine($"status: no study '{studyId}'{(tenant is null ? string.Empty : $" for tenant '{tenant}'")} (ids are printed by `covidfn submit`; `covidfn status` lists them)");
                return ExitCodes.InternalError;
            }

            if (json)
            {
                output.WriteLine(StudyStatusJson.Serialize(found));
            }
            else
            {
                WriteStudy(found, storage.BlobContainers, output, await SettledAtFromQuarantineAsync(found, storage.BlobContainers, cancellationToken).ConfigureAwait(false));
            }

            return ExitCodes.Success;
        }
        catch (RequestFailedException ex)
        {
            error.WriteLine(StorageCommandOptions.Refused("status", "query", ex));
            return ExitCodes.InternalError;
        }
    }

    /// <summary>
    /// The study in <paramref name="tenant"/>, else (no tenant given) in whichever tenant holds it. An id
    /// that cannot name a study (<see cref="ResultsApi.IsPlausibleStudyId"/>, the API's rule) is an unknown study
    /// without asking storage: a '/', '\', '#', '?' or control character in a table key fails the point read.
    /// </summary>
    public static async Task<StudyRecord?> FindAsync(IStudyStore studies, string studyId, string? tenant, CancellationToken cancellationToken)
    {
        if (!ResultsApi.IsPlausibleStudyId(studyId))
        {
            return null;
        }

        if (tenant is not null)
        {
            return await studies.GetAsync(tenant, studyId, cancellationToken).ConfigureAwait(false);
        }

        // Point reads through the Studies table's id index; a study created before the index existed, by a scan.
        return await StudyRecordLookup.FindInAnyTenantAsync(studies, studyId, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// When a settled study whose row keeps no settle time (<see cref="StudyRecord.CompletedAt"/>) settled, from the
    /// <c>at</c> of its quarantine <c>reason.json</c>; null for every other row (one with a time, a running one, one whose
    /// upload was not quarantined) and when there is no readable reason.json. A rejected study's row kept no time before
    /// fce3ddb (ingest now writes the rejection's time as CompletedAt); its reason.json, written by the same reject just
    /// before the row, says when. The row's own last-write time is not used: a later write to the row (an owed event
    /// cleared, an upload path forgotten) moves it. Only such old rows cost a read, so the list stays one page of rows.
    /// </summary>
    internal static async Task<DateTimeOffset?> SettledAtFromQuarantineAsync(StudyRecord s, IBlobContainers containers, CancellationToken cancellationToken)
    {
        if (s.CompletedAt is not null || !StudyStatus.IsTerminal(s.Status) || !HasQuarantinedUpload(s))
        {
            return null;
        }

        try
        {
            var stream = await containers.Get(PipelineNames.QuarantineContainer).OpenReadAsync($"{s.Tenant}/{s.StudyId}/reason.json", cancellationToken).ConfigureAwait(false);
            await using (stream.ConfigureAwait(false))
            {
                var reason = await JsonSerializer.DeserializeAsync<QuarantineReason>(stream, PipelineJson.Options, cancellationToken).ConfigureAwait(false);
                return reason is { At: var at } && at != default ? at : null;
            }
        }
        catch (Exception ex) when (ex is FileNotFoundException or JsonException or RequestFailedException)
        {
            return null; // deleted by the quarantine's lifecycle rule, or not readable: the row is shown without a time
        }
    }

    private static void WriteList(IReadOnlyList<StudyRecord> studies, TextWriter output, IReadOnlyDictionary<string, DateTimeOffset>? settledFromQuarantine = null)
    {
        if (studies.Count == 0)
        {
            output.WriteLine("status: no studies yet (submit one with `covidfn submit INPUT`)");
            return;
        }

        // "lesion burden" names its denominator: segment prints another measure, the lesion fraction of the model input.
        var table = new Table().AddColumns("study", "tenant", "status", "label", "lesion burden (% of lung estimate)", "slices", "created (UTC)", "took");
        foreach (var s in studies)
        {
            table.AddRow(
                Markup.Escape(s.StudyId),
                Markup.Escape(s.Tenant),
                StatusMarkup(s.Status),
                Markup.Escape(s.Label ?? "-"),
                s.LesionBurden is { } b ? Percent(b) : "-",
                s.SliceCount > 0 ? s.SliceCount.ToString(CultureInfo.InvariantCulture) : "-",
                s.CreatedAt == default ? "-" : s.CreatedAt.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture),
                (s.CompletedAt ?? (settledFromQuarantine?.TryGetValue(s.StudyId, out var at) == true ? at : (DateTimeOffset?)null)) is { } done && s.CreatedAt != default ? Seconds((done - s.CreatedAt).TotalSeconds) : "-");
        }

        CliConsole.For(output).Write(table);
    }

    /// <summary>
    /// True when the study's upload was moved to <c>quarantine/{tenant}/{study}/</c> with a reason.json: every reject,
    /// and a failure (FailStudy after ingest, ingest giving up, the stuck-study watchdog), except <c>upload-missing</c>,
    /// whose upload was deleted before ingest read it.
    /// </summary>
    internal static bool HasQuarantinedUpload(StudyRecord s) =>
        s.Status == StudyStatus.Rejected
        || (s.Status == StudyStatus.Failed && !(s.Reason ?? string.Empty).StartsWith(IngestHandler.UploadMissingReason, StringComparison.Ordinal));

    /// <summary>
    /// The study as a table. <paramref name="settledFromQuarantine"/>: when a settled row without a settle time settled,
    /// from its quarantine reason.json (<see cref="SettledAtFromQuarantineAsync"/>), shown with where it came from.
    /// <paramref name="now"/>: the clock a study's ingest claim is read against (default the system's).
    /// </summary>
    internal static void WriteStudy(StudyRecord s, IBlobContainers containers, TextWriter output, DateTimeOffset? settledFromQuarantine = null, DateTimeOffset? now = null)
    {
        var console = CliConsole.For(output);
        var table = new Table().HideHeaders().AddColumns("field", "value");
        table.AddRow("study", Markup.Escape(s.StudyId));
        table.AddRow("tenant", Markup.Escape(s.Tenant));
        table.AddRow("status", StatusMarkup(s.Status) + (s.Reason is null ? string.Empty : " — " + Markup.Escape(s.Reason)));
        // A row with nothing kept is left out ("upload -", "rejected -" read as a lost value): a rejected study may have
        // neither. A running study keeps "ingested -" / "scoring -" / "completed -", where the dash says "not yet"; a settled one that
        // never reached a stage leaves it out, the status row saying why.
        var isSettled = s.Status is StudyStatus.Failed or StudyStatus.Rejected or StudyStatus.Completed;
        if (s.UploadPath is not null)
        {
            table.AddRow("upload", Markup.Escape($"{PipelineNames.UploadsContainer}/{s.UploadPath}"));
        }

        table.AddRow("created", Time(s.CreatedAt));
        if (s.IngestedAt is { } ingested)
        {
            table.AddRow("ingested", Time(ingested));
        }
        else if (!isSettled)
        {
            table.AddRow("ingested", "-");
        }

        // A study not yet ingested that an ingest attempt holds: the console says "processing: ingesting" for the whole
        // of a claim left by a killed `up` (up to 2 minutes, docs/operations.md entry 2), so the claim and when it runs
        // out are shown. The row cannot tell a running attempt from a dead one: a running one renews it.
        if (s.Status == StudyStatus.Processing && s.IngestedAt is null)
        {
            if (s.IngestClaim is not null && s.IngestClaimExpiresAt is { } claimEnds)
            {
                table.AddRow("ingest claim", claimEnds > (now ?? DateTimeOffset.UtcNow)
                    ? $"held by an ingest attempt until {Time(claimEnds)}: a running ingest renews it; one cut short by a killed covidfn up holds the study until then, and the next look at the upload takes it over"
                    : $"expired {Time(claimEnds)}: the next look at the upload (covidfn up polls every few seconds) takes the study over");
            }

            if (s.IngestAttempts > 0)
            {
                table.AddRow("ingest attempts", s.IngestAttempts.ToString(CultureInfo.InvariantCulture));
            }
        }

        if (s.ScoringFinishedAt is { } scored)
        {
            table.AddRow("scoring", "finished " + Time(scored));
        }
        else if (s.ScoringStartedAt is { } scoring)
        {
            table.AddRow("scoring", "started " + Time(scoring));
        }
        else if (!isSettled)
        {
            table.AddRow("scoring", "-");
        }

        // CompletedAt is when the study settled, whatever the outcome: a failed study was shown as "completed <time>".
        if (s.CompletedAt is { } completed)
        {
            table.AddRow(s.Status is StudyStatus.Failed or StudyStatus.Rejected ? s.Status : "completed", Time(completed));
        }
        else if (isSettled && settledFromQuarantine is { } fromReason)
        {
            table.AddRow(s.Status, Time(fromReason) + " (from its quarantine reason.json; the row, written before rows kept it, has no time)");
        }
        else if (!isSettled)
        {
            table.AddRow("completed", "-");
        }
        // The files of the upload not screened, as the status document's series part has them (the API showed them,
        // status did not: incident drill, session 22). The notes are the row's, names masked; the names are in quarantine.
        var (notScreened, keptIn, notes) = NotScreened(s.SeriesJson);
        if (notScreened > 0)
        {
            table.AddRow("not screened", Markup.Escape($"{notScreened.ToString(CultureInfo.InvariantCulture)} file(s), kept in {keptIn ?? "quarantine"} with reason.json (`covidfn quarantine show {s.StudyId}` names them)"));
        }

        foreach (var note in notes.Take(MaxSkippedNotesShown))
        {
            table.AddRow("skipped", Markup.Escape(note));
        }

        if (notes.Count > MaxSkippedNotesShown)
        {
            table.AddRow("skipped", string.Create(CultureInfo.InvariantCulture, $"... and {notes.Count - MaxSkippedNotesShown} more (`covidfn status {s.StudyId} --json` is the short document; the API's status document lists them)"));
        }

        if (HasQuarantinedUpload(s))
        {
            table.AddRow("quarantine", Markup.Escape(containers.LinkTo(PipelineNames.QuarantineContainer, $"{s.Tenant}/{s.StudyId}/")) + " (original and reason.json)");
        }

        if (s.TilesPrefix is not null)
        {
            table.AddRow("tiles", Markup.Escape(containers.LinkTo(PipelineNames.SlicesContainer, s.TilesPrefix.TrimEnd('/') + "/manifest.json")));
        }

        if (s.Label is not null)
        {
            table.AddRow("diagnosis", $"[bold]{Markup.Escape(s.Label)}[/]  covid {Probability(s.ProbabilityCovid)} · cap {Probability(s.ProbabilityCap)} · normal {Probability(s.ProbabilityNormal)}");
            table.AddRow("lesion burden", s.LesionBurden is { } burden ? Percent(burden) + " of the lung estimate (all slices)" : "-");
            table.AddRow("slices", s.SliceCount.ToString(CultureInfo.InvariantCulture));
            table.AddRow("model", Markup.Escape(s.ModelVersion ?? "-"));
        }
        else if (s.SliceCount > 0)
        {
            table.AddRow("slices", s.SliceCount.ToString(CultureInfo.InvariantCulture));
        }

        foreach (var (stage, seconds) in Timings(s.TimingsJson))
        {
            table.AddRow("time: " + Markup.Escape(stage), Seconds(seconds));
        }

        if (s.MontagePath is not null)
        {
            table.AddRow("montage", Markup.Escape(containers.LinkTo(PipelineNames.ResultsContainer, s.MontagePath)));
        }

        foreach (var top in TopSlices(s.TopSlicesJson).Take(5))
        {
            table.AddRow(
                string.Create(CultureInfo.InvariantCulture, $"slice {top.SliceIndex}"),
                string.Create(CultureInfo.InvariantCulture, $"lesion {top.LesionPercent:0.0} % of its lung estimate  ") + Markup.Escape(top.OverlayPath is null ? string.Empty : containers.LinkTo(PipelineNames.ResultsContainer, top.OverlayPath)));
        }

        console.Write(table);
    }

    /// <summary>
    /// From the row's SeriesJson (the status document's <c>series</c>): <c>notScreenedFiles</c>, <c>skippedKeptIn</c> and
    /// the <c>skippedInstances</c> notes; nothing for a row without it or one that does not parse.
    /// </summary>
    internal static (int Count, string? KeptIn, IReadOnlyList<string> Notes) NotScreened(string? seriesJson)
    {
        if (string.IsNullOrEmpty(seriesJson))
        {
            return (0, null, []);
        }

        try
        {
            using var document = JsonDocument.Parse(seriesJson);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return (0, null, []);
            }

            var count = root.TryGetProperty("notScreenedFiles", out var n) && n.ValueKind == JsonValueKind.Number && n.TryGetInt32(out var c) ? c : 0;
            var keptIn = root.TryGetProperty("skippedKeptIn", out var k) && k.ValueKind == JsonValueKind.String ? k.GetString() : null;
            var notes = root.TryGetProperty("skippedInstances", out var a) && a.ValueKind == JsonValueKind.Array
                ? a.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.String).Select(e => e.GetString()!).ToList()
                : [];
            return (count, keptIn, notes);
        }
        catch (JsonException)
        {
            return (0, null, []);
        }
    }

    internal static IEnumerable<(string Stage, double Seconds)> Timings(string? timingsJson)
    {
        if (string.IsNullOrEmpty(timingsJson))
        {
            yield break;
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(timingsJson);
        }
        catch (JsonException)
        {
            yield break;
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                yield break;
            }

            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Value.ValueKind == JsonValueKind.Number)
                {
                    yield return (property.Name, property.Value.GetDouble());
                }
            }
        }
    }

    internal static IReadOnlyList<TopSlice> TopSlices(string? topSlicesJson)
    {
        if (string.IsNullOrEmpty(topSlicesJson))
        {
            return [];
        }

        try
        {
            return PipelineJson.Deserialize<List<TopSlice>>(topSlicesJson);
        }
        catch (JsonException)
        {
            return [];
        }
    }

    private static string StatusMarkup(string status) => status switch
    {
        StudyStatus.Completed => "[green]completed[/]",
        StudyStatus.Failed => "[red]failed[/]",
        StudyStatus.Rejected => "[yellow]rejected[/]",
        StudyStatus.Processing => "[blue]processing[/]",
        _ => Markup.Escape(status),
    };

    private static string Probability(double? p) => p is { } v ? v.ToString("0.000", CultureInfo.InvariantCulture) : "-";

    private static string Percent(double fraction) => (fraction * 100).ToString("0.00", CultureInfo.InvariantCulture) + " %";

    private static string Seconds(double seconds) => seconds.ToString("0.0", CultureInfo.InvariantCulture) + " s";

    private static string Time(DateTimeOffset at) => at == default ? "-" : at.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture);
}
