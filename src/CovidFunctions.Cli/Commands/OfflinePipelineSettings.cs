using System.Collections;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Azure.Configuration;
using Microsoft.Extensions.Configuration;

namespace CovidFunctions.Cli.Commands;

/// <summary>
/// The <c>Pipeline__*</c> settings of <c>covidfn screen</c>, from the environment, read and checked as <c>covidfn up</c>
/// reads them (<see cref="LocalHostSettings"/>; the Function app's <c>FunctionAppOptions</c>): a key no option reads, a
/// value that does not convert or one out of range stops <c>screen</c> before it reads its input, naming the setting,
/// whether <c>screen</c> uses that setting or not. Of the valid ones <c>screen</c> applies those that change an offline
/// run (<see cref="Applied"/>) and names the others as ignored, with why: it has no queues, no sweeps and no retries.
/// Before, <c>screen</c> used the defaults whatever the environment said: with <c>Pipeline__MaxUploadBytes</c> set,
/// <c>up</c> refused an upload as too large that <c>screen</c> screened, and a misspelt key changed nothing, silently.
/// </summary>
/// <param name="Pipeline">The options <c>screen</c> runs with: the defaults, with <see cref="Applied"/> from the environment.</param>
/// <param name="Ignored">Settings given that <c>screen</c> does not use (<c>Pipeline__Key</c>, in ordinal order), for its stderr lines.</param>
public sealed record OfflinePipelineSettings(PipelineOptions Pipeline, IReadOnlyList<string> Ignored)
{
    private const string NoQueues = "it scores every chunk in this process, with no queue";

    /// <summary>
    /// The <see cref="PipelineOptions"/> that change an offline run: the chunks scored (<c>ChunkSize</c>), ingest's
    /// <c>too-large</c> refusal (<c>MaxUploadBytes</c>), the montage's most affected slices (<c>MontageSlices</c>) and
    /// how long its one ingest attempt may run (<c>IngestTimeLimit</c>: the handler applies it offline too; when not set,
    /// sized to the largest upload accepted as <c>up</c> sizes it, <see cref="LocalHostSettings.LocalIngestTimeLimit"/>).
    /// </summary>
    public static IReadOnlySet<string> Applied { get; } = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
    {
        nameof(PipelineOptions.ChunkSize),
        nameof(PipelineOptions.MaxUploadBytes),
        nameof(PipelineOptions.MontageSlices),
        nameof(PipelineOptions.IngestTimeLimit),
    };

    /// <summary>The keys of the <c>Pipeline</c> section <c>screen</c> does not use, each with why.</summary>
    private static readonly Dictionary<string, string> NotUsedOffline = new(StringComparer.OrdinalIgnoreCase)
    {
        // The Function app's queue and transports (not PipelineOptions properties; up ignores them too).
        ["SliceQueueName"] = NoQueues,
        ["Transport"] = NoQueues,
        ["ResultTransport"] = NoQueues,
        [nameof(PipelineOptions.MaxDeliveryCount)] = NoQueues,
        [nameof(PipelineOptions.ChunkTimeout)] = "it scores each chunk once, in this process: nothing waits for a chunk or dispatches it again",
        [nameof(PipelineOptions.MaxChunkAttempts)] = "it scores each chunk once, in this process: nothing waits for a chunk or dispatches it again",
        [nameof(PipelineOptions.FolderStableAge)] = "it ingests its input at once, whole",
        [nameof(PipelineOptions.SingleUploadSweepAge)] = "it ingests its input at once, whole",
        [nameof(PipelineOptions.MaxIngestAttempts)] = "it makes one ingest attempt, which nothing retries",
        [nameof(PipelineOptions.UploadRetention)] = "it deletes its staged copy of the input once the study is screened: no sweep would delete a kept copy later",
        [nameof(PipelineOptions.StuckStudyAge)] = "it runs its one study to the end; there is no sweep",
        [nameof(PipelineOptions.OrchestrationHistoryRetention)] = "it keeps no Durable history",
    };

    /// <summary>Whether <c>screen</c> names <paramref name="key"/> (a key of the <c>Pipeline</c> section) as ignored.</summary>
    public static bool IsIgnored(string key) => NotUsedOffline.ContainsKey(key);

    /// <summary>Why <c>screen</c> ignores <paramref name="setting"/> (one of <see cref="Ignored"/>'s names, <c>Pipeline__Key</c>).</summary>
    public static string WhyIgnored(string setting)
    {
        ArgumentNullException.ThrowIfNull(setting);
        return NotUsedOffline[setting[(PipelineOptions.SectionName.Length + 2)..]];
    }

    /// <summary>The settings from <paramref name="environment"/>.</summary>
    /// <exception cref="InvalidOperationException">A setting is unknown, does not convert, or is out of range (named).</exception>
    public static OfflinePipelineSettings Load(IDictionary environment)
    {
        ArgumentNullException.ThrowIfNull(environment);
        var section = EnvironmentSettings.Section(environment, PipelineOptions.SectionName);
        UnknownSettings.Reject(section, [.. NotUsedOffline.Keys], typeof(PipelineOptions));

        // Get<T> throws naming the key; every value is range-checked, used here or not, as up checks them.
        var given = section.Get<PipelineOptions>() ?? new PipelineOptions();
        given.Validate();
        // Before, IngestTimeLimit was listed as applied but not copied here: Pipeline__IngestTimeLimit=0, the advice for a
        // very large compressed study, changed nothing, and screen ran every study under the Function app's 50 min.
        var pipeline = LocalHostSettings.WithLocalIngestTimeLimit(section, new PipelineOptions
        {
            ChunkSize = given.ChunkSize,
            MaxUploadBytes = given.MaxUploadBytes,
            MontageSlices = given.MontageSlices,
            IngestTimeLimit = given.IngestTimeLimit,
        });
        return new OfflinePipelineSettings(pipeline, EnvironmentSettings.GivenNames(section, NotUsedOffline.ContainsKey));
    }
}
