using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Azure;
using CovidFunctions.Imaging.Tiles;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Storage;
using Spectre.Console;

namespace CovidFunctions.Cli.Commands;

/// <summary>
/// <c>covidfn quarantine [--tenant T] [--json]</c> and <c>covidfn quarantine show STUDY [--tenant T] [--json]</c>
/// (both with <c>[--data-dir D]</c>): the local pipeline's quarantine read back, read-only. Each entry is a folder with
/// a <c>reason.json</c>: a rejected or failed upload (<c>{tenant}/{study}/</c>, its files in <c>original/</c>), the files
/// of an ingested upload not screened (<c>skipped/</c>), late, changed or colliding uploads (<c>reupload-*</c>,
/// <c>changed-*</c>, <c>name-collision-*</c>), each with its reason code, reason text and time.
/// <para>
/// Why it exists: the quarantine's blob URL needs the storage account key (a browser gets 403), so the on-call runbook
/// read it with a script holding the key from <c>storage.connection</c> (incident drill, session 22, gap G).
/// </para>
/// <para>
/// Names: the quarantine is the one place the upload's own names (which can be patients' names) are kept, by design,
/// for the operator to inspect (docs/compliance/phi-flow.md, "quarantine"), and this command reads the operator's own
/// data folder. So <c>show</c>, the inspection of one study, prints them as <c>reason.json</c> has them (saying so on
/// stderr), as the runbook's script did. The list masks them (<see cref="UploadNames.Mask"/>, as status, console and log
/// do): it is the overview that gets pasted into tickets and chats. Neither ever reads an original: only the
/// <c>reason.json</c> files (our own text) and blob names, so no patient data from the files' contents is printed.
/// </para>
/// </summary>
public static class QuarantineCommand
{
    private const string ReasonFile = "reason.json";
    private const string OriginalFolder = "original";

    public static Command Create()
    {
        var tenant = new Option<string?>("--tenant") { Description = "Only this tenant (default: every tenant)." };
        var json = new Option<bool>("--json") { Description = "Print the entries as a JSON array." };
        var storage = StorageCommandOptions.Create();
        var command = new Command("quarantine", "List the local pipeline's quarantine (rejected or failed uploads, files not screened), read-only; names masked.");
        command.Options.Add(tenant);
        command.Options.Add(json);
        storage.AddTo(command);
        command.Subcommands.Add(CreateShow());
        command.SetAction((parseResult, cancellationToken) => RunListAsync(
            parseResult.GetValue(tenant),
            parseResult.GetValue(json),
            parseResult.GetValue(storage.Storage),
            parseResult.GetValue(storage.DataDir),
            parseResult.InvocationConfiguration.Output,
            parseResult.InvocationConfiguration.Error,
            cancellationToken));
        return command;
    }

    private static Command CreateShow()
    {
        var study = new Argument<string>("study") { Description = "The study id (from `covidfn quarantine`, `covidfn status` or `covidfn submit`)." };
        var tenant = new Option<string?>("--tenant") { Description = "Tenant (default: whichever holds the study)." };
        var json = new Option<bool>("--json") { Description = "Print the study's entries as one JSON document." };
        var storage = StorageCommandOptions.Create();
        var command = new Command("show", "Show one study's quarantine entries: reason, time, and the files kept, under their upload names.");
        command.Arguments.Add(study);
        command.Options.Add(tenant);
        command.Options.Add(json);
        storage.AddTo(command);
        command.SetAction((parseResult, cancellationToken) => RunShowAsync(
            parseResult.GetValue(study)!,
            parseResult.GetValue(tenant),
            parseResult.GetValue(json),
            parseResult.GetValue(storage.Storage),
            parseResult.GetValue(storage.DataDir),
            parseResult.InvocationConfiguration.Output,
            parseResult.InvocationConfiguration.Error,
            cancellationToken));
        return command;
    }

    /// <summary>One quarantine folder with its reason.json.</summary>
    /// <param name="Tenant">The folder's first segment: the tenant, or <c>_invalid-tenant</c>.</param>
    /// <param name="Study">The study id (the folder's second segment).</param>
    /// <param name="Folder"><c>original</c> for the study's own folder (its files under <c>original/</c>), else the folder's name (<c>skipped</c>, <c>reupload-…</c>).</param>
    /// <param name="Prefix">The folder's path in the container, ending in '/'.</param>
    /// <param name="Files">The blobs kept for it, relative to <paramref name="Prefix"/> (reason.json and other entries' folders left out).</param>
    /// <param name="Reason">Its reason.json; null when that could not be read as one (named as unreadable).</param>
    internal sealed record Entry(string Tenant, string Study, string Folder, string Prefix, IReadOnlyList<string> Files, QuarantineReason? Reason);

    public static async Task<int> RunListAsync(string? tenant, bool json, string? connection, string? dataDir, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        if (!StorageCommandOptions.IsValidTenant("quarantine", tenant, error))
        {
            return ExitCodes.BadInput;
        }

        if (await OpenAndReadAsync("quarantine", connection, dataDir, tenant, study: null, error, cancellationToken).ConfigureAwait(false) is not { } entries)
        {
            return ExitCodes.InternalError;
        }

        if (json)
        {
            output.WriteLine(ListJson(entries));
            return ExitCodes.Success;
        }

        if (entries.Count == 0)
        {
            output.WriteLine($"quarantine: nothing in quarantine{(tenant is null ? string.Empty : $" for tenant '{tenant}'")} (rejected or failed uploads and files not screened are kept there)");
            return ExitCodes.Success;
        }

        var table = new Table().AddColumns("tenant", "study", "folder", "reason", "at (UTC)", "files", "why (names masked; `covidfn quarantine show STUDY` names them)");
        foreach (var e in entries)
        {
            table.AddRow(
                Markup.Escape(e.Tenant),
                Markup.Escape(e.Study),
                Markup.Escape(e.Folder),
                Markup.Escape(e.Reason?.Reason ?? "-"),
                e.Reason is { } r && r.At != default ? r.At.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) : "-",
                e.Files.Count.ToString(CultureInfo.InvariantCulture),
                Markup.Escape(MaskedWhy(e)));
        }

        CliConsole.For(output).Write(table);
        output.WriteLine($"{entries.Count} quarantine entr{(entries.Count == 1 ? "y" : "ies")}; the originals are kept as uploaded (docs/compliance/phi-flow.md)");
        return ExitCodes.Success;
    }

    /// <summary>
    /// The quarantine entries of <paramref name="tenant"/> (every tenant when null), of one study or all, through the data
    /// folder's storage; null, with the reason on stderr, when no storage answers or the listing is refused.
    /// </summary>
    private static async Task<IReadOnlyList<Entry>?> OpenAndReadAsync(string command, string? connection, string? dataDir, string? tenant, string? study, TextWriter error, CancellationToken cancellationToken)
    {
        var storage = await LocalHost.LocalStorageConnection.OpenAsync(command, connection, dataDir, error, cancellationToken).ConfigureAwait(false);
        if (storage is null)
        {
            return null;
        }

        try
        {
            return await ReadAsync(storage.BlobContainers.Get(PipelineNames.QuarantineContainer), tenant is null ? string.Empty : tenant + "/", study, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex)
        {
            error.WriteLine(StorageCommandOptions.Refused(command, "listing", ex));
            return null;
        }
    }

    public static async Task<int> RunShowAsync(string studyId, string? tenant, bool json, string? connection, string? dataDir, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        if (!StorageCommandOptions.IsValidTenant("quarantine show", tenant, error))
        {
            return ExitCodes.BadInput;
        }

        // A '/' or control character would read another study's folder or nothing: the API's id rule.
        if (!ResultsApi.IsPlausibleStudyId(studyId))
        {
            error.WriteLine($"quarantine show: nothing in quarantine for study '{studyId}' (not a study id; `covidfn quarantine` lists them)");
            return ExitCodes.InternalError;
        }

        if (await OpenAndReadAsync("quarantine show", connection, dataDir, tenant, studyId, error, cancellationToken).ConfigureAwait(false) is not { } entries)
        {
            return ExitCodes.InternalError;
        }

        if (entries.Count == 0)
        {
            error.WriteLine($"quarantine show: nothing in quarantine for study '{studyId}'{(tenant is null ? string.Empty : $" of tenant '{tenant}'")} (`covidfn quarantine` lists what is there; a completed study has entries only for files not screened)");
            return ExitCodes.InternalError;
        }

        error.WriteLine("quarantine show: upload and file names as uploaded, from reason.json (they can carry patient names: keep this output with the quarantine, docs/compliance/phi-flow.md); the files' contents are not read");
        if (json)
        {
            output.WriteLine(ShowJson(studyId, entries));
            return ExitCodes.Success;
        }

        var console = CliConsole.For(output);
        foreach (var e in entries)
        {
            var table = new Table().HideHeaders().AddColumns("field", "value");
            table.AddRow("entry", Markup.Escape($"{PipelineNames.QuarantineContainer}/{e.Prefix}") + (e.Folder == OriginalFolder ? " (original/ and reason.json)" : string.Empty));
            table.AddRow("tenant", Markup.Escape(e.Tenant));
            table.AddRow("study", Markup.Escape(e.Study));
            if (e.Reason is { } r)
            {
                table.AddRow("reason", Markup.Escape(r.Reason));
                table.AddRow("at", r.At == default ? "-" : r.At.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture));
                table.AddRow("upload", Markup.Escape(r.UploadPath));
                table.AddRow("detail", Markup.Escape(r.Detail));
            }
            else
            {
                table.AddRow("reason", "- (reason.json not readable)");
            }

            foreach (var file in e.Reason?.Files ?? [])
            {
                table.AddRow("not screened", Markup.Escape($"{file.Name}: {file.Why}"));
            }

            foreach (var blob in e.Files)
            {
                table.AddRow("kept", Markup.Escape(blob));
            }

            console.Write(table);
        }

        return ExitCodes.Success;
    }

    /// <summary>
    /// The entries under <paramref name="prefix"/> (a tenant's folder, or the whole container), of <paramref name="study"/>
    /// only when given, ordered by time (newest first). One listing of the container; each entry's reason.json read once.
    /// </summary>
    internal static async Task<IReadOnlyList<Entry>> ReadAsync(IBlobStore quarantine, string prefix, string? study, CancellationToken cancellationToken)
    {
        var blobs = new List<string>();
        try
        {
            await foreach (var path in quarantine.ListAsync(prefix, cancellationToken).ConfigureAwait(false))
            {
                var segments = path.Split('/');
                if (segments.Length >= 3 && (study is null || segments[1] == study))
                {
                    blobs.Add(path);
                }
            }
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return []; // no container yet: nothing was ever quarantined on this storage
        }

        // Entry folders: every folder holding a reason.json; a blob belongs to the deepest entry folder above it.
        var folders = blobs.Where(b => b.EndsWith("/" + ReasonFile, StringComparison.Ordinal)).Select(b => b[..^ReasonFile.Length]).ToHashSet(StringComparer.Ordinal);
        var files = folders.ToDictionary(f => f, _ => new List<string>(), StringComparer.Ordinal);
        foreach (var blob in blobs)
        {
            if (folders.Contains(blob[..(blob.LastIndexOf('/') + 1)]) && blob.EndsWith("/" + ReasonFile, StringComparison.Ordinal))
            {
                continue;
            }

            var owner = folders.Where(f => blob.StartsWith(f, StringComparison.Ordinal)).MaxBy(f => f.Length);
            if (owner is not null)
            {
                files[owner].Add(blob[owner.Length..]);
            }
        }

        var entries = new List<Entry>();
        foreach (var folder in folders)
        {
            var segments = folder.TrimEnd('/').Split('/');
            var name = segments.Length == 2 ? OriginalFolder : string.Join('/', segments[2..]);
            entries.Add(new Entry(segments[0], segments[1], name, folder, [.. files[folder].Order(StringComparer.Ordinal)], await ReadReasonAsync(quarantine, folder + ReasonFile, cancellationToken).ConfigureAwait(false)));
        }

        return [.. entries.OrderByDescending(e => e.Reason?.At ?? default).ThenBy(e => e.Prefix, StringComparer.Ordinal)];
    }

    private static async Task<QuarantineReason?> ReadReasonAsync(IBlobStore quarantine, string path, CancellationToken cancellationToken)
    {
        try
        {
            var stream = await quarantine.OpenReadAsync(path, cancellationToken).ConfigureAwait(false);
            await using (stream.ConfigureAwait(false))
            {
                return await JsonSerializer.DeserializeAsync<QuarantineReason>(stream, PipelineJson.Options, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is FileNotFoundException or JsonException or NotSupportedException)
        {
            return null; // deleted between the listing and the read, or not ours: listed as unreadable
        }
    }

    /// <summary>
    /// The entry's why with the upload's names masked: its reason text, and for a folder whose files have their own
    /// reasons (skipped/) each distinct reason with its count. The names masked are those reason.json and the kept blobs give.
    /// </summary>
    private static string MaskedWhy(Entry e) => e.Reason is null
        ? "reason.json not readable"
        : NotScreened(e) is { Count: > 0 } groups
            ? string.Join("; ", groups.Select(g => $"{g.Count} × {g.Why}"))
            : Mask(e, e.Reason.Detail);

    private static List<(string Why, int Count)> NotScreened(Entry e) =>
        [.. (e.Reason?.Files ?? []).GroupBy(f => Mask(e, f.Why), StringComparer.Ordinal).Select(g => (g.Key, g.Count()))];

    private static string Mask(Entry e, string text)
    {
        var r = e.Reason!;
        var upload = r.UploadPath.TrimEnd('/');
        var blobs = (r.Files ?? []).Select(f => f.Name)
            .Concat(e.Files.Select(f => f.StartsWith(OriginalFolder + "/", StringComparison.Ordinal) ? f[(OriginalFolder.Length + 1)..] : f))
            .Select(name => new UploadBlob($"{upload}/{name}", default, 0))
            .ToList();
        return UploadNames.Mask(text, new UploadUnit(r.Tenant, r.StudyId, upload + "/", UploadUnitKind.Folder, blobs, MarkerPath: null));
    }

    private static string ListJson(IReadOnlyList<Entry> entries)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartArray();
            foreach (var e in entries)
            {
                w.WriteStartObject();
                WriteCommon(w, e);
                w.WriteNumber("files", e.Files.Count);
                if (e.Reason is null)
                {
                    w.WriteNull("detail");
                }
                else
                {
                    w.WriteString("detail", Mask(e, e.Reason.Detail));
                }

                if (e.Reason?.Files is null)
                {
                    w.WriteNull("notScreened");
                }
                else
                {
                    w.WriteStartArray("notScreened");
                    foreach (var (why, count) in NotScreened(e))
                    {
                        w.WriteStartObject();
                        w.WriteString("why", why);
                        w.WriteNumber("count", count);
                        w.WriteEndObject();
                    }

                    w.WriteEndArray();
                }

                w.WriteEndObject();
            }

            w.WriteEndArray();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private static string ShowJson(string studyId, IReadOnlyList<Entry> entries)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteString("study", studyId);
            w.WriteStartArray("entries");
            foreach (var e in entries)
            {
                w.WriteStartObject();
                WriteCommon(w, e);
                w.WriteString("uploadPath", e.Reason?.UploadPath);
                w.WriteString("detail", e.Reason?.Detail);
                w.WriteStartArray("files");
                foreach (var file in e.Reason?.Files ?? [])
                {
                    w.WriteStartObject();
                    w.WriteString("name", file.Name);
                    w.WriteString("why", file.Why);
                    w.WriteEndObject();
                }

                w.WriteEndArray();
                w.WriteStartArray("kept");
                foreach (var blob in e.Files)
                {
                    w.WriteStringValue(blob);
                }

                w.WriteEndArray();
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private static void WriteCommon(Utf8JsonWriter w, Entry e)
    {
        w.WriteString("tenant", e.Tenant);
        w.WriteString("study", e.Study);
        w.WriteString("folder", e.Folder);
        w.WriteString("path", $"{PipelineNames.QuarantineContainer}/{e.Prefix}");
        w.WriteString("reason", e.Reason?.Reason);
        if (e.Reason is { } r && r.At != default)
        {
            w.WriteString("at", r.At);
        }
        else
        {
            w.WriteNull("at");
        }
    }
}
