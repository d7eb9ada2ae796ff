using System.Text.RegularExpressions;

namespace CovidFunctions.Deployment.Tests;

/// <summary>
/// The deterministic stand-in for the linter's use-recent-api-versions (off in bicep/bicepconfig.json because it compares
/// with today's date): every resource type the templates declare has a floor here, and no declaration is older than its
/// floor. A new resource type fails until it is given a floor, so an old API version cannot slip in unnoticed.
/// </summary>
public sealed partial class ApiVersionTests
{
    // The newest GA version of each type as of 2026-11 (Insights/components and diagnosticSettings have no newer
    // stable version than these; roleAssignments' newest GA is 2022-04-01).
    private static readonly Dictionary<string, string> Floors = new(StringComparer.OrdinalIgnoreCase)
    {
        ["Microsoft.App/containerApps"] = "2026-01-01",
        ["Microsoft.App/managedEnvironments"] = "2026-01-01",
        ["Microsoft.Authorization/roleAssignments"] = "2022-04-01",
        ["Microsoft.ContainerRegistry/registries"] = "2025-11-01",
        ["Microsoft.EventGrid/systemTopics"] = "2025-02-15",
        ["Microsoft.EventGrid/systemTopics/eventSubscriptions"] = "2025-02-15",
        ["Microsoft.Insights/components"] = "2020-02-02",
        ["Microsoft.Insights/diagnosticSettings"] = "2021-05-01-preview",
        ["Microsoft.KeyVault/vaults"] = "2026-02-01",
        ["Microsoft.ManagedIdentity/userAssignedIdentities"] = "2024-11-30",
        ["Microsoft.OperationalInsights/workspaces"] = "2025-07-01",
        ["Microsoft.Resources/resourceGroups"] = "2025-04-01",
        ["Microsoft.ServiceBus/namespaces"] = "2026-01-01",
        ["Microsoft.ServiceBus/namespaces/queues"] = "2026-01-01",
        ["Microsoft.Storage/storageAccounts"] = "2025-06-01",
        ["Microsoft.Storage/storageAccounts/blobServices"] = "2025-06-01",
        ["Microsoft.Storage/storageAccounts/blobServices/containers"] = "2025-06-01",
        ["Microsoft.Storage/storageAccounts/managementPolicies"] = "2025-06-01",
        ["Microsoft.Storage/storageAccounts/queueServices"] = "2025-06-01",
        ["Microsoft.Storage/storageAccounts/queueServices/queues"] = "2025-06-01",
        ["Microsoft.Storage/storageAccounts/tableServices"] = "2025-06-01",
        ["Microsoft.Storage/storageAccounts/tableServices/tables"] = "2025-06-01",
        ["Microsoft.Web/serverfarms"] = "2025-03-01",
        ["Microsoft.Web/sites"] = "2025-03-01",
        ["Microsoft.Web/sites/basicPublishingCredentialsPolicies"] = "2025-03-01",
        ["Microsoft.Web/sites/config"] = "2025-03-01",
    };

    [Fact]
    public void ApiVersions_AllResources_AreNoOlderThanTheFloor()
    {
        var declarations = Directory.GetFiles(BicepCli.BicepDirectory, "*.bicep", SearchOption.AllDirectories)
            .SelectMany(file => TypeAtVersion().Matches(File.ReadAllText(file))
                .Select(m => (File: Path.GetFileName(file), Type: m.Groups["type"].Value, Version: m.Groups["version"].Value)))
            .ToList();

        Assert.True(declarations.Count >= 50, $"expected the templates' resource declarations, found {declarations.Count}");
        var problems = new List<string>();
        foreach (var (file, type, version) in declarations)
        {
            if (!Floors.TryGetValue(type, out var floor))
            {
                problems.Add($"{file}: {type}@{version} has no floor in {nameof(ApiVersionTests)}");
            }
            else if (IsOlderThan(version, floor))
            {
                problems.Add($"{file}: {type}@{version} is older than its floor {floor}");
            }
        }

        Assert.True(problems.Count == 0, string.Join(Environment.NewLine, problems));
    }

    [Theory]
    [InlineData("2024-01-01", "2025-06-01", true)]
    [InlineData("2025-06-01-preview", "2025-06-01", true)]
    [InlineData("2025-06-01", "2025-06-01", false)]
    [InlineData("2026-01-01", "2025-06-01", false)]
    public void Floor_Comparison_RefusesOlderDatesAndPreviewsOfAStableFloor(string version, string floor, bool refused)
    {
        Assert.Equal(refused, IsOlderThan(version, floor));
    }

    /// <summary>An earlier date, or a preview of the floor's date when the floor is stable.</summary>
    private static bool IsOlderThan(string version, string floor) =>
        string.CompareOrdinal(DatePart(version), DatePart(floor)) < 0 || (IsPreview(version) && !IsPreview(floor));

    private static string DatePart(string version) => version[..10];

    private static bool IsPreview(string version) => version.Length > 10;

    [GeneratedRegex(@"'(?<type>Microsoft\.[A-Za-z]+/[A-Za-z/]+)@(?<version>\d{4}-\d{2}-\d{2}(?:-[a-z]+)?)'")]
    private static partial Regex TypeAtVersion();
}
