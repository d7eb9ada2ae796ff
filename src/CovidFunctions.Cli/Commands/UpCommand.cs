using System.Collections.Concurrent;
using System.CommandLine;
using System.Globalization;
using CovidFunctions.Cli.LocalHost;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.Imaging.Phantoms;
using CovidFunctions.Inference;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Azure.Local;
using CovidFunctions.Pipeline.Ingest;
using CovidFunctions.Pipeline.Storage;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace CovidFunctions.Cli.Commands;

/// <summary>
/// <c>covidfn up [--data-dir D] [--port P] [--demo]</c>: runs the whole pipeline on this machine
/// (<see cref="LocalPipelineHost"/>) until Ctrl+C, showing each study's progress and where its results are. Azurite keeps
/// its data under <c>D/azurite</c>, the de-identification key is <c>D/keys/deid.key</c>, logs go to
/// <c>D/logs/covidfn-up.log</c>. <c>--demo</c> submits a synthetic chest CT (<see cref="CtPhantom"/>) once the pipeline
/// is up. Exit 0 after a clean stop; 1 when it cannot start.
/// </summary>
public static class UpCommand
{
    public static Command Create()
    {
        var dataDir = new Option<string?>("--data-dir") { Description = "Azurite data, keys and logs (default .covidfn/ in the working directory)." };
        var port = new Option<int>("--port") { Description = "Azurite's blob port; queue and table use the next two (default 10000-10002).", DefaultValueFactory = _ => AzuritePorts.Default.Blob };
        var demo = new Option<bool>("--demo") { Description = "Submit a synthetic chest CT phantom (DICOM with ground-glass opacities) once the pipeline is up." };
        var demoSlices = new Option<int>("--demo-slices") { Description = "Slices of the demo phantom.", DefaultValueFactory = _ => 64 };
        var exitWhenDone = new Option<bool>("--exit-when-done") { Description = "Stop once every study submitted while running has finished (for scripts)." };
        var models = new Option<string?>("--models") { Description = "Models folder (default: COVIDFN_MODELS_DIR or models/ next to covidfn)." };
        var threads = new Option<int?>("--threads") { Description = "ONNX Runtime intra-op threads for the scorer (0: one per core; default: Inference__IntraOpThreads, else 0)." };
        var storage = new Option<string?>("--storage") { Description = "Storage connection string instead of Azurite (default: COVIDFN_STORAGE).", Hidden = true };
        var apiPort = new Option<int>("--api-port") { Description = "Results API (and webhook links) on 127.0.0.1:PORT; 0 disables it.", DefaultValueFactory = _ => 7071 };
        var allowLoopback = new Option<bool>("--allow-loopback-webhooks") { Description = "Allow http://127.0.0.1 webhook targets (local testing only)." };
        var chunkSize = new Option<int?>("--chunk-size") { Description = "Slices per scorer message (default: Pipeline__ChunkSize, else 32).", Hidden = true };
        var command = new Command("up", "Run the local pipeline (Azurite, Durable orchestrator, upload watcher, scorer, relay) until Ctrl+C.");
        command.Options.Add(dataDir);
        command.Options.Add(port);
        command.Options.Add(demo);
        command.Options.Add(demoSlices);
        command.Options.Add(exitWhenDone);
        command.Options.Add(models);
        command.Options.Add(threads);
        command.Options.Add(storage);
        command.Options.Add(chunkSize);
        command.Options.Add(apiPort);
        command.Options.Add(allowLoopback);
        command.SetAction((parseResult, cancellationToken) => RunAsync(
            new UpArguments(
                parseResult.GetValue(dataDir),
                parseResult.GetValue(port),
                parseResult.GetValue(demo),
                parseResult.GetValue(demoSlices),
                parseResult.GetValue(exitWhenDone),
                parseResult.GetValue(models),
                parseResult.GetValue(threads),
                parseResult.GetValue(storage),
                parseResult.GetValue(chunkSize),
                parseResult.GetValue(apiPort),
                parseResult.GetValue(allowLoopback)),
            parseResult.InvocationConfiguration.Output,
            parseResult.InvocationConfiguration.Error,
            cancellationToken));
        return command;
    }

    public sealed record UpArguments(string? DataDir, int Port, bool Demo, int DemoSlices, bool ExitWhenDone, string? Models, int? Threads, string? Storage, int? ChunkSize, int ApiPort = 0, bool AllowLoopbackWebhooks = false);

    public static async Task<int> RunAsync(UpArguments args, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (ArgumentProblems(args) is { Count: > 0 } problems)
        {
            foreach (var problem in problems)
            {
                error.WriteLine("up: " + problem);
            }

            return ExitCodes.BadInput;
        }

        var dataDir = LocalStorage.ResolveDataDir(args.DataDir);

        // One up per data folder: a second one started a second Azurite over the same azurite/ files (drill). Taken
        // before anything in the folder is touched; the kernel drops it however this process ends.
        using var folderLock = UpDataDirLock.TryAcquire(dataDir);
        if (folderLock is null)
        {
            var other = UpDataDirLock.ReadRecord(dataDir);
            error.WriteLine(other is null
                ? $"up: another covidfn up is running on {dataDir} (it holds {Path.Combine(dataDir, UpDataDirLock.LockFileName)}); stop it first, or give this one another --data-dir"
                : string.Create(CultureInfo.InvariantCulture, $"up: another covidfn up (pid {other.Pid}, started {other.StartedAt.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC) is running on {dataDir}; stop it first (kill -TERM {other.Pid}), or give this one another --data-dir"));
            return ExitCodes.BadInput;
        }

        // Settings and the key are checked before Azurite, the sidecar or anything else starts: a bad Inference__*
        // setting or an unusable key file stops here naming it (before, a bad key surfaced only after Azurite and the
        // storage were up, without the file's name). A missing key file is created now (mode 0600), as on every first start.
        InferenceOptions inference;
        LocalHostSettings settings;
        try
        {
            inference = InferenceSettings.Load(args.Models, args.Threads);
            settings = LocalHostSettings.Load(args.ChunkSize);
            foreach (var name in settings.FunctionAppOnly)
            {
                error.WriteLine($"up: {name} is read only by the Function app ({LocalHostSettings.WhyFunctionAppOnly(name)}); ignored");
            }

            _ = DeidKeys.ForDataDir(dataDir, out var keyPath, out var keyCreated);
            if (keyCreated)
            {
                error.WriteLine($"up: created the de-identification key {keyPath} (mode 0600); keep it for as long as this data folder's studies");
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or DeidKeyException)
        {
            error.WriteLine("up: " + ex.Message);
            return ExitCodes.BadInput;
        }

        var connection = args.Storage is { Length: > 0 } ? args.Storage : Environment.GetEnvironmentVariable(LocalStorage.ConnectionVariable);
        var console = CliConsole.For(output);
        var logPath = Path.Combine(dataDir, "logs", "covidfn-up.log");
        using var fileLog = new FileLoggerProvider(logPath);
        using var loggers = LoggerFactory.Create(b => b.AddProvider(fileLog).SetMinimumLevel(LogLevel.Information));

        // What a restart must repeat, for the client commands' "not running" message (B of the drill's gaps).
        folderLock.Record(new UpRecord(Environment.ProcessId, DateTimeOffset.UtcNow, connection is { Length: > 0 } ? null : args.Port, args.ApiPort, args.AllowLoopbackWebhooks));
        console.MarkupLine($"[bold]covidfn up[/] — data in [blue]{Markup.Escape(dataDir)}[/], log in {Markup.Escape(logPath)}");
        console.MarkupLine("starting Azurite (or reusing one), the Durable sidecar and worker, the watcher, scorer and relay…");
        LocalPipelineHost host;
        try
        {
            host = await LocalPipelineHost.StartAsync(HostOptions(args, dataDir, connection, inference, settings), loggers, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            error.WriteLine("up: interrupted while starting");
            return ExitCodes.InternalError;
        }
        catch (Exception ex)
        {
            error.WriteLine($"up: cannot start the local pipeline: {ex.Message} (details in {logPath})");
            return ExitCodes.InternalError;
        }

        await using (host.ConfigureAwait(false))
        {
            var uploads = host.Storage.Blobs.GetBlobContainerClient(PipelineNames.UploadsContainer).Uri + "/{tenant}/";
            console.MarkupLine($"[green]ready[/]: storage {(host.StartedAzurite ? "Azurite (started, data in " + Markup.Escape(Path.Combine(dataDir, "azurite")) + ")" : "reused")}; drop studies into [blue]{Markup.Escape(uploads)}[/] or run [bold]covidfn submit INPUT[/]; Ctrl+C stops");
            if (host.Api is { } api)
            {
                console.MarkupLine($"results API: [blue]{Markup.Escape(api.BaseUrl.ToString())}api/studies[/] (header X-Api-Key; the operator key is in {Markup.Escape(Path.Combine(dataDir, "api-keys.json"))})");
            }
            else if (host.ApiProblem is { } problem)
            {
                console.MarkupLine($"[yellow]results API not started[/]: {Markup.Escape(problem)}");
            }

            // Uploads that never get a Studies row (outside a tenant folder) are reported from the watcher's outcomes;
            // queued here and printed by the progress loop, so console lines are written from one thread.
            var untracked = new ConcurrentQueue<string>();
            host.Watcher.Ingested += outcome =>
            {
                if (DescribeUntracked(outcome, DateTimeOffset.UtcNow) is { } line)
                {
                    untracked.Enqueue(line);
                }
            };

            var notices = new ConcurrentQueue<string>();
            host.AzuriteRestarted += line => notices.Enqueue(Markup.Escape(DateTimeOffset.UtcNow.UtcDateTime.ToString("HH:mm:ss", CultureInfo.InvariantCulture) + " storage: " + line));

            var startedAt = DateTimeOffset.UtcNow;
            if (args.Demo)
            {
                var id = await SubmitDemoAsync(host.Storage.BlobContainers, host.Storage.Studies, host.StudyIdKey, dataDir, args.DemoSlices, console, cancellationToken).ConfigureAwait(false);
                console.MarkupLine($"demo study submitted: [bold]{Markup.Escape(id)}[/] (follow with `covidfn status {Markup.Escape(id)}`)");
            }

            try
            {
                await WatchProgressAsync(host, startedAt, args.ExitWhenDone, untracked, notices, console, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // Ctrl+C.
            }

            if (host.StorageLost.IsCompleted)
            {
                // Storage is gone for good: the stop is bounded, since the worker and sidecar would otherwise wait on it
                // (the drill's stop hung until Azurite came back, then ended with a stack trace and no "stopped" line).
                var reason = await host.StorageLost.ConfigureAwait(false);
                error.WriteLine($"up: stopping: {reason}. Nothing committed to storage is lost; start covidfn up again as it ran (`covidfn status --data-dir {dataDir}` prints the command) once Azurite can run.");
                using var bound = new CancellationTokenSource(StopBoundWithoutStorage);
                await Task.WhenAny(host.StopAsync(bound.Token), Task.Delay(StopBoundWithoutStorage + TimeSpan.FromSeconds(10), CancellationToken.None)).ConfigureAwait(false);
                error.WriteLine("up: stopped without its storage; unfinished studies resume on the next covidfn up");
                return ExitCodes.InternalError;
            }

            console.MarkupLine("stopping: watcher, scorer and relay, then the Durable worker, the sidecar" + (host.StartedAzurite ? " and Azurite" : string.Empty) + "…");
            await host.StopAsync(CancellationToken.None).ConfigureAwait(false);
            console.MarkupLine("stopped; unfinished studies resume on the next [bold]covidfn up[/]");
        }

        return ExitCodes.Success;
    }

    /// <summary>How long the stop may wait for the worker and sidecar when storage is gone for good.</summary>
    private static readonly TimeSpan StopBoundWithoutStorage = TimeSpan.FromSeconds(20);

    /// <summary>
    /// Each numeric option out of range, named with its value (one line each). <c>--api-port</c> is checked too: out of
    /// range it used to start everything and then run without the results API, so without webhooks.
    /// </summary>
    private static List<string> ArgumentProblems(UpArguments args)
    {
        var problems = new List<string>();
        if (args.Port is < 1 or > 65533)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"--port {args.Port} is out of range: Azurite's blob port, 1-65533 (queue and table use the next two)"));
        }

        if (args.ApiPort is < 0 or > 65535)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"--api-port {args.ApiPort} is out of range: 1-65535, or 0 for no results API (and no webhooks)"));
        }

        if (args.DemoSlices is < 8 or > 1000)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"--demo-slices {args.DemoSlices} is out of range: 8-1000"));
        }

        if (args.ChunkSize is < 1)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"--chunk-size {args.ChunkSize} is out of range: at least 1"));
        }

        return problems;
    }

    /// <summary>What <c>up</c> starts the local host with: its flags, the data folder, the storage and the checked settings.</summary>
    public static LocalPipelineOptions HostOptions(UpArguments args, string dataDir, string? connection, InferenceOptions inference, LocalHostSettings settings)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(settings);
        return new LocalPipelineOptions
        {
            DataDirectory = dataDir,
            ConnectionString = connection,
            AzuritePorts = new AzuritePorts(args.Port, args.Port + 1, args.Port + 2),
            Pipeline = settings.Pipeline,
            Assembly = settings.Assembly,
            Metering = settings.Metering,
            Inference = inference,
            ApiPort = args.ApiPort > 0 ? args.ApiPort : null,
            AllowLoopbackWebhooks = args.AllowLoopbackWebhooks,
        };
    }

    /// <summary>
    /// Writes the demo phantom to <c>{data-dir}/demo/phantom-{time}/</c>, submits it and deletes that folder. Once submitted,
    /// the upload in <c>ct-uploads</c> is the study's original, kept until its results are stored (or quarantined with
    /// the reason if it fails) like any upload; the local folder was only its source. Before, it stayed for good, one
    /// more per run (64 slices of 512², 33 MB each), synthetic files with planted fake PHI that a PHI review of the data
    /// folder had to tell from real ones. A folder whose submit failed is kept (the exception stops <c>up</c>, naming it),
    /// and a delete that fails is said, not fatal.
    /// </summary>
    internal static async Task<string> SubmitDemoAsync(IBlobContainers containers, IStudyStore studies, StudyIdKey studyIdKey, string dataDir, int slices, IAnsiConsole console, CancellationToken cancellationToken)
    {
        var demo = Path.Combine(dataDir, "demo");
        var folder = Path.Combine(demo, "phantom-" + DateTimeOffset.UtcNow.ToString("yyyyMMddTHHmmss", CultureInfo.InvariantCulture));
        var phantom = new CtPhantom(new CtPhantomOptions { Slices = slices, SliceSpacing = Math.Round(160.0 / slices, 2), UidSeed = Guid.NewGuid().ToString("N") });
        console.MarkupLine($"demo: writing a synthetic chest CT ({slices} slices, 512×512, {phantom.LesionCount} ground-glass opacities, planted PHI) to {Markup.Escape(folder)}");
        await Task.Run(() => phantom.WriteFolder(folder), cancellationToken).ConfigureAwait(false);
        var submitted = await new StudySubmitter(containers, studies, studyIdKey).SubmitAsync(folder, PipelineNames.DefaultTenant, cancellationToken).ConfigureAwait(false);
        try
        {
            Directory.Delete(folder, recursive: true);
            if (!Directory.EnumerateFileSystemEntries(demo).Any())
            {
                Directory.Delete(demo);
            }

            console.MarkupLine($"demo: submitted to {Markup.Escape(PipelineNames.UploadsContainer + "/" + submitted.UploadPath)}, local copy deleted (write one to keep with `covidfn phantom DIR`)");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            console.MarkupLine($"[yellow]demo: submitted, but the local copy could not be deleted[/] ({Markup.Escape(ex.Message)}): {Markup.Escape(folder)} holds synthetic data only");
        }

        return submitted.StudyId;
    }

    /// <summary>
    /// Prints one line per study state change until cancelled (or, with <paramref name="exitWhenDone"/>, until every new
    /// study is terminal). Each round reads what can have changed (<see cref="StudyProgressWatch"/>), not every study.
    /// </summary>
    private static async Task WatchProgressAsync(LocalPipelineHost host, DateTimeOffset since, bool exitWhenDone, ConcurrentQueue<string> untracked, ConcurrentQueue<string> notices, IAnsiConsole console, CancellationToken cancellationToken)
    {
        var watch = new StudyProgressWatch(host.Storage.Studies, since);
        while (!host.StorageLost.IsCompleted)
        {
            StudyProgressRound? round = null;
            try
            {
                round = await watch.PollAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsStorageAway(ex, cancellationToken))
            {
                // Storage briefly away (an Azurite restarting answers Connection refused, which the SDK throws as an
                // AggregateException after its retries): the next round shows it. Before, that exception ended up.
            }

            while (notices.TryDequeue(out var line))
            {
                console.MarkupLine(line);
            }

            while (untracked.TryDequeue(out var line))
            {
                console.MarkupLine(line);
            }

            foreach (var s in round?.Changed ?? [])
            {
                console.MarkupLine(Describe(s, host.Storage.BlobContainers));
            }

            if (exitWhenDone && round is { RunSettled: true })
            {
                return;
            }

            await Task.WhenAny(Task.Delay(TimeSpan.FromSeconds(2), cancellationToken), host.StorageLost).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    /// <summary>An exception of a storage call that the next round may not meet: the service answered an error, or did not answer.</summary>
    internal static bool IsStorageAway(Exception ex, CancellationToken cancellationToken) => ex switch
    {
        Azure.RequestFailedException or HttpRequestException or IOException or TimeoutException => true,
        OperationCanceledException => !cancellationToken.IsCancellationRequested,
        AggregateException aggregate => aggregate.InnerExceptions.Count > 0 && aggregate.InnerExceptions.All(inner => IsStorageAway(inner, cancellationToken)),
        _ => false,
    };

    /// <summary>
    /// The console line of an upload that has no Studies row, so the row view never shows it: one dropped outside a
    /// valid tenant folder, quarantined under <c>_invalid-tenant</c>. Null for every other outcome. The folder it was
    /// dropped in is not named: it may be a patient's name (the log masks it too).
    /// </summary>
    internal static string? DescribeUntracked(IngestOutcome outcome, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(outcome);
        if (outcome.Status != IngestStatus.Rejected || outcome.Reason != UploadUnitPlanner.InvalidTenantReason)
        {
            return null;
        }

        var folder = $"{UploadUnitPlanner.InvalidTenantQuarantine}/{outcome.StudyId}";
        return Markup.Escape(now.UtcDateTime.ToString("HH:mm:ss", CultureInfo.InvariantCulture) + " " + folder) +
            $" [yellow]rejected[/]: {UploadUnitPlanner.InvalidTenantReason}: not under a tenant folder (ct-uploads/{{tenant}}/…, tenant 1-40 of a-z, 0-9 and '-'); " +
            Markup.Escape($"original and reason.json in {PipelineNames.QuarantineContainer}/{folder}/");
    }

    internal static string Describe(StudyRecord s, IBlobContainers containers)
    {
        var time = DateTimeOffset.UtcNow.ToString("HH:mm:ss", CultureInfo.InvariantCulture);
        var id = Markup.Escape($"{s.Tenant}/{s.StudyId}");
        return s.Status switch
        {
            StudyStatus.Completed => string.Create(CultureInfo.InvariantCulture,
                $"{time} {id} [green]completed[/]: [bold]{Markup.Escape(s.Label ?? "?")}[/] (covid {s.ProbabilityCovid:0.000} · cap {s.ProbabilityCap:0.000} · normal {s.ProbabilityNormal:0.000}), lesion burden {(s.LesionBurden ?? 0) * 100:0.0} % of the lung estimate, {Slices(s.SliceCount)}; montage {Markup.Escape(s.MontagePath is null ? "-" : containers.LinkTo(PipelineNames.ResultsContainer, s.MontagePath))}"),
            StudyStatus.Failed => $"{time} {id} [red]failed[/]: {Markup.Escape(s.Reason ?? "?")}" + (StatusCommand.HasQuarantinedUpload(s) ? " (original and reason.json in quarantine/)" : string.Empty),
            StudyStatus.Rejected => $"{time} {id} [yellow]rejected[/]: {Markup.Escape(s.Reason ?? "?")} (original and reason.json in quarantine/)",
            StudyStatus.Processing when s.IngestedAt is not null => string.Create(CultureInfo.InvariantCulture, $"{time} {id} [blue]processing[/]: de-identified and tiled ({Slices(s.SliceCount)}), scoring"),
            StudyStatus.Processing => $"{time} {id} [blue]processing[/]: ingesting (de-identification, tiles)",
            _ => $"{time} {id} {Markup.Escape(s.Status)}",
        };
    }

    /// <summary>"1 slice", "30 slices": a one-slice study (one 2-D image) was shown as "1 slices".</summary>
    private static string Slices(int n) => n.ToString(CultureInfo.InvariantCulture) + (n == 1 ? " slice" : " slices");
}
