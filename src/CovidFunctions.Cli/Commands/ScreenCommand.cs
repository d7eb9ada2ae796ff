using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Dicom;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging;
using CovidFunctions.Imaging.Series;
using CovidFunctions.Inference;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Messaging;
using CovidFunctions.Pipeline.Reports;
using CovidFunctions.Pipeline.Storage;

namespace CovidFunctions.Cli.Commands;

/// <summary>
/// <c>covidfn screen INPUT [--json F] [--report F.html] [--tenant T] [--out-dir D]</c>: the pipeline's stages in this
/// process without storage services (<see cref="OfflineScreening"/>): de-identify, tile, score every chunk, aggregate.
/// Prints the diagnosis; <c>--json</c> writes the <c>covidfn status --json</c> document; <c>--report</c> a
/// self-contained HTML report. Exit 0 when screened; 2 when the study is rejected (reason on stderr) or the input is
/// unusable; 1 when scoring fails.
/// </summary>
public static class ScreenCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = "A DICOM file, a .zip, a NIfTI volume or a folder of DICOM instances." };
        var json = new Option<string?>("--json") { Description = "Write the study as JSON (the same document as `covidfn status STUDY --json`)." };
        var report = new Option<string?>("--report") { Description = "Write a self-contained HTML report." };
        var tenant = new Option<string>("--tenant") { Description = "Tenant (a-z, 0-9, '-').", DefaultValueFactory = _ => PipelineNames.DefaultTenant };
        var outDir = new Option<string?>("--out-dir") { Description = "Keep the work folder here: de-identified tiles (slices/), masks, overlays and montage (results/), and quarantine/ with the files not screened as given (not de-identified) and their reason.json (default: a temporary folder, deleted)." };
        var keyFile = new Option<string?>("--key-file") { Description = "De-identification key file (as for `covidfn deid`)." };
        var models = new Option<string?>("--models") { Description = "Models folder (default: COVIDFN_MODELS_DIR or models/ next to covidfn)." };
        var threads = ScreeningInputs.ThreadsOption();
        var command = new Command("screen", "Screen one study offline: de-identify, tile, score and aggregate in this process (no storage needed). Reads the Inference__*, Imaging__* and Pipeline__* settings from the environment as `covidfn up` does (docs/imaging.md), so the study is preprocessed, chunked and refused as the pipeline would; the Pipeline__* settings an offline run has no use for are named on stderr and ignored.");
        command.Arguments.Add(input);
        command.Options.Add(json);
        command.Options.Add(report);
        command.Options.Add(tenant);
        command.Options.Add(outDir);
        command.Options.Add(keyFile);
        command.Options.Add(models);
        command.Options.Add(threads);
        command.SetAction((parseResult, cancellationToken) => RunAsync(
            new ScreenArguments(
                parseResult.GetValue(input) ?? string.Empty,
                parseResult.GetValue(json),
                parseResult.GetValue(report),
                parseResult.GetValue(tenant) ?? PipelineNames.DefaultTenant,
                parseResult.GetValue(outDir),
                parseResult.GetValue(keyFile),
                parseResult.GetValue(models),
                parseResult.GetValue(threads)),
            parseResult.InvocationConfiguration.Output,
            parseResult.InvocationConfiguration.Error,
            cancellationToken));
        return command;
    }

    public sealed record ScreenArguments(string Input, string? Json, string? Report, string Tenant, string? OutDir, string? KeyFile, string? Models, int? Threads);

    public static async Task<int> RunAsync(ScreenArguments args, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (!File.Exists(args.Input) && !Directory.Exists(args.Input))
        {
            error.WriteLine($"screen: no such file or folder: {args.Input}");
            return ExitCodes.BadInput;
        }

        if (!StudyIds.IsValidTenant(args.Tenant))
        {
            error.WriteLine($"screen: {StudyIds.InvalidTenantMessage(args.Tenant)}");
            return ExitCodes.BadInput;
        }

        DeidKey key;
        ScreeningModels models;
        SeriesAssemblyOptions assembly;
        OfflinePipelineSettings pipeline;
        try
        {
            // Settings and key first: a bad Inference__*, Imaging__* or Pipeline__* setting, a de-identification option
            // (ingest's profile is fixed, as in up) or a bad key stops the command before anything is read.
            var inference = InferenceSettings.Load(args.Models, args.Threads);
            assembly = ImagingSettings.LoadForIngest(Environment.GetEnvironmentVariables());
            pipeline = OfflinePipelineSettings.Load(Environment.GetEnvironmentVariables());
            foreach (var name in pipeline.Ignored)
            {
                error.WriteLine($"screen: {name} is not used by covidfn screen ({OfflinePipelineSettings.WhyIgnored(name)}); ignored");
            }

            key = DeidKeys.Resolve(args.KeyFile, out var createdKey);
            if (createdKey is not null)
            {
                error.WriteLine("screen: created a new de-identification key file (mode 0600): " + createdKey);
            }

            models = ScreeningModels.Load(inference);
        }
        catch (Exception ex) when (ex is DicomException or InferenceException or ArgumentException or IOException or InvalidOperationException)
        {
            error.WriteLine("screen: " + ex.Message);
            return ExitCodes.BadInput;
        }

        var keep = args.OutDir is not null;
        var work = keep ? Path.GetFullPath(args.OutDir!) : Directory.CreateTempSubdirectory("covidfn-screen-").FullName;
        try
        {
            Directory.CreateDirectory(work);
            var result = await new OfflineScreening(models, key, pipeline.Pipeline, assembly: assembly).RunAsync(args.Input, args.Tenant, work, cancellationToken).ConfigureAwait(false);
            var study = result.Study;
            if (args.Json is not null)
            {
                WriteText(args.Json, StudyStatusJson.Serialize(study) + "\n");
            }

            if (args.Report is not null)
            {
                var html = await StudyReportRenderer.RenderAsync(study, result.Containers.Get(PipelineNames.ResultsContainer), null, cancellationToken).ConfigureAwait(false);
                WriteText(args.Report, html);
            }

            WriteSummary(args.Input, result, keep, models.Provider, output);
            return study.Status switch
            {
                StudyStatus.Completed => ExitCodes.Success,
                StudyStatus.Rejected => Reject(args, result, error),
                _ => Fail(args, result, error),
            };
        }
        catch (ImagingException ex)
        {
            error.WriteLine("screen: " + ex.Message);
            return ExitCodes.BadInput;
        }
        finally
        {
            if (!keep)
            {
                try
                {
                    Directory.Delete(work, recursive: true);
                }
                catch (IOException)
                {
                    // A temporary folder left behind is harmless.
                }
            }
        }
    }

    private static int Reject(ScreenArguments args, OfflineScreeningResult result, TextWriter error)
    {
        error.WriteLine($"screen: rejected: {args.Input}: {WhyInUserTerms(args, result)}");
        return ExitCodes.BadInput;
    }

    private static int Fail(ScreenArguments args, OfflineScreeningResult result, TextWriter error)
    {
        error.WriteLine($"screen: failed: {args.Input}: {WhyInUserTerms(args, result)}");
        return ExitCodes.InternalError;
    }

    /// <summary>Why the study was not screened, naming the user's files: ingest's own reason and detail when ingest
    /// refused it (the Studies row's reason has the upload names masked as [name], for the API and reports), else the
    /// row's reason, each with the staged upload name replaced by <see cref="InUserTerms"/>.</summary>
    private static string WhyInUserTerms(ScreenArguments args, OfflineScreeningResult result)
    {
        var why = result.Ingest.Status == IngestStatus.Rejected && result.Ingest.Reason is { } reason
            ? reason + (result.Ingest.Detail is { } detail ? ": " + detail : string.Empty)
            : result.Study.Reason ?? result.Study.Status.ToString();
        return InUserTerms(why, result.UploadPath, args.Tenant, args.Input);
    }

    /// <summary>
    /// <paramref name="text"/> with the name the input was staged under in ct-uploads
    /// (<c>{tenant}/{stamp}-{name}</c>, with or without the tenant; see <see cref="StudySubmitter"/>) replaced by the
    /// path the user gave, so a file inside a folder reads <c>INPUT/sub/1.dcm</c>. Before, a rejection named
    /// <c>20261127T160244837-x.txt</c> or <c>default/20261127T160239703-ct/</c>, a file the user never had.
    /// </summary>
    public static string InUserTerms(string text, string uploadPath, string tenant, string input)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(uploadPath);
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentNullException.ThrowIfNull(input);
        var staged = uploadPath.TrimEnd('/');
        var userPath = Path.TrimEndingDirectorySeparator(input);
        text = text.Replace(staged, userPath, StringComparison.Ordinal);
        return staged.StartsWith(tenant + "/", StringComparison.Ordinal)
            ? text.Replace(staged[(tenant.Length + 1)..], userPath, StringComparison.Ordinal)
            : text;
    }

    private static void WriteSummary(string input, OfflineScreeningResult result, bool kept, string provider, TextWriter output)
    {
        var s = result.Study;
        var inv = CultureInfo.InvariantCulture;
        output.WriteLine($"screen: {input} -> study {s.StudyId} ({s.Status})");
        if (result.Ingest.Status == IngestStatus.Rejected)
        {
            output.WriteLine($"  rejected: {result.Ingest.Reason}: {InUserTerms(result.Ingest.Detail ?? string.Empty, result.UploadPath, s.Tenant, input)}");
        }

        if (s.Label is not null)
        {
            output.WriteLine(string.Create(inv, $"  diagnosis: {s.Label}  (covid {s.ProbabilityCovid:0.000} · cap {s.ProbabilityCap:0.000} · normal {s.ProbabilityNormal:0.000})"));
            output.WriteLine(string.Create(inv, $"  lesion burden: {(s.LesionBurden ?? 0) * 100:0.00} % of the lung estimate"));
            output.WriteLine(string.Create(inv, $"  slices: {s.SliceCount}  model: {s.ModelVersion} ({provider})"));
            var top = StatusCommand.TopSlices(s.TopSlicesJson);
            if (top.Count > 0)
            {
                output.WriteLine("  most affected slices: " + string.Join(", ", top.Take(6).Select(t => string.Create(inv, $"{t.SliceIndex} ({t.LesionPercent:0.0} %)"))));
            }
        }

        output.WriteLine("  stages: " + string.Join(", ", result.StageSeconds.Select(kv => string.Create(inv, $"{kv.Key} {kv.Value:0.0} s"))));
        if (kept && s.MontagePath is not null)
        {
            output.WriteLine("  results: " + Path.GetDirectoryName(result.Containers.LinkTo(PipelineNames.ResultsContainer, s.MontagePath)));
        }

        WriteNotScreened(result, kept, output);
        output.WriteLine("  research use only - not a medical device");
    }

    /// <summary>Most files of the input named, with why, under the "not screened" line; the rest are counted.</summary>
    internal const int NotScreenedShown = 10;

    /// <summary>
    /// The files of the input that a screened study did not use (another study or series, reformats the policy refuses,
    /// files that are not DICOM), from the <c>skipped/reason.json</c> ingest writes beside them in quarantine: how many,
    /// the first <see cref="NotScreenedShown"/> with why, and where the reasons are kept (or that <c>--out-dir</c> keeps
    /// them). Before, the summary said nothing of them: a patient folder with two time points gave one diagnosis and no
    /// sign that the other study was left out. A rejected study's files are all named by its reason already.
    /// </summary>
    private static void WriteNotScreened(OfflineScreeningResult result, bool kept, TextWriter output)
    {
        var s = result.Study;
        if (result.Ingest.Status == IngestStatus.Rejected)
        {
            return;
        }

        // quarantine/{tenant}/{study}/skipped/reason.json: the folder IngestHandler copies the files not screened to.
        var path = result.Containers.LinkTo(PipelineNames.QuarantineContainer, $"{s.Tenant}/{s.StudyId}/skipped/reason.json");
        if (!File.Exists(path))
        {
            return;
        }

        QuarantineReason? reason;
        try
        {
            reason = JsonSerializer.Deserialize<QuarantineReason>(File.ReadAllText(path), PipelineJson.Options);
        }
        catch (JsonException)
        {
            output.WriteLine($"  not screened: some files of the input, named with why in {path}");
            return;
        }

        var files = reason?.Files ?? [];
        var where = kept ? $"each named with why in {path}" : "not kept: give --out-dir to keep them with a reason.json naming why";
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  not screened: {files.Count} file(s) of the input ({where})"));
        foreach (var file in files.Take(NotScreenedShown))
        {
            output.WriteLine($"    {file.Name}: {file.Why}");
        }

        if (files.Count > NotScreenedShown)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"    ... and {files.Count - NotScreenedShown} more"));
        }
    }

    private static void WriteText(string path, string text)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        File.WriteAllText(path, text, new UTF8Encoding(false));
    }
}
