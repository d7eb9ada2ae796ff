using System.Text.Json.Nodes;

namespace CovidFunctions.Deployment.Tests;

/// <summary>
/// Least privilege, checked on the compiled ARM JSON: every role assignment is scoped to one resource (never the
/// resource group or subscription), and each principal holds exactly the roles in the table below.
/// Principals are identified from the template itself: the identity attached to the Function app, the scorer's
/// registry identity, the KEDA scale rule's identity, the Event Grid topic's own identity and the deployer.
/// The two Key Vaults are told apart by name: the de-identification vault (<c>names.keyVault</c>, read-only to the
/// Function app) and the webhook-secrets vault (<c>names.webhookKeyVault</c>, where the app writes subscription secrets).
/// </summary>
[Collection(CompiledTemplateCollection.Name)]
public sealed class RoleAssignmentTests(CompiledTemplateFixture fixture)
{
    private const string Always = "always";
    private const string WhenStorageQueueResults = "resultTransport=StorageQueue";
    private const string WhenServiceBusResults = "resultTransport=ServiceBus";
    private const string WhenDeployerGiven = "principalId given";

    /// <summary>A condition that is false whatever the parameters (the module got an empty deployer principal): never deployed.</summary>
    private const string Never = "never";

    private const string KeyVaultType = "Microsoft.KeyVault/vaults";
    private const string DeidVault = "de-identification vault";
    private const string WebhookVault = "webhook-secrets vault";

    /// <summary>Built-in role definition IDs (learn.microsoft.com/azure/role-based-access-control/built-in-roles).</summary>
    private static readonly Dictionary<string, string> BuiltInRoles = new(StringComparer.OrdinalIgnoreCase)
    {
        ["b7e6dc6d-f1e8-4753-8033-0f276bb0955b"] = "Storage Blob Data Owner",
        ["ba92f5b4-2d11-453d-a403-e96b0029c9fe"] = "Storage Blob Data Contributor",
        ["2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"] = "Storage Blob Data Reader",
        ["974c5e8b-45b9-4653-ba55-5f855dd0fb88"] = "Storage Queue Data Contributor",
        ["c6a89b2d-59bc-44d0-9896-0f6e12d7b80a"] = "Storage Queue Data Message Sender",
        ["0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"] = "Storage Table Data Contributor",
        ["76199698-9eea-4c19-bc75-cec21354c6b6"] = "Storage Table Data Reader",
        ["69a216fc-b8fb-44d8-bc22-1f3c2cd27a39"] = "Azure Service Bus Data Sender",
        ["4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0"] = "Azure Service Bus Data Receiver",
        ["090c5cfd-751d-490a-894a-3ce6f1109419"] = "Azure Service Bus Data Owner",
        ["4633458b-17de-408a-b874-0445c86b69e6"] = "Key Vault Secrets User",
        ["b86a8fe4-44ce-4948-aee5-eccb2c155cd7"] = "Key Vault Secrets Officer",
        ["7f951dda-4ed3-4680-a7ca-43fe172d538d"] = "AcrPull",
        ["3913510d-42f4-4e42-8a64-420c390055eb"] = "Monitoring Metrics Publisher",
    };

    /// <summary>The least-privilege table (docs/deployment.md shows the same): principal, role, scope type, scope leaf name, condition.</summary>
    private static readonly Grant[] Expected =
    [
        new("function", "Storage Blob Data Owner", "Microsoft.Storage/storageAccounts", "*", Always),
        new("function", "Storage Queue Data Contributor", "Microsoft.Storage/storageAccounts", "*", Always),
        new("function", "Storage Table Data Contributor", "Microsoft.Storage/storageAccounts", "*", Always),
        new("function", "Azure Service Bus Data Sender", "Microsoft.ServiceBus/namespaces/queues", "slice-chunks", Always),
        new("function", "Azure Service Bus Data Receiver", "Microsoft.ServiceBus/namespaces/queues", "slice-results", WhenServiceBusResults),
        new("function", "Key Vault Secrets User", KeyVaultType, DeidVault, Always),
        new("function", "Key Vault Secrets Officer", KeyVaultType, WebhookVault, Always),
        new("function", "Monitoring Metrics Publisher", "Microsoft.Insights/components", "*", Always),
        new("scorer", "Storage Blob Data Reader", "Microsoft.Storage/storageAccounts/blobServices/containers", "slices", Always),
        new("scorer", "Storage Blob Data Contributor", "Microsoft.Storage/storageAccounts/blobServices/containers", "results", Always),
        new("scorer", "Storage Table Data Contributor", "Microsoft.Storage/storageAccounts/tableServices/tables", "SliceResults", Always),
        new("scorer", "Storage Table Data Reader", "Microsoft.Storage/storageAccounts/tableServices/tables", "Studies", Always),
        new("scorer", "Storage Queue Data Message Sender", "Microsoft.Storage/storageAccounts/queueServices/queues", "slice-results", WhenStorageQueueResults),
        new("scorer", "Azure Service Bus Data Receiver", "Microsoft.ServiceBus/namespaces/queues", "slice-chunks", Always),
        new("scorer", "Azure Service Bus Data Sender", "Microsoft.ServiceBus/namespaces/queues", "slice-results", WhenServiceBusResults),
        new("scorer", "AcrPull", "Microsoft.ContainerRegistry/registries", "*", Always),
        new("scaler", "Azure Service Bus Data Owner", "Microsoft.ServiceBus/namespaces/queues", "slice-chunks", Always),
        new("eventgrid-topic", "Storage Blob Data Contributor", "Microsoft.Storage/storageAccounts/blobServices/containers", "eventgrid-deadletter", Always),
        new("deployer", "Key Vault Secrets Officer", KeyVaultType, DeidVault, WhenDeployerGiven),
    ];

    /// <summary>Scope types where one resource of the type exists in the deployment, so the type alone pins it.</summary>
    private static readonly string[] SingletonScopeTypes =
    [
        "Microsoft.Storage/storageAccounts",
        "Microsoft.Insights/components",
        "Microsoft.ContainerRegistry/registries",
    ];

    private static readonly string[] BroadScopePrefixes = ["Microsoft.Resources/resourceGroups", "subscription", "resourceGroup", "/"];

    [Fact]
    public void RoleAssignments_AllModules_MatchTheLeastPrivilegeTableExactly()
    {
        var actual = ActualGrants().Select(g => g.Grant).ToList();

        var missing = Expected.Except(actual).ToList();
        var extra = actual.Except(Expected).ToList();

        Assert.True(missing.Count == 0 && extra.Count == 0, $"missing: {string.Join("; ", missing)}\nextra: {string.Join("; ", extra)}");
        Assert.Equal(actual.Count, actual.Distinct().Count());
    }

    [Fact]
    public void RoleAssignments_AllModules_AreScopedToOneResource()
    {
        foreach (var (grant, scope) in ActualGrants())
        {
            Assert.False(string.IsNullOrEmpty(scope), $"{grant}: no scope, so it would apply to the whole resource group");
            Assert.DoesNotContain(BroadScopePrefixes, p => scope.StartsWith(p, StringComparison.OrdinalIgnoreCase));
            Assert.Matches(@"^Microsoft\.[A-Za-z]+/[A-Za-z/]+\(.+\)$", scope);
        }
    }

    [Fact]
    public void SingletonScopes_Deployment_HaveExactlyOneResourceOfTheirType()
    {
        var types = fixture.Main.AllResources().Select(r => (string)r.Resource["type"]!).ToList();
        foreach (var type in SingletonScopeTypes)
        {
            Assert.Equal(1, types.Count(t => string.Equals(t, type, StringComparison.OrdinalIgnoreCase)));
        }
    }

    [Fact]
    public void KeyVaults_Deployment_AreTheDeidentificationAndTheWebhookVaultWithDistinctNames()
    {
        var vaults = fixture.Main.AllResources()
            .Where(r => string.Equals((string?)r.Resource["type"], KeyVaultType, StringComparison.OrdinalIgnoreCase))
            .Select(r => r.Template.Resolve(r.Resource["name"]))
            .ToList();

        Assert.Equal(2, vaults.Count);
        Assert.Equal(new[] { DeidVault, WebhookVault }.Order(StringComparer.Ordinal), vaults.Select(VaultLabel).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void KeyVaultRoles_FunctionIdentity_WritesOnlyTheWebhookVaultAndOnlyReadsTheDeidentificationVault()
    {
        var function = ActualGrants().Select(g => g.Grant).Where(g => g.Principal == "function" && g.ScopeType == KeyVaultType).ToList();

        // Officer (set and delete secrets) on the webhook vault and nowhere else; the de-identification key stays read-only.
        var officer = Assert.Single(function, g => g.Role == "Key Vault Secrets Officer");
        Assert.Equal(WebhookVault, officer.Leaf);
        var user = Assert.Single(function, g => g.Role == "Key Vault Secrets User");
        Assert.Equal(DeidVault, user.Leaf);
        Assert.Equal(2, function.Count);
    }

    [Fact]
    public void KeyVaultRoles_ScorerScalerAndEventGrid_HaveNone()
    {
        var vaultGrants = ActualGrants().Select(g => g.Grant).Where(g => g.ScopeType == KeyVaultType).ToList();

        Assert.DoesNotContain(vaultGrants, g => g.Principal is "scorer" or "scaler" or "eventgrid-topic");
        // The webhook vault's only principal is the Function app: the deployer creates no secret there.
        Assert.Equal(["function"], vaultGrants.Where(g => g.Leaf == WebhookVault).Select(g => g.Principal));
        Assert.All(vaultGrants, g => Assert.Contains(g.Principal, new[] { "function", "deployer" }));
    }

    [Fact]
    public void Identities_Workloads_UseDistinctUserAssignedIdentities()
    {
        var principals = Principals();

        Assert.Equal(3, principals.Values.Distinct().Count());
        var identities = fixture.Main.Module("identities").ResourcesOfType("Microsoft.ManagedIdentity/userAssignedIdentities")
            .Select(r => "Microsoft.ManagedIdentity/userAssignedIdentities(" + fixture.Main.Module("identities").Resolve(r["name"]) + ")")
            .ToHashSet();
        Assert.Equal(identities.Order(StringComparer.Ordinal), principals.Keys.Order(StringComparer.Ordinal));
    }

    private IEnumerable<(Grant Grant, string Scope)> ActualGrants()
    {
        var principals = Principals();
        foreach (var (template, resource) in fixture.Main.AllResources())
        {
            if (!string.Equals((string?)resource["type"], "Microsoft.Authorization/roleAssignments", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            var properties = resource["properties"]!;
            var roleId = template.Resolve(properties["roleDefinitionId"]);
            Assert.StartsWith("Microsoft.Authorization/roleDefinitions(", roleId, StringComparison.Ordinal);
            var guid = roleId["Microsoft.Authorization/roleDefinitions(".Length..^1];
            Assert.True(BuiltInRoles.TryGetValue(guid, out var role), $"unknown role definition {guid} in {template.Name}");

            var scope = resource["scope"] is null ? string.Empty : template.Resolve(resource["scope"]);
            var (scopeType, leaf) = SplitScope(scope);
            if (SingletonScopeTypes.Contains(scopeType, StringComparer.OrdinalIgnoreCase))
            {
                leaf = "*";
            }
            else if (string.Equals(scopeType, KeyVaultType, StringComparison.OrdinalIgnoreCase))
            {
                leaf = VaultLabel(leaf);
            }

            var condition = Condition(template, resource);
            if (condition == Never)
            {
                continue;
            }

            var grant = new Grant(PrincipalLabel(template.Resolve(properties["principalId"]), principals), role, scopeType, leaf, condition);
            yield return (grant, scope);
        }
    }

    /// <summary>User-assigned identity (canonical resource ID) to workload label, read from the workloads themselves.</summary>
    private Dictionary<string, string> Principals()
    {
        var functionApp = fixture.Main.Module("functionapp");
        var site = functionApp.ResourcesOfType("Microsoft.Web/sites").Single();
        var functionIdentity = site["identity"]!["userAssignedIdentities"]!.AsObject().Select(p => functionApp.Resolve(JsonValue.Create(p.Key))).Single();

        var containerApps = fixture.Main.Module("containerapps");
        var scorer = containerApps.ResourcesOfType("Microsoft.App/containerApps").Single();
        var scorerIdentity = containerApps.Resolve(scorer["properties"]!["configuration"]!["registries"]![0]!["identity"]);
        var scalerIdentity = containerApps.Resolve(scorer["properties"]!["template"]!["scale"]!["rules"]![0]!["custom"]!["identity"]);

        return new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [functionIdentity] = "function",
            [scorerIdentity] = "scorer",
            [scalerIdentity] = "scaler",
        };
    }

    /// <summary>Which of the two vaults a resolved vault name is, from main.bicep's <c>names</c>.</summary>
    private string VaultLabel(string vaultName)
    {
        var names = fixture.Main.Root["variables"]!["names"]!;
        if (vaultName == fixture.Main.Resolve(names["keyVault"]))
        {
            return DeidVault;
        }

        return vaultName == fixture.Main.Resolve(names["webhookKeyVault"]) ? WebhookVault : "unknown vault " + vaultName;
    }

    private static string PrincipalLabel(string principal, Dictionary<string, string> principals)
    {
        foreach (var (identity, label) in principals)
        {
            if (principal == $"reference({identity}).principalId")
            {
                return label;
            }
        }

        if (principal.StartsWith("reference(Microsoft.EventGrid/systemTopics(", StringComparison.Ordinal) && principal.EndsWith(").identity.principalId", StringComparison.Ordinal))
        {
            return "eventgrid-topic";
        }

        return principal == "param:principalId" ? "deployer" : "unknown: " + principal;
    }

    private static string Condition(ArmTemplate template, JsonObject resource)
    {
        if (resource["condition"] is null)
        {
            return Always;
        }

        var condition = template.Resolve(resource["condition"]);
        return condition switch
        {
            "equals(param:resultTransport, StorageQueue)" => WhenStorageQueueResults,
            "equals(param:resultTransport, ServiceBus)" => WhenServiceBusResults,
            "not(empty(param:principalId))" => WhenDeployerGiven,
            "not(empty())" => Never,
            _ => "unexpected: " + condition,
        };
    }

    private static (string Type, string Leaf) SplitScope(string scope)
    {
        var open = scope.IndexOf('(', StringComparison.Ordinal);
        if (open < 0 || !scope.EndsWith(')'))
        {
            return (scope, string.Empty);
        }

        var names = scope[(open + 1)..^1];
        return (scope[..open], names[(names.LastIndexOf('/') + 1)..]);
    }

    private sealed record Grant(string Principal, string Role, string ScopeType, string Leaf, string Condition)
    {
        public override string ToString() => $"{Principal} -> {Role} on {ScopeType}({Leaf}) [{Condition}]";
    }
}
