using System.Text.Json.Nodes;
using CovidFunctions.Pipeline;

namespace CovidFunctions.Deployment.Tests;

/// <summary>The properties the design depends on, read from the compiled ARM JSON.</summary>
[Collection(CompiledTemplateCollection.Name)]
public sealed class ResourceConfigurationTests(CompiledTemplateFixture fixture)
{
    private ArmTemplate Storage => fixture.Main.Module("storage");

    [Fact]
    public void StorageAccount_Properties_AllowNoSharedKeyNoPublicBlobsAndTls12()
    {
        var properties = Storage.ResourcesOfType("Microsoft.Storage/storageAccounts").Single()["properties"]!;

        Assert.False((bool)properties["allowSharedKeyAccess"]!);
        Assert.False((bool)properties["allowBlobPublicAccess"]!);
        Assert.Equal("TLS1_2", (string?)properties["minimumTlsVersion"]);
        Assert.True((bool)properties["supportsHttpsTrafficOnly"]!);
        Assert.True((bool)properties["defaultToOAuthAuthentication"]!);
    }

    [Fact]
    public void StorageAccount_Children_HaveThePipelineContainersQueuesAndTables()
    {
        Assert.Superset(
            new HashSet<string> { "ct-uploads", "slices", "results", "quarantine", "dead-letters", "eventgrid-deadletter" },
            LoopNames("Microsoft.Storage/storageAccounts/blobServices/containers"));
        Assert.Superset(
            new HashSet<string> { "slice-chunks", "slice-results", "slice-chunks-poison", "slice-results-poison" },
            LoopNames("Microsoft.Storage/storageAccounts/queueServices/queues"));
        Assert.Equal(
            new HashSet<string> { "Studies", "SliceResults", "Usage", "WebhookSubscriptions", "WebhookDeliveries", "ApiKeys", "RateLimits" },
            LoopNames("Microsoft.Storage/storageAccounts/tableServices/tables"));
        var containers = Storage.ResourcesOfType("Microsoft.Storage/storageAccounts/blobServices/containers").Where(r => r["copy"] is not null);
        Assert.All(containers, c => Assert.Equal("None", (string?)c["properties"]!["publicAccess"]));
    }

    [Fact]
    public void StorageAccount_Children_AreEveryContainerAndTableTheCodeNames()
    {
        // In Azure nothing calls PipelineStorage.EnsureCreatedAsync: a container or table the code writes to but bicep
        // does not create fails at run time (the dead-letters container once did). Queues are not compared: the
        // code's logical request queue is the Service Bus queue slice-chunks in Azure (checked above).
        Assert.Superset(
            PipelineNames.Containers.ToHashSet(StringComparer.Ordinal),
            LoopNames("Microsoft.Storage/storageAccounts/blobServices/containers"));
        Assert.Equal(
            PipelineNames.Tables.ToHashSet(StringComparer.Ordinal),
            LoopNames("Microsoft.Storage/storageAccounts/tableServices/tables"));
        Assert.Contains(PipelineNames.SliceResultsQueue, LoopNames("Microsoft.Storage/storageAccounts/queueServices/queues"));
    }

    [Fact]
    public void ServiceBus_Namespace_DisablesLocalAuthentication()
    {
        var properties = fixture.Main.Module("servicebus").ResourcesOfType("Microsoft.ServiceBus/namespaces").Single()["properties"]!;

        Assert.True((bool)properties["disableLocalAuth"]!);
        Assert.Equal("1.2", (string?)properties["minimumTlsVersion"]);
    }

    [Fact]
    public void ServiceBus_SliceQueue_DetectsDuplicatesAndDeadLetters()
    {
        var module = fixture.Main.Module("servicebus");
        var queue = module.ResourcesOfType("Microsoft.ServiceBus/namespaces/queues").Single(q => module.Resolve(q["name"]).EndsWith("/slice-chunks", StringComparison.Ordinal));
        var properties = queue["properties"]!;

        Assert.True((bool)properties["requiresDuplicateDetection"]!);
        Assert.Equal("param:duplicateDetectionWindow", module.Resolve(properties["duplicateDetectionHistoryTimeWindow"]));
        // One more than the scorer's count (ConfigurationContractTests.Scorer_MaxDeliveryCount_IsOneLessThanTheSliceQueuesMaxDeliveryCount).
        Assert.Equal("add(param:sliceMaxDeliveryCount, 1)", module.Resolve(properties["maxDeliveryCount"]));
        Assert.Equal("param:sliceLockDuration", module.Resolve(properties["lockDuration"]));
        Assert.True((bool)properties["deadLetteringOnMessageExpiration"]!);
        // KEDA's azure-servicebus scaler counts messages, not sessions: a session queue would not scale right.
        Assert.False((bool)properties["requiresSession"]!);
        var defaults = fixture.Main.Root["parameters"]!;
        Assert.Equal("PT1H", (string?)defaults["duplicateDetectionWindow"]!["defaultValue"]);
        Assert.Equal(5, (int)defaults["sliceMaxDeliveryCount"]!["defaultValue"]!);
        // 30 s, as the Storage queue's Scorer:MessageLockDuration: what a dead replica's chunk waits before its next
        // delivery. Safe because the processor renews a live replica's lock for up to 30 min
        // (ServiceBusTransportTests.Both_transports_renew_a_running_message_for_the_same_bound).
        Assert.Equal("PT30S", (string?)defaults["sliceLockDuration"]!["defaultValue"]);
    }

    [Fact]
    public void Scorer_ScaleRule_IsKedaServiceBusOnTheSliceQueueWithIdentityFromZero()
    {
        var module = fixture.Main.Module("containerapps");
        var scale = module.ResourcesOfType("Microsoft.App/containerApps").Single()["properties"]!["template"]!["scale"]!;

        Assert.Equal(0, (int)scale["minReplicas"]!);
        Assert.Equal("param:scorerMaxReplicas", module.Resolve(scale["maxReplicas"]));
        var rule = Assert.Single(scale["rules"]!.AsArray())!;
        var custom = rule["custom"]!;
        Assert.Equal("azure-servicebus", (string?)custom["type"]);
        Assert.Equal("slice-chunks", module.Resolve(custom["metadata"]!["queueName"]));
        Assert.StartsWith("Microsoft.ManagedIdentity/userAssignedIdentities(", module.Resolve(custom["identity"]), StringComparison.Ordinal);
        Assert.Equal(fixture.Main.Resolve(fixture.Main.Root["variables"]!["names"]!["serviceBus"]), module.Resolve(custom["metadata"]!["namespace"]));
        Assert.Equal("string(param:scorerMessagesPerReplica)", module.Resolve(custom["metadata"]!["messageCount"]));

        // The queue KEDA watches is the queue the Function app sends chunks to.
        var functionApp = fixture.Main.Module("functionapp");
        var settings = functionApp.ResourcesOfType("Microsoft.Web/sites/config").Single()["properties"]!;
        Assert.Equal("slice-chunks", functionApp.Resolve(settings["Pipeline__SliceQueueName"]));
    }

    [Fact]
    public void Scorer_ChunkResults_GoToTheStorageQueueTheFunctionAppRelays()
    {
        var containerApps = fixture.Main.Module("containerapps");
        var env = containerApps.ResourcesOfType("Microsoft.App/containerApps").Single()["properties"]!["template"]!["containers"]![0]!["env"]!.AsArray()
            .ToDictionary(e => (string)e!["name"]!, e => containerApps.Resolve(e!["value"]));
        var functionApp = fixture.Main.Module("functionapp");
        var settings = functionApp.ResourcesOfType("Microsoft.Web/sites/config").Single()["properties"]!;
        var storageName = fixture.Main.Resolve(fixture.Main.Root["variables"]!["names"]!["storage"]);

        // Default transport: the Storage queue slice-results on the Function app's own account, which the relay's
        // queue trigger (PipelineNames.SliceResultsQueue, connection AzureWebJobsStorage) listens on.
        Assert.Equal("StorageQueue", (string?)fixture.Main.Root["parameters"]!["resultTransport"]!["defaultValue"]);
        Assert.Equal("param:resultTransport", env["Scorer__ResultTransport"]);
        Assert.Equal("param:resultTransport", functionApp.Resolve(settings["Pipeline__ResultTransport"]));
        Assert.Equal("slice-results", env["Scorer__ResultQueueName"]);
        // The relay's queue is the trigger attribute's constant, not a setting: an app setting could not move it.
        Assert.Null(settings["Pipeline__ResultQueueName"]);
        Assert.Equal($"reference(Microsoft.Storage/storageAccounts({storageName})).primaryEndpoints.queue", env["Scorer__QueueServiceUri"]);
        Assert.Equal(storageName, functionApp.Resolve(settings["AzureWebJobsStorage__accountName"]));

        // The scorer may only add messages, and only to that queue; the Function identity processes it through its
        // account-wide Storage Queue Data Contributor (which the Durable hub's run-time queues need anyway).
        var storage = fixture.Main.Module("storage");
        var sender = storage.ResourcesOfType("Microsoft.Authorization/roleAssignments")
            .Single(r => storage.Resolve(r["properties"]!["roleDefinitionId"]).Contains("c6a89b2d-59bc-44d0-9896-0f6e12d7b80a", StringComparison.OrdinalIgnoreCase));
        Assert.Equal($"Microsoft.Storage/storageAccounts/queueServices/queues({storageName}/default/slice-results)", storage.Resolve(sender["scope"]));
        Assert.Equal("equals(param:resultTransport, StorageQueue)", storage.Resolve(sender["condition"]));
    }

    [Fact]
    public void Scorer_Runs_OnTheSelectedServerlessGpuProfile()
    {
        var module = fixture.Main.Module("containerapps");
        var environment = module.ResourcesOfType("Microsoft.App/managedEnvironments").Single();
        var app = module.ResourcesOfType("Microsoft.App/containerApps").Single();

        var profiles = environment["properties"]!["workloadProfiles"]!.AsArray();
        var profileName = module.Resolve(app["properties"]!["workloadProfileName"]);
        var gpu = profiles.Single(p => module.Resolve(p!["name"]) == profileName)!;
        Assert.Equal("param:gpuProfileType", module.Resolve(gpu["workloadProfileType"]));
        var allowed = fixture.Main.Root["parameters"]!["gpuProfileType"]!["allowedValues"]!.AsArray().Select(v => (string)v!);
        Assert.Equal(["Consumption-GPU-NC8as-T4", "Consumption-GPU-NC24-A100"], allowed);
        Assert.Equal("azure-monitor", (string?)environment["properties"]!["appLogsConfiguration"]!["destination"]);
    }

    [Fact]
    public void Scorer_Probes_StartupWaitsForReadinessLivenessForTheHostAndMatchTheImageHealthcheck()
    {
        var module = fixture.Main.Module("containerapps");
        var container = module.ResourcesOfType("Microsoft.App/containerApps").Single()["properties"]!["template"]!["containers"]![0]!;
        var probes = container["probes"]!.AsArray();
        var scorerApp = File.ReadAllText(Path.Combine(CovidFunctions.TestHelpers.TestData.RepoRoot, "src", "CovidFunctions.Scorer", "ScorerApp.cs"));

        Assert.Equal(["Startup", "Liveness"], probes.Select(p => (string)p!["type"]!));
        Assert.All(probes, p => Assert.Equal("8080", module.Resolve(p!["httpGet"]!["port"])));
        var startup = probes[0]!;
        var liveness = probes[1]!;

        // /healthz answers as soon as the host listens, before the models load; /readyz only after warm-up
        // (ScorerReadiness). A startup probe on /healthz passed at once and bounded nothing: a replica stuck loading the
        // models or initialising CUDA was never restarted.
        Assert.Equal("/readyz", (string?)startup["httpGet"]!["path"]);
        Assert.Equal("/healthz", (string?)liveness["httpGet"]!["path"]);
        Assert.Contains("MapGet(\"/readyz\"", scorerApp, StringComparison.Ordinal);
        Assert.Contains("MapGet(\"/healthz\"", scorerApp, StringComparison.Ordinal);
        Assert.True((int)startup["periodSeconds"]! * (int)startup["failureThreshold"]! >= 120, "startup budget must cover model load and the first CUDA inference");
        Assert.Contains("8080/healthz", File.ReadAllText(Path.Combine(CovidFunctions.TestHelpers.TestData.RepoRoot, "infra", "scorer", "Dockerfile")), StringComparison.Ordinal);
    }

    [Fact]
    public void Scorer_Probes_AreWithinTheRangesContainerAppsAccepts()
    {
        // Microsoft.App ContainerAppProbe: failureThreshold 1-10, periodSeconds 1-240, timeoutSeconds 1-240,
        // initialDelaySeconds 0-60, successThreshold 1 for liveness and startup. Anything else is refused when the
        // revision is created, so the whole deployment failed: the startup probe had failureThreshold 30 (10 s x 30).
        var module = fixture.Main.Module("containerapps");
        var probes = module.ResourcesOfType("Microsoft.App/containerApps").Single()["properties"]!["template"]!["containers"]!.AsArray()
            .SelectMany(c => c!["probes"]!.AsArray()).ToList();
        var ranges = new Dictionary<string, (int Min, int Max)>(StringComparer.Ordinal)
        {
            ["failureThreshold"] = (1, 10),
            ["periodSeconds"] = (1, 240),
            ["timeoutSeconds"] = (1, 240),
            ["initialDelaySeconds"] = (0, 60),
            ["successThreshold"] = (1, 1),
        };

        Assert.NotEmpty(probes);
        var problems = (from probe in probes
                        from range in ranges
                        let value = probe![range.Key]
                        where value is not null && ((int)value < range.Value.Min || (int)value > range.Value.Max)
                        select $"{probe["type"]} probe: {range.Key} {value} outside {range.Value.Min}-{range.Value.Max}").ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void FunctionApp_Site_IsFlexConsumptionDotnetIsolated10WithIdentityDeploymentStorage()
    {
        var module = fixture.Main.Module("functionapp");
        var plan = module.ResourcesOfType("Microsoft.Web/serverfarms").Single();
        var site = module.ResourcesOfType("Microsoft.Web/sites").Single();
        var config = site["properties"]!["functionAppConfig"]!;

        Assert.Equal("FlexConsumption", (string?)plan["sku"]!["tier"]);
        Assert.Equal("functionapp,linux", (string?)site["kind"]);
        Assert.True((bool)site["properties"]!["httpsOnly"]!);
        Assert.Equal("dotnet-isolated", (string?)config["runtime"]!["name"]);
        Assert.Equal("10.0", (string?)config["runtime"]!["version"]);
        var storage = config["deployment"]!["storage"]!;
        Assert.Equal("blobContainer", (string?)storage["type"]);
        Assert.Equal("UserAssignedIdentity", (string?)storage["authentication"]!["type"]);
        Assert.Null(storage["authentication"]!["storageAccountConnectionStringName"]);
        Assert.NotNull(config["scaleAndConcurrency"]!["maximumInstanceCount"]);
        var basicAuth = module.ResourcesOfType("Microsoft.Web/sites/basicPublishingCredentialsPolicies").ToList();
        Assert.Equal(2, basicAuth.Count);
        Assert.All(basicAuth, p => Assert.False((bool)p["properties"]!["allow"]!));
    }

    [Theory]
    [InlineData("keyvault")]
    [InlineData("webhook-keyvault")]
    public void KeyVault_EachVault_UsesRbacSoftDeletePurgeProtectionAndNoDeploymentAccess(string moduleName)
    {
        var properties = fixture.Main.Module(moduleName).ResourcesOfType("Microsoft.KeyVault/vaults").Single()["properties"]!;

        Assert.True((bool)properties["enableRbacAuthorization"]!);
        Assert.True((bool)properties["enableSoftDelete"]!);
        Assert.True((bool)properties["enablePurgeProtection"]!);
        Assert.False((bool)properties["enabledForDeployment"]!);
        Assert.False((bool)properties["enabledForDiskEncryption"]!);
        Assert.False((bool)properties["enabledForTemplateDeployment"]!);
        Assert.Null(properties["accessPolicies"]);
        Assert.DoesNotContain(fixture.Main.AllResources(), r => ((string)r.Resource["type"]!).StartsWith("Microsoft.KeyVault/vaults/secrets", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public void Registry_Access_IsIdentityOnly()
    {
        var properties = fixture.Main.Module("registry").ResourcesOfType("Microsoft.ContainerRegistry/registries").Single()["properties"]!;

        Assert.False((bool)properties["adminUserEnabled"]!);
        Assert.False((bool)properties["anonymousPullEnabled"]!);
    }

    [Fact]
    public void EventGrid_SystemTopic_WatchesTheStorageAccount()
    {
        var module = fixture.Main.Module("eventgrid");
        var topic = module.ResourcesOfType("Microsoft.EventGrid/systemTopics").Single();

        Assert.Equal("Microsoft.Storage.StorageAccounts", (string?)topic["properties"]!["topicType"]);
        Assert.StartsWith("Microsoft.Storage/storageAccounts(", module.Resolve(topic["properties"]!["source"]), StringComparison.Ordinal);
    }

    [Fact]
    public void EventGrid_OptionalSubscription_FiltersBlobCreatedOnUploadsAndIsConditional()
    {
        var deployment = fixture.Main.Module("eventgrid-subscription");
        Assert.Equal("not(empty(param:blobTriggerWebhookUrl))", fixture.Main.Resolve(deployment.Deployment!["condition"]));

        var subscription = deployment.ResourcesOfType("Microsoft.EventGrid/systemTopics/eventSubscriptions").Single()["properties"]!;
        Assert.Equal(["Microsoft.Storage.BlobCreated"], subscription["filter"]!["includedEventTypes"]!.AsArray().Select(v => (string)v!));
        Assert.Equal("/blobServices/default/containers/ct-uploads/", deployment.Resolve(subscription["filter"]!["subjectBeginsWith"]));
        Assert.Equal("WebHook", (string?)subscription["destination"]!["endpointType"]);
        Assert.Equal("securestring", (string?)deployment.Root["parameters"]!["webhookUrl"]!["type"]);
    }

    private HashSet<string> LoopNames(string type)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var resource in Storage.ResourcesOfType(type))
        {
            if (resource["copy"] is JsonObject)
            {
                names.UnionWith(Storage.CopyItems(resource));
            }
            else
            {
                var name = Storage.Resolve(resource["name"]);
                names.Add(name[(name.LastIndexOf('/') + 1)..]);
            }
        }

        return names;
    }
}
