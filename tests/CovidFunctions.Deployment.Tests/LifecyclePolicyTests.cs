using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CovidFunctions.Pipeline;
using CovidFunctions.TestHelpers;

namespace CovidFunctions.Deployment.Tests;

/// <summary>
/// The storage lifecycle rules (bicep/modules/storage.bicep): which container each rule empties, after which main.bicep
/// parameter, and the defaults that keep them from deleting what the pipeline still needs
/// (docs/compliance/phi-flow.md, "Data lifecycle").
/// </summary>
[Collection(CompiledTemplateCollection.Name)]
public sealed partial class LifecyclePolicyTests(CompiledTemplateFixture fixture)
{
    private ArmTemplate Storage => fixture.Main.Module("storage");

    private JsonObject MainParameters => fixture.Main.Root["parameters"]!.AsObject();

    private IReadOnlyList<JsonObject> Rules =>
        Storage.ResourcesOfType("Microsoft.Storage/storageAccounts/managementPolicies").Single()["properties"]!["policy"]!["rules"]!.AsArray()
            .Select(r => r!.AsObject()).ToList();

    private JsonObject Rule(string name) => Rules.Single(r => (string?)r["name"] == name);

    private string DeleteAfter(JsonObject rule) => Storage.Resolve(rule["definition"]!["actions"]!["baseBlob"]!["delete"]!["daysAfterModificationGreaterThan"]);

    private string SnapshotDeleteAfter(JsonObject rule) => Storage.Resolve(rule["definition"]!["actions"]!["snapshot"]!["delete"]!["daysAfterCreationGreaterThan"]);

    private IReadOnlyList<string> Prefixes(JsonObject rule) =>
        rule["definition"]!["filters"]!["prefixMatch"]!.AsArray().Select(p => Storage.Resolve(p)).ToList();

    [Fact]
    public void Rules_EachEmptyOneContainer_AfterItsRetentionParameter()
    {
        var expected = new Dictionary<string, (string Prefix, string Days)>
        {
            ["delete-raw-uploads"] = ("ct-uploads/", "param:uploadRetentionDays"),
            ["delete-eventgrid-dead-letters"] = ("eventgrid-deadletter/", "param:uploadRetentionDays"),
            ["delete-tiles"] = ("slices/", "if(greaterOrEquals(param:tileRetentionDays, param:uploadRetentionDays), param:tileRetentionDays, fail("),
            ["delete-quarantine"] = ("quarantine/", "max(param:quarantineRetentionDays, 1)"),
            ["delete-dead-letters"] = ("dead-letters/", "param:deadLetterRetentionDays"),
        };

        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), Rules.Select(r => (string)r["name"]!).Order(StringComparer.Ordinal));
        foreach (var (name, (prefix, days)) in expected)
        {
            var rule = Rule(name);
            Assert.Equal("Lifecycle", (string?)rule["type"]);
            // A rule without a prefix would apply to every container of the account (the Functions host's and Durable's included).
            Assert.Equal([prefix], Prefixes(rule));
            Assert.Equal(["appendBlob", "blockBlob"], rule["definition"]!["filters"]!["blobTypes"]!.AsArray().Select(t => (string)t!).Order(StringComparer.Ordinal));
            Assert.StartsWith(days, DeleteAfter(rule), StringComparison.Ordinal);
            Assert.DoesNotContain("tierTo", rule["definition"]!["actions"]!["baseBlob"]!.ToJsonString(), StringComparison.Ordinal);
        }

        // Snapshots go with their base blobs (the tile rule without the guard, which the base-blob delete already applies).
        Assert.Equal("param:uploadRetentionDays", SnapshotDeleteAfter(Rule("delete-raw-uploads")));
        Assert.Equal("param:uploadRetentionDays", SnapshotDeleteAfter(Rule("delete-eventgrid-dead-letters")));
        Assert.Equal("param:tileRetentionDays", SnapshotDeleteAfter(Rule("delete-tiles")));
        Assert.Equal("max(param:quarantineRetentionDays, 1)", SnapshotDeleteAfter(Rule("delete-quarantine")));
        Assert.Equal("param:deadLetterRetentionDays", SnapshotDeleteAfter(Rule("delete-dead-letters")));
    }

    [Fact]
    public void Rules_CoverEveryPipelineContainerButResults_AndNothingElse()
    {
        // Each container the code writes has a retention decision: a rule, or (results only) none on purpose, because the
        // results API and reports read it for as long as the study's row exists.
        var ruled = Rules.SelectMany(Prefixes).Select(p => p.TrimEnd('/')).ToHashSet(StringComparer.Ordinal);
        var created = Storage.CopyItems(Storage.ResourcesOfType("Microsoft.Storage/storageAccounts/blobServices/containers").Single(r => r["copy"] is not null))
            .ToHashSet(StringComparer.Ordinal);

        Assert.Subset(created, ruled);
        Assert.Equal(
            PipelineNames.Containers.Where(c => c != PipelineNames.ResultsContainer).Append("eventgrid-deadletter").ToHashSet(StringComparer.Ordinal),
            ruled);
        Assert.DoesNotContain(PipelineNames.ResultsContainer, ruled);
    }

    [Fact]
    public void AlwaysOnRules_AreEnabled_AndTheQuarantineRuleIsOffAtZero()
    {
        foreach (var name in new[] { "delete-raw-uploads", "delete-eventgrid-dead-letters", "delete-tiles", "delete-dead-letters" })
        {
            Assert.Equal("true", Storage.Resolve(Rule(name)["enabled"]));
        }

        Assert.Equal("greater(param:quarantineRetentionDays, 0)", Storage.Resolve(Rule("delete-quarantine")["enabled"]));
        Assert.Equal(0, (int)MainParameters["quarantineRetentionDays"]!["minValue"]!);
    }

    [Fact]
    public void TileRule_RefusesARetentionShorterThanTheUploads()
    {
        // The read lists in slices say which upload blobs ingest read; settling an upload without its list falls back to
        // the blobs' times. The ct-uploads rule deletes an upload uploadRetentionDays after it was written, before ingest
        // wrote the list, so a list kept as long outlives every blob it lists; a shorter tile retention fails the deployment.
        var days = DeleteAfter(Rule("delete-tiles"));

        var guard = GuardedDays().Match(days);
        Assert.True(guard.Success, days);
        Assert.Contains("tileRetentionDays must be at least uploadRetentionDays", guard.Groups["message"].Value, StringComparison.Ordinal);
    }

    [Fact]
    public void Defaults_KeepInFlightData_AndMatchTheParametersFile()
    {
        var file = JsonNode.Parse(File.ReadAllText(Path.Combine(TestData.RepoRoot, "bicep", "main.parameters.json")))!["parameters"]!.AsObject();
        var expected = new Dictionary<string, int>
        {
            ["uploadRetentionDays"] = 7,
            ["tileRetentionDays"] = 30,
            ["quarantineRetentionDays"] = 30,
            ["deadLetterRetentionDays"] = 30,
        };

        foreach (var (name, days) in expected)
        {
            Assert.Equal(days, (int)MainParameters[name]!["defaultValue"]!);
            Assert.Equal(days, (int)file[name]!["value"]!);
            Assert.Equal(365, (int)MainParameters[name]!["maxValue"]!);
        }

        // A day is the least a rule can keep, and more than a study can be in flight: the watchdog fails a study still
        // processing Pipeline:StuckStudyAge (6 h) after ingest, and Event Grid stops re-delivering an upload's event after 24 h.
        Assert.Equal(1, (int)MainParameters["uploadRetentionDays"]!["minValue"]!);
        Assert.Equal(1, (int)MainParameters["tileRetentionDays"]!["minValue"]!);
        Assert.Equal(1, (int)MainParameters["deadLetterRetentionDays"]!["minValue"]!);
        Assert.True(expected["tileRetentionDays"] >= expected["uploadRetentionDays"]);
    }

    [Fact]
    public void RetentionParameters_AreEachPassedToTheStorageModule()
    {
        foreach (var name in new[] { "uploadRetentionDays", "tileRetentionDays", "quarantineRetentionDays", "deadLetterRetentionDays" })
        {
            Assert.Equal("param:" + name, Storage.Resolve(JsonValue.Create($"[parameters('{name}')]")));
        }
    }

    [Fact]
    public void DeploymentDoc_ParametersTable_NamesEveryMainParameter()
    {
        var doc = File.ReadAllText(Path.Combine(TestData.RepoRoot, "docs", "deployment.md"));
        var section = doc[doc.IndexOf("## Parameters", StringComparison.Ordinal)..];
        section = section[..section.IndexOf("\n## ", 3, StringComparison.Ordinal)];
        var documented = TableParameter().Matches(section).Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);

        Assert.Equal(MainParameters.Select(p => p.Key).Order(StringComparer.Ordinal), documented.Order(StringComparer.Ordinal));
    }

    [GeneratedRegex(@"^if\(greaterOrEquals\(param:tileRetentionDays, param:uploadRetentionDays\), param:tileRetentionDays, fail\((?<message>.+)\)\)$")]
    private static partial Regex GuardedDays();

    // The first cell of a parameters-table row: `name`, or `a` / `b` for two parameters in one row.
    [GeneratedRegex(@"(?:^\| |\G / )`(\w+)`", RegexOptions.Multiline)]
    private static partial Regex TableParameter();
}
