using System.Reflection;
using System.Text.Json.Nodes;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Orchestration;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.FunctionApp.Tests;

/// <summary>
/// The Worker SDK's build output is what the Functions host indexes: functions.metadata must list every function
/// with the trigger the deployment relies on (the Event Grid blob trigger Flex Consumption requires, the Durable
/// triggers under the names the orchestrator calls, the queue relay, the timers, Function-key HTTP endpoints, the
/// Admin-level API key management), and extensions.json must register the host-side extensions those triggers need
/// (Timer and HTTP are built into the host).
/// </summary>
public sealed class FunctionMetadataTests
{
    private static readonly string OutputDirectory = typeof(FunctionMetadataTests).Assembly
        .GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "FunctionAppOutput").Value!;

    private static JsonArray Functions => JsonNode.Parse(File.ReadAllText(Path.Combine(OutputDirectory, "functions.metadata")))!.AsArray();

    private static JsonObject Function(string name) =>
        Functions.Select(f => f!.AsObject()).SingleOrDefault(f => (string?)f["name"] == name)
        ?? throw new Xunit.Sdk.XunitException($"functions.metadata has no function '{name}' (has: {string.Join(", ", Functions.Select(f => (string?)f!["name"]))})");

    private static JsonObject Trigger(string name) =>
        Function(name)["bindings"]!.AsArray().Select(b => b!.AsObject()).Single(b => ((string?)b["type"])!.EndsWith("Trigger", StringComparison.Ordinal));

    [Fact]
    public void Metadata_IngestIsAnEventGridBlobTriggerOnTheUploadsContainer()
    {
        var trigger = Trigger("IngestUpload");
        Assert.Equal("blobTrigger", (string?)trigger["type"]);
        Assert.Equal($"{PipelineNames.UploadsContainer}/{{name}}", (string?)trigger["path"]);
        Assert.Equal("EventGrid", (string?)trigger["source"]);
        Assert.Equal("AzureWebJobsStorage", (string?)trigger["connection"]);
    }

    [Fact]
    public void Metadata_OrchestratorAndActivitiesHaveTheNamesTheOrchestratorCalls()
    {
        Assert.Equal("orchestrationTrigger", (string?)Trigger(DurableStudyOrchestrationClient.OrchestratorName)["type"]);
        foreach (var (name, _) in StudyOrchestration.Activities)
        {
            Assert.Equal("activityTrigger", (string?)Trigger(name)["type"]);
        }
    }

    [Fact]
    public void Metadata_RelayIsAQueueTriggerOnSliceResults()
    {
        var trigger = Trigger("RelayChunkResult");
        Assert.Equal("queueTrigger", (string?)trigger["type"]);
        Assert.Equal(PipelineNames.SliceResultsQueue, (string?)trigger["queueName"]);
        Assert.Equal("AzureWebJobsStorage", (string?)trigger["connection"]);
    }

    [Fact]
    public void Metadata_TimersSweepFolderUploadsAndRetention_AndRetryWebhooks()
    {
        Assert.Equal("timerTrigger", (string?)Trigger("SweepFolderUploads")["type"]);
        Assert.Equal("timerTrigger", (string?)Trigger("SweepUploadRetention")["type"]);
        var retries = Trigger("RetryWebhookDeliveries");
        Assert.Equal("timerTrigger", (string?)retries["type"]);
        Assert.Equal("*/30 * * * * *", (string?)retries["schedule"]);
        Assert.Equal("timerTrigger", (string?)Trigger("CloseUsageMonth")["type"]);
    }

    /// <summary>The operator's key-management functions: only the host master key may mint, list or revoke API keys.</summary>
    private static readonly string[] AdminFunctions = ["MintApiKey", "ListApiKeys", "RevokeApiKey"];

    private static List<(string? Name, JsonObject Trigger)> HttpFunctions() =>
        [.. Functions.Select(f => f!.AsObject())
            .Select(f => (Name: (string?)f["name"], Trigger: f["bindings"]!.AsArray().Select(b => b!.AsObject()).SingleOrDefault(b => (string?)b["type"] == "httpTrigger")))
            .Where(f => f.Trigger is not null)
            .Select(f => (f.Name, f.Trigger!))];

    [Fact]
    public void Metadata_HttpEndpointsRequireAFunctionKey_ApiKeyManagementTheMasterKey()
    {
        var http = HttpFunctions();
        Assert.NotEmpty(http);
        Assert.All(http.Where(f => !AdminFunctions.Contains(f.Name ?? "")), f => Assert.Equal("Function", (string?)f.Trigger["authLevel"]));
        foreach (var name in AdminFunctions)
        {
            var trigger = Trigger(name);
            Assert.Equal("httpTrigger", (string?)trigger["type"]);
            Assert.Equal("Admin", (string?)trigger["authLevel"]);
            Assert.StartsWith("apikeys", (string?)trigger["route"], StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Metadata_ClosingAMonthIsAFunctionKeyPostOnTheUsageRoute()
    {
        // The operator's close of a month the timer missed: a Function-key route like the rest of the results API (the
        // X-Api-Key must then be an all-tenant key), next to the CloseUsageMonth timer.
        var trigger = Trigger("CloseUsage");
        Assert.Equal(("httpTrigger", "Function", "usage/{month}/close"), ((string?)trigger["type"], (string?)trigger["authLevel"], (string?)trigger["route"]));
        Assert.Equal(["post"], trigger["methods"]!.AsArray().Select(m => (string?)m));
    }

    [Fact]
    public void Metadata_NoRouteClaimsTheHostsReservedAdminOrRuntimePrefix()
    {
        // The host refuses a function whose route starts with "admin" or "runtime" ("The specified route conflicts
        // with one or more built in routes"), whatever host.json's routePrefix is: that is why keys live at /api/apikeys.
        Assert.All(HttpFunctions(), f =>
        {
            var route = ((string?)f.Trigger["route"] ?? f.Name ?? "").Trim('/');
            Assert.False(route.StartsWith("admin", StringComparison.OrdinalIgnoreCase) || route.StartsWith("runtime", StringComparison.OrdinalIgnoreCase), $"{f.Name}: route '{route}'");
        });
    }

    [Fact]
    public void Extensions_RegisterTheHostSideExtensionsOfEveryTriggerType()
    {
        var extensions = JsonNode.Parse(File.ReadAllText(Path.Combine(OutputDirectory, "extensions.json")))!["extensions"]!.AsArray()
            .Select(e => (string?)e!["name"]).ToList();
        Assert.Contains("DurableTask", extensions);
        Assert.Contains("AzureStorageBlobs", extensions);
        Assert.Contains("AzureStorageQueues", extensions);

        // Timer and HTTP triggers are built into the host; nothing else (no extension the project does not use).
        Assert.Empty(extensions.Except(["DurableTask", "AzureStorageBlobs", "AzureStorageQueues", "Startup"]));
    }

    [Fact]
    public void HostJson_DurableHubIsThePipelinesAndQueueSettingsAreBounded()
    {
        var host = JsonNode.Parse(File.ReadAllText(Path.Combine(TestData.RepoRoot, "src", "CovidFunctions.FunctionApp", "host.json")))!;
        Assert.Equal(PipelineNames.TaskHubName, (string?)host["extensions"]!["durableTask"]!["hubName"]);
        Assert.True((int)host["extensions"]!["durableTask"]!["maxConcurrentActivityFunctions"]! > 0);
        Assert.True((int)host["extensions"]!["queues"]!["maxDequeueCount"]! > 1);

        // The transports Base64-encode queue messages (PipelineStorage's queue options); the trigger must decode the same.
        Assert.Equal("base64", (string?)host["extensions"]!["queues"]!["messageEncoding"]);
        Assert.Equal(File.ReadAllText(Path.Combine(TestData.RepoRoot, "src", "CovidFunctions.FunctionApp", "host.json")), File.ReadAllText(Path.Combine(OutputDirectory, "host.json")));
    }
}
