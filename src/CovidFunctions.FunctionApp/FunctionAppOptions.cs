using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Azure.Configuration;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Notifications;
using Microsoft.Extensions.Configuration;

namespace CovidFunctions.FunctionApp;

/// <summary>
/// The Function app's option sections (<c>Pipeline</c>, <c>Webhooks</c>, <c>ApiKeys</c>, <c>Metering</c>), bound and validated once when
/// the app starts: a value that does not convert, is out of range, or a key no option reads (a typo such as
/// <c>Pipeline__MaxIngestAttemps</c>, which would otherwise leave the default silently) stops start-up with an
/// <see cref="InvalidOperationException"/> naming the setting, instead of failing the first study, delivery or mint.
/// </summary>
public sealed record FunctionAppOptions(PipelineOptions Pipeline, FunctionAppSettings Host, WebhookOptions Webhooks, ApiKeyOptions ApiKeys, MeteringOptions Metering)
{
    /// <summary>Keys of the <c>Webhooks</c> section read by name rather than bound (<see cref="FunctionAppServices.WebhookVaultUriSetting"/>).</summary>
    private static readonly string[] WebhookKeysReadByName = [FunctionAppServices.WebhookVaultUriSetting.Split(':')[1]];

    public static FunctionAppOptions Load(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        UnknownSettings.Reject(configuration.GetSection(PipelineOptions.SectionName), [], typeof(PipelineOptions), typeof(FunctionAppSettings));
        UnknownSettings.Reject(configuration.GetSection(WebhookOptions.SectionName), WebhookKeysReadByName, typeof(WebhookOptions));
        UnknownSettings.Reject(configuration.GetSection(ApiKeyOptions.SectionName), [], typeof(ApiKeyOptions));
        UnknownSettings.Reject(configuration.GetSection(MeteringOptions.SectionName), [], typeof(MeteringOptions));

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
        return new FunctionAppOptions(pipeline, host, webhooks, apiKeys, metering);
    }
}
