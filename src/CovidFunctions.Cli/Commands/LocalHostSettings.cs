using System.Collections;
using CovidFunctions.Imaging.Series;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Azure.Configuration;
using CovidFunctions.Pipeline.Metering;
using Microsoft.Extensions.Configuration;

namespace CovidFunctions.Cli.Commands;

/// <summary>
/// The <c>Pipeline__*</c> and <c>Metering__*</c> settings of <c>covidfn up</c>, from the environment, with the same names,
/// defaults and checks as the Function app's (<c>FunctionAppOptions</c>): a value that does not convert or is out of
/// range, or a key no option reads (a misspelling that would leave the default silently), stops <c>up</c> before anything
/// starts with a message naming the setting. Before, <c>up</c> read none of them: README and local.settings.sample.json
/// name them, but <c>Metering__CloseAfterDays=0</c> or <c>Pipeline__UploadRetention=1.00:00:00</c> changed nothing locally.
/// The <c>Imaging__*</c> settings are read and checked the same way (<see cref="Assembly"/>), and de-identification
/// options under <c>Deidentification__</c> are refused. One default differs from the Function app's:
/// <c>IngestTimeLimit</c>, when not set, is sized to the largest upload accepted (<see cref="LocalIngestTimeLimit"/>), and
/// <c>StuckStudyAge</c>, when not set, outlasts the ingest's own bound (<see cref="WithLocalStuckStudyAge"/>).
/// </summary>
/// <param name="Pipeline">Chunking, timeouts, retention, ingest bounds and the stuck-study watchdog.</param>
/// <param name="Metering">When the previous month's bills close.</param>
/// <param name="FunctionAppOnly">Settings given that only the Function app reads (<c>up</c> has its own queues and transport): named so that <c>up</c> can say it ignores them.</param>
public sealed record LocalHostSettings(PipelineOptions Pipeline, MeteringOptions Metering, IReadOnlyList<string> FunctionAppOnly)
{
    /// <summary>
    /// Keys of the <c>Pipeline</c> section that only the Function app reads, each with why <c>up</c> ignores it: the
    /// queue name and the transports (its <c>FunctionAppSettings</c>), the minute sweep's quiet age for single-blob
    /// uploads and the Durable history purge's age (Function app timers).
    /// </summary>
    private static readonly Dictionary<string, string> FunctionAppOnlyPipelineSettings = new(StringComparer.OrdinalIgnoreCase)
    {
        ["SliceQueueName"] = "covidfn up has its own Storage queues",
        ["Transport"] = "covidfn up has its own Storage queues",
        ["ResultTransport"] = "covidfn up has its own Storage queues",
        [nameof(PipelineOptions.SingleUploadSweepAge)] = "covidfn up's watcher ingests every upload at once",
        [nameof(PipelineOptions.OrchestrationHistoryRetention)] = "its hourly timer purges the Durable history; covidfn up keeps it",
    };

    /// <summary>
    /// The slowest ingest measured, in MiB of upload per second of wall time: the 300-slice phantom re-encoded JPEG 2000
    /// lossless through <c>covidfn up</c>, 61.5 MiB in 55.87 s on the shared 2-core dev VM at load 15-18 (docs/benchmarks.md
    /// "Ingest rate and the Function timeout"; the rate Deployment.Tests' TimeBudgetTests sizes functionTimeout by).
    /// </summary>
    public const double SlowestMeasuredIngestMiBPerSecond = 61.5 / 55.87;

    /// <summary>Headroom over <see cref="SlowestMeasuredIngestMiBPerSecond"/> (another machine, another load), as TimeBudgetTests allows.</summary>
    public const double LocalIngestMargin = 1.5;

    /// <summary>
    /// <c>Pipeline:IngestTimeLimit</c> for <c>covidfn up</c> and <c>screen</c> when the setting is not given: the time the
    /// largest upload they accept (<paramref name="maxUploadBytes"/>, <c>Pipeline:MaxUploadBytes</c>) takes at
    /// <paramref name="slowestMiBPerSecond"/>, times <see cref="LocalIngestMargin"/>, in whole minutes, and never below the
    /// Function app's 50 min; none (zero) when uploads of any size are accepted. The Function app's 50 min is set by
    /// host.json's 60-min <c>functionTimeout</c>, which does not exist here; with it, a 4 GiB JPEG 2000 study (about
    /// 62 min at the measured rate) failed on a slow machine unless the user knew to set the limit to 0. Sized this way the
    /// default passes every upload accepted at the slowest measured rate (4 GiB: 1 h 34 min) and still ends a hung ingest
    /// as a counted failure instead of holding its claim until the watchdog. A value set in the environment is used as given.
    /// </summary>
    public static TimeSpan LocalIngestTimeLimit(long maxUploadBytes, double slowestMiBPerSecond = SlowestMeasuredIngestMiBPerSecond)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxUploadBytes);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(slowestMiBPerSecond);
        if (maxUploadBytes == 0)
        {
            return TimeSpan.Zero;
        }

        var slowest = TimeSpan.FromMinutes(Math.Ceiling(maxUploadBytes / (1024.0 * 1024.0) / slowestMiBPerSecond * LocalIngestMargin / 60));
        var functionAppDefault = new PipelineOptions().IngestTimeLimit;
        return slowest > functionAppDefault ? slowest : functionAppDefault;
    }

    /// <summary><paramref name="pipeline"/> with <see cref="LocalIngestTimeLimit"/> unless <paramref name="section"/> sets <c>IngestTimeLimit</c>.</summary>
    internal static PipelineOptions WithLocalIngestTimeLimit(IConfiguration section, PipelineOptions pipeline) =>
        section[nameof(PipelineOptions.IngestTimeLimit)] is null
            ? pipeline with { IngestTimeLimit = LocalIngestTimeLimit(pipeline.MaxUploadBytes) }
            : pipeline;

    /// <summary>
    /// <paramref name="pipeline"/> with a watchdog (<c>StuckStudyAge</c>) that cannot fail a study ingest is still allowed
    /// to work on. The watchdog fails a study still processing <c>StuckStudyAge</c> after it was created; ingest ends by
    /// itself after <see cref="PipelineOptions.IngestBound"/>. Up to 4 GiB uploads (3 × 94 min) the default 6 h outlasts it; above about
    /// 5.3 GiB the sized <c>IngestTimeLimit</c> (<see cref="LocalIngestTimeLimit"/>) makes the bound longer, and above
    /// about 14 GiB one attempt alone, so the watchdog failed as <c>stuck-processing</c> a study whose ingest was running
    /// within its limit. When <c>StuckStudyAge</c> is not set, it is sized to the bound plus an hour (the sweep's period),
    /// in whole hours: what a user who raised <c>MaxUploadBytes</c> (or set a long limit) expects, the study settled by
    /// ingest's own give-up naming the limit rather than by the watchdog. When it is set, or the bound is set through
    /// both <c>IngestTimeLimit</c> and <c>StuckStudyAge</c>, a watchdog at or below the bound is refused, naming both
    /// settings. <c>0</c> (no watchdog, or no limit) leaves nothing to reconcile.
    /// </summary>
    /// <exception cref="InvalidOperationException">A set <c>StuckStudyAge</c> at or below the ingest's bound (both named).</exception>
    internal static PipelineOptions WithLocalStuckStudyAge(IConfiguration section, PipelineOptions pipeline)
    {
        if (pipeline.IngestBound() is not { } bound || pipeline.StuckStudyAge == TimeSpan.Zero || pipeline.StuckStudyAge > bound)
        {
            return pipeline;
        }

        if (section[nameof(PipelineOptions.StuckStudyAge)] is null)
        {
            return pipeline with { StuckStudyAge = TimeSpan.FromHours(Math.Ceiling((bound + TimeSpan.FromHours(1)).TotalHours)) };
        }

        var limit = section[nameof(PipelineOptions.IngestTimeLimit)] is null
            ? FormattableString.Invariant($"{pipeline.IngestTimeLimit.TotalMinutes:0} min, sized to Pipeline__MaxUploadBytes {pipeline.MaxUploadBytes}")
            : FormattableString.Invariant($"{pipeline.IngestTimeLimit}");
        throw new InvalidOperationException(FormattableString.Invariant(
            $"Pipeline__StuckStudyAge ({pipeline.StuckStudyAge}) must be longer than ingest's own bound, Pipeline__MaxIngestAttempts ({pipeline.MaxIngestAttempts}) × Pipeline__IngestTimeLimit ({limit}) = {bound}: the watchdog would fail as stuck a study whose ingest is still within its limit. Set Pipeline__StuckStudyAge above {bound}, or leave it unset (up sizes it), or lower Pipeline__IngestTimeLimit or Pipeline__MaxUploadBytes."));
    }

    /// <summary>Why <c>up</c> ignores <paramref name="setting"/> (one of <see cref="FunctionAppOnly"/>'s names, <c>Pipeline__Key</c>), for its console line.</summary>
    public static string WhyFunctionAppOnly(string setting)
    {
        ArgumentNullException.ThrowIfNull(setting);
        return FunctionAppOnlyPipelineSettings[setting[(PipelineOptions.SectionName.Length + 2)..]];
    }

    /// <summary>
    /// How ingest assembles series and expands zips: the <c>Imaging__*</c> settings, checked as the Function app checks
    /// them (before, <c>up</c> read none and always used the defaults).
    /// </summary>
    public SeriesAssemblyOptions Assembly { get; init; } = SeriesAssemblyOptions.Default;

    /// <summary>The settings from this process's environment, with <paramref name="chunkSize"/> (<c>--chunk-size</c>) over them when given.</summary>
    /// <exception cref="InvalidOperationException">A setting is unknown, does not convert, or is out of range (named).</exception>
    public static LocalHostSettings Load(int? chunkSize) => Load(Environment.GetEnvironmentVariables(), chunkSize);

    /// <summary><see cref="Load(int?)"/> over the given environment variables.</summary>
    public static LocalHostSettings Load(IDictionary environment, int? chunkSize)
    {
        ArgumentNullException.ThrowIfNull(environment);
        var pipelineSection = EnvironmentSettings.Section(environment, PipelineOptions.SectionName);
        var meteringSection = EnvironmentSettings.Section(environment, MeteringOptions.SectionName);
        UnknownSettings.Reject(pipelineSection, [.. FunctionAppOnlyPipelineSettings.Keys], typeof(PipelineOptions));
        UnknownSettings.Reject(meteringSection, [], typeof(MeteringOptions));

        // Get<T> throws naming the key ("Failed to convert configuration value at 'Pipeline:ChunkSize' ...").
        var pipeline = pipelineSection.Get<PipelineOptions>() ?? new PipelineOptions();
        var metering = meteringSection.Get<MeteringOptions>() ?? new MeteringOptions();
        if (chunkSize is { } size)
        {
            pipeline = pipeline with { ChunkSize = size };
        }

        pipeline.Validate();
        metering.Validate();
        pipeline = WithLocalIngestTimeLimit(pipelineSection, pipeline);
        pipeline = WithLocalStuckStudyAge(pipelineSection, pipeline);

        // De-identification options are refused, not ignored (ingest's profile is fixed); the key is up's own key file.
        var assembly = ImagingSettings.LoadForIngest(environment);
        var functionAppOnly = EnvironmentSettings.GivenNames(pipelineSection, FunctionAppOnlyPipelineSettings.ContainsKey);
        return new LocalHostSettings(pipeline, metering, functionAppOnly) { Assembly = assembly };
    }
}
