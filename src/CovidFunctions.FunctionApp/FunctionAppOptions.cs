using CovidFunctions.Dicom.Deidentification;
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
/// </summary>
public sealed record FunctionAppOptions(PipelineOptions Pipeline, FunctionAppSettings Host, WebhookOptions Webhooks, ApiKeyOptions ApiKeys, MeteringOptions Metering, SeriesAssemblyOptions Assembly)
{
    /// <summary>Keys of the <c>Webhooks</c> section read by name rather than bound (<see cref="FunctionAppServices.WebhookVaultUriSetting"/>).</summary>
    private static readonly string[] WebhookKeysReadByName = [FunctionAppServices.WebhookVaultUriSetting.Split(':')[1]];

    /// <summary>Keys of the <c>Deidentification</c> section <see cref="DeidKeyProvider"/> reads: where the key comes from, nothing else.</summary>
    private static readonly string[] DeidentificationKeysReadByName = ["HmacKey", "KeyFile", "SecretName"];

    public static FunctionAppOptions Load(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
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
        return new FunctionAppOptions(pipeline, host, webhooks, apiKeys, metering, assembly);
    }

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
