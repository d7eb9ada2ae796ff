using System.Reflection;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CovidFunctions.Imaging;
using CovidFunctions.Inference;
using CovidFunctions.Pipeline;
using CovidFunctions.Pipeline.Api;
using CovidFunctions.Pipeline.Metering;
using CovidFunctions.Pipeline.Notifications;
using CovidFunctions.Pipeline.Scoring;
using CovidFunctions.TestHelpers;
using Microsoft.Extensions.Configuration;

namespace CovidFunctions.Deployment.Tests;

/// <summary>
/// Every setting the Function app and the scorer read, against what bicep sets (compiled ARM JSON), the scorer image's
/// ENV, local.settings.sample.json and README's Configuration table. A name bicep sets that the code does not read (a
/// typo, or a setting the code dropped) silently leaves the code default in Azure, so every name must be known; and
/// every setting the code reads must be either set by bicep or listed here as left to its code default in Azure, so a
/// new option cannot ship without that decision.
/// </summary>
[Collection(CompiledTemplateCollection.Name)]
public sealed partial class ConfigurationContractTests(CompiledTemplateFixture fixture)
{
    /// <summary>Read by the platform or an SDK, not by our code: allowed where they are set, never required of the code.</summary>
    private static readonly HashSet<string> FunctionAppPlatformSettings = new(StringComparer.Ordinal)
    {
        "FUNCTIONS_WORKER_RUNTIME",
        "AZURE_CLIENT_ID", // DefaultAzureCredential's user-assigned identity
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        "AzureWebJobsStorage__credential", // the host's identity-based connection (triggers, Durable hub)
        "AzureWebJobsStorage__clientId",
    };

    private static readonly HashSet<string> ScorerPlatformSettings = new(StringComparer.Ordinal) { "AZURE_CLIENT_ID" };

    /// <summary>Function app settings bicep leaves to the code, and why (each must be a setting the app reads).</summary>
    private static readonly Dictionary<string, string> FunctionAppCodeDefaults = new(StringComparer.Ordinal)
    {
        ["AzureWebJobsStorage"] = "a keyed connection string: never in Azure (identity-based __accountName instead)",
        ["AzureWebJobsStorage__blobServiceUri"] = "the alternative to __accountName",
        ["AzureWebJobsStorage__queueServiceUri"] = "the alternative to __accountName",
        ["AzureWebJobsStorage__tableServiceUri"] = "the alternative to __accountName",
        ["Pipeline__Transport"] = "derived: ServiceBus because ServiceBus__fullyQualifiedNamespace is set",
        ["Pipeline__ChunkSize"] = "code default",
        ["Pipeline__MaxChunkAttempts"] = "code default",
        ["Pipeline__FolderStableAge"] = "code default",
        ["Pipeline__SingleUploadSweepAge"] = "code default (15 min, well after Event Grid's normal delivery)",
        ["Pipeline__UploadRetention"] = "code default (0: the aggregate deletes uploads; the lifecycle rule is the backstop)",
        ["Pipeline__MaxIngestAttempts"] = "code default (3, below the blob trigger's 5 tries)",
        ["Pipeline__IngestTimeLimit"] = "code default (50 min, below host.json's 60-min functionTimeout so a timed-out attempt records itself)",
        ["Pipeline__StuckStudyAge"] = "code default",
        ["Pipeline__OrchestrationHistoryRetention"] = "code default (30 days)",
        ["Pipeline__MontageSlices"] = "code default",
        ["Pipeline__MaxDeliveryCount"] = "the local host's consumer only (covidfn up)",
        ["Webhooks__AllowLoopbackWebhooks"] = "local testing only: must never be set in Azure",
        ["Webhooks__MaxRetries"] = "code default",
        ["Webhooks__AttemptTimeout"] = "code default",
        ["Webhooks__BaseRetryDelay"] = "code default",
        ["Webhooks__MaxRetryDelay"] = "code default",
        ["Webhooks__UseJitter"] = "code default",
        ["Webhooks__RetryPollInterval"] = "the local host's loop only (the Function app's retry timer has its own schedule)",
        ["Webhooks__TestRequestsPerWindow"] = "code default",
        ["Webhooks__TestRateWindow"] = "code default",
        ["ApiKeys__MaxTenantsPerKey"] = "code default",
        ["ApiKeys__MaxLifetimeDays"] = "code default (365)",
        ["Webhooks__SecretRotationOverlap"] = "code default (24 h; a rotation request may give its own overlap)",
        ["Metering__CloseAfterDays"] = "code default (3 days after the month ends)",
        ["Metering__CloseMaxWaitDays"] = "code default (10)",
        ["Deidentification__KeyFile"] = "a local key file: never in Azure (HmacKey, a Key Vault reference, wins anyway)",
        ["Deidentification__SecretName"] = "read only without HmacKey, which bicep sets",
    };

    /// <summary>Scorer settings neither bicep nor the image sets, and why.</summary>
    private static readonly Dictionary<string, string> ScorerCodeDefaults = new(StringComparer.Ordinal)
    {
        ["Scorer__SliceTransport"] = "derived: ServiceBus because ServiceBus__fullyQualifiedNamespace is set",
        ["Scorer__StorageConnectionString"] = "a keyed connection string: never in Azure (the service URIs instead)",
        ["Scorer__MaxConcurrentCalls"] = "code default",
        ["Scorer__HungChunkAfter"] = "code default (2 min, a fifth of Pipeline__ChunkTimeout's 10 min; Azure's is 20)",
        ["Scorer__MessageLockDuration"] = "Storage-queue visibility only: on Service Bus the lock is the queue's lockDuration (sliceLockDuration), renewed by the processor",
        ["Scorer__PollInterval"] = "Storage-queue consumer only; chunk requests arrive over Service Bus in Azure",
        ["Scorer__DrainTimeout"] = "code default (below terminationGracePeriodSeconds)",
        ["Scorer__IntraOpThreads"] = "CPU only",
        ["Scorer__CpuMemArena"] = "code default (on; CPU host memory only)",
        ["Scorer__RestrictLesionsToLungs"] = "code default",
        ["Scoring__BatchSize"] = "code default",
    };

    /// <summary>Settings read by name (not through an options class), with the file that must still read them.</summary>
    private static readonly (string Setting, string Host, string File, string Literal)[] DirectReads =
    [
        ("AzureWebJobsStorage", "func", "src/CovidFunctions.FunctionApp/FunctionAppSettings.cs", "\"AzureWebJobsStorage\""),
        ("AzureWebJobsStorage__accountName", "func", "src/CovidFunctions.FunctionApp/FunctionAppServices.cs", "[\"accountName\"]"),
        ("AzureWebJobsStorage__blobServiceUri", "func", "src/CovidFunctions.FunctionApp/FunctionAppServices.cs", "[\"blobServiceUri\"]"),
        ("AzureWebJobsStorage__queueServiceUri", "func", "src/CovidFunctions.FunctionApp/FunctionAppServices.cs", "[\"queueServiceUri\"]"),
        ("AzureWebJobsStorage__tableServiceUri", "func", "src/CovidFunctions.FunctionApp/FunctionAppServices.cs", "[\"tableServiceUri\"]"),
        ("ServiceBus__fullyQualifiedNamespace", "func", "src/CovidFunctions.FunctionApp/FunctionAppServices.cs", ":fullyQualifiedNamespace\"]"),
        ("KeyVault__VaultUri", "func", "src/CovidFunctions.FunctionApp/FunctionAppServices.cs", "\"KeyVault:VaultUri\""),
        ("Webhooks__KeyVaultUri", "func", "src/CovidFunctions.FunctionApp/FunctionAppServices.cs", "\"Webhooks:KeyVaultUri\""),
        ("Deidentification__HmacKey", "func", "src/CovidFunctions.FunctionApp/DeidKeyProvider.cs", "[\"Deidentification:HmacKey\"]"),
        ("Deidentification__KeyFile", "func", "src/CovidFunctions.FunctionApp/DeidKeyProvider.cs", "[\"Deidentification:KeyFile\"]"),
        ("Deidentification__SecretName", "func", "src/CovidFunctions.FunctionApp/DeidKeyProvider.cs", "[\"Deidentification:SecretName\"]"),
        ("ServiceBus__fullyQualifiedNamespace", "scorer", "src/CovidFunctions.Scorer/ScorerApp.cs", "[\"ServiceBus:fullyQualifiedNamespace\"]"),
    ];

    private static HashSet<string> FunctionAppSettingsRead { get; } = BuildFunctionAppSettings();

    private static HashSet<string> ScorerSettingsRead { get; } = BuildScorerSettings();

    [Fact]
    public void CodeSettings_Sources_AreFoundWhereThisTestLooks()
    {
        // Guards the test itself: the source-parsed classes and the direct reads must still exist as written.
        foreach (var (setting, _, file, literal) in DirectReads)
        {
            Assert.True(File.ReadAllText(Path.Combine(TestData.RepoRoot, file)).Contains(literal, StringComparison.Ordinal), $"{setting}: {file} no longer contains {literal}");
        }

        Assert.Contains("Pipeline__SliceQueueName", FunctionAppSettingsRead);
        Assert.Contains("Pipeline__ResultTransport", FunctionAppSettingsRead);
        Assert.Contains("Pipeline__StuckStudyAge", FunctionAppSettingsRead);
        Assert.Contains("Webhooks__AllowedPorts", FunctionAppSettingsRead);
        Assert.Contains("ApiKeys__MaxTenantsPerKey", FunctionAppSettingsRead);
        Assert.Contains("Metering__CloseAfterDays", FunctionAppSettingsRead);
        Assert.Contains("Scorer__MaxDeliveryCount", ScorerSettingsRead);
        Assert.Contains("Scorer__ModelDirectory", ScorerSettingsRead);
        Assert.Contains("Scoring__BatchSize", ScorerSettingsRead);

        // Scoring:MaxDeliveryCount is replaced by Scorer:MaxDeliveryCount in the scorer (ScorerApp), so it is no setting.
        Assert.DoesNotContain("Scoring__MaxDeliveryCount", ScorerSettingsRead);
    }

    [Fact]
    public void FunctionApp_AppSettings_AreEverySettingTheCodeReadsAndNoOther()
    {
        var bicep = FunctionAppBicepNames();

        var unknown = bicep.Where(name => !FunctionAppSettingsRead.Contains(name) && !FunctionAppPlatformSettings.Contains(name)).Order().ToList();
        Assert.True(unknown.Count == 0, "bicep sets Function app settings no code reads (typo or dead): " + string.Join(", ", unknown));

        var undecided = FunctionAppSettingsRead.Where(name => !bicep.Contains(name) && !FunctionAppCodeDefaults.ContainsKey(name)).Order().ToList();
        Assert.True(undecided.Count == 0, "settings the Function app reads that bicep neither sets nor leaves to a listed code default: " + string.Join(", ", undecided));

        var both = FunctionAppCodeDefaults.Keys.Where(bicep.Contains).Order().ToList();
        Assert.True(both.Count == 0, "listed as a code default but set by bicep: " + string.Join(", ", both));
        var stale = FunctionAppCodeDefaults.Keys.Where(name => !FunctionAppSettingsRead.Contains(name)).Order().ToList();
        Assert.True(stale.Count == 0, "listed as code defaults but no longer read: " + string.Join(", ", stale));
    }

    [Fact]
    public void Scorer_ContainerEnvironment_IsEverySettingTheCodeReadsAndNoOther()
    {
        var bicep = ScorerBicepEnvironment().Keys.ToHashSet(StringComparer.Ordinal);
        var image = ScorerImageEnvironment();
        var set = bicep.Union(image).ToHashSet(StringComparer.Ordinal);

        var unknown = set.Where(name => !ScorerSettingsRead.Contains(name) && !ScorerPlatformSettings.Contains(name)).Order().ToList();
        Assert.True(unknown.Count == 0, "bicep or the image sets scorer settings no code reads (typo or dead): " + string.Join(", ", unknown));

        var undecided = ScorerSettingsRead.Where(name => !set.Contains(name) && !ScorerCodeDefaults.ContainsKey(name)).Order().ToList();
        Assert.True(undecided.Count == 0, "settings the scorer reads that neither bicep nor the image sets nor are listed as code defaults: " + string.Join(", ", undecided));

        var both = ScorerCodeDefaults.Keys.Where(set.Contains).Order().ToList();
        Assert.True(both.Count == 0, "listed as a code default but set: " + string.Join(", ", both));
        var stale = ScorerCodeDefaults.Keys.Where(name => !ScorerSettingsRead.Contains(name)).Order().ToList();
        Assert.True(stale.Count == 0, "listed as code defaults but no longer read: " + string.Join(", ", stale));
    }

    [Fact]
    public void FunctionApp_LocalOnlySettings_AreNeverSetInAzure()
    {
        var settings = FunctionAppBicepNames();

        // Loopback http:// targets are for a developer's machine; in Azure they would let a tenant reach the app's own
        // host. A key file or keyed connection string would bypass the Key Vault and identity-based forms.
        Assert.DoesNotContain("Webhooks__AllowLoopbackWebhooks", settings);
        Assert.DoesNotContain("Deidentification__KeyFile", settings);
        Assert.DoesNotContain("AzureWebJobsStorage", settings);
        Assert.DoesNotContain("Scorer__StorageConnectionString", ScorerBicepEnvironment().Keys);
    }

    [Fact]
    public void FunctionApp_PublicBaseUrl_IsTheAppsHttpsHost()
    {
        // Unset, webhook payload and API links are relative (/api/studies/...), which a receiver cannot follow.
        var module = fixture.Main.Module("functionapp");
        var appName = module.Resolve(module.ResourcesOfType("Microsoft.Web/sites").Single()["name"]);

        Assert.Equal($"https://reference(Microsoft.Web/sites({appName})).defaultHostName", ResolvedFunctionAppSetting("Webhooks__PublicBaseUrl"));
    }

    [Fact]
    public void FunctionApp_AllowedPorts_IsAMainParameterDefaultingToHttpsOnly()
    {
        var parameter = fixture.Main.Root["parameters"]!["webhookAllowedPorts"]!;

        // That parameter, or the deployment fails when it is not a port list (SettingChecksTests).
        Assert.Matches(@"^if\(.+, param:webhookAllowedPorts, fail\(.+\)\)$", ResolvedFunctionAppSetting("Webhooks__AllowedPorts"));
        Assert.Equal(new WebhookOptions().AllowedPorts, (string?)parameter["defaultValue"]);
        Assert.False(string.IsNullOrEmpty((string?)parameter["metadata"]?["description"]));
    }

    [Fact]
    public void Scorer_MaxDeliveryCount_IsOneLessThanTheSliceQueuesMaxDeliveryCount()
    {
        // The scorer answers a failing chunk's last delivery with an error result so the study fails at once; that
        // needs the queue to deliver at least that often (queue lower: the shortcut never fires). And a chunk the scorer
        // process died on at every delivery must reach the scorer once more, to be dead-lettered there and its study
        // answered (ChunkDeadLetterHook): at the scorer's own count the broker dead-letters it and tells nobody.
        var serviceBus = fixture.Main.Module("servicebus");
        var queue = serviceBus.ResourcesOfType("Microsoft.ServiceBus/namespaces/queues")
            .Single(q => serviceBus.Resolve(q["name"]).EndsWith("/slice-chunks", StringComparison.Ordinal));

        Assert.Equal("add(param:sliceMaxDeliveryCount, 1)", serviceBus.Resolve(queue["properties"]!["maxDeliveryCount"]));
        Assert.Equal("string(param:sliceMaxDeliveryCount)", ScorerBicepEnvironment()["Scorer__MaxDeliveryCount"]);
        Assert.Equal(5, (int)fixture.Main.Root["parameters"]!["sliceMaxDeliveryCount"]!["defaultValue"]!);
    }

    [Fact]
    public void Scorer_DrainTimeoutDefault_EndsWithinTheTerminationGracePeriod()
    {
        // bicep leaves Scorer__DrainTimeout to its default; the host waits it plus 15 s (ScorerApp's ShutdownTimeout),
        // which must end before Container Apps kills the replica, or in-flight chunks are cut rather than drained.
        var source = File.ReadAllText(Path.Combine(TestData.RepoRoot, "src/CovidFunctions.Scorer/ScorerOptions.cs"));
        var match = DrainTimeoutDefault().Match(source);
        Assert.True(match.Success, "ScorerOptions.DrainTimeout's default is no longer TimeSpan.FromSeconds(n): update this test");
        var grace = (int)fixture.Main.Module("containerapps").ResourcesOfType("Microsoft.App/containerApps").Single()["properties"]!["template"]!["terminationGracePeriodSeconds"]!;

        Assert.DoesNotContain("Scorer__DrainTimeout", ScorerBicepEnvironment().Keys);
        Assert.True(int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) + 15 <= grace, $"DrainTimeout {match.Groups[1].Value} s + 15 s exceeds terminationGracePeriodSeconds {grace}");
    }

    [Fact]
    public void ParametersFiles_AnyValue_HoldsNoSecretOrKeyVaultValue()
    {
        // Secrets reach the app as Key Vault references resolved by the platform, never through parameters.
        foreach (var file in Directory.EnumerateFiles(BicepCli.BicepDirectory, "*.json", SearchOption.AllDirectories).Concat(Directory.EnumerateFiles(BicepCli.BicepDirectory, "*.bicepparam", SearchOption.AllDirectories)))
        {
            var text = File.ReadAllText(file);
            foreach (var marker in new[] { "AccountKey=", "SharedAccessKey=", "SharedAccessSignature=", "DefaultEndpointsProtocol=", "InstrumentationKey=", "\"reference\"", "keyVault" })
            {
                Assert.False(text.Contains(marker, StringComparison.OrdinalIgnoreCase), $"{file} contains {marker}");
            }
        }
    }

    [Fact]
    public void LocalSettingsSample_Values_AreKnownAndCoverEveryLocalSetting()
    {
        var sample = JsonNode.Parse(File.ReadAllText(Path.Combine(TestData.RepoRoot, "local.settings.sample.json")))!["Values"]!.AsObject()
            .Select(p => p.Key).ToHashSet(StringComparer.Ordinal);
        var known = FunctionAppSettingsRead.Union(ScorerSettingsRead).Union(FunctionAppPlatformSettings).ToHashSet(StringComparer.Ordinal);

        var unknown = sample.Where(name => !known.Contains(name)).Order().ToList();
        Assert.True(unknown.Count == 0, "local.settings.sample.json lists settings no code reads: " + string.Join(", ", unknown));

        // Azure-only forms (identity-based connections) and settings no deployed host reads are not in the sample.
        var notLocal = new HashSet<string>(StringComparer.Ordinal)
        {
            "AZURE_CLIENT_ID", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
            "AzureWebJobsStorage__accountName", "AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId",
            "AzureWebJobsStorage__blobServiceUri", "AzureWebJobsStorage__queueServiceUri", "AzureWebJobsStorage__tableServiceUri",
            "Pipeline__MaxDeliveryCount", "Webhooks__RetryPollInterval",
        };
        var missing = known.Where(name => !sample.Contains(name) && !notLocal.Contains(name)).Order().ToList();
        Assert.True(missing.Count == 0, "settings the code reads that local.settings.sample.json does not list: " + string.Join(", ", missing));
    }

    [Fact]
    public void LocalSettingsSample_Values_AreTheCodeDefaults()
    {
        // README gives each setting's default from the code, and the sample is what a local Functions host runs with:
        // a value there that is not the default makes the local app differ from what README says, unless it is one of
        // the deliberately local values below.
        var localValues = new HashSet<string>(StringComparer.Ordinal)
        {
            "Webhooks__AllowLoopbackWebhooks", // local receivers on 127.0.0.1
            "Webhooks__PublicBaseUrl", // the local Functions host's address
        };
        var values = JsonNode.Parse(File.ReadAllText(Path.Combine(TestData.RepoRoot, "local.settings.sample.json")))!["Values"]!.AsObject()
            .Where(p => !localValues.Contains(p.Key))
            .Select(p => KeyValuePair.Create(p.Key.Replace("__", ":", StringComparison.Ordinal), (string?)p.Value?.GetValue<string>()))
            .ToList();
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();

        var problems = new List<string>();
        foreach (var (type, section) in new[] { (typeof(PipelineOptions), PipelineOptions.SectionName), (typeof(WebhookOptions), WebhookOptions.SectionName), (typeof(ApiKeyOptions), ApiKeyOptions.SectionName), (typeof(MeteringOptions), MeteringOptions.SectionName), (typeof(ScoringOptions), ScoringOptions.SectionName) })
        {
            var defaults = Activator.CreateInstance(type)!;
            var sample = configuration.GetSection(section).Get(type) ?? defaults;
            foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.SetMethod is { IsPublic: true }))
            {
                if (!Equals(property.GetValue(sample), property.GetValue(defaults)))
                {
                    problems.Add($"{section}__{property.Name}: sample {property.GetValue(sample)}, code default {property.GetValue(defaults)}");
                }
            }
        }

        Assert.True(problems.Count == 0, "local.settings.sample.json differs from the code defaults:\n" + string.Join("\n", problems));
    }

    [Fact]
    public void Readme_ConfigurationTable_NamesEverySettingTheCodeReads()
    {
        var readme = File.ReadAllText(Path.Combine(TestData.RepoRoot, "README.md"));
        var start = readme.IndexOf("## Configuration", StringComparison.Ordinal);
        Assert.True(start >= 0, "README has no Configuration section");
        var end = readme.IndexOf("\n## ", start + 1, StringComparison.Ordinal);
        var lines = readme[start..(end < 0 ? readme.Length : end)].Split('\n');
        var notDocumented = new HashSet<string>(StringComparer.Ordinal) { "AZURE_CLIENT_ID", "AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId" };

        // A row may name several settings of one section as "Section__A / __B" or "`Section__A`, `Section__B`".
        var missing = FunctionAppSettingsRead.Union(ScorerSettingsRead)
            .Where(name => !notDocumented.Contains(name))
            .Where(name =>
            {
                var split = name.IndexOf("__", StringComparison.Ordinal);
                return !lines.Any(line => line.Contains(name, StringComparison.Ordinal)
                    || (split > 0 && line.Contains(name[..(split + 2)], StringComparison.Ordinal) && line.Contains(name[split..] + "`", StringComparison.Ordinal))
                    || (split > 0 && line.Contains(name[..(split + 2)], StringComparison.Ordinal) && line.Contains(name[split..] + " ", StringComparison.Ordinal)));
            })
            .Order().ToList();
        Assert.True(missing.Count == 0, "README Configuration does not name: " + string.Join(", ", missing));
    }

    [Fact]
    public void Readme_ConfigurationTable_NamesEveryInferenceSetting()
    {
        // covidfn's segment/classify/screen/up read Inference__* (InferenceSettings); neither host does, so the test
        // above does not cover them.
        var configuration = ReadmeConfigurationSection();
        var missing = Bindable(typeof(InferenceOptions), InferenceOptions.SectionName).Where(name => !configuration.Contains(name, StringComparison.Ordinal)).Order().ToList();
        Assert.True(missing.Count == 0, "README Configuration does not name: " + string.Join(", ", missing));
    }

    [Fact]
    public void Readme_ConfigurationTable_NamesEveryCovidfnVariableAndNoOther()
    {
        var read = CovidfnVariablesRead();
        var documented = CovidfnVariable().Matches(ReadmeConfigurationSection()).Select(m => m.Value).ToHashSet(StringComparer.Ordinal);

        var missing = read.Where(name => !documented.Contains(name) && !InternalVariables.Contains(name)).Order().ToList();
        Assert.True(missing.Count == 0, "environment variables the code or the tests read that README Configuration does not name: " + string.Join(", ", missing));
        var unknown = documented.Where(name => !read.Contains(name)).Order().ToList();
        Assert.True(unknown.Count == 0, "README Configuration names environment variables nothing reads: " + string.Join(", ", unknown));
    }

    [Fact]
    public void Docs_SettingNames_AreSettingsTheCodeReads()
    {
        // The reverse of the tests above: a name in README or docs/ that no option or direct read has (a typo, or a
        // setting the code dropped) sends a reader to set something that changes nothing.
        var known = KnownSettingNames();
        var problems = DocumentFiles()
            .SelectMany(file => SettingNamesIn(File.ReadAllText(file)).Where(name => !known.Contains(name)).Select(name => $"{Path.GetRelativePath(TestData.RepoRoot, file)}: {name}"))
            .Distinct().Order(StringComparer.Ordinal).ToList();
        Assert.True(problems.Count == 0, "docs name settings no code reads:\n" + string.Join("\n", problems));

        // Guards the scan: the forms it must read, and a planted misspelling it must report.
        Assert.Equal(new[] { "Pipeline__ChunkSize", "Pipeline__ChunkTimeout", "Scorer__BlobServiceUri", "Scorer__QueueServiceUri", "Webhooks__AllowedPorts" },
            SettingNamesIn("`Pipeline__ChunkSize`, `__ChunkTimeout`; `Scorer__BlobServiceUri / __QueueServiceUri`\n\n`Webhooks:AllowedPorts`").Order(StringComparer.Ordinal));
        Assert.DoesNotContain("Webhooks__MaxRetrys", known);
        Assert.Contains("Webhooks__MaxRetrys", SettingNamesIn("set `Webhooks__MaxRetrys`"));
    }

    /// <summary>Read by a process covidfn starts, not by a person: covidfn sets it for its Azurite child (infra/azurite/parent-watchdog.cjs).</summary>
    private static readonly HashSet<string> InternalVariables = new(StringComparer.Ordinal) { "COVIDFN_AZURITE_PARENT_PID" };

    /// <summary>Option sections and connections the docs name settings of; a name of another prefix is not checked.</summary>
    private static readonly string[] DocumentedSections = ["Pipeline", "Webhooks", "ApiKeys", "Metering", "Scorer", "Scoring", "Inference", "Imaging", "Deidentification", "KeyVault", "ServiceBus", "AzureWebJobsStorage"];

    private static HashSet<string> KnownSettingNames()
    {
        var known = FunctionAppSettingsRead.Union(ScorerSettingsRead).Union(FunctionAppPlatformSettings).ToHashSet(StringComparer.Ordinal);
        known.UnionWith(Bindable(typeof(InferenceOptions), InferenceOptions.SectionName));
        known.UnionWith(Bindable(typeof(ScoringOptions), ScoringOptions.SectionName)); // MaxDeliveryCount: the property the scorer sets from Scorer__MaxDeliveryCount
        known.UnionWith(Bindable(typeof(ImagingOptions), ImagingOptions.SectionName)); // ingest's assembly settings (IngestSettings.LoadImaging)
        known.UnionWith(Bindable(typeof(ZipLimitOptions), ImagingOptions.SectionName + "__Zip")); // and its zip limits (Imaging__Zip__MaxEntries)
        known.UnionWith(["AzureWebJobsStorage__accountName", "ServiceBus__credential", "ServiceBus__clientId"]); // the Functions host's identity-based connection forms
        return known;
    }

    /// <summary>
    /// <c>Section__Key</c> and <c>Section:Key</c> of <see cref="DocumentedSections"/>, and a bare <c>__Key</c> after
    /// one of them in the same paragraph (<c>`Scorer__BlobServiceUri / __QueueServiceUri`</c>), as <c>Section__Key</c>.
    /// </summary>
    private static IEnumerable<string> SettingNamesIn(string markdown)
    {
        var sections = string.Join("|", DocumentedSections);
        var pattern = new Regex($@"(?<![\w])(?:({sections})(?:__|:)([A-Za-z]\w*)|__([A-Za-z]\w*))", RegexOptions.CultureInvariant);
        foreach (var paragraph in markdown.Split("\n\n"))
        {
            string? section = null;
            foreach (Match match in pattern.Matches(paragraph))
            {
                if (match.Groups[1].Success)
                {
                    section = match.Groups[1].Value;
                    yield return $"{section}__{match.Groups[2].Value}";
                }
                else if (section is not null)
                {
                    yield return $"{section}__{match.Groups[3].Value}";
                }
            }
        }
    }

    /// <summary>README's Configuration section (to the next heading).</summary>
    private static string ReadmeConfigurationSection()
    {
        var readme = File.ReadAllText(Path.Combine(TestData.RepoRoot, "README.md"));
        var start = readme.IndexOf("## Configuration", StringComparison.Ordinal);
        Assert.True(start >= 0, "README has no Configuration section");
        var end = readme.IndexOf("\n## ", start + 1, StringComparison.Ordinal);
        return readme[start..(end < 0 ? readme.Length : end)];
    }

    /// <summary>The <c>COVIDFN_*</c> names the C# code, the tests and the benchmarks read (string literals).</summary>
    private static HashSet<string> CovidfnVariablesRead()
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var folder in new[] { "src", "tests", "bench" })
        {
            foreach (var file in Directory.EnumerateFiles(Path.Combine(TestData.RepoRoot, folder), "*.cs", SearchOption.AllDirectories))
            {
                var relative = Path.GetRelativePath(TestData.RepoRoot, file).Replace('\\', '/');
                if (relative.Contains("/obj/", StringComparison.Ordinal) || relative.Contains("/bin/", StringComparison.Ordinal) || relative.EndsWith("/ConfigurationContractTests.cs", StringComparison.Ordinal))
                {
                    continue;
                }

                names.UnionWith(CovidfnVariableLiteral().Matches(File.ReadAllText(file)).Select(m => m.Groups[1].Value));
            }
        }

        return names;
    }

    private static IEnumerable<string> DocumentFiles() =>
        new[] { Path.Combine(TestData.RepoRoot, "README.md") }
            .Concat(Directory.EnumerateFiles(Path.Combine(TestData.RepoRoot, "docs"), "*.md", SearchOption.AllDirectories).Order(StringComparer.Ordinal));

    [GeneratedRegex(@"\bCOVIDFN_[A-Z][A-Z_]*[A-Z]\b", RegexOptions.CultureInvariant)]
    private static partial Regex CovidfnVariable();

    [GeneratedRegex(@"""(COVIDFN_[A-Z][A-Z_]*[A-Z])""", RegexOptions.CultureInvariant)]
    private static partial Regex CovidfnVariableLiteral();

    private JsonObject FunctionAppBicepSettings() =>
        fixture.Main.Module("functionapp").ResourcesOfType("Microsoft.Web/sites/config").Single()["properties"]!.AsObject();

    private HashSet<string> FunctionAppBicepNames() => FunctionAppBicepSettings().Select(p => p.Key).ToHashSet(StringComparer.Ordinal);

    private string ResolvedFunctionAppSetting(string name) => fixture.Main.Module("functionapp").Resolve(FunctionAppBicepSettings()[name]);

    private Dictionary<string, string> ScorerBicepEnvironment()
    {
        var module = fixture.Main.Module("containerapps");
        return module.ResourcesOfType("Microsoft.App/containerApps").Single()["properties"]!["template"]!["containers"]!.AsArray()
            .SelectMany(c => c!["env"]!.AsArray())
            .ToDictionary(e => (string)e!["name"]!, e => module.Resolve(e!["value"]), StringComparer.Ordinal);
    }

    private static HashSet<string> ScorerImageEnvironment()
    {
        var text = File.ReadAllText(Path.Combine(TestData.RepoRoot, "infra", "scorer", "Dockerfile"));
        return EnvSettingName().Matches(text).Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);
    }

    private static HashSet<string> BuildFunctionAppSettings()
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        names.UnionWith(Bindable(typeof(PipelineOptions), PipelineOptions.SectionName));
        names.UnionWith(SourceBindable("src/CovidFunctions.FunctionApp/FunctionAppSettings.cs", PipelineOptions.SectionName));
        names.UnionWith(Bindable(typeof(WebhookOptions), WebhookOptions.SectionName));
        names.UnionWith(Bindable(typeof(ApiKeyOptions), ApiKeyOptions.SectionName));
        names.UnionWith(Bindable(typeof(MeteringOptions), MeteringOptions.SectionName));
        names.UnionWith(DirectReads.Where(r => r.Host == "func").Select(r => r.Setting));
        return names;
    }

    private static HashSet<string> BuildScorerSettings()
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        names.UnionWith(SourceBindable("src/CovidFunctions.Scorer/ScorerOptions.cs", "Scorer"));
        names.UnionWith(Bindable(typeof(ScoringOptions), ScoringOptions.SectionName).Where(n => n != "Scoring__MaxDeliveryCount"));
        names.UnionWith(DirectReads.Where(r => r.Host == "scorer").Select(r => r.Setting));
        return names;
    }

    /// <summary>What the configuration binder sets on <paramref name="type"/>: public properties with a setter or init.</summary>
    private static IEnumerable<string> Bindable(Type type, string section) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.SetMethod is { IsPublic: true })
            .Select(p => $"{section}__{p.Name}");

    /// <summary>The same for a class in a project this test does not reference (the Function app, the scorer): its source.</summary>
    private static IEnumerable<string> SourceBindable(string file, string section) =>
        InitProperty().Matches(File.ReadAllText(Path.Combine(TestData.RepoRoot, file))).Select(m => $"{section}__{m.Groups[1].Value}");

    [GeneratedRegex(@"public\s+[\w.<>?,\[\] ]+?\s+(\w+)\s*\{\s*get;\s*(?:init|set);\s*\}", RegexOptions.CultureInvariant)]
    private static partial Regex InitProperty();

    [GeneratedRegex(@"DrainTimeout\s*\{\s*get;\s*init;\s*\}\s*=\s*TimeSpan\.FromSeconds\((\d+)\)", RegexOptions.CultureInvariant)]
    private static partial Regex DrainTimeoutDefault();

    [GeneratedRegex(@"\b((?:Scorer|Scoring|ServiceBus)__\w+)=", RegexOptions.CultureInvariant)]
    private static partial Regex EnvSettingName();
}
