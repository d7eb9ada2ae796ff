using System.Reflection;
using System.Text.Json.Nodes;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// local.settings.sample.json, as the README describes it: every setting the Function app reads is listed, and none
/// that it does not read (a listed setting that changes nothing misleads whoever sets it).
/// </summary>
public sealed class SampleSettingsTests
{
    /// <summary>Bound by the shared option records, but only the local host (<c>covidfn up</c>) uses them, with values it sets in code.</summary>
    private static readonly string[] BoundButNotRead =
    [
        "Pipeline__MaxDeliveryCount", // the relay's poison limit is host.json extensions.queues.maxDequeueCount
        "Webhooks__RetryPollInterval", // the Function app's retry timer runs every 30 s
    ];

    /// <summary>Read by name (DeidKeyProvider, FunctionAppServices), not through an option record.</summary>
    private static readonly string[] ReadByName =
    [
        "AzureWebJobsStorage",
        "ServiceBus__fullyQualifiedNamespace",
        "KeyVault__VaultUri",
        "Webhooks__KeyVaultUri",
        "Deidentification__HmacKey",
        "Deidentification__KeyFile",
        "Deidentification__SecretName",
    ];

    /// <summary>Settings that once were listed though no code read them (the trigger attributes and host.json fix these).</summary>
    private static readonly string[] Unread =
    [
        "Pipeline__UploadContainer",
        "Pipeline__ResultQueueName",
        "Pipeline__TaskHubName",
        "Webhooks__SigningKey",
    ];

    [Fact]
    public void Sample_ListsEverySettingTheFunctionAppReads_AndNoneItDoesNot()
    {
        var sample = JsonNode.Parse(File.ReadAllText(Path.Combine(TestData.RepoRoot, "local.settings.sample.json")))!["Values"]!.AsObject()
            .Select(v => v.Key).ToHashSet(StringComparer.Ordinal);
        var read = Settable<PipelineOptions>(PipelineOptions.SectionName)
            .Concat(Settable<FunctionAppSettings>(PipelineOptions.SectionName))
            .Concat(Settable<WebhookOptions>(WebhookOptions.SectionName))
            .Except(BoundButNotRead)
            .Concat(ReadByName)
            .ToList();

        var missing = read.Where(k => !sample.Contains(k)).ToList();
        var unread = BoundButNotRead.Concat(Unread).Where(sample.Contains).ToList();
        Assert.True(missing.Count == 0, $"local.settings.sample.json lacks {string.Join(", ", missing)}");
        Assert.True(unread.Count == 0, $"local.settings.sample.json lists {string.Join(", ", unread)}, which the Function app does not read");
    }

    private static IEnumerable<string> Settable<T>(string section) =>
        typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.SetMethod is { IsPublic: true })
            .Select(p => $"{section}__{p.Name}");
}
