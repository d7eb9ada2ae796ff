using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using CovidFunctions.Dicom.Deidentification;
using CovidFunctions.FunctionApp.Functions;
using CovidFunctions.Imaging;
using CovidFunctions.Imaging.Series;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Azure.Configuration;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Notifications;
using Microsoft.Extensions.Configuration;

namespace CovidFunctions.FunctionApp;

/// <summary>
/// The Function app's option sections (<c>Pipeline</c>, <c>Webhooks</c>, <c>ApiKeys</c>, <c>Metering</c>, <c>Imaging</c>, <c>Deidentification</c>), bound and validated once when
/// the app starts: a value that does not convert, is out of range, or a key no option reads (a typo such as
/// <c>Pipeline__MaxIngestAttemps</c>, which would otherwise leave the default silently) stops start-up with an
/// <see cref="InvalidOperationException"/> naming the setting, instead of failing the first study, delivery or mint.
/// <c>Assembly</c> is the <c>Imaging</c> section: how ingest assembles series and how far it expands zips.
/// <c>Pipeline:IngestTimeLimit</c> is also checked against the host's <c>functionTimeout</c> (<see cref="HostFunctionTimeout"/>),
/// and <c>Pipeline:StuckStudyAge</c> against ingest's own bound (<see cref="PipelineOptions.IngestBound"/>).
/// </summary>
public sealed record FunctionAppOptions(PipelineOptions Pipeline, FunctionAppSettings Host, WebhookOptions Webhooks, ApiKeyOptions ApiKeys, MeteringOptions Metering, SeriesAssemblyOptions Assembly)
{
    /// <summary>Keys of the <c>Webhooks</c> section read by name rather than bound (<see cref="FunctionAppServices.WebhookVaultUriSetting"/>).</summary>
    private static readonly string[] WebhookKeysReadByName = [FunctionAppServices.WebhookVaultUriSetting.Split(':')[1]];

    /// <summary>Keys of the <c>Deidentification</c> section <see cref="DeidKeyProvider"/> reads: where the key comes from, nothing else.</summary>
    private static readonly string[] DeidentificationKeysReadByName = ["HmacKey", "KeyFile", "SecretName"];

    /// <summary>The options from <paramref name="configuration"/>, with the host's function timeout read from the host.json next to this app.</summary>
    public static FunctionAppOptions Load(IConfiguration configuration) => Load(configuration, HostFunctionTimeout.HostJsonBesideTheApp);

    /// <summary><see cref="Load(IConfiguration)"/> with the host's function timeout read from <paramref name="hostJsonPath"/> (unless overridden by <see cref="HostFunctionTimeout.OverrideSetting"/>).</summary>
    public static FunctionAppOptions Load(IConfiguration configuration, string hostJsonPath)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(hostJsonPath);
        UnknownSettings.Reject(configuration.GetSection(PipelineOptions.SectionName), [], typeof(PipelineOptions), typeof(FunctionAppSettings));
        UnknownSettings.Reject(configuration.GetSection(WebhookOptions.SectionName), WebhookKeysReadByName, typeof(WebhookOptions));
        RejectRetryPollInterval(configuration.GetSection(WebhookOptions.SectionName));
        UnknownSettings.Reject(configuration.GetSection(ApiKeyOptions.SectionName), [], typeof(ApiKeyOptions));
        UnknownSettings.Reject(configuration.GetSection(MeteringOptions.SectionName), [], typeof(MeteringOptions));

        // Ingest de-identifies with a fixed profile: an option set here would be believed in force and is refused, by name.
        var deidentification = configuration.GetSection(DeidentificationOptions.SectionName);
        IngestSettings.RejectDeidentificationOptions(deidentification);
        UnknownSettings.Reject(deidentification, DeidentificationKeysReadByName);
        var assembly = IngestSettings.LoadImaging(configuration.GetSection(ImagingOptions.SectionName));

        // Get<T> throws naming the key ("Failed to convert configuration value at 'Pipeline:ChunkSize' ...") on a value
        // that does not convert; Validate names the key of a value out of range.
        var pipeline = configuration.GetSection(PipelineOptions.SectionName).Get<PipelineOptions>() ?? new PipelineOptions();
        var host = configuration.GetSection(PipelineOptions.SectionName).Get<FunctionAppSettings>() ?? new FunctionAppSettings();
        var webhooks = configuration.GetSection(WebhookOptions.SectionName).Get<WebhookOptions>() ?? new WebhookOptions();
        var apiKeys = configuration.GetSection(ApiKeyOptions.SectionName).Get<ApiKeyOptions>() ?? new ApiKeyOptions();
        var metering = configuration.GetSection(MeteringOptions.SectionName).Get<MeteringOptions>() ?? new MeteringOptions();
        pipeline.Validate();
        webhooks.Validate();
        apiKeys.Validate();
        metering.Validate();
        RequireIngestInsideTheInvocation(pipeline, HostFunctionTimeout.Read(configuration, hostJsonPath));
        RequireWatchdogBeyondIngest(pipeline);
        return new FunctionAppOptions(pipeline, host, webhooks, apiKeys, metering, assembly);
    }

    /// <summary>
    /// An ingest attempt must reach <see cref="PipelineOptions.IngestTimeLimit"/>, and record itself as a failed, counted
    /// attempt, before the host cuts its invocation at <c>functionTimeout</c>: the host's cut is a cancellation, which
    /// ingest takes for a host stop (not counted), so an upload cut there is retried by the trigger and the minute sweep
    /// until the 6-h watchdog fails it with no word of the timeout (docs/design/failure-semantics.md). The minute sweep
    /// plans the units it ingests in one invocation against <see cref="IngestFunctions.InvocationBudget"/> (60 min), so a
    /// shorter timeout would let it start a unit the host then cuts. Before, both were only documented: a limit of 60 min
    /// or more, 0 (none), or an <c>AzureFunctionsJobHost__functionTimeout</c> below them started and failed uploads that way.
    /// An unbounded timeout (<c>-1</c>) cuts nothing, so nothing is required of the limit.
    /// </summary>
    private static void RequireIngestInsideTheInvocation(PipelineOptions pipeline, HostFunctionTimeout timeout)
    {
        if (timeout.Limit is not { } functionTimeout)
        {
            return;
        }

        var limit = pipeline.IngestTimeLimit;
        const string Why = "an attempt must reach its limit, and record itself as a failed attempt, before the host cuts the invocation (the host's cut is not counted: the upload would be retried until the 6-h watchdog fails it)";
        if (limit == TimeSpan.Zero)
        {
            throw new InvalidOperationException(
                $"{PipelineOptions.SectionName}:{nameof(PipelineOptions.IngestTimeLimit)} (Pipeline__IngestTimeLimit) is 0 (no limit), but the host cuts every invocation at functionTimeout {Format(functionTimeout)} ({timeout.Source}): {Why}. Set Pipeline__IngestTimeLimit below {Format(functionTimeout)} (the default is {Format(new PipelineOptions().IngestTimeLimit)}).");
        }

        if (limit >= functionTimeout)
        {
            throw new InvalidOperationException(
                $"{PipelineOptions.SectionName}:{nameof(PipelineOptions.IngestTimeLimit)} (Pipeline__IngestTimeLimit) is {Format(limit)}, not below the host's functionTimeout {Format(functionTimeout)} ({timeout.Source}): {Why}. Set Pipeline__IngestTimeLimit below {Format(functionTimeout)}, or raise functionTimeout.");
        }

        if (functionTimeout < IngestFunctions.InvocationBudget)
        {
            throw new InvalidOperationException(
                $"The host's functionTimeout {Format(functionTimeout)} ({timeout.Source}) is below the {Format(IngestFunctions.InvocationBudget)} the minute upload sweep plans each invocation for (IngestFunctions.InvocationBudget, host.json's functionTimeout): it would start another upload whose attempt, at Pipeline__IngestTimeLimit {Format(limit)}, the host cuts before it can record itself. Set functionTimeout to at least {Format(IngestFunctions.InvocationBudget)}.");
        }
    }

    /// <summary>
    /// The stuck-study watchdog (<see cref="PipelineOptions.StuckStudyAge"/>, the hourly sweep) fails a study still
    /// processing that long after it was created, whatever its ingest is doing; ingest ends by itself after
    /// <see cref="PipelineOptions.IngestBound"/>. A watchdog at or below that bound fails as <c>stuck-processing</c> a study whose ingest
    /// is still retrying within its limit (its last error lost behind the watchdog's reason), so start-up refuses it,
    /// naming both settings and the bound, as <c>covidfn up</c> does (ce46a51). Before, the Function app accepted any
    /// value: the defaults (3 × 50 min under 6 h) were safe, a lowered StuckStudyAge or a raised limit or attempt count
    /// was not. <c>0</c> (no watchdog) leaves nothing to reconcile.
    /// </summary>
    private static void RequireWatchdogBeyondIngest(PipelineOptions pipeline)
    {
        if (pipeline.IngestBound() is not { } bound || pipeline.StuckStudyAge == TimeSpan.Zero || pipeline.StuckStudyAge > bound)
        {
            return;
        }

        throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
            $"{PipelineOptions.SectionName}:{nameof(PipelineOptions.StuckStudyAge)} (Pipeline__StuckStudyAge) is {Format(pipeline.StuckStudyAge)}, not longer than ingest's own bound, Pipeline__MaxIngestAttempts ({pipeline.MaxIngestAttempts}) × Pipeline__IngestTimeLimit ({Format(pipeline.IngestTimeLimit)}) = {Format(bound)}: the watchdog would fail as stuck-processing a study whose ingest is still retrying within its limit. Set Pipeline__StuckStudyAge above {Format(bound)} (the default is {Format(new PipelineOptions().StuckStudyAge)}; 0 turns the watchdog off), or lower Pipeline__MaxIngestAttempts or Pipeline__IngestTimeLimit."));
    }

    private static string Format(TimeSpan value) => value.ToString("c", CultureInfo.InvariantCulture);

    /// <summary>
    /// <see cref="WebhookOptions.RetryPollInterval"/> is bound (WebhookOptions is shared with covidfn up) but this app
    /// never uses it: its retries run on WebhookFunctions' 30 s timer. Before, it was accepted and range-checked, and
    /// changed nothing.
    /// </summary>
    private static void RejectRetryPollInterval(IConfigurationSection webhooks) =>
        IgnoredSettings.Reject(
            webhooks,
            [nameof(WebhookOptions.RetryPollInterval)],
            "the Function app",
            "it retries due webhook deliveries on its own 30 s timer (WebhookFunctions.RetryWebhookDeliveries). The interval is covidfn up's retry loop's, which polls every 10 s and reads no Webhooks__* setting. Remove the setting.");
}

/// <summary>
/// The Functions host's <c>functionTimeout</c> as this worker process sees it, first match wins: the app setting
/// <c>AzureFunctionsJobHost__functionTimeout</c> (the host's own override of a host.json value; app settings are the
/// environment of the worker process too), else the host.json the Functions SDK copies next to the worker assembly (the
/// root of the deployed package, which the host reads). A host.json that is missing, unreadable, not JSON, or without a
/// <c>functionTimeout</c> stops start-up naming the file: the repository's host.json always sets one, so its absence
/// means the app does not run from its build output, and the host's plan default (30 min on Flex Consumption, 5 min on
/// Consumption) cannot be told from here. Guessing one would refuse a sound limit or pass an unsound one, silently;
/// the override setting is the way to state the timeout where no host.json is.
/// </summary>
/// <param name="Limit">The timeout; null when unbounded (<c>-1</c>).</param>
/// <param name="Source">Where it was read (the setting, or host.json's path), for messages.</param>
public sealed record HostFunctionTimeout(TimeSpan? Limit, string Source)
{
    /// <summary>The host's override of host.json's <c>functionTimeout</c> (<c>AzureFunctionsJobHost__functionTimeout</c>).</summary>
    public const string OverrideSetting = "AzureFunctionsJobHost:functionTimeout";

    /// <summary>The host.json in this app's own folder (the SDK copies it to the build and publish output).</summary>
    public static string HostJsonBesideTheApp => Path.Combine(AppContext.BaseDirectory, "host.json");

    private static readonly JsonDocumentOptions HostJsonOptions = new() { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    /// <summary>The timeout from <see cref="OverrideSetting"/>, else from <paramref name="hostJsonPath"/>.</summary>
    /// <exception cref="InvalidOperationException">The value is no duration, or host.json is missing, unreadable, not JSON or sets none (named).</exception>
    public static HostFunctionTimeout Read(IConfiguration configuration, string hostJsonPath)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(hostJsonPath);
        if (configuration[OverrideSetting] is { Length: > 0 } overridden)
        {
            return Parse(overridden, "AzureFunctionsJobHost__functionTimeout");
        }

        var source = $"host.json at '{hostJsonPath}'";
        const string Remedy = "Run the app from its build or publish output, where the Functions SDK puts host.json, or set AzureFunctionsJobHost__functionTimeout.";
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(hostJsonPath), documentOptions: HostJsonOptions);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new InvalidOperationException($"The host's functionTimeout cannot be read: no {source}, which Pipeline:IngestTimeLimit is checked against. {Remedy}", ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"The host's functionTimeout cannot be read: {source} could not be read ({ex.GetType().Name}: {ex.Message}). {Remedy}", ex);
        }
        catch (JsonException ex)
        {
            throw new InvalidOperationException($"The host's functionTimeout cannot be read: {source} is not JSON (line {ex.LineNumber + 1}: {ex.Message}).", ex);
        }

        // The host reads its settings case-insensitively.
        var value = root is JsonObject settings
            ? settings.FirstOrDefault(p => string.Equals(p.Key, "functionTimeout", StringComparison.OrdinalIgnoreCase)).Value
            : null;
        if (value is null)
        {
            throw new InvalidOperationException(
                $"{source} sets no functionTimeout: the host would apply its plan's default (30 min on Flex Consumption, 5 min on Consumption), which Pipeline:IngestTimeLimit cannot be checked against. Set functionTimeout in host.json (the repository's is 01:00:00) or AzureFunctionsJobHost__functionTimeout.");
        }

        return Parse(value is JsonValue text && text.TryGetValue<string>(out var s) ? s : value.ToJsonString(), source);
    }

    private static HostFunctionTimeout Parse(string value, string source)
    {
        var trimmed = value.Trim();
        if (trimmed == "-1")
        {
            return new HostFunctionTimeout(null, source);
        }

        if (!TimeSpan.TryParse(trimmed, CultureInfo.InvariantCulture, out var timeout) || timeout <= TimeSpan.Zero)
        {
            throw new InvalidOperationException($"functionTimeout '{value}' ({source}) is not a positive duration (hh:mm:ss) or -1 (unbounded).");
        }

        return new HostFunctionTimeout(timeout, source);
    }
}
